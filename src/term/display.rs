//! Terms as text: Erlang syntax ([`fmt::Display`] for [`Term`]) and Elixir syntax
//! ([`Term::elixir`]).
//!
//! The Erlang form is what `io_lib:format("~0tp", [T])` prints on OTP 27+ started with
//! `+pc unicode` (STDLIB `io_lib`, "Printable characters"; `io:printable_range/0`), with map keys
//! sorted as `~0tkp` sorts them. The Elixir form is what `inspect/1` prints on Elixir 1.18
//! (`Inspect` protocol, `Inspect.Opts` defaults). Both are single-line, and every term with a
//! literal form prints as a literal that [`parse_erlang`](super::parse_erlang) and
//! [`parse_elixir`](super::parse_elixir) read back to an equal term.
//!
//! Choices where the BEAM's own output cannot be reproduced:
//! - **Pids, ports and references** print the node *name* where the BEAM prints the node's
//!   local index (`<0.117.0>` on the owning node, `<5.117.0>` elsewhere): a Rust node cannot know
//!   which index a peer gave a node. So `<foo@host.117.0>`, `#Port<foo@host.7>`,
//!   `#Ref<foo@host.3.2.1>` (reference words most significant first, as `erl` prints them), and in
//!   Elixir `#PID<foo@host.117.0>`, `#Port<foo@host.7>`, `#Reference<foo@host.3.2.1>`.
//! - **Map entries** are printed sorted in map-key order (term order, except that every integer
//!   sorts before every float), as `~0tkp` prints them. OTP 26+ `~p` and Elixir's `inspect` print
//!   a map's internal order instead, which depends on atom creation order in the emulator.
//! - **Atoms in `fun M:F/A`** print as atoms do elsewhere; `erl` shows non-Latin-1 ones there
//!   as mangled UTF-8 bytes.
//! - **Local funs** print as `#Fun<Module.Index.Uniq>` (Erlang, as `erl` prints them) and
//!   `#Function<Index.Uniq/Arity in Module>` (Elixir; the wire does not carry the function name
//!   that Elixir adds after the module).
//! - **Non-ASCII Elixir atoms** print unquoted only when they are single-script identifiers made
//!   of common Latin, Greek, Cyrillic, Japanese or Korean letters; Elixir's full rule (Unicode
//!   UAX #31 with UTS #39 restrictions) leaves a few more unquoted. The quoted form is valid
//!   Elixir either way.

use std::cmp::Ordering;
use std::fmt::{self, Write};

use super::{Atom, BitBinary, ExportFun, LocalFun, Map, Pid, Port, Reference, Term};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// Orders map keys as the BEAM orders them for printing (`maps:iterator(M, ordered)`): term order,
/// except that all integers sort before all floats, at every nesting level.
pub(crate) fn map_key_cmp(a: &Term, b: &Term) -> Ordering {
    use Term::{BigInt as B, Float as F, Int as I};
    match (a, b) {
        (I(_) | B(_), F(_)) => Ordering::Less,
        (F(_), I(_) | B(_)) => Ordering::Greater,
        (Term::Tuple(x), Term::Tuple(y)) => x.len().cmp(&y.len()).then_with(|| seq_key_cmp(x, y)),
        (Term::List(x), Term::List(y)) if !x.is_empty() && !y.is_empty() => {
            seq_key_cmp(x, y).then_with(|| x.len().cmp(&y.len()))
        }
        (Term::Map(x), Term::Map(y)) => x.len().cmp(&y.len()).then_with(|| {
            let (xs, ys) = (sorted_entries(x), sorted_entries(y));
            let keys = xs.iter().zip(ys.iter()).map(|(p, q)| map_key_cmp(&p.0, &q.0));
            let vals = xs.iter().zip(ys.iter()).map(|(p, q)| map_key_cmp(&p.1, &q.1));
            keys.chain(vals).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
        }),
        _ => a.cmp(b),
    }
}

fn seq_key_cmp(x: &[Term], y: &[Term]) -> Ordering {
    x.iter().zip(y.iter()).map(|(p, q)| map_key_cmp(p, q)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
}

/// A map's entries in the order both printers use.
fn sorted_entries(m: &Map) -> Vec<&(Term, Term)> {
    let mut v: Vec<&(Term, Term)> = m.entries().iter().collect();
    v.sort_by(|a, b| map_key_cmp(&a.0, &b.0));
    v
}

/// `2^53`: integral floats at or above it print in scientific notation in Erlang.
const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

/// Formats a finite float as Erlang's `float_to_list(F, [short])` (and `~p`) does: the shortest
/// digits that read back to the same float, in plain or scientific notation, whichever is
/// shorter (plain on a tie); integral values of at least 2^53 always in scientific notation.
pub fn erlang_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    if !f.is_finite() {
        // not a term the BEAM can hold; print something a reader recognises
        return format!("{f}");
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-7", "5e-324"
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let len = digits.len() as i32;
    // value = digits * 10^place
    let place = exp - len + 1;
    let exp_str = exp.to_string();
    let sci_len = len + 1 + i32::from(len == 1) + 1 + exp_str.len() as i32;
    let scientific = || {
        let (first, rest) = digits.split_at(1);
        format!("{first}.{}e{exp_str}", if rest.is_empty() { "0" } else { rest })
    };
    let body = if place >= 0 {
        if f.abs() < TWO_POW_53 && len + place + 2 <= sci_len {
            format!("{digits}{}.0", "0".repeat(place as usize))
        } else {
            scientific()
        }
    } else if exp >= 0 {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{int}.{frac}")
    } else {
        let zeros = (-exp - 1) as usize;
        if 2 + zeros as i32 + len <= sci_len { format!("0.{}{digits}", "0".repeat(zeros)) } else { scientific() }
    };
    if f < 0.0 { format!("-{body}") } else { body }
}

/// Formats a finite float as Elixir's `inspect/1` does: integral values in `1.0 <= |f| < 1.0e16`
/// as the integer followed by `.0`, everything else as Erlang does.
pub fn elixir_float(f: f64) -> String {
    let a = f.abs();
    if (1.0..1.0e16).contains(&a) && a.fract() == 0.0 { format!("{f:.1}") } else { erlang_float(f) }
}

/// The last `bits` bits of a bitstring, as the integer `erl` and `iex` print after the bytes.
fn tail_bits(b: &BitBinary) -> (&[u8], u8) {
    match b.data.split_last() {
        Some((last, whole)) => (whole, last >> (8 - b.bits.clamp(1, 8))),
        None => (&[], 0),
    }
}

// ---------------------------------------------------------------------------------------------
// Erlang
// ---------------------------------------------------------------------------------------------

/// Erlang's reserved words (`erl_scan:reserved_word/1`, OTP 27 with `maybe_expr` enabled).
const ERLANG_RESERVED: &[&str] = &[
    "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case", "catch", "cond", "div",
    "else", "end", "fun", "if", "let", "maybe", "not", "of", "or", "orelse", "receive", "rem", "try", "when", "xor",
];

/// Lower-case Latin-1 letters that may start an unquoted atom (`ß..ÿ` except `÷`).
fn is_latin1_lower(c: char) -> bool {
    c.is_ascii_lowercase() || (('\u{DF}'..='\u{FF}').contains(&c) && c != '\u{F7}')
}

/// Characters of an unquoted atom after the first (`io_lib` `name_char/1`).
fn is_erlang_name_char(c: char) -> bool {
    is_latin1_lower(c)
        || c.is_ascii_uppercase()
        || (('\u{C0}'..='\u{DE}').contains(&c) && c != '\u{D7}')
        || c.is_ascii_digit()
        || c == '_'
        || c == '@'
}

/// `true` if `erl` prints this atom without quotes.
pub fn erlang_atom_is_bare(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_latin1_lower(c) => chars.all(is_erlang_name_char) && !ERLANG_RESERVED.contains(&s),
        _ => false,
    }
}

/// Writes `s` between `quote`s with `io_lib:write_string/2` escapes.
fn write_erlang_quoted(f: &mut impl Write, s: impl Iterator<Item = char>, quote: char) -> fmt::Result {
    f.write_char(quote)?;
    for c in s {
        match c {
            _ if c == quote => {
                f.write_char('\\')?;
                f.write_char(c)?;
            }
            '\\' => f.write_str("\\\\")?,
            ' '..='~' => f.write_char(c)?,
            _ if c as u32 >= 0xA0 => f.write_char(c)?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{0B}' => f.write_str("\\v")?,
            '\u{08}' => f.write_str("\\b")?,
            '\u{0C}' => f.write_str("\\f")?,
            '\u{1B}' => f.write_str("\\e")?,
            '\u{7F}' => f.write_str("\\d")?,
            _ => write!(f, "\\{:03o}", c as u32)?,
        }
    }
    f.write_char(quote)
}

/// Writes an atom as `erl` does: bare when it can be, else single-quoted with escapes.
fn write_erlang_atom(f: &mut impl Write, a: &Atom) -> fmt::Result {
    let s = a.as_str();
    if erlang_atom_is_bare(s) { f.write_str(s) } else { write_erlang_quoted(f, s.chars(), '\'') }
}

/// A code point `io_lib:printable_unicode_list/1` accepts.
fn erlang_printable(c: u32) -> bool {
    matches!(c, 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF) || matches!(c, 0x08..=0x0D | 0x1B)
}

/// The list as a string, if `~tp` prints it as one (non-empty, every element printable).
fn erlang_string(items: &[Term]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    items
        .iter()
        .map(|t| match t {
            Term::Int(i) => u32::try_from(*i).ok().filter(|c| erlang_printable(*c)).and_then(char::from_u32),
            _ => None,
        })
        .collect()
}

/// How `~tp` prints a binary's contents.
enum ErlangBin {
    /// `<<"...">>`: ASCII, or Latin-1 text that is not valid UTF-8.
    Latin1(String),
    /// `<<"..."/utf8>>`.
    Utf8(String),
    /// `<<1,2,3>>`.
    Bytes,
}

fn erlang_bin_kind(b: &[u8]) -> ErlangBin {
    if b.is_empty() {
        return ErlangBin::Bytes;
    }
    match std::str::from_utf8(b) {
        Ok(s) => {
            if !s.chars().all(|c| erlang_printable(c as u32)) {
                ErlangBin::Bytes
            } else if s.is_ascii() {
                ErlangBin::Latin1(s.to_owned())
            } else {
                ErlangBin::Utf8(s.to_owned())
            }
        }
        Err(_) => {
            if b.iter().all(|&x| erlang_printable(x as u32) && !(0x80..0xA0).contains(&x)) {
                ErlangBin::Latin1(b.iter().map(|&x| x as char).collect())
            } else {
                ErlangBin::Bytes
            }
        }
    }
}

fn write_erlang_seq(f: &mut fmt::Formatter<'_>, items: &[Term]) -> fmt::Result {
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        fmt::Display::fmt(t, f)?;
    }
    Ok(())
}

fn write_erlang_bytes(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        write!(f, "{b}")?;
    }
    Ok(())
}

fn write_ref_words(f: &mut impl Write, r: &Reference) -> fmt::Result {
    for w in r.ids().iter().rev() {
        write!(f, ".{w}")?;
    }
    Ok(())
}

/// Erlang syntax on one line, as `io_lib:format("~0tp", [Term])` prints it on OTP 27+ started
/// with `+pc unicode` (strings and binaries print as text when every character is printable
/// Unicode), with these deliberate differences:
/// - pids, ports and references print the node *name* where `erl` prints the node's local
///   index, which a Rust node cannot know: `<foo@host.117.0>`, `#Port<foo@host.7>`,
///   `#Ref<foo@host.3.2.1>` (reference words most significant first, as `erl` prints them);
/// - map entries are sorted in map-key order (integers before floats, else term order), as
///   `~0tkp` prints them; OTP 26+ `~p` prints internal order, which depends on atom creation;
/// - atoms inside `fun M:F/A` print as atoms everywhere else do (`erl` mangles non-Latin-1 ones).
///
/// Local funs print as `erl` prints them, `#Fun<Module.Index.Uniq>`.
impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Int(i) => write!(f, "{i}"),
            Term::BigInt(b) => write!(f, "{b}"),
            Term::Float(x) => f.write_str(&erlang_float(*x)),
            Term::Atom(a) => write_erlang_atom(f, a),
            Term::Binary(b) => match erlang_bin_kind(b) {
                ErlangBin::Latin1(s) => {
                    f.write_str("<<")?;
                    write_erlang_quoted(f, s.chars(), '"')?;
                    f.write_str(">>")
                }
                ErlangBin::Utf8(s) => {
                    f.write_str("<<")?;
                    write_erlang_quoted(f, s.chars(), '"')?;
                    f.write_str("/utf8>>")
                }
                ErlangBin::Bytes => {
                    f.write_str("<<")?;
                    write_erlang_bytes(f, b)?;
                    f.write_str(">>")
                }
            },
            Term::BitBinary(b) => {
                let (whole, last) = tail_bits(b);
                f.write_str("<<")?;
                write_erlang_bytes(f, whole)?;
                if !whole.is_empty() {
                    f.write_char(',')?;
                }
                write!(f, "{last}:{}>>", b.bits)
            }
            Term::List(items) => match erlang_string(items) {
                Some(s) => write_erlang_quoted(f, s.chars(), '"'),
                None => {
                    f.write_char('[')?;
                    write_erlang_seq(f, items)?;
                    f.write_char(']')
                }
            },
            Term::Improper(items, tail) => {
                f.write_char('[')?;
                write_erlang_seq(f, items)?;
                write!(f, "|{tail}]")
            }
            Term::Tuple(items) => {
                f.write_char('{')?;
                write_erlang_seq(f, items)?;
                f.write_char('}')
            }
            Term::Map(m) => {
                f.write_str("#{")?;
                for (i, (k, v)) in sorted_entries(m).into_iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(f, "{k} => {v}")?;
                }
                f.write_char('}')
            }
            Term::Pid(Pid { node, id, serial, .. }) => {
                write!(f, "<{}.{id}.{serial}>", node.as_str())
            }
            Term::Port(Port { node, id, .. }) => write!(f, "#Port<{}.{id}>", node.as_str()),
            Term::Ref(r) => {
                write!(f, "#Ref<{}", r.node.as_str())?;
                write_ref_words(f, r)?;
                f.write_char('>')
            }
            Term::ExportFun(e) => {
                let ExportFun { module, function, arity } = &**e;
                f.write_str("fun ")?;
                write_erlang_atom(f, module)?;
                f.write_char(':')?;
                write_erlang_atom(f, function)?;
                write!(f, "/{arity}")
            }
            Term::LocalFun(l) => {
                let LocalFun { module, index, old_uniq, .. } = &**l;
                write!(f, "#Fun<{}.{index}.{old_uniq}>", module.as_str())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elixir
// ---------------------------------------------------------------------------------------------

/// A term in Elixir syntax, as `inspect/1` prints it in Elixir 1.18; made by [`Term::elixir`].
///
/// Deliberate differences from `inspect/1`:
/// - pids, ports and references print the node *name* where the BEAM prints the node's local
///   index: `#PID<foo@host.117.0>`, `#Port<foo@host.7>`, `#Reference<foo@host.3.2.1>`;
/// - map entries are sorted in map-key order (integers before floats, else term order);
///   `inspect` prints a map's internal order, which depends on atom creation order;
/// - local funs print as `#Function<Index.Uniq/Arity in Module>`: the function name Elixir
///   adds after the module is not on the wire;
/// - non-ASCII atoms print unquoted only when they are single-script identifiers of common
///   Latin, Greek, Cyrillic, Japanese or Korean letters; Elixir's full rule (UAX #31 with
///   UTS #39 restrictions) leaves a few more unquoted, and the quoted form is valid either way.
#[derive(Clone, Copy, Debug)]
pub struct Elixir<'a>(&'a Term);

impl Term {
    /// This term in Elixir syntax: `format!("{}", t.elixir())` gives what `inspect(t)` prints in
    /// Elixir 1.18 (see [`Elixir`] for the few deliberate differences).
    pub fn elixir(&self) -> Elixir<'_> {
        Elixir(self)
    }
}

/// Operators Elixir prints bare, as atoms and as remote-call names (`Macro.operator?/2`).
const ELIXIR_OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "<", ">", "=", "!", "&", "|", "^", "@", "++", "--", "**", "<-", "<>", "<=", "<~", ">=", "==",
    "=~", "!=", "&&", "|>", "||", "~>", "\\\\", "+++", "---", "<<<", "<<~", "<~>", ">>>", "===", "!==", "&&&", "|||",
    "~>>", "not", "in", "and", "or", "when",
];
/// Operators Elixir quotes as atoms (`:"::"`) but not as remote-call names.
const ELIXIR_QUOTED_OPERATORS: &[&str] = &["::", "<|>", "^^^", "~~~"];
/// Atoms Elixir prints bare as atoms but quotes as remote-call names.
const ELIXIR_NOT_CALLABLE: &[&str] = &["%", "%{}", "{}", "<<>>", "...", "..", ".", "..//", "->"];

/// How Elixir classifies an atom for printing (`Macro.classify_atom/1`, refined).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AtomClass {
    /// `Elixir` or `Elixir.Foo.Bar`.
    Alias,
    /// An identifier: `foo`, `foo?`, `Foo`, `foo@host`; `callable` when it can follow `&Mod.`.
    Identifier { callable: bool },
    /// An operator printed bare everywhere.
    Operator,
    /// `::` and friends: quoted as atoms and keys, bare after `&Mod.`.
    QuotedOperator,
    /// `%{}`, `..` and friends: bare as atoms and keys, quoted after `&Mod.`.
    NotCallable,
    /// Needs quotes.
    Other,
}

/// Script groups an unquoted non-ASCII Elixir identifier may use (one per identifier).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Greek,
    Cyrillic,
    Japanese,
    Korean,
}

/// The script of a letter allowed in an unquoted Elixir identifier, `None` for anything else.
fn letter_script(c: char) -> Option<Script> {
    let u = c as u32;
    match u {
        0x41..=0x5A | 0x61..=0x7A => Some(Script::Latin),
        0xC0..=0xFF if u != 0xD7 && u != 0xF7 => Some(Script::Latin),
        0x100..=0x17F if !matches!(u, 0x132 | 0x133 | 0x13F | 0x140 | 0x149 | 0x17F) => Some(Script::Latin),
        0x391..=0x3A1 | 0x3A3..=0x3CE => Some(Script::Greek),
        0x400..=0x45F => Some(Script::Cyrillic),
        0x3041..=0x3096 | 0x30A1..=0x30FA | 0x30FC | 0x4E00..=0x9FFF => Some(Script::Japanese),
        0xAC00..=0xD7A3 => Some(Script::Korean),
        _ => None,
    }
}

/// `true` for the text of an alias: `Elixir` followed by `.Upper[A-Za-z0-9_]*` pieces.
fn is_elixir_alias(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("Elixir") else { return false };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix('.') else { return false };
    rest.split('.').all(|p| {
        let mut cs = p.chars();
        matches!(cs.next(), Some(c) if c.is_ascii_uppercase()) && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// `Some(callable)` when `s` is an identifier Elixir prints bare.
fn elixir_identifier(s: &str) -> Option<bool> {
    let body = s.strip_suffix(['?', '!']).unwrap_or(s);
    let mut script = None;
    let mut has_at = false;
    let mut chars = body.chars();
    let first = chars.next()?;
    for (i, c) in body.chars().enumerate() {
        if c == '_' || (i > 0 && c.is_ascii_digit()) {
            continue;
        }
        if i > 0 && c == '@' {
            has_at = true;
            continue;
        }
        let sc = letter_script(c)?;
        if *script.get_or_insert(sc) != sc {
            return None;
        }
    }
    Some(!has_at && !first.is_uppercase())
}

/// Classifies an atom's text as Elixir's printer does.
pub(crate) fn elixir_atom_class(s: &str) -> AtomClass {
    if ELIXIR_NOT_CALLABLE.contains(&s) {
        AtomClass::NotCallable
    } else if ELIXIR_QUOTED_OPERATORS.contains(&s) {
        AtomClass::QuotedOperator
    } else if ELIXIR_OPERATORS.contains(&s) {
        AtomClass::Operator
    } else if is_elixir_alias(s) {
        AtomClass::Alias
    } else {
        match elixir_identifier(s) {
            Some(callable) => AtomClass::Identifier { callable },
            None => AtomClass::Other,
        }
    }
}

/// Code points `String.printable?/1` accepts.
fn elixir_printable(c: char) -> bool {
    matches!(c as u32, 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        || matches!(c as u32, 0x07..=0x0D | 0x1B | 0x7F)
}

/// Printable but invisible code points `inspect` writes as `\uXXXX` (bidi and zero-width marks).
fn elixir_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0xA0 | 0x34F | 0x61C | 0x2000..=0x200F | 0x2028..=0x202E | 0x205F..=0x2064
            | 0x2066..=0x2069 | 0xFEFF | 0xFFF9..=0xFFFC
    )
}

/// Writes the inside of an Elixir double-quoted string, atom or `~c"..."` with `inspect`'s
/// escapes (`"`, `\`, `#{`, control characters, invisible and non-printable code points).
fn write_elixir_escaped(f: &mut impl Write, s: &str) -> fmt::Result {
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '#' if it.peek() == Some(&'{') => f.write_str("\\#")?,
            '\u{07}' => f.write_str("\\a")?,
            '\u{08}' => f.write_str("\\b")?,
            '\t' => f.write_str("\\t")?,
            '\n' => f.write_str("\\n")?,
            '\u{0B}' => f.write_str("\\v")?,
            '\u{0C}' => f.write_str("\\f")?,
            '\r' => f.write_str("\\r")?,
            '\u{1B}' => f.write_str("\\e")?,
            '\u{7F}' => f.write_str("\\d")?,
            '\0' => f.write_str("\\0")?,
            _ if elixir_invisible(c) => write!(f, "\\u{:04X}", c as u32)?,
            _ if elixir_printable(c) => f.write_char(c)?,
            _ if (c as u32) < 0x100 => write!(f, "\\x{:02X}", c as u32)?,
            _ => write!(f, "\\x{{{:04X}}}", c as u32)?,
        }
    }
    Ok(())
}

fn write_elixir_quoted(f: &mut impl Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    write_elixir_escaped(f, s)?;
    f.write_char('"')
}

/// Writes an atom as Elixir's `inspect` does: `:ok`, `:"foo bar"`, `nil`, `Foo.Bar`.
fn write_elixir_atom(f: &mut impl Write, a: &Atom) -> fmt::Result {
    let s = a.as_str();
    if matches!(s, "nil" | "true" | "false") {
        return f.write_str(s);
    }
    match elixir_atom_class(s) {
        AtomClass::Alias => match s.strip_prefix("Elixir.") {
            Some(rest) if rest != "Elixir" && !rest.starts_with("Elixir.") => f.write_str(rest),
            _ => f.write_str(s),
        },
        AtomClass::Identifier { .. } | AtomClass::Operator | AtomClass::NotCallable => {
            f.write_char(':')?;
            f.write_str(s)
        }
        AtomClass::QuotedOperator | AtomClass::Other => {
            f.write_char(':')?;
            write_elixir_quoted(f, s)
        }
    }
}

/// Writes an atom as a keyword key, colon included: `a: `, `"foo bar": `.
fn write_elixir_key(f: &mut impl Write, a: &Atom) -> fmt::Result {
    let s = a.as_str();
    match elixir_atom_class(s) {
        AtomClass::Alias | AtomClass::QuotedOperator | AtomClass::Other => write_elixir_quoted(f, s)?,
        _ => f.write_str(s)?,
    }
    f.write_str(": ")
}

/// Writes a function name after `&Mod.`.
fn write_elixir_fun_name(f: &mut impl Write, a: &Atom) -> fmt::Result {
    let s = a.as_str();
    match elixir_atom_class(s) {
        AtomClass::Identifier { callable: true } | AtomClass::Operator | AtomClass::QuotedOperator => f.write_str(s),
        _ => write_elixir_quoted(f, s),
    }
}

/// An atom that can be a keyword key (`[a: 1]`): any atom but `Elixir.`-prefixed ones.
fn keyword_key(t: &Term) -> Option<&Atom> {
    match t {
        Term::Atom(a) if !a.as_str().starts_with("Elixir.") => Some(a),
        _ => None,
    }
}

/// The list as a charlist, if `inspect` prints it as `~c"..."` (ASCII printable only).
fn elixir_charlist(items: &[Term]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    items
        .iter()
        .map(|t| match t {
            Term::Int(i @ (0x07..=0x0D | 0x1B | 0x20..=0x7E)) => Some(*i as u8 as char),
            _ => None,
        })
        .collect()
}

fn is_keyword_list(items: &[Term]) -> bool {
    !items.is_empty()
        && items.iter().all(|t| matches!(t, Term::Tuple(p) if p.len() == 2 && keyword_key(&p[0]).is_some()))
}

impl Elixir<'_> {
    fn seq(f: &mut fmt::Formatter<'_>, items: &[Term]) -> fmt::Result {
        for (i, t) in items.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            fmt::Display::fmt(&t.elixir(), f)?;
        }
        Ok(())
    }

    fn bytes(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{b}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Elixir<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Term::Int(i) => write!(f, "{i}"),
            Term::BigInt(b) => write!(f, "{b}"),
            Term::Float(x) => f.write_str(&elixir_float(*x)),
            Term::Atom(a) => write_elixir_atom(f, a),
            Term::Binary(b) => match std::str::from_utf8(b) {
                Ok(s) if s.chars().all(elixir_printable) => write_elixir_quoted(f, s),
                _ => {
                    f.write_str("<<")?;
                    Self::bytes(f, b)?;
                    f.write_str(">>")
                }
            },
            Term::BitBinary(b) => {
                let (whole, last) = tail_bits(b);
                f.write_str("<<")?;
                Self::bytes(f, whole)?;
                if !whole.is_empty() {
                    f.write_str(", ")?;
                }
                write!(f, "{last}::size({})>>", b.bits)
            }
            Term::List(items) => {
                if let Some(s) = elixir_charlist(items) {
                    f.write_str("~c")?;
                    return write_elixir_quoted(f, &s);
                }
                f.write_char('[')?;
                if is_keyword_list(items) {
                    for (i, t) in items.iter().enumerate() {
                        if let Term::Tuple(p) = t
                            && let [k, v] = p.as_slice()
                            && let Some(a) = keyword_key(k)
                        {
                            if i > 0 {
                                f.write_str(", ")?;
                            }
                            write_elixir_key(f, a)?;
                            write!(f, "{}", v.elixir())?;
                        }
                    }
                } else {
                    Self::seq(f, items)?;
                }
                f.write_char(']')
            }
            Term::Improper(items, tail) => {
                f.write_char('[')?;
                Self::seq(f, items)?;
                write!(f, " | {}]", tail.elixir())
            }
            Term::Tuple(items) => {
                f.write_char('{')?;
                Self::seq(f, items)?;
                f.write_char('}')
            }
            Term::Map(m) => {
                let entries = sorted_entries(m);
                let keyword = entries.iter().all(|(k, _)| keyword_key(k).is_some());
                f.write_str("%{")?;
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match keyword_key(k) {
                        Some(a) if keyword => write_elixir_key(f, a)?,
                        _ => write!(f, "{} => ", k.elixir())?,
                    }
                    write!(f, "{}", v.elixir())?;
                }
                f.write_char('}')
            }
            Term::Pid(Pid { node, id, serial, .. }) => {
                write!(f, "#PID<{}.{id}.{serial}>", node.as_str())
            }
            Term::Port(Port { node, id, .. }) => write!(f, "#Port<{}.{id}>", node.as_str()),
            Term::Ref(r) => {
                write!(f, "#Reference<{}", r.node.as_str())?;
                write_ref_words(f, r)?;
                f.write_char('>')
            }
            Term::ExportFun(e) => {
                let ExportFun { module, function, arity } = &**e;
                f.write_char('&')?;
                write_elixir_atom(f, module)?;
                f.write_char('.')?;
                write_elixir_fun_name(f, function)?;
                write!(f, "/{arity}")
            }
            Term::LocalFun(l) => {
                let LocalFun { module, index, old_uniq, arity, .. } = &**l;
                write!(f, "#Function<{index}.{old_uniq}/{arity} in ")?;
                write_elixir_atom(f, module)?;
                f.write_char('>')
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::{BigInt, Integer};

    fn atom(s: &str) -> Term {
        Term::atom(s)
    }
    fn ints(v: &[i64]) -> Term {
        Term::List(v.iter().map(|i| Term::Int(*i)).collect())
    }
    fn big(s: &str) -> Term {
        match BigInt::parse_decimal(s) {
            Some(Integer::Big(b)) => Term::BigInt(b),
            other => panic!("{other:?}"),
        }
    }
    fn map(entries: Vec<(Term, Term)>) -> Term {
        Term::Map(Map::from_entries(entries))
    }
    fn bits(data: &[u8], bits: u8) -> Term {
        Term::BitBinary(BitBinary { data: bytes::Bytes::copy_from_slice(data), bits })
    }
    fn export(m: &str, f: &str, a: u8) -> Term {
        Term::from(ExportFun { module: Atom::new(m), function: Atom::new(f), arity: a })
    }

    /// Expected strings captured with OTP 27.3 (`/opt/otp/27/bin/erl +pc unicode`), printing
    /// `io_lib:format("~0tp", [T])` (`"~0tkp"` for maps) to a UTF-8 file; OTP 29 prints the same.
    #[test]
    fn erlang_matches_erl() {
        let cases: Vec<(Term, &str)> = vec![
            (Term::Int(-5), "-5"),
            (big("1180591620717411303424"), "1180591620717411303424"),
            (big("-1180591620717411303424"), "-1180591620717411303424"),
            (Term::Float(1.0), "1.0"),
            (Term::Float(0.1), "0.1"),
            (Term::Float(1.0e300), "1.0e300"),
            (Term::Float(-0.0), "-0.0"),
            (Term::Float(5.0e-324), "5.0e-324"),
            (Term::Float(f64::MAX), "1.7976931348623157e308"),
            (Term::Float(1.0e-5), "1.0e-5"),
            (Term::Float(0.0001), "0.0001"),
            (Term::Float(123456.0), "123456.0"),
            (Term::Float(100.0), "100.0"),
            (Term::Float(1000.0), "1.0e3"),
            (Term::Float(1.0e15), "1.0e15"),
            (Term::Float(1.5e15), "1.5e15"),
            (Term::Float(1.0e15 + 0.5), "1000000000000000.5"),
            (Term::Float(12345678901234567.0), "1.2345678901234568e16"),
            (Term::Float(9007199254740992.0), "9.007199254740992e15"),
            (Term::Float(1.5e-7), "1.5e-7"),
            (atom("and"), "'and'"),
            (atom("maybe"), "'maybe'"),
            (atom("else"), "'else'"),
            (atom("Quoted atom"), "'Quoted atom'"),
            (atom(""), "''"),
            (atom("a\nb"), "'a\\nb'"),
            (atom("a'b"), "'a\\'b'"),
            (atom("a\\b"), "'a\\\\b'"),
            (atom("a\"b"), "'a\"b'"),
            (atom("a\u{1}b"), "'a\\001b'"),
            (atom("a\u{7}"), "'a\\007'"),
            (atom("a\u{80}"), "'a\\200'"),
            (atom("\u{7f}"), "'\\d'"),
            (atom("\u{1b}"), "'\\e'"),
            (atom("foo@host"), "foo@host"),
            (atom("aB9_@"), "aB9_@"),
            (atom("foo.bar"), "'foo.bar'"),
            (atom("_a"), "'_a'"),
            (atom("A"), "'A'"),
            (atom("é"), "é"),
            (atom("ß"), "ß"),
            (atom("aÀ"), "aÀ"),
            (atom("Éa"), "'Éa'"),
            (atom("÷"), "'÷'"),
            (atom("a×"), "'a×'"),
            (atom("ª"), "'ª'"),
            (atom("日本"), "'日本'"),
            (atom("a\u{200b}"), "'a\u{200b}'"),
            (atom("Elixir.Foo"), "'Elixir.Foo'"),
            (Term::charlist("abc"), "\"abc\""),
            (Term::charlist("a\nb"), "\"a\\nb\""),
            (Term::charlist("a\u{1b}"), "\"a\\e\""),
            (Term::charlist("a\u{b}"), "\"a\\v\""),
            (Term::charlist("a\"b\\c'"), "\"a\\\"b\\\\c'\""),
            (Term::charlist("日本"), "\"日本\""),
            (Term::charlist("a\u{10FFFF}"), "\"a\u{10FFFF}\""),
            (Term::charlist("a\u{a0}"), "\"a\u{a0}\""),
            (Term::charlist("a\u{FFFD}"), "\"a\u{FFFD}\""),
            (ints(&[97, 0xFFFE]), "[97,65534]"),
            (ints(&[8, 11, 12, 13, 9, 127]), "[8,11,12,13,9,127]"),
            (ints(&[97, 128]), "[97,128]"),
            (ints(&[97, 159]), "[97,159]"),
            (ints(&[97, 7]), "[97,7]"),
            (ints(&[97, 0]), "[97,0]"),
            (ints(&[55296]), "[55296]"),
            (ints(&[-1]), "[-1]"),
            (ints(&[1, 2, 3]), "[1,2,3]"),
            (Term::nil(), "[]"),
            (Term::List(vec![Term::nil()]), "[[]]"),
            (Term::List(vec![Term::charlist("ab")]), "[\"ab\"]"),
            (Term::Improper(vec![Term::Int(1)], Box::new(Term::Int(2))), "[1|2]"),
            (Term::Improper(vec![atom("a"), atom("b")], Box::new(atom("c"))), "[a,b|c]"),
            (Term::binary("text"), "<<\"text\">>"),
            (Term::binary([1, 2, 3]), "<<1,2,3>>"),
            (Term::binary([]), "<<>>"),
            (Term::binary("a\nb"), "<<\"a\\nb\">>"),
            (Term::binary("a\"b\\c'"), "<<\"a\\\"b\\\\c'\">>"),
            (Term::binary("日本"), "<<\"日本\"/utf8>>"),
            (Term::binary("é"), "<<\"é\"/utf8>>"),
            (Term::binary([233]), "<<\"é\">>"),
            (Term::binary([128]), "<<128>>"),
            (Term::binary([97, 0]), "<<97,0>>"),
            (Term::binary("\u{1b}"), "<<\"\\e\">>"),
            (Term::binary([0xEF, 0xBF, 0xBF]), "<<239,191,191>>"),
            (Term::binary("\u{200b}"), "<<\"\u{200b}\"/utf8>>"),
            (bits(&[0x80], 1), "<<1:1>>"),
            (bits(&[1, 0x40], 3), "<<1,2:3>>"),
            (bits(&[255, 0xC0], 2), "<<255,3:2>>"),
            (Term::tuple(vec![atom("a"), atom("b")]), "{a,b}"),
            (Term::tuple(vec![]), "{}"),
            (Term::tuple(vec![Term::nil(), Term::binary([]), map(vec![])]), "{[],<<>>,#{}}"),
            (map(vec![(atom("b"), Term::Int(2)), (atom("a"), Term::Int(1))]), "#{a => 1,b => 2}"),
            (map(vec![(map(vec![]), Term::nil())]), "#{#{} => []}"),
            (map(vec![(atom("a"), map(vec![(atom("b"), Term::Int(1))]))]), "#{a => #{b => 1}}"),
            (
                map(vec![
                    (Term::Int(1), atom("a")),
                    (Term::Float(1.0), atom("b")),
                    (atom("a"), atom("c")),
                    (Term::charlist("s"), atom("d")),
                    (Term::tuple(vec![atom("x")]), atom("e")),
                    (Term::Int(2), atom("f")),
                    (Term::Float(0.5), atom("g")),
                ]),
                "#{1 => a,2 => f,0.5 => g,1.0 => b,a => c,{x} => e,\"s\" => d}",
            ),
            (export("lists", "map", 2), "fun lists:map/2"),
            (export("erlang", "node", 0), "fun erlang:node/0"),
            (export("Elixir.Foo", "and", 1), "fun 'Elixir.Foo':'and'/1"),
        ];
        for (t, want) in cases {
            assert_eq!(t.to_string(), want, "{t:?}");
        }
    }

    fn node() -> Atom {
        Atom::new("foo@host")
    }

    #[test]
    fn identifiers_print_with_the_node_name() {
        let pid = Term::Pid(Pid { node: node(), id: 117, serial: 0, creation: 3 });
        assert_eq!(pid.to_string(), "<foo@host.117.0>");
        assert_eq!(pid.elixir().to_string(), "#PID<foo@host.117.0>");
        let port = Term::Port(Port { node: node(), id: 7, creation: 3 });
        assert_eq!(port.to_string(), "#Port<foo@host.7>");
        assert_eq!(port.elixir().to_string(), "#Port<foo@host.7>");
        // wire order ID[0] first; erl prints the most significant word first
        let r = Term::Ref(Reference::new(node(), 3, &[3, 2, 1]).expect("3 words"));
        assert_eq!(r.to_string(), "#Ref<foo@host.1.2.3>");
        assert_eq!(r.elixir().to_string(), "#Reference<foo@host.1.2.3>");
    }

    #[test]
    fn local_funs_print_like_erl_and_iex() {
        // erl: `#Fun<d.1.59483996>` (module, index, old uniq);
        // iex: `#Function<0.119591447/1 in M.f/0>` (the name after the module is not on the wire)
        let fun = Term::LocalFun(Box::new(LocalFun {
            arity: 1,
            uniq: [0; 16],
            index: 1,
            module: Atom::new("Elixir.M"),
            old_index: Term::Int(1),
            old_uniq: Term::Int(59483996),
            pid: Term::Pid(Pid { node: node(), id: 1, serial: 0, creation: 1 }),
            free_vars: vec![],
        }));
        assert_eq!(fun.to_string(), "#Fun<Elixir.M.1.59483996>");
        assert_eq!(fun.elixir().to_string(), "#Function<1.59483996/1 in M>");
    }

    /// Expected strings captured with Elixir 1.18.3 on OTP 27
    /// (`/opt/otp/27/bin/elixir -e 'IO.puts inspect(T)'`); where 1.14 (`/usr/bin/elixir`)
    /// differs, 1.18 wins (`~c"..."`, `\uXXXX` escapes).
    #[test]
    fn elixir_matches_inspect() {
        let kw = |k: &str, v: Term| Term::tuple(vec![atom(k), v]);
        let cases: Vec<(Term, &str)> = vec![
            (atom("ok"), ":ok"),
            (atom("foo bar"), ":\"foo bar\""),
            (atom("true"), "true"),
            (atom("false"), "false"),
            (atom("nil"), "nil"),
            (atom("Elixir.Foo.Bar"), "Foo.Bar"),
            (atom("Elixir"), "Elixir"),
            (atom("Elixir.Elixir"), "Elixir.Elixir"),
            (atom("Elixir.Elixir.Foo"), "Elixir.Elixir.Foo"),
            (atom("Elixir.foo"), ":\"Elixir.foo\""),
            (atom("Elixir.Foo.bar"), ":\"Elixir.Foo.bar\""),
            (atom("Elixir.Foo-Bar"), ":\"Elixir.Foo-Bar\""),
            (atom("Elixir.Fé"), ":\"Elixir.Fé\""),
            (atom("Foo"), ":Foo"),
            (atom("Foo.Bar"), ":\"Foo.Bar\""),
            (atom("erlang"), ":erlang"),
            (atom(""), ":\"\""),
            (atom("a\nb"), ":\"a\\nb\""),
            (atom("a\"b"), ":\"a\\\"b\""),
            (atom("a'b"), ":\"a'b\""),
            (atom("a#{b}"), ":\"a\\#{b}\""),
            (atom("a\0b"), ":\"a\\0b\""),
            (atom("a\u{1}b"), ":\"a\\x01b\""),
            (atom("a\u{1f}b"), ":\"a\\x1Fb\""),
            (atom("a\u{7f}b"), ":\"a\\db\""),
            (atom("a\u{80}b"), ":\"a\\x80b\""),
            (atom("a\u{a0}b"), ":\"a\\u00A0b\""),
            (atom("a\u{200b}b"), ":\"a\\u200Bb\""),
            (atom("a\u{feff}b"), ":\"a\\uFEFFb\""),
            (atom("a\u{fffe}b"), ":\"a\\x{FFFE}b\""),
            (atom("a\u{1F600}b"), ":\"a\u{1F600}b\""),
            (atom("é"), ":é"),
            (atom("日本"), ":日本"),
            (atom("Éa"), ":Éa"),
            (atom("привет"), ":привет"),
            (atom("aд"), ":\"aд\""),
            (atom("ª"), ":\"ª\""),
            (atom("foo@host"), ":foo@host"),
            (atom("foo?"), ":foo?"),
            (atom("foo!"), ":foo!"),
            (atom("foo?x"), ":\"foo?x\""),
            (atom("a!?"), ":\"a!?\""),
            (atom("?"), ":\"?\""),
            (atom("@a"), ":\"@a\""),
            (atom("1a"), ":\"1a\""),
            (atom("_"), ":_"),
            (atom("a.b"), ":\"a.b\""),
            (atom("+"), ":+"),
            (atom("++"), ":++"),
            (atom("\\\\"), ":\\\\"),
            (atom("::"), ":\"::\""),
            (atom("<|>"), ":\"<|>\""),
            (atom("%{}"), ":%{}"),
            (atom("<<>>"), ":<<>>"),
            (atom(".."), ":.."),
            (atom("..//"), ":..//"),
            (atom("//"), ":\"//\""),
            (atom("@@"), ":\"@@\""),
            (atom("=>"), ":\"=>\""),
            (atom("not in"), ":\"not in\""),
            (atom("and"), ":and"),
            (atom("when"), ":when"),
            (atom("do"), ":do"),
            (Term::binary("text"), "\"text\""),
            (Term::binary([1, 2, 3]), "<<1, 2, 3>>"),
            (Term::binary(""), "\"\""),
            (Term::binary("a\nb"), "\"a\\nb\""),
            (Term::binary("a\"b\\c"), "\"a\\\"b\\\\c\""),
            (Term::binary("é"), "\"é\""),
            (Term::binary("日本"), "\"日本\""),
            (Term::binary([255]), "<<255>>"),
            (Term::binary("a\0"), "<<97, 0>>"),
            (Term::binary([7, 8, 27, 127, 0]), "<<7, 8, 27, 127, 0>>"),
            (Term::binary("\u{7}\u{8}\u{1b}\u{7f}"), "\"\\a\\b\\e\\d\""),
            (Term::binary("a#{b"), "\"a\\#{b\""),
            (Term::binary("#{"), "\"\\#{\""),
            (Term::binary("a\u{200b}"), "\"a\\u200B\""),
            (Term::binary("\u{ad}"), "\"\u{ad}\""),
            (Term::binary([b'a', 0xC2, 0x80]), "<<97, 194, 128>>"),
            (bits(&[0x80], 1), "<<1::size(1)>>"),
            (bits(&[255, 0xC0], 2), "<<255, 3::size(2)>>"),
            (Term::charlist("abc"), "~c\"abc\""),
            (ints(&[1, 2, 3]), "[1, 2, 3]"),
            (Term::nil(), "[]"),
            (Term::charlist("a\nb"), "~c\"a\\nb\""),
            (Term::charlist("\u{7}\u{8}\u{1b}"), "~c\"\\a\\b\\e\""),
            (Term::charlist("a#{"), "~c\"a\\#{\""),
            (Term::charlist("a\"b"), "~c\"a\\\"b\""),
            (ints(&[97, 0]), "[97, 0]"),
            (ints(&[97, 127]), "[97, 127]"),
            (ints(&[97, 0x1F600]), "[97, 128512]"),
            (Term::List(vec![Term::nil()]), "[[]]"),
            (Term::List(vec![Term::charlist("ab")]), "[~c\"ab\"]"),
            (Term::Improper(vec![Term::Int(104), Term::Int(105)], Box::new(Term::Int(2))), "[104, 105 | 2]"),
            (Term::Improper(vec![Term::Int(1)], Box::new(Term::Int(2))), "[1 | 2]"),
            (Term::List(vec![kw("a", Term::Int(1)), kw("b", Term::Int(2))]), "[a: 1, b: 2]"),
            (
                Term::List(vec![kw("a", Term::Int(1)), Term::tuple(vec![Term::binary("b"), Term::Int(2)])]),
                "[{:a, 1}, {\"b\", 2}]",
            ),
            (Term::List(vec![kw("foo bar", Term::Int(1))]), "[\"foo bar\": 1]"),
            (Term::List(vec![kw("Elixir.Foo", Term::Int(1))]), "[{Foo, 1}]"),
            (Term::List(vec![kw("Elixir", Term::Int(1))]), "[\"Elixir\": 1]"),
            (Term::List(vec![kw("foo@bar", Term::Int(1))]), "[foo@bar: 1]"),
            (Term::List(vec![kw("+", Term::Int(1))]), "[+: 1]"),
            (Term::List(vec![kw("::", Term::Int(1))]), "[\"::\": 1]"),
            (Term::List(vec![kw("nil", Term::Int(1))]), "[nil: 1]"),
            (Term::List(vec![kw("a", Term::List(vec![kw("b", Term::Int(1))]))]), "[a: [b: 1]]"),
            (Term::Improper(vec![kw("a", Term::Int(1))], Box::new(atom("b"))), "[{:a, 1} | :b]"),
            (Term::List(vec![Term::tuple(vec![atom("a"), Term::Int(1), Term::Int(2)])]), "[{:a, 1, 2}]"),
            (Term::List(vec![kw("a", Term::Int(1)), Term::Int(2)]), "[{:a, 1}, 2]"),
            (map(vec![(atom("a"), Term::Int(1)), (atom("b"), Term::Int(2))]), "%{a: 1, b: 2}"),
            (map(vec![(Term::binary("b"), Term::Int(2)), (atom("a"), Term::Int(1))]), "%{:a => 1, \"b\" => 2}"),
            (map(vec![(Term::Int(1), atom("x")), (atom("a"), Term::Int(1))]), "%{1 => :x, :a => 1}"),
            (map(vec![]), "%{}"),
            (
                map(vec![
                    (Term::tuple(vec![Term::Int(1)]), Term::Int(2)),
                    (Term::Float(1.0), Term::Int(3)),
                    (Term::Int(1), Term::Int(4)),
                    (atom("z"), Term::Int(1)),
                    (Term::binary("s"), Term::Int(5)),
                ]),
                "%{1 => 4, 1.0 => 3, :z => 1, {1} => 2, \"s\" => 5}",
            ),
            (map(vec![(atom("foo bar"), Term::Int(1))]), "%{\"foo bar\": 1}"),
            (map(vec![(atom("Elixir.Foo"), Term::Int(1))]), "%{Foo => 1}"),
            (map(vec![(Term::Int(-1), Term::Int(-2))]), "%{-1 => -2}"),
            (map(vec![(Term::List(vec![kw("a", Term::Int(1))]), Term::Int(1))]), "%{[a: 1] => 1}"),
            (Term::tuple(vec![Term::Int(1), Term::Int(2)]), "{1, 2}"),
            (Term::tuple(vec![]), "{}"),
            (Term::tuple(vec![atom("a")]), "{:a}"),
            (Term::Float(1.0), "1.0"),
            (Term::Float(0.1), "0.1"),
            (Term::Float(1.0e300), "1.0e300"),
            (Term::Float(-0.0), "-0.0"),
            (Term::Float(5.0e-324), "5.0e-324"),
            (Term::Float(1.0e15), "1000000000000000.0"),
            (Term::Float(1000.0), "1000.0"),
            (Term::Float(-1000.0), "-1000.0"),
            (Term::Float(1.0e16), "1.0e16"),
            (Term::Float(9007199254740992.0), "9007199254740992.0"),
            (Term::Float(1.0e15 + 0.5), "1000000000000000.5"),
            (Term::Float(1.0e-5), "1.0e-5"),
            (Term::Float(-1.5), "-1.5"),
            (Term::Int(1_000_000), "1000000"),
            (big("123456789012345678901234567890"), "123456789012345678901234567890"),
            (export("Elixir.Enum", "map", 2), "&Enum.map/2"),
            (export("erlang", "node", 0), "&:erlang.node/0"),
            (export("foo bar", "baz", 1), "&:\"foo bar\".baz/1"),
            (export("Elixir.Foo", "+", 2), "&Foo.+/2"),
            (export("Elixir.Foo", "a b", 2), "&Foo.\"a b\"/2"),
            (export("Elixir.Foo", "foo?", 0), "&Foo.foo?/0"),
            (export("m", "Bar", 1), "&:m.\"Bar\"/1"),
            (export("m", "::", 1), "&:m.::/1"),
            (export("m", "%", 1), "&:m.\"%\"/1"),
            (export("m", ".", 1), "&:m.\".\"/1"),
            (export("m", "nil", 1), "&:m.nil/1"),
            (export("m", "é", 1), "&:m.é/1"),
            (export("m", "foo@bar", 1), "&:m.\"foo@bar\"/1"),
            (export("nil", "baz", 1), "&nil.baz/1"),
            (export("Elixir", "baz", 1), "&Elixir.baz/1"),
            (export("+", "baz", 1), "&:+.baz/1"),
            (export("A", "baz", 1), "&:A.baz/1"),
        ];
        for (t, want) in cases {
            assert_eq!(t.elixir().to_string(), want, "{t:?}");
        }
    }

    /// Floats from `erl` (OTP 27: `float_to_list(F, [short])`, which `~p` uses) and `iex` (1.18:
    /// `inspect(F)`), sampled from 8127 random bit patterns, integers and decimals that were all
    /// checked when this printer was written.
    #[test]
    fn floats_match_erl_and_iex() {
        let cases: &[(u64, &str, &str)] = &[
            (0x2a6a6ce32c1a0ed0, "2.3043695068794426e-104", "2.3043695068794426e-104"),
            (0x6390edbb0ffda604, "4.0888342173038325e171", "4.0888342173038325e171"),
            (0xfe42751154ee16ce, "-1.5450899390939846e300", "-1.5450899390939846e300"),
            (0xca7f11ab298f06d7, "-7.265187303690262e50", "-7.265187303690262e50"),
            (0xc744748651d1beb1, "-2.1241867716069773e35", "-2.1241867716069773e35"),
            (0x1be23caa7367b90f, "2.304227432743416e-174", "2.304227432743416e-174"),
            (0x032a96c676cb3929, "2.081592344672106e-293", "2.081592344672106e-293"),
            (0xb915c36e6078ac48, "-1.0478697366448525e-33", "-1.0478697366448525e-33"),
            (0xbc196565a92730ff, "-3.441810973325089e-19", "-3.441810973325089e-19"),
            (0xbeb037419134313f, "-9.66539634830626e-7", "-9.66539634830626e-7"),
            (0x21674c410ce87691, "9.110208370526042e-148", "9.110208370526042e-148"),
            (0x24beedb36f2ef595, "1.0893339403383841e-131", "1.0893339403383841e-131"),
            (0x8844a9dc84c82fbb, "-7.822727618851704e-269", "-7.822727618851704e-269"),
            (0x5067843eb3324546, "2.178427303805735e79", "2.178427303805735e79"),
            (0x4fd464bebf8eb998, "3.6897032697318256e76", "3.6897032697318256e76"),
            (0x02c57eb511a1e890, "2.62936398164069e-295", "2.62936398164069e-295"),
            (0x99271d74a3e4310f, "-1.6601516240557464e-187", "-1.6601516240557464e-187"),
            (0x904078a9af0a5287, "-2.1218869203847463e-230", "-2.1218869203847463e-230"),
            (0x85d8d36f0ca631e3, "-1.7095794272487007e-280", "-1.7095794272487007e-280"),
            (0x7e4691e5401f3a6f, "1.8893630279658246e300", "1.8893630279658246e300"),
            (0x373bb8104f21e66d, "1.242962897002711e-42", "1.242962897002711e-42"),
            (0xb471fdb3d36c24a3, "-4.585817068683972e-56", "-4.585817068683972e-56"),
            (0x9c9c03e225613de0, "-7.249294203376718e-171", "-7.249294203376718e-171"),
            (0xcfc20420bb40ef14, "-1.629784913397874e76", "-1.629784913397874e76"),
            (0x5ef06f9d507de239, "2.101618319229437e149", "2.101618319229437e149"),
            (0x4522ac1400b53238, "1.1286640387000283e25", "1.1286640387000283e25"),
            (0x8f4bcb3bc8d3a691, "-5.463394846591067e-235", "-5.463394846591067e-235"),
            (0x233a82462d2c5ba9, "5.5651060566112766e-139", "5.5651060566112766e-139"),
            (0xbcd6af0163d6dc3c, "-1.2591935804981388e-15", "-1.2591935804981388e-15"),
            (0xb16dc1b102047d9c, "-1.3473314252991687e-70", "-1.3473314252991687e-70"),
            (0xe74f9edfa860eaa7, "-4.402682828260202e189", "-4.402682828260202e189"),
            (0x88f41aba2feee5ae, "-1.558744826023814e-265", "-1.558744826023814e-265"),
            (0x4000000000000000, "2.0", "2.0"),
            (0x405fc00000000000, "127.0", "127.0"),
            (0x406f800000000000, "252.0", "252.0"),
            (0x4077900000000000, "377.0", "377.0"),
            (0x407f600000000000, "502.0", "502.0"),
            (0x4083980000000000, "627.0", "627.0"),
            (0x4087800000000000, "752.0", "752.0"),
            (0x408b680000000000, "877.0", "877.0"),
            (0x408f500000000000, "1002.0", "1002.0"),
            (0x40919c0000000000, "1127.0", "1127.0"),
            (0x4093900000000000, "1252.0", "1252.0"),
            (0x4095840000000000, "1377.0", "1377.0"),
            (0x4097780000000000, "1502.0", "1502.0"),
            (0x40996c0000000000, "1627.0", "1627.0"),
            (0x409b600000000000, "1752.0", "1752.0"),
            (0x409d540000000000, "1877.0", "1877.0"),
            (0x3f60624dd2f1a9fc, "0.002", "0.002"),
            (0x3fc04189374bc6a8, "0.127", "0.127"),
            (0x3fd020c49ba5e354, "0.252", "0.252"),
            (0x3fd820c49ba5e354, "0.377", "0.377"),
            (0x3fe010624dd2f1aa, "0.502", "0.502"),
            (0x3fe410624dd2f1aa, "0.627", "0.627"),
            (0x3fe810624dd2f1aa, "0.752", "0.752"),
            (0x3fec10624dd2f1aa, "0.877", "0.877"),
            (0x3ff0083126e978d5, "1.002", "1.002"),
            (0x3ff2083126e978d5, "1.127", "1.127"),
            (0x3ff4083126e978d5, "1.252", "1.252"),
            (0x3ff6083126e978d5, "1.377", "1.377"),
            (0x3ff8083126e978d5, "1.502", "1.502"),
            (0x3ffa083126e978d5, "1.627", "1.627"),
            (0x3ffc083126e978d5, "1.752", "1.752"),
            (0x3ffe083126e978d5, "1.877", "1.877"),
            (0x39e95a5efea6b347, "1.0e-29", "1.0e-29"),
            (0x430c6bf526340004, "1000000000000000.5", "1000000000000000.5"),
        ];
        for (bits, erl, iex) in cases {
            let x = f64::from_bits(*bits);
            assert_eq!(erlang_float(x), *erl, "{x:?}");
            assert_eq!(elixir_float(x), *iex, "{x:?}");
        }
    }

    #[test]
    fn map_key_order_puts_integers_before_floats_when_nested() {
        let a = Term::tuple(vec![Term::Float(0.5)]);
        let b = Term::tuple(vec![Term::Int(1)]);
        assert_eq!(map_key_cmp(&a, &b), Ordering::Greater);
        assert_eq!(a.cmp(&b), Ordering::Less, "term order differs from map-key order here");
        let m = map(vec![(a, atom("x")), (b, atom("y"))]);
        assert_eq!(m.to_string(), "#{{1} => y,{0.5} => x}");
    }
}
