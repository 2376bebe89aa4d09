//! Term literals typed by people, in Erlang or Elixir syntax.
//!
//! [`parse_erlang`] reads the Erlang term syntax of the Erlang Reference Manual ("Data Types",
//! "Expressions": terms, `Base#Digits`, `$c`, escape sequences, bit syntax with sizes and
//! `/utf8`); [`parse_elixir`] reads Elixir's literal syntax ("Syntax reference": atoms,
//! aliases, sigil `~c`, keyword lists, `%{}` maps, `&Mod.fun/arity` captures). Every term
//! [`Display`](std::fmt::Display) or [`Term::elixir`] prints with a literal form reads back to an
//! equal term (pids, ports, references and local funs have none).
//!
//! Only literals are read: no variables, operators (beyond a leading `-` on numbers),
//! interpolation (`#{` in an Elixir string is an error) or calls. The input is trusted no more
//! than network input: nesting is limited to [`MAX_PARSE_DEPTH`], integers to
//! [`MAX_INTEGER_DIGITS`] digits, and nothing panics.
//!
//! The parser descends recursively, one call chain per level of nesting. A literal nested at
//! most [`SHALLOW_PARSE_DEPTH`] deep is read on the caller's thread, whatever its stack;
//! a deeper one is read again on a thread of its own with a [`DEEP_PARSE_STACK`] stack, ample
//! for [`MAX_PARSE_DEPTH`] levels, so no input can overflow a stack.

use std::fmt;

use bytes::Bytes;

use super::{Atom, BigInt, BitBinary, ExportFun, Integer, Map, Term};

/// Deepest nesting of tuples, lists, maps and binaries a literal may have: as deep as the
/// decoder reads ([`super::decode::MAX_TERM_DEPTH`]), so anything decoded and printed reads
/// back, plus one: the parser counts a level for an empty `[]` (a leaf on the wire) before it
/// sees that it is empty.
pub const MAX_PARSE_DEPTH: usize = super::decode::MAX_TERM_DEPTH + 1;
/// Nesting read on the caller's thread (a few KiB of stack per level, well inside the 2 MiB of
/// a tokio worker).
pub const SHALLOW_PARSE_DEPTH: usize = 64;
/// The stack of the thread that reads a literal nested deeper than [`SHALLOW_PARSE_DEPTH`]:
/// 128 KiB per level at [`MAX_PARSE_DEPTH`] (reserved, not touched, beyond what is used).
pub const DEEP_PARSE_STACK: usize = 128 << 20;
/// Most digits an integer literal may have (decimal conversion is quadratic in the length).
pub const MAX_INTEGER_DIGITS: usize = 10_000;
/// Largest size, in bits, of one binary segment (`<<X:Size>>`).
pub const MAX_SEGMENT_BITS: u32 = 65_536;
/// Largest binary a literal may build, in bytes.
pub const MAX_BINARY_BYTES: usize = 16 * 1024 * 1024;

/// A literal that could not be read: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the source where the problem was found.
    pub offset: usize,
    /// What was wrong there.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses one Erlang term literal, optionally followed by a `.`; whitespace and `%` comments
/// are allowed around it.
///
/// ```
/// use erlnode::term::parse_erlang;
/// let e = parse_erlang("{ok, [1,2|T]}.").unwrap_err();
/// assert_eq!(e.offset, 10); // variables are not literals
/// let t = parse_erlang("#{name => <<\"bob\">>, tags => [a,'B']}.").unwrap();
/// assert_eq!(t.to_string(), "#{name => <<\"bob\">>,tags => [a,'B']}");
/// ```
pub fn parse_erlang(src: &str) -> Result<Term, ParseError> {
    parse_bounded(src, Dialect::Erlang, parse_erlang_at)
}

fn parse_erlang_at(src: &str, limit: usize) -> Result<Term, Failure> {
    let mut p = Parser::new(src, Dialect::Erlang, limit);
    p.skip_ws();
    let t = p.erlang_term().map_err(|e| p.failure(e))?;
    p.skip_ws();
    if p.peek() == Some('.') {
        p.bump();
        p.skip_ws();
    }
    p.expect_end().map_err(|e| p.failure(e))?;
    Ok(t)
}

/// Parses one Elixir literal; whitespace and `#` comments are allowed around it.
///
/// ```
/// use erlnode::term::parse_elixir;
/// let t = parse_elixir("%{name: \"bob\", tags: [:a, Foo.Bar]}").unwrap();
/// assert_eq!(t.elixir().to_string(), "%{name: \"bob\", tags: [:a, Foo.Bar]}");
/// ```
pub fn parse_elixir(src: &str) -> Result<Term, ParseError> {
    parse_bounded(src, Dialect::Elixir, parse_elixir_at)
}

fn parse_elixir_at(src: &str, limit: usize) -> Result<Term, Failure> {
    let mut p = Parser::new(src, Dialect::Elixir, limit);
    p.skip_ws();
    let t = p.elixir_term().map_err(|e| p.failure(e))?;
    p.skip_ws();
    p.expect_end().map_err(|e| p.failure(e))?;
    Ok(t)
}

/// Why a bounded parse stopped.
enum Failure {
    /// The literal is malformed (or deeper than [`MAX_PARSE_DEPTH`]).
    Malformed(ParseError),
    /// The literal is nested deeper than this attempt's limit allows.
    TooDeepHere,
}

/// Reads `src` on this thread up to [`SHALLOW_PARSE_DEPTH`] levels, and again on a thread with
/// a [`DEEP_PARSE_STACK`] stack if it is nested deeper.
fn parse_bounded(
    src: &str,
    dialect: Dialect,
    parse: fn(&str, usize) -> Result<Term, Failure>,
) -> Result<Term, ParseError> {
    match parse(src, SHALLOW_PARSE_DEPTH) {
        Ok(t) => Ok(t),
        Err(Failure::Malformed(e)) => Err(e),
        Err(Failure::TooDeepHere) => {
            let owned = src.to_owned();
            let deep = std::thread::Builder::new()
                .name(format!("erlnode-parse-{dialect:?}"))
                .stack_size(DEEP_PARSE_STACK)
                .spawn(move || parse(&owned, MAX_PARSE_DEPTH));
            let result = match deep {
                Ok(handle) => handle.join().map_err(|_| "the parsing thread panicked".to_string()),
                Err(e) => Err(format!("cannot start a thread to read a deeply nested literal: {e}")),
            };
            match result {
                Ok(Ok(t)) => Ok(t),
                Ok(Err(Failure::Malformed(e))) => Err(e),
                Ok(Err(Failure::TooDeepHere)) => {
                    Err(ParseError { offset: 0, message: format!("nested deeper than {MAX_PARSE_DEPTH} levels") })
                }
                Err(message) => Err(ParseError { offset: 0, message }),
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Erlang,
    Elixir,
}

/// What an escaped string literal becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StrMode {
    /// Code points (Erlang strings and atoms, Elixir atoms and charlists): `\xHH` is a code point.
    Chars,
    /// UTF-8 bytes (Elixir binaries): `\xHH` is a raw byte.
    Bytes,
}

/// Where the contents of a quoted literal go.
trait Sink: Default {
    fn push_char(&mut self, c: char);
    fn push_byte(&mut self, b: u8);
}

impl Sink for Vec<char> {
    fn push_char(&mut self, c: char) {
        self.push(c);
    }
    fn push_byte(&mut self, b: u8) {
        self.push(b as char);
    }
}

impl Sink for Vec<u8> {
    fn push_char(&mut self, c: char) {
        self.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
    }
    fn push_byte(&mut self, b: u8) {
        self.push(b);
    }
}

/// The value of one binary segment.
enum Segment {
    Int(Integer),
    /// Code points of an Erlang string segment (bytes, or UTF-8 with `/utf8`).
    Chars(Vec<char>),
    /// The bytes of an Elixir string segment.
    Bytes(Vec<u8>),
}

/// Bits accumulated for a binary literal.
#[derive(Default)]
struct BitBuf {
    bytes: Vec<u8>,
    /// Bits used in the last byte, 0 when it is full (or there is none).
    partial: u8,
}

impl BitBuf {
    /// Appends the low `size` bits of `v` (two's complement), most significant first.
    fn push_int(&mut self, v: &Integer, size: u32) {
        let (negative, mag): (bool, Vec<u8>) = match v {
            Integer::Small(i) => (*i < 0, i.unsigned_abs().to_le_bytes().to_vec()),
            Integer::Big(b) => (b.is_negative(), b.magnitude().to_vec()),
        };
        let bit_of = |k: u32| mag.get((k / 8) as usize).map_or(0, |b| (b >> (k % 8)) & 1);
        // -m in two's complement = !m + 1: bits up to the lowest set bit of m are m's own,
        // the bits above it are flipped
        let lowest = (0..mag.len() as u32 * 8).find(|k| bit_of(*k) == 1);
        for k in (0..size).rev() {
            let bit = match lowest {
                Some(low) if negative && k > low => 1 - bit_of(k),
                _ => bit_of(k),
            };
            self.push_bit(bit);
        }
    }

    fn push_bit(&mut self, bit: u8) {
        if self.partial == 0 {
            self.bytes.push(0);
        }
        if let Some(last) = self.bytes.last_mut() {
            *last |= bit << (7 - self.partial);
        }
        self.partial = (self.partial + 1) % 8;
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        if self.partial == 0 {
            self.bytes.extend_from_slice(bytes);
        } else {
            for b in bytes {
                self.push_int(&Integer::Small(*b as i64), 8);
            }
        }
    }

    fn into_term(self) -> Term {
        if self.partial == 0 {
            Term::Binary(Bytes::from(self.bytes))
        } else {
            Term::BitBinary(BitBinary { data: Bytes::from(self.bytes), bits: self.partial })
        }
    }
}

/// Elixir operators and special atoms that may follow `:` unquoted, longest first per prefix.
const ELIXIR_OPERATOR_ATOMS: &[&str] = &[
    "..//", "<<>>", "%{}", "===", "!==", "&&&", "|||", "<<<", ">>>", "<<~", "~>>", "<~>", "+++", "---", "^^^", "~~~",
    "<|>", "...", "\\\\", "::", "++", "--", "**", "<-", "->", "<>", "<=", ">=", "==", "!=", "=~", "&&", "||", "|>",
    "~>", "<~", "..", "{}", "+", "-", "*", "/", "<", ">", "=", "!", "&", "|", "^", "@", ".", "%",
];

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    /// Deepest nesting this attempt reads (at most [`MAX_PARSE_DEPTH`]).
    limit: usize,
    /// Set when the nesting went past `limit` but not past [`MAX_PARSE_DEPTH`].
    too_deep_here: bool,
    dialect: Dialect,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, dialect: Dialect, limit: usize) -> Self {
        Parser { src, pos: 0, depth: 0, limit, too_deep_here: false, dialect }
    }

    /// What a failed attempt means: malformed input, or only too deep for this attempt.
    fn failure(&self, e: ParseError) -> Failure {
        if self.too_deep_here { Failure::TooDeepHere } else { Failure::Malformed(e) }
    }

    // --- cursor -----------------------------------------------------------------------------

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn err<T>(&self, offset: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { offset, message: message.into() })
    }

    fn unexpected<T>(&self, wanted: &str) -> Result<T, ParseError> {
        match self.peek() {
            Some(c) => self.err(self.pos, format!("expected {wanted}, found {c:?}")),
            None => self.err(self.pos, format!("expected {wanted}, found end of input")),
        }
    }

    fn expect(&mut self, s: &str) -> Result<(), ParseError> {
        self.skip_ws();
        if self.eat(s) { Ok(()) } else { self.unexpected(&format!("`{s}`")) }
    }

    fn expect_end(&self) -> Result<(), ParseError> {
        if self.pos < self.src.len() { self.unexpected("end of input") } else { Ok(()) }
    }

    fn skip_ws(&mut self) {
        let comment = if self.dialect == Dialect::Erlang { '%' } else { '#' };
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.bump();
            } else if c == comment {
                while let Some(c) = self.bump() {
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return self.err(self.pos, format!("nested deeper than {MAX_PARSE_DEPTH} levels"));
        }
        if self.depth > self.limit {
            self.too_deep_here = true;
            return self.err(self.pos, "nested deeper than this thread reads");
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn make_atom(&self, offset: usize, s: &str) -> Result<Atom, ParseError> {
        Atom::try_new(s).or_else(|e| self.err(offset, e.to_string()))
    }

    // --- shared lexing ----------------------------------------------------------------------

    /// Digits in `radix` with `_` separators between digits; returns them without separators.
    fn digits(&mut self, radix: u32) -> Result<String, ParseError> {
        let start = self.pos;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c.is_digit(radix) {
                out.push(c);
                self.bump();
            } else if c == '_' && !out.is_empty() && self.peek_at(1).is_some_and(|d| d.is_digit(radix)) {
                self.bump();
            } else {
                break;
            }
        }
        if out.is_empty() {
            return self.unexpected(&format!("a base-{radix} digit"));
        }
        if out.len() > MAX_INTEGER_DIGITS {
            return self.err(start, format!("integer longer than {MAX_INTEGER_DIGITS} digits"));
        }
        Ok(out)
    }

    fn integer_term(&self, offset: usize, negative: bool, digits: &str, radix: u32) -> Result<Term, ParseError> {
        let signed = if negative { format!("-{digits}") } else { digits.to_owned() };
        match BigInt::parse_radix(&signed, radix) {
            Some(i) => Ok(Term::integer(i)),
            None => self.err(offset, "malformed integer"),
        }
    }

    /// A number after an optional `-`: integer, based integer, float, or character code.
    /// `{E1, E2, ...}` from the `{`, each element read by `elem` (Erlang or Elixir syntax).
    fn tuple(&mut self, elem: fn(&mut Self) -> Result<Term, ParseError>) -> Result<Term, ParseError> {
        self.bump();
        self.enter()?;
        let mut v = Vec::new();
        self.items("}", |p| {
            v.push(elem(p)?);
            Ok(())
        })?;
        self.leave();
        Ok(Term::Tuple(v))
    }

    fn number(&mut self) -> Result<Term, ParseError> {
        let start = self.pos;
        let negative = self.eat("-");
        if negative || self.eat("+") {
            self.skip_ws();
        }
        let num_start = self.pos;
        match (self.dialect, self.peek()) {
            (Dialect::Erlang, Some('$')) => {
                self.bump();
                let c = self.char_literal()?;
                return Ok(Term::Int(if negative { -(c as i64) } else { c as i64 }));
            }
            (Dialect::Elixir, Some('?')) => {
                self.bump();
                let c = self.char_literal()?;
                return Ok(Term::Int(if negative { -(c as i64) } else { c as i64 }));
            }
            (Dialect::Elixir, Some('0')) if matches!(self.peek_at(1), Some('x' | 'o' | 'b')) => {
                self.bump();
                let radix = match self.bump() {
                    Some('x') => 16,
                    Some('o') => 8,
                    _ => 2,
                };
                let d = self.digits(radix)?;
                return self.integer_term(num_start, negative, &d, radix);
            }
            (_, Some(c)) if c.is_ascii_digit() => {}
            _ => return self.unexpected("a number"),
        }
        let int = self.digits(10)?;
        // Erlang Base#Digits
        if self.dialect == Dialect::Erlang && self.peek() == Some('#') {
            let radix: u32 = match int.parse() {
                Ok(r @ 2..=36) => r,
                _ => return self.err(num_start, "base must be 2..36"),
            };
            self.bump();
            let d = self.digits(radix)?;
            return self.integer_term(num_start, negative, &d, radix);
        }
        // a float needs digits after the dot (a lone `.` ends an Erlang term)
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            let frac = self.digits(10)?;
            let mut text = format!("{}{int}.{frac}", if negative { "-" } else { "" });
            if matches!(self.peek(), Some('e' | 'E')) {
                let save = self.pos;
                self.bump();
                let sign = match self.peek() {
                    Some(s @ ('+' | '-')) => {
                        self.bump();
                        Some(s)
                    }
                    _ => None,
                };
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    let e = self.digits(10)?;
                    text.push('e');
                    if let Some(s) = sign {
                        text.push(s);
                    }
                    text.push_str(&e);
                } else {
                    self.pos = save;
                }
            }
            return match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Term::Float(f)),
                _ => self.err(start, "float out of range"),
            };
        }
        self.integer_term(num_start, negative, &int, 10)
    }

    /// The character after `$` (Erlang) or `?` (Elixir), escapes included.
    fn char_literal(&mut self) -> Result<u32, ParseError> {
        match self.bump() {
            Some('\\') => {
                let start = self.pos - 1;
                match self.escape(StrMode::Chars, start)? {
                    Escaped::Char(c) => Ok(c as u32),
                    Escaped::Byte(b) => Ok(b as u32),
                }
            }
            Some(c) => Ok(c as u32),
            None => self.unexpected("a character"),
        }
    }

    /// One escape sequence after a `\` (already consumed; `start` is its offset).
    fn escape(&mut self, mode: StrMode, start: usize) -> Result<Escaped, ParseError> {
        let Some(c) = self.bump() else { return self.unexpected("an escape sequence") };
        let simple = |c: char| Ok(Escaped::Char(c));
        match (self.dialect, c) {
            (_, 'b') => simple('\u{08}'),
            (_, 'd') => simple('\u{7F}'),
            (_, 'e') => simple('\u{1B}'),
            (_, 'f') => simple('\u{0C}'),
            (_, 'n') => simple('\n'),
            (_, 'r') => simple('\r'),
            (_, 's') => simple(' '),
            (_, 't') => simple('\t'),
            (_, 'v') => simple('\u{0B}'),
            (Dialect::Elixir, 'a') => simple('\u{07}'),
            (Dialect::Elixir, '0') => simple('\0'),
            (Dialect::Erlang, '0'..='7') => {
                let mut v = c.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match self.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                self.code_point(v, start)
            }
            (Dialect::Erlang, '^') => match self.bump() {
                Some(k) if k.is_ascii_alphabetic() => simple(((k as u8) & 0x1F) as char),
                _ => self.err(start, "`\\^` needs a letter"),
            },
            (_, 'x') => {
                if self.eat("{") {
                    let v = self.hex_digits(1, 6, start)?;
                    if !self.eat("}") {
                        return self.unexpected("`}`");
                    }
                    self.code_point(v, start)
                } else {
                    let v = self.hex_digits(2, 2, start)?;
                    match mode {
                        StrMode::Bytes => Ok(Escaped::Byte(v as u8)),
                        StrMode::Chars => self.code_point(v, start),
                    }
                }
            }
            (Dialect::Elixir, 'u') => {
                let v = if self.eat("{") {
                    let v = self.hex_digits(1, 6, start)?;
                    if !self.eat("}") {
                        return self.unexpected("`}`");
                    }
                    v
                } else {
                    self.hex_digits(4, 4, start)?
                };
                self.code_point(v, start)
            }
            (_, other) => simple(other),
        }
    }

    fn hex_digits(&mut self, min: usize, max: usize, start: usize) -> Result<u32, ParseError> {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            match self.peek().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    n += 1;
                    self.bump();
                }
                None => break,
            }
        }
        if n < min {
            return self.err(start, format!("escape needs {min} hex digit(s)"));
        }
        Ok(v)
    }

    fn code_point(&self, v: u32, start: usize) -> Result<Escaped, ParseError> {
        match char::from_u32(v) {
            Some(c) => Ok(Escaped::Char(c)),
            None => self.err(start, format!("{v:#x} is not a Unicode scalar value")),
        }
    }

    /// The contents of a literal quoted with `quote` (the opening quote already consumed).
    fn quoted<S: Sink>(&mut self, quote: char, mode: StrMode) -> Result<S, ParseError> {
        let open = self.pos - quote.len_utf8();
        let mut out = S::default();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return self.err(open, "unterminated quoted literal"),
                Some(c) if c == quote => break,
                Some('\\') => match self.escape(mode, at)? {
                    Escaped::Char(c) => out.push_char(c),
                    Escaped::Byte(b) => out.push_byte(b),
                },
                Some('#') if self.dialect == Dialect::Elixir && self.peek() == Some('{') => {
                    return self.err(at, "string interpolation `#{` is not a literal (write `\\#{`)");
                }
                Some(c) => out.push_char(c),
            }
        }
        Ok(out)
    }

    fn quoted_chars(&mut self, quote: char) -> Result<Vec<char>, ParseError> {
        self.quoted(quote, StrMode::Chars)
    }

    /// `:Size` / `::size(Size)` digits, checked against [`MAX_SEGMENT_BITS`].
    fn segment_size(&mut self) -> Result<u32, ParseError> {
        let start = self.pos;
        let d = self.digits(10)?;
        match d.parse::<u32>() {
            Ok(n) if n <= MAX_SEGMENT_BITS => Ok(n),
            _ => self.err(start, format!("segment size above {MAX_SEGMENT_BITS} bits")),
        }
    }

    /// Appends one segment to `buf`.
    fn push_segment(
        &self,
        buf: &mut BitBuf,
        start: usize,
        value: Segment,
        size: Option<u32>,
        utf8: bool,
    ) -> Result<(), ParseError> {
        let added = match (&value, size) {
            (Segment::Chars(c), _) => c.len() * 4,
            (Segment::Bytes(b), _) => b.len(),
            (Segment::Int(_), size) => size.unwrap_or(8) as usize / 8 + 1,
        };
        if buf.bytes.len().saturating_add(added) > MAX_BINARY_BYTES {
            return self.err(start, format!("binary larger than {MAX_BINARY_BYTES} bytes"));
        }
        match value {
            Segment::Chars(_) | Segment::Bytes(_) if size.is_some() => {
                return self.err(start, "string segments take no size");
            }
            Segment::Chars(s) => {
                for c in s {
                    if utf8 {
                        buf.push_bytes(c.encode_utf8(&mut [0; 4]).as_bytes());
                    } else if (c as u32) < 256 {
                        buf.push_bytes(&[c as u8]);
                    } else {
                        return self.err(start, "character above 255 in a byte segment (add /utf8)");
                    }
                }
            }
            Segment::Bytes(b) => buf.push_bytes(&b),
            Segment::Int(i) if utf8 => {
                let c = match &i {
                    Integer::Small(v) => u32::try_from(*v).ok().and_then(char::from_u32),
                    Integer::Big(_) => None,
                };
                match (c, size) {
                    (Some(c), None) => buf.push_bytes(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    _ => return self.err(start, "a utf8 segment needs a code point and no size"),
                }
            }
            Segment::Int(i) => buf.push_int(&i, size.unwrap_or(8)),
        }
        Ok(())
    }

    fn quoted_atom(&mut self, quote: char) -> Result<Atom, ParseError> {
        let start = self.pos;
        let chars = self.quoted_chars(quote)?;
        let s: String = chars.into_iter().collect();
        self.make_atom(start, &s)
    }

    /// Comma-separated items up to `close`; `item` parses one (whitespace already skipped).
    fn items(
        &mut self,
        close: &str,
        mut item: impl FnMut(&mut Self) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        self.skip_ws();
        if self.eat(close) {
            return Ok(());
        }
        loop {
            self.skip_ws();
            item(self)?;
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat(close) {
                return Ok(());
            }
            return self.unexpected(&format!("`,` or `{close}`"));
        }
    }

    fn arity(&mut self) -> Result<u8, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let d = self.digits(10)?;
        d.parse::<u8>().or_else(|_| self.err(start, "arity must be 0..255"))
    }

    // --- Erlang -----------------------------------------------------------------------------

    fn erlang_term(&mut self) -> Result<Term, ParseError> {
        let start = self.pos;
        let Some(c) = self.peek() else { return self.unexpected("a term") };
        match c {
            '0'..='9' | '$' | '-' | '+' => self.number(),
            '\'' => {
                self.bump();
                Ok(Term::Atom(self.quoted_atom('\'')?))
            }
            '"' => {
                let mut s = Vec::new();
                while self.peek() == Some('"') {
                    self.bump();
                    s.extend(self.quoted_chars('"')?);
                    self.skip_ws();
                }
                Ok(Term::List(s.into_iter().map(|c| Term::Int(c as i64)).collect()))
            }
            '{' => self.tuple(Parser::erlang_term),
            '[' => {
                self.bump();
                self.enter()?;
                let t = self.erlang_list()?;
                self.leave();
                Ok(t)
            }
            '#' if self.rest().starts_with("#{") => {
                self.pos += 2;
                self.enter()?;
                let mut m = Map::new();
                self.items("}", |p| {
                    let k = p.erlang_term()?;
                    p.expect("=>")?;
                    p.skip_ws();
                    let v = p.erlang_term()?;
                    m.insert(k, v);
                    Ok(())
                })?;
                self.leave();
                Ok(Term::Map(m))
            }
            '<' if self.rest().starts_with("<<") => {
                self.pos += 2;
                self.enter()?;
                let t = self.erlang_binary()?;
                self.leave();
                Ok(t)
            }
            c if c.is_ascii_uppercase() || c == '_' || (('\u{C0}'..='\u{DE}').contains(&c) && c != '\u{D7}') => {
                self.err(start, "variables are not literals")
            }
            _ => {
                let name = self.erlang_name()?;
                if name == "fun" {
                    return self.erlang_fun();
                }
                if super::display::erlang_atom_is_bare(name) || matches!(name, "true" | "false") {
                    Ok(Term::Atom(self.make_atom(start, name)?))
                } else {
                    self.err(start, format!("`{name}` is a reserved word; quote it: '{name}'"))
                }
            }
        }
    }

    /// An unquoted Erlang name (`foo`, `foo@host`, `ölig`).
    fn erlang_name(&mut self) -> Result<&'a str, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || (('\u{DF}'..='\u{FF}').contains(&c) && c != '\u{F7}') => {}
            _ => return self.unexpected("a term"),
        }
        while let Some(c) = self.peek() {
            let name_char = c.is_ascii_alphanumeric()
                || c == '_'
                || c == '@'
                || (('\u{C0}'..='\u{FF}').contains(&c) && c != '\u{D7}' && c != '\u{F7}');
            if !name_char {
                break;
            }
            self.bump();
        }
        Ok(&self.src[start..self.pos])
    }

    fn erlang_atom(&mut self) -> Result<Atom, ParseError> {
        self.skip_ws();
        let start = self.pos;
        if self.eat("'") {
            return self.quoted_atom('\'');
        }
        let name = self.erlang_name()?;
        self.make_atom(start, name)
    }

    /// `fun M:F/A`, after `fun`.
    fn erlang_fun(&mut self) -> Result<Term, ParseError> {
        let module = self.erlang_atom()?;
        self.expect(":")?;
        let function = self.erlang_atom()?;
        self.expect("/")?;
        let arity = self.arity()?;
        Ok(Term::from(ExportFun { module, function, arity }))
    }

    /// List contents after `[`.
    fn erlang_list(&mut self) -> Result<Term, ParseError> {
        self.skip_ws();
        if self.eat("]") {
            return Ok(Term::nil());
        }
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            items.push(self.erlang_term()?);
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("|") {
                self.skip_ws();
                let tail = self.erlang_term()?;
                self.expect("]")?;
                return Ok(Term::list_with_tail(items, tail));
            }
            if self.eat("]") {
                return Ok(Term::List(items));
            }
            return self.unexpected("`,`, `|` or `]`");
        }
    }

    /// Binary segments after `<<`: `Value[:Size][/Type]`, Value an integer, character or string.
    fn erlang_binary(&mut self) -> Result<Term, ParseError> {
        let mut buf = BitBuf::default();
        self.items(">>", |p| {
            let start = p.pos;
            let value = if p.peek() == Some('"') {
                let mut s = Vec::new();
                while p.peek() == Some('"') {
                    p.bump();
                    s.extend(p.quoted_chars('"')?);
                    p.skip_ws();
                }
                Segment::Chars(s)
            } else {
                match p.number()? {
                    Term::Int(i) => Segment::Int(Integer::Small(i)),
                    Term::BigInt(b) => Segment::Int(Integer::Big(b)),
                    _ => return p.err(start, "only integer and string segments are supported"),
                }
            };
            p.skip_ws();
            let size = if p.eat(":") {
                p.skip_ws();
                Some(p.segment_size()?)
            } else {
                None
            };
            p.skip_ws();
            let mut utf8 = false;
            if p.eat("/") {
                p.skip_ws();
                let s = p.pos;
                match p.erlang_name()? {
                    "utf8" => utf8 = true,
                    "integer" if matches!(value, Segment::Int(_)) => {}
                    other => return p.err(s, format!("segment type `{other}` is not supported")),
                }
            }
            p.push_segment(&mut buf, start, value, size, utf8)
        })?;
        Ok(buf.into_term())
    }

    // --- Elixir -----------------------------------------------------------------------------

    fn elixir_term(&mut self) -> Result<Term, ParseError> {
        let start = self.pos;
        let Some(c) = self.peek() else { return self.unexpected("a term") };
        match c {
            '0'..='9' | '?' | '-' | '+' => self.number(),
            ':' => {
                self.bump();
                Ok(Term::Atom(self.elixir_atom_body(start)?))
            }
            '"' => {
                self.bump();
                let b: Vec<u8> = self.quoted('"', StrMode::Bytes)?;
                Ok(Term::Binary(Bytes::from(b)))
            }
            '\'' => {
                self.bump();
                Ok(Term::charlist(&self.quoted_chars('\'')?.into_iter().collect::<String>()))
            }
            '~' if self.rest().starts_with("~c\"") => {
                self.pos += 3;
                Ok(Term::charlist(&self.quoted_chars('"')?.into_iter().collect::<String>()))
            }
            '{' => self.tuple(Parser::elixir_term),
            '[' => {
                self.bump();
                self.enter()?;
                let t = self.elixir_list()?;
                self.leave();
                Ok(t)
            }
            '%' if self.rest().starts_with("%{") => {
                self.pos += 2;
                self.enter()?;
                let t = self.elixir_map()?;
                self.leave();
                Ok(t)
            }
            '<' if self.rest().starts_with("<<") => {
                self.pos += 2;
                self.enter()?;
                let t = self.elixir_binary()?;
                self.leave();
                Ok(t)
            }
            '&' => {
                self.bump();
                self.elixir_capture()
            }
            c if c.is_ascii_uppercase() => Ok(Term::Atom(self.elixir_alias()?)),
            _ => {
                let name = self.elixir_identifier().map_or_else(|| self.unexpected("a term"), Ok)?;
                match name {
                    "true" | "false" | "nil" => Ok(Term::Atom(self.make_atom(start, name)?)),
                    _ => self.err(start, format!("`{name}` is a variable or call, not a literal")),
                }
            }
        }
    }

    /// An identifier: letter or `_`, then letters, digits, `_`, `@`, and an optional final
    /// `?` or `!`. `None` (nothing consumed) if there is none here.
    fn elixir_identifier(&mut self) -> Option<&'a str> {
        let start = self.pos;
        match self.peek() {
            Some(c) if c.is_alphabetic() || c == '_' => {}
            _ => return None,
        }
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' || c == '@' || is_combining(c) {
                self.bump();
            } else {
                break;
            }
        }
        if matches!(self.peek(), Some('?' | '!')) {
            self.bump();
        }
        Some(&self.src[start..self.pos])
    }

    /// What follows `:` in an atom literal. `start` is the offset of the `:`.
    fn elixir_atom_body(&mut self, start: usize) -> Result<Atom, ParseError> {
        if self.eat("\"") {
            return self.quoted_atom('"');
        }
        if let Some(name) = self.elixir_identifier() {
            return self.make_atom(start, name);
        }
        for op in ELIXIR_OPERATOR_ATOMS {
            if self.eat(op) {
                return self.make_atom(start, op);
            }
        }
        self.unexpected("an atom name after `:`")
    }

    /// `Foo.Bar` -> `Elixir.Foo.Bar`; `Elixir.Foo` stays.
    fn elixir_alias(&mut self) -> Result<Atom, ParseError> {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(c) if c.is_ascii_uppercase() => {}
                _ => return self.unexpected("an alias segment (`Foo`)"),
            }
            while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.bump();
            }
            // another segment follows only as `.Upper`
            if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_uppercase()) {
                self.bump();
            } else {
                break;
            }
        }
        if self.peek().is_some_and(|c| c.is_alphanumeric() || c == '?' || c == '!') {
            return self.unexpected("the end of the alias");
        }
        let text = &self.src[start..self.pos];
        if text == "Elixir" || text.starts_with("Elixir.") {
            self.make_atom(start, text)
        } else {
            self.make_atom(start, &format!("Elixir.{text}"))
        }
    }

    /// A keyword key (`a: `, `"a b": `, `+: `) if one starts here; otherwise nothing consumed.
    fn elixir_keyword_key(&mut self) -> Result<Option<Atom>, ParseError> {
        let start = self.pos;
        let name: Option<String> = if self.peek() == Some('"') {
            self.bump();
            Some(self.quoted_chars('"')?.into_iter().collect())
        } else if let Some(name) = self.elixir_identifier() {
            Some(name.to_owned())
        } else {
            ELIXIR_OPERATOR_ATOMS.iter().find(|op| self.rest().starts_with(**op)).map(|op| {
                self.pos += op.len();
                (*op).to_owned()
            })
        };
        // a key is followed by `:` and whitespace (as Elixir requires: `[a:1]` is an error,
        // and `&:mod.f/0` is a capture, not the key `&`)
        match name {
            Some(name) if self.peek() == Some(':') && self.peek_at(1).is_some_and(char::is_whitespace) => {
                self.bump();
                Ok(Some(self.make_atom(start, &name)?))
            }
            _ => {
                self.pos = start;
                Ok(None)
            }
        }
    }

    /// List contents after `[`: terms, then optionally keyword pairs, or `| tail`.
    fn elixir_list(&mut self) -> Result<Term, ParseError> {
        let mut items = Vec::new();
        let mut keywords = false;
        self.skip_ws();
        if self.eat("]") {
            return Ok(Term::nil());
        }
        loop {
            self.skip_ws();
            let at = self.pos;
            if let Some(k) = self.elixir_keyword_key()? {
                keywords = true;
                self.skip_ws();
                let v = self.elixir_term()?;
                items.push(Term::tuple(vec![Term::Atom(k), v]));
            } else if keywords {
                return self.err(at, "keyword pairs must come last in a list");
            } else {
                items.push(self.elixir_term()?);
            }
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if !keywords && self.eat("|") {
                self.skip_ws();
                let tail = self.elixir_term()?;
                self.expect("]")?;
                return Ok(Term::list_with_tail(items, tail));
            }
            if self.eat("]") {
                return Ok(Term::List(items));
            }
            return self.unexpected(if keywords { "`,` or `]`" } else { "`,`, `|` or `]`" });
        }
    }

    /// Map contents after `%{`: `k => v` pairs, then optionally `key: v` pairs.
    fn elixir_map(&mut self) -> Result<Term, ParseError> {
        let mut m = Map::new();
        let mut keywords = false;
        self.items("}", |p| {
            let at = p.pos;
            if let Some(k) = p.elixir_keyword_key()? {
                keywords = true;
                p.skip_ws();
                let v = p.elixir_term()?;
                m.insert(Term::Atom(k), v);
            } else if keywords {
                return p.err(at, "keyword pairs must come last in a map");
            } else {
                let k = p.elixir_term()?;
                p.expect("=>")?;
                p.skip_ws();
                let v = p.elixir_term()?;
                m.insert(k, v);
            }
            Ok(())
        })?;
        Ok(Term::Map(m))
    }

    /// Binary segments after `<<`: integers or strings, with `::size(N)`, `::N`, `::utf8`.
    fn elixir_binary(&mut self) -> Result<Term, ParseError> {
        let mut buf = BitBuf::default();
        self.items(">>", |p| {
            let start = p.pos;
            let value = if p.eat("\"") {
                Segment::Bytes(p.quoted('"', StrMode::Bytes)?)
            } else {
                match p.number()? {
                    Term::Int(i) => Segment::Int(Integer::Small(i)),
                    Term::BigInt(b) => Segment::Int(Integer::Big(b)),
                    _ => return p.err(start, "only integer and string segments are supported"),
                }
            };
            p.skip_ws();
            let mut size = None;
            let mut utf8 = false;
            if p.eat("::") {
                p.skip_ws();
                let s = p.pos;
                if p.peek().is_some_and(|c| c.is_ascii_digit()) {
                    size = Some(p.segment_size()?);
                } else {
                    match p.elixir_identifier() {
                        Some("size") => {
                            p.expect("(")?;
                            p.skip_ws();
                            size = Some(p.segment_size()?);
                            p.expect(")")?;
                        }
                        Some("utf8") => utf8 = true,
                        Some("binary") if matches!(value, Segment::Bytes(_)) => {}
                        Some("integer") if matches!(value, Segment::Int(_)) => {}
                        _ => return p.err(s, "supported modifiers: size(N), N, utf8"),
                    }
                }
            }
            p.push_segment(&mut buf, start, value, size, utf8)
        })?;
        Ok(buf.into_term())
    }

    /// `&Mod.fun/arity` after `&`.
    fn elixir_capture(&mut self) -> Result<Term, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let module = match self.peek() {
            Some(':') => {
                self.bump();
                self.elixir_atom_body(start)?
            }
            Some(c) if c.is_ascii_uppercase() => self.elixir_alias()?,
            _ => match self.elixir_identifier() {
                Some(n @ ("nil" | "true" | "false")) => self.make_atom(start, n)?,
                _ => return self.err(start, "expected a module (`Foo`, `:mod`) after `&`"),
            },
        };
        if !self.eat(".") {
            return self.unexpected("`.` and a function name");
        }
        let fstart = self.pos;
        let function = if self.eat("\"") {
            self.quoted_atom('"')?
        } else if let Some(name) = self.elixir_identifier() {
            self.make_atom(fstart, name)?
        } else {
            match ELIXIR_OPERATOR_ATOMS.iter().find(|op| self.rest().starts_with(**op)) {
                Some(op) => {
                    self.pos += op.len();
                    self.make_atom(fstart, op)?
                }
                None => return self.unexpected("a function name"),
            }
        };
        self.expect("/")?;
        let arity = self.arity()?;
        Ok(Term::from(ExportFun { module, function, arity }))
    }
}

/// Combining marks that may continue an identifier (`कि`, decomposed accents).
fn is_combining(c: char) -> bool {
    matches!(c as u32, 0x300..=0x36F | 0x900..=0x97F | 0x1AB0..=0x1AFF | 0x20D0..=0x20FF)
}

enum Escaped {
    Char(char),
    Byte(u8),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::LocalFun;

    fn atom(s: &str) -> Term {
        Term::atom(s)
    }
    fn int(s: &str) -> Term {
        Term::integer(BigInt::parse_decimal(s).expect("decimal"))
    }
    fn erl(s: &str) -> Term {
        parse_erlang(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn ex(s: &str) -> Term {
        parse_elixir(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn export(m: &str, f: &str, a: u8) -> Term {
        Term::from(ExportFun { module: Atom::new(m), function: Atom::new(f), arity: a })
    }
    fn bits(data: &[u8], bits: u8) -> Term {
        Term::BitBinary(BitBinary { data: Bytes::copy_from_slice(data), bits })
    }
    fn map(entries: Vec<(Term, Term)>) -> Term {
        Term::Map(Map::from_entries(entries))
    }

    #[test]
    fn erlang_examples() {
        assert_eq!(erl("-12"), Term::Int(-12));
        assert_eq!(erl("123456789012345678901234567890"), int("123456789012345678901234567890"));
        assert_eq!(erl("-9223372036854775808"), Term::Int(i64::MIN));
        assert_eq!(erl("16#ff"), Term::Int(255));
        assert_eq!(erl("-2#101"), Term::Int(-5));
        assert_eq!(erl("1_000"), Term::Int(1000));
        assert_eq!(erl("$a"), Term::Int(97));
        assert_eq!(erl("$\\n"), Term::Int(10));
        assert_eq!(erl("$\\x{1F600}"), Term::Int(0x1F600));
        assert_eq!(erl("$\\^a"), Term::Int(1));
        assert_eq!(erl("1.0"), Term::Float(1.0));
        assert_eq!(erl("-2.5e-3"), Term::Float(-2.5e-3));
        assert_eq!(erl("1.0e300"), Term::Float(1.0e300));
        assert!(matches!(erl("-0.0"), Term::Float(f) if f == 0.0 && f.is_sign_negative()));
        assert_eq!(erl("foo"), atom("foo"));
        assert_eq!(erl("foo@host"), atom("foo@host"));
        assert_eq!(erl("'Quoted atom'"), atom("Quoted atom"));
        assert_eq!(erl("'a\\'b\\\\c\\n\\101'"), atom("a'b\\c\nA"));
        assert_eq!(erl("'日本'"), atom("日本"));
        assert_eq!(erl("true"), atom("true"));
        assert_eq!(erl("\"abc\""), Term::charlist("abc"));
        assert_eq!(erl("\"a\\n\\t\\\"\\\\\\x{1F600}\""), Term::charlist("a\n\t\"\\\u{1F600}"));
        assert_eq!(erl("\"ab\" \"cd\""), Term::charlist("abcd"));
        assert_eq!(erl("\"\""), Term::nil());
        assert_eq!(erl("<<\"bin\">>"), Term::binary("bin"));
        assert_eq!(erl("<<\"日本\"/utf8>>"), Term::binary("日本"));
        assert_eq!(erl("<<\"é\">>"), Term::binary([233]));
        assert_eq!(erl("<<1,2,3>>"), Term::binary([1, 2, 3]));
        assert_eq!(erl("<<>>"), Term::binary([]));
        assert_eq!(erl("<<1,2:3>>"), bits(&[1, 0x40], 3));
        assert_eq!(erl("<<1:1>>"), bits(&[0x80], 1));
        assert_eq!(erl("<<256:16, -1:4>>"), bits(&[1, 0, 0xF0], 4));
        assert_eq!(erl("<<-2:16>>"), Term::binary([0xFF, 0xFE]));
        assert_eq!(erl("<<$a, 300/utf8>>"), Term::binary("aĬ"));
        assert_eq!(erl("{}"), Term::tuple(vec![]));
        assert_eq!(erl("{ok, 1}"), Term::tuple(vec![atom("ok"), Term::Int(1)]));
        assert_eq!(erl("[]"), Term::nil());
        assert_eq!(erl("[1,2|[3]]"), Term::List(vec![Term::Int(1), Term::Int(2), Term::Int(3)]));
        assert_eq!(erl("[1,2|3]"), Term::Improper(vec![Term::Int(1), Term::Int(2)], Box::new(Term::Int(3))));
        assert_eq!(erl("#{}"), map(vec![]));
        assert_eq!(
            erl("#{k => v, 1 => [x]}"),
            map(vec![(atom("k"), atom("v")), (Term::Int(1), Term::List(vec![atom("x")]))])
        );
        assert_eq!(erl("fun m:f/2"), export("m", "f", 2));
        assert_eq!(erl("fun 'Elixir.Foo':'and'/1"), export("Elixir.Foo", "and", 1));
        assert_eq!(erl(" %% a comment\n {a, % another\n b}.  \n"), Term::tuple(vec![atom("a"), atom("b")]));
    }

    #[test]
    fn elixir_examples() {
        assert_eq!(ex(":ok"), atom("ok"));
        assert_eq!(ex(":\"quoted atom\""), atom("quoted atom"));
        assert_eq!(ex(":foo?"), atom("foo?"));
        assert_eq!(ex(":foo@host"), atom("foo@host"));
        assert_eq!(ex(":+"), atom("+"));
        assert_eq!(ex(":%{}"), atom("%{}"));
        assert_eq!(ex(":..//"), atom("..//"));
        assert_eq!(ex(":\\\\"), atom("\\\\"));
        assert_eq!(ex(":é"), atom("é"));
        assert_eq!(ex(":\"a\\x{FFFE}b\\0\\x80\\u200B\""), atom("a\u{FFFE}b\0\u{80}\u{200B}"));
        assert_eq!(ex("true"), atom("true"));
        assert_eq!(ex("false"), atom("false"));
        assert_eq!(ex("nil"), atom("nil"));
        assert_eq!(ex("Foo.Bar"), atom("Elixir.Foo.Bar"));
        assert_eq!(ex("Elixir.Foo"), atom("Elixir.Foo"));
        assert_eq!(ex("Elixir"), atom("Elixir"));
        assert_eq!(ex("\"binary\""), Term::binary("binary"));
        assert_eq!(
            ex("\"日本\\n\\e\\d\\a\\#{x}\\u00A0\\u{1F600}\""),
            Term::binary("日本\n\u{1b}\u{7f}\u{7}#{x}\u{a0}\u{1F600}")
        );
        assert_eq!(ex("\"\\xFF\""), Term::binary([255]));
        assert_eq!(ex("~c\"chars\""), Term::charlist("chars"));
        assert_eq!(ex("'chars'"), Term::charlist("chars"));
        assert_eq!(ex("<<1, 2>>"), Term::binary([1, 2]));
        assert_eq!(ex("<<1, 2::size(3)>>"), bits(&[1, 0x40], 3));
        assert_eq!(ex("<<1::1>>"), bits(&[0x80], 1));
        assert_eq!(ex("<<\"a\", 300::utf8>>"), Term::binary("aĬ"));
        assert_eq!(ex("1_000_000"), Term::Int(1_000_000));
        assert_eq!(ex("0x1F"), Term::Int(31));
        assert_eq!(ex("0b101"), Term::Int(5));
        assert_eq!(ex("0o17"), Term::Int(15));
        assert_eq!(ex("?a"), Term::Int(97));
        assert_eq!(ex("?\\n"), Term::Int(10));
        assert_eq!(ex("-5"), Term::Int(-5));
        assert_eq!(ex("1.0e300"), Term::Float(1.0e300));
        assert_eq!(ex("-1_000.5"), Term::Float(-1000.5));
        assert_eq!(ex("{1, 2}"), Term::tuple(vec![Term::Int(1), Term::Int(2)]));
        assert_eq!(ex("[1 | 2]"), Term::Improper(vec![Term::Int(1)], Box::new(Term::Int(2))));
        let kw = |k: &str, v: Term| Term::tuple(vec![atom(k), v]);
        assert_eq!(ex("[a: 1, b: 2]"), Term::List(vec![kw("a", Term::Int(1)), kw("b", Term::Int(2))]));
        assert_eq!(ex("[1, a: 2]"), Term::List(vec![Term::Int(1), kw("a", Term::Int(2))]));
        assert_eq!(
            ex("[\"foo bar\": 1, +: 2, %{}: 3, nil: 4]"),
            Term::List(vec![
                kw("foo bar", Term::Int(1)),
                kw("+", Term::Int(2)),
                kw("%{}", Term::Int(3)),
                kw("nil", Term::Int(4))
            ])
        );
        assert_eq!(
            ex("[:a, \"b\", <<1>>, -1]"),
            Term::List(vec![atom("a"), Term::binary("b"), Term::binary([1]), Term::Int(-1)])
        );
        assert_eq!(ex("%{\"k\" => :v, a: 1}"), map(vec![(Term::binary("k"), atom("v")), (atom("a"), Term::Int(1))]));
        assert_eq!(ex("%{}"), map(vec![]));
        assert_eq!(ex("&Mod.fun/2"), export("Elixir.Mod", "fun", 2));
        assert_eq!(ex("&:erlang.node/0"), export("erlang", "node", 0));
        assert_eq!(ex("&Foo.+/2"), export("Elixir.Foo", "+", 2));
        assert_eq!(ex("&:m.//1"), export("m", "/", 1));
        assert_eq!(ex("&Foo.\"a b\"/2"), export("Elixir.Foo", "a b", 2));
        assert_eq!(ex("&:\"foo bar\".baz?/1"), export("foo bar", "baz?", 1));
        assert_eq!(ex("# comment\n {:a, # more\n :b}  "), Term::tuple(vec![atom("a"), atom("b")]));
    }

    fn err_erl(s: &str) -> ParseError {
        match parse_erlang(s) {
            Err(e) => e,
            Ok(t) => panic!("{s} parsed as {t:?}"),
        }
    }
    fn err_ex(s: &str) -> ParseError {
        match parse_elixir(s) {
            Err(e) => e,
            Ok(t) => panic!("{s} parsed as {t:?}"),
        }
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert_eq!(err_erl("{ok, [1,2|T]}").offset, 10);
        assert_eq!(err_erl("{a, b").offset, 5);
        assert_eq!(err_erl("{a b}").offset, 3);
        assert_eq!(err_erl("[1,2,]").offset, 5);
        assert_eq!(err_erl("'abc").offset, 0);
        assert_eq!(err_erl("foo bar").offset, 4);
        assert_eq!(err_erl("{a}. x").offset, 5);
        let e = err_erl("[and]");
        assert_eq!(e.offset, 1);
        assert!(e.message.contains("reserved"), "{e}");
        assert_eq!(err_erl("37#1").offset, 0);
        assert_eq!(err_erl("16#fg").offset, 4);
        assert_eq!(err_erl("<<\"日\">>").offset, 2);
        assert_eq!(err_erl("<<1:70000>>").offset, 4);
        assert_eq!(err_erl("fun m:f/256").offset, 8);
        assert_eq!(err_erl("1.0e999").offset, 0);
        assert_eq!(err_erl("\"\\x{110000}\"").offset, 1);
        assert_eq!(err_erl("").offset, 0);
        let e = err_ex("\"a#{b}\"");
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("interpolation"), "{e}");
        assert_eq!(err_ex("[a: 1, 2]").offset, 7);
        assert_eq!(err_ex("%{a: 1, \"b\" => 2}").offset, 8);
        assert_eq!(err_ex("{1, x}").offset, 4);
        assert_eq!(err_ex("[1 | 2, 3]").offset, 6);
        assert_eq!(err_ex("&foo/1").offset, 1);
        assert_eq!(err_ex(":").offset, 1);
        assert_eq!(err_ex("Foo.bar").offset, 3);
        assert_eq!(err_ex("1 2").offset, 2);
        assert_eq!(format!("{}", err_ex("1 2")), "at byte 2: expected end of input, found '2'");
    }

    /// What the printer prints of a term the decoder read, up to the decoder's depth, reads back
    /// (both sides of the shallow/deep switch, every container, both syntaxes) on a 2 MiB
    /// thread, a tokio worker's stack (the term model itself drops, compares and prints
    /// recursively: see the decoder's `max_depth_is_safe_on_a_small_stack`); a malformed deep
    /// literal is still reported where it breaks.
    #[test]
    fn deep_literals_read_back_on_any_stack() {
        fn nest(depth: usize, wrap: fn(Term) -> Term) -> Term {
            (0..depth).fold(Term::Int(1), |t, _| wrap(t))
        }
        let wraps: [fn(Term) -> Term; 4] = [
            |t| Term::Tuple(vec![t]),
            |t| Term::List(vec![t]),
            |t| Term::Map(Map::from_entries([(Term::atom("k"), t)])),
            |t| Term::Tuple(vec![Term::atom("a"), Term::List(vec![t, Term::nil()])]),
        ];
        let small_stack = std::thread::Builder::new().stack_size(2 << 20);
        let checked = small_stack
            .spawn(move || {
                for wrap in wraps {
                    for depth in [SHALLOW_PARSE_DEPTH - 1, SHALLOW_PARSE_DEPTH + 1, 500, MAX_PARSE_DEPTH / 2] {
                        let t = nest(depth, wrap);
                        assert_eq!(parse_erlang(&t.to_string()).as_ref(), Ok(&t), "erlang depth {depth}");
                        assert_eq!(parse_elixir(&t.elixir().to_string()).as_ref(), Ok(&t), "elixir depth {depth}");
                    }
                }
                let deep_bad = "[".repeat(500) + "1,]" + &"]".repeat(499);
                assert_eq!(err_erl(&deep_bad).offset, 502);
            })
            .and_then(|h| h.join().map_err(|_| std::io::Error::other("panicked")));
        assert!(checked.is_ok());
    }

    #[test]
    fn limits_are_enforced() {
        let deep = "[".repeat(MAX_PARSE_DEPTH + 1) + &"]".repeat(MAX_PARSE_DEPTH + 1);
        assert_eq!(err_erl(&deep).offset, MAX_PARSE_DEPTH + 1);
        assert_eq!(err_ex(&deep).offset, MAX_PARSE_DEPTH + 1);
        assert!(err_erl(&deep).message.contains(&MAX_PARSE_DEPTH.to_string()), "{}", err_erl(&deep));
        let ok = "{".repeat(MAX_PARSE_DEPTH) + &"}".repeat(MAX_PARSE_DEPTH);
        assert!(parse_erlang(&ok).is_ok());
        let long = "9".repeat(MAX_INTEGER_DIGITS + 1);
        assert!(err_erl(&long).message.contains("digits"));
        assert!(parse_elixir(&"9".repeat(MAX_INTEGER_DIGITS)).is_ok());
        let atom255 = format!("'{}'", "é".repeat(255));
        assert!(parse_erlang(&atom255).is_ok());
        let atom256 = format!("'{}'", "é".repeat(256));
        assert!(err_erl(&atom256).message.contains("255"));
        let huge = format!("<<{}>>", vec!["0:65536"; 2100].join(","));
        assert!(err_erl(&huge).message.contains("larger than"));
    }

    #[test]
    fn captured_output_reads_back() {
        // strings `erl` (OTP 27, +pc unicode) and `iex` (1.18) printed, read by our parsers
        assert_eq!(
            erl("#{1 => a,2 => f,0.5 => g,1.0 => b,a => c,{x} => e,\"s\" => d}").to_string(),
            "#{1 => a,2 => f,0.5 => g,1.0 => b,a => c,{x} => e,\"s\" => d}"
        );
        assert_eq!(erl("[97,65534]"), Term::List(vec![Term::Int(97), Term::Int(65534)]));
        assert_eq!(erl("<<\"a\\\"b\\\\c'\">>"), Term::binary("a\"b\\c'"));
        assert_eq!(erl("'a\\001b'"), atom("a\u{1}b"));
        assert_eq!(
            ex("%{1 => 4, 1.0 => 3, :z => 1, {1} => 2, \"s\" => 5}").elixir().to_string(),
            "%{1 => 4, 1.0 => 3, :z => 1, {1} => 2, \"s\" => 5}"
        );
        assert_eq!(ex("[{:a, 1}, {\"b\", 2}]").elixir().to_string(), "[{:a, 1}, {\"b\", 2}]");
        assert_eq!(ex("<<255, 3::size(2)>>"), bits(&[255, 0xC0], 2));
        assert_eq!(ex("[104, 105 | 2]"), Term::Improper(vec![Term::Int(104), Term::Int(105)], Box::new(Term::Int(2))));
    }

    #[test]
    fn local_funs_and_pids_have_no_literal() {
        let f = Term::LocalFun(Box::new(LocalFun {
            arity: 0,
            uniq: [0; 16],
            index: 0,
            module: Atom::new("m"),
            old_index: Term::Int(0),
            old_uniq: Term::Int(1),
            pid: Term::Int(0),
            free_vars: vec![],
        }));
        assert!(parse_erlang(&f.to_string()).is_err());
        assert!(parse_elixir(&f.elixir().to_string()).is_err());
    }

    mod roundtrip {
        use super::*;
        use proptest::prelude::*;

        fn arb_atom() -> impl Strategy<Value = Atom> {
            prop_oneof![
                prop::sample::select(vec![
                    "ok",
                    "error",
                    "and",
                    "maybe",
                    "nil",
                    "true",
                    "false",
                    "Elixir",
                    "Elixir.Foo.Bar",
                    "Elixir.Elixir",
                    "Elixir.foo",
                    "Foo",
                    "foo@host",
                    "foo?",
                    "a!",
                    "_",
                    "é",
                    "日本",
                    "aд",
                    "+",
                    "::",
                    "%{}",
                    "..",
                    "..//",
                    "\\\\",
                    "<<>>",
                    "->",
                    "not in",
                    "",
                    "a b",
                    "a'b",
                    "a\"b",
                    "a#{b}",
                    "\u{0}",
                    "a\u{200b}",
                    "\u{fffe}",
                    "é@x",
                    "Éa",
                    "ª",
                ])
                .prop_map(Atom::new),
                "\\PC{0,12}".prop_map(|s| Atom::new(&s)),
                prop::collection::vec(any::<char>(), 0..8).prop_map(|v| Atom::new(&v.into_iter().collect::<String>())),
            ]
        }

        fn arb_float() -> impl Strategy<Value = f64> {
            prop_oneof![
                any::<u64>().prop_map(f64::from_bits).prop_filter("finite", |f| f.is_finite()),
                prop::sample::select(vec![0.0, -0.0, 1.0, 0.1, 1.0e15, 1.0e16, 1000.0, 5.0e-324, f64::MAX, -1.5]),
                (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
            ]
        }

        fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..12),
                "\\PC{0,10}".prop_map(String::into_bytes),
                "[ -~]{0,10}".prop_map(String::into_bytes),
                prop::collection::vec(
                    prop::sample::select(vec![7u8, 8, 9, 10, 27, 127, 160, 233, 34, 92, 35, 123]),
                    0..8
                ),
            ]
        }

        fn arb_leaf() -> impl Strategy<Value = Term> {
            prop_oneof![
                any::<i64>().prop_map(Term::Int),
                (any::<bool>(), prop::collection::vec(any::<u8>(), 9..20))
                    .prop_map(|(neg, mag)| Term::integer(BigInt::normalize(neg, &mag))),
                arb_float().prop_map(Term::Float),
                arb_atom().prop_map(Term::Atom),
                arb_bytes().prop_map(|b| Term::Binary(Bytes::from(b))),
                (prop::collection::vec(any::<u8>(), 1..6), 1u8..8).prop_map(|(mut d, bits)| {
                    if let Some(last) = d.last_mut() {
                        *last &= 0xFFu8 << (8 - bits);
                    }
                    Term::BitBinary(BitBinary { data: Bytes::from(d), bits })
                }),
                "\\PC{0,10}".prop_map(|s| Term::charlist(&s)),
                "[ -~\n\t]{0,10}".prop_map(|s| Term::charlist(&s)),
                prop::collection::vec(
                    prop::sample::select(vec![0i64, 7, 27, 127, 128, 159, 160, 0xD7FF, 0xFFFE, 0x10FFFF, -1, 97]),
                    0..6
                )
                .prop_map(|v| Term::List(v.into_iter().map(Term::Int).collect())),
                (arb_atom(), arb_atom(), any::<u8>()).prop_map(|(module, function, arity)| Term::from(ExportFun {
                    module,
                    function,
                    arity
                })),
            ]
        }

        fn arb_term() -> impl Strategy<Value = Term> {
            arb_leaf().prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Term::Tuple),
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Term::List),
                    (prop::collection::vec(inner.clone(), 1..4), inner.clone())
                        .prop_map(|(items, tail)| Term::list_with_tail(items, tail)),
                    prop::collection::vec((arb_atom().prop_map(Term::Atom), inner.clone()), 0..5)
                        .prop_map(|kv| Term::List(kv.into_iter().map(|(k, v)| Term::tuple(vec![k, v])).collect())),
                    prop::collection::vec((inner.clone(), inner.clone()), 0..5)
                        .prop_map(|kv| Term::Map(Map::from_entries(kv))),
                    prop::collection::vec((arb_atom().prop_map(Term::Atom), inner), 0..5)
                        .prop_map(|kv| Term::Map(Map::from_entries(kv))),
                ]
            })
        }

        /// Export funs whose module Elixir cannot write unambiguously (`&:..baz/1` for `:.`).
        fn elixir_capturable(t: &Term) -> bool {
            match t {
                Term::ExportFun(e) => !e.module.as_str().starts_with('.'),
                Term::Tuple(v) | Term::List(v) => v.iter().all(elixir_capturable),
                Term::Improper(v, tail) => v.iter().all(elixir_capturable) && elixir_capturable(tail),
                Term::Map(m) => m.entries().iter().all(|(k, v)| elixir_capturable(k) && elixir_capturable(v)),
                _ => true,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn erlang_text_reads_back(t in arb_term()) {
                let text = t.to_string();
                let back = parse_erlang(&text);
                prop_assert_eq!(back.as_ref(), Ok(&t), "{}", text);
            }

            #[test]
            fn elixir_text_reads_back(t in arb_term().prop_filter("capturable", elixir_capturable)) {
                let text = t.elixir().to_string();
                let back = parse_elixir(&text);
                prop_assert_eq!(back.as_ref(), Ok(&t), "{}", text);
            }

            /// Arbitrary text, and text made of literal fragments, never panics either parser.
            #[test]
            fn garbage_never_panics(
                text in prop_oneof![
                    "\\PC{0,40}",
                    prop::collection::vec(prop::sample::select(vec![
                        "<<", ">>", "[", "]", "{", "}", "#{", "%{", "=>", ",", "|", ":", "::", "/",
                        "\"", "'", "\\", "\\x{", "$", "?", "-", "1", "16#", "0x", "1.0e", "e",
                        "a", "Foo", ".", "&", "fun", "~c\"", "utf8", "size(", ")", " ", "#", "%",
                    ]), 0..30).prop_map(|v| v.concat()),
                ]
            ) {
                let _ = parse_erlang(&text);
                let _ = parse_elixir(&text);
            }
        }
    }
}
