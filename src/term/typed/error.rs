//! The error of the typed layer: what went wrong, where in the term, and at which byte.

use std::borrow::Cow;
use std::fmt;

use crate::term::DecodeErrorKind;

/// A value that could not be converted to or from a term: what is wrong ([`Error::kind`]),
/// where in the term ([`Error::path`], from the root: `.users[3].name`), and, when reading
/// bytes, at which byte offset.
#[derive(Clone, PartialEq)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone, Debug, PartialEq)]
struct Inner {
    kind: ErrorKind,
    /// Innermost segment first (segments are added while the error travels outwards).
    path: Vec<Segment>,
    offset: Option<usize>,
}

/// What is wrong.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The bytes are not a well-formed term (the [`crate::term::decode`] checks and limits).
    Malformed(DecodeErrorKind),
    /// The term is well formed but not of the shape the Rust type asks for.
    Mismatch {
        /// What the type asks for (`"a binary (String)"`, `"a tuple of 2 elements"`).
        expected: Cow<'static, str>,
        /// What the term holds there (`"the atom :foo"`, `"a list"`).
        found: String,
    },
    /// A value with no term to represent it (a NaN float, an atom over 255 characters), or
    /// a term with no place in serde's data model (a pid read by a type that is not
    /// [`crate::term::Pid`] or [`crate::term::Term`]).
    Unrepresentable(Cow<'static, str>),
    /// An error raised by a `Serialize`/`Deserialize` implementation (serde's `missing field`,
    /// `unknown field`, `unknown variant` and the like).
    Message(String),
}

/// One step of a path into a term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// The value under a map key (a struct field or a map entry), printed as its text for
    /// atoms, binaries and integers.
    Key(String),
    /// An element of a list or tuple, from 0.
    Index(usize),
    /// The payload of an enum variant (the tuple `{variant, ...}`).
    Variant(String),
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error { inner: Box::new(Inner { kind, path: Vec::new(), offset: None }) }
    }

    pub(crate) fn at(kind: ErrorKind, offset: usize) -> Error {
        Error { inner: Box::new(Inner { kind, path: Vec::new(), offset: Some(offset) }) }
    }

    pub(crate) fn mismatch(expected: impl Into<Cow<'static, str>>, found: String, offset: usize) -> Error {
        Error::at(ErrorKind::Mismatch { expected: expected.into(), found }, offset)
    }

    pub(crate) fn unrepresentable(what: impl Into<Cow<'static, str>>) -> Error {
        Error::new(ErrorKind::Unrepresentable(what.into()))
    }

    /// Adds an outer path segment (called while the error travels out of a container).
    pub(crate) fn within(mut self, segment: Segment) -> Error {
        self.inner.path.push(segment);
        self
    }

    /// Sets the offset if the error does not have one yet (errors raised by `Deserialize`
    /// implementations learn theirs from the deserializer).
    pub(crate) fn or_at(mut self, offset: usize) -> Error {
        if self.inner.offset.is_none() {
            self.inner.offset = Some(offset);
        }
        self
    }

    /// Drops the byte offset (for [`crate::term::from_term`], whose bytes are internal).
    pub(crate) fn without_offset(mut self) -> Error {
        self.inner.offset = None;
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// Where, outermost segment first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.inner.path.iter().rev()
    }

    /// Where, as text: `.users[3].name` (`.` for the root).
    pub fn path(&self) -> String {
        if self.inner.path.is_empty() {
            return ".".to_string();
        }
        let mut s = String::new();
        for seg in self.segments() {
            match seg {
                Segment::Key(k) => {
                    s.push('.');
                    s.push_str(k);
                }
                Segment::Index(i) => s.push_str(&format!("[{i}]")),
                Segment::Variant(v) => s.push_str(&format!("{{{v}}}")),
            }
        }
        s
    }

    /// The byte offset in the input where the problem was found, when reading bytes.
    pub fn offset(&self) -> Option<usize> {
        self.inner.offset
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Malformed(k) => write!(f, "malformed term: {k}"),
            ErrorKind::Mismatch { expected, found } => write!(f, "expected {expected}, found {found}"),
            ErrorKind::Unrepresentable(what) => f.write_str(what),
            ErrorKind::Message(m) => f.write_str(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.path(), self.inner.kind)?;
        if let Some(o) = self.inner.offset {
            write!(f, " (byte {o})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({self})")
    }
}

impl std::error::Error for Error {}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::new(ErrorKind::Message(msg.to_string()))
    }
}

impl serde::ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Error {
        Error::new(ErrorKind::Message(msg.to_string()))
    }
}

impl From<crate::term::DecodeError> for Error {
    fn from(e: crate::term::DecodeError) -> Error {
        Error::at(ErrorKind::Malformed(e.kind), e.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prints_outermost_first() {
        let e = Error::mismatch("a binary (String)", "the atom :foo".into(), 42)
            .within(Segment::Key("name".into()))
            .within(Segment::Index(3))
            .within(Segment::Key("users".into()));
        assert_eq!(e.path(), ".users[3].name");
        assert_eq!(e.to_string(), "at .users[3].name: expected a binary (String), found the atom :foo (byte 42)");
        assert_eq!(Error::new(ErrorKind::Message("x".into())).to_string(), "at .: x");
    }
}
