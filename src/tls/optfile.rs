//! OTP's `-ssl_dist_optfile` format, read without I/O: one Erlang term, a list of
//! `{server, Opts}` and `{client, Opts}`, where `Opts` are `ssl` options (Erlang/OTP *ssl* User's
//! Guide, "Using TLS for Erlang Distribution", "Specifying TLS Options"; `ssl_dist_sup` /
//! `inet_tls_dist:get_ssl_options/1` read it with `file:consult/1`).
//!
//! ```erlang
//! [{server, [{certfile, "/etc/dist/node.pem"}, {keyfile, "/etc/dist/node.key"},
//!            {cacertfile, "/etc/dist/ca.pem"}, {verify, verify_peer},
//!            {fail_if_no_peer_cert, true}]},
//!  {client, [{certfile, "/etc/dist/node.pem"}, {keyfile, "/etc/dist/node.key"},
//!            {cacertfile, "/etc/dist/ca.pem"}, {verify, verify_peer}]}].
//! ```
//!
//! Only the options erlnode implements are accepted ([`SUPPORTED`]); any other is an error that
//! names it, so a file that asks for something (a key password, a cipher list, CRL checks) is
//! never half-honoured. The file is trusted no more than any input: the term parser bounds
//! nesting and sizes.

use std::fmt;
use std::path::PathBuf;

use crate::term::{ParseError, Term, parse_erlang};

/// The options erlnode understands, on either side (`fail_if_no_peer_cert`: server only).
pub const SUPPORTED: &[&str] =
    &["certfile", "keyfile", "cacertfile", "verify", "fail_if_no_peer_cert", "versions", "secure_renegotiate"];

/// Which end of a TLS connection a set of options is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Accepting connections (`{server, Opts}`).
    Server,
    /// Dialling (`{client, Opts}`).
    Client,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Server => "server",
            Side::Client => "client",
        })
    }
}

/// `{verify, verify_peer | verify_none}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verify {
    /// Check the peer's certificate chain against `cacertfile` (and, as a client, the host name).
    Peer,
    /// Accept any certificate.
    None,
}

/// A TLS protocol version, as `ssl` spells it in `{versions, [...]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `'tlsv1.2'`.
    Tls12,
    /// `'tlsv1.3'`.
    Tls13,
}

impl TlsVersion {
    /// The atom `ssl` uses.
    pub const fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "tlsv1.2",
            TlsVersion::Tls13 => "tlsv1.3",
        }
    }
}

/// The options of one side, as given (absent options keep erlnode's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideOptions {
    /// `certfile`: PEM, this node's certificate followed by any intermediates.
    pub certfile: Option<PathBuf>,
    /// `keyfile`: PEM private key (default: read from `certfile`, as `ssl` does).
    pub keyfile: Option<PathBuf>,
    /// `cacertfile`: PEM, the certificates trusted to sign the peer's.
    pub cacertfile: Option<PathBuf>,
    /// `verify`.
    pub verify: Option<Verify>,
    /// `fail_if_no_peer_cert` (server).
    pub fail_if_no_peer_cert: Option<bool>,
    /// `versions`.
    pub versions: Option<Vec<TlsVersion>>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SslDistOptions {
    /// `{server, Opts}`.
    pub server: SideOptions,
    /// `{client, Opts}`.
    pub client: SideOptions,
}

impl SslDistOptions {
    /// The options of `side`.
    pub fn side(&self, side: Side) -> &SideOptions {
        match side {
            Side::Server => &self.server,
            Side::Client => &self.client,
        }
    }
}

/// Why an optfile was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptfileError {
    /// Not an Erlang term.
    Syntax(ParseError),
    /// The term is not a list of `{server | client, [Option]}`.
    Shape(String),
    /// Options erlnode does not implement, as `side:name`, in file order.
    Unsupported(Vec<String>),
    /// An option with a value of the wrong kind.
    BadValue {
        /// The side it is in.
        side: Side,
        /// The option.
        option: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

impl fmt::Display for OptfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptfileError::Syntax(e) => write!(f, "not an Erlang term: {e}"),
            OptfileError::Shape(what) => {
                write!(f, "expected [{{server, [Option]}}, {{client, [Option]}}]: {what}")
            }
            OptfileError::Unsupported(names) => {
                write!(f, "unsupported option(s) {} (erlnode supports {})", names.join(", "), SUPPORTED.join(", "))
            }
            OptfileError::BadValue { side, option, expected } => write!(f, "{side}: {option} must be {expected}"),
        }
    }
}

impl std::error::Error for OptfileError {}

/// Parses the text of an optfile.
pub fn parse(text: &str) -> Result<SslDistOptions, OptfileError> {
    let term = parse_erlang(text).map_err(OptfileError::Syntax)?;
    let sides = term.as_list().ok_or_else(|| OptfileError::Shape("the term is not a list".into()))?;
    let mut out = SslDistOptions::default();
    let mut unsupported = Vec::new();
    for entry in sides {
        let (side, opts) = match entry.as_tuple() {
            Some([tag, opts]) if tag.is_atom("server") => (Side::Server, opts),
            Some([tag, opts]) if tag.is_atom("client") => (Side::Client, opts),
            _ => return Err(OptfileError::Shape(format!("unexpected entry {entry}"))),
        };
        let opts = opts.as_list().ok_or_else(|| OptfileError::Shape(format!("{side} options are not a list")))?;
        let target = match side {
            Side::Server => &mut out.server,
            Side::Client => &mut out.client,
        };
        for opt in opts {
            let (name, value) = match opt.as_tuple() {
                Some([name, value]) => match name.as_atom() {
                    Some(a) => (a.as_str(), value),
                    None => return Err(OptfileError::Shape(format!("{side} option {opt} is not {{Name, Value}}"))),
                },
                _ => return Err(OptfileError::Shape(format!("{side} option {opt} is not {{Name, Value}}"))),
            };
            if !apply(target, side, name, value)? {
                unsupported.push(format!("{side}:{name}"));
            }
        }
    }
    if unsupported.is_empty() { Ok(out) } else { Err(OptfileError::Unsupported(unsupported)) }
}

/// Sets one option; `Ok(false)` if erlnode does not implement it.
fn apply(o: &mut SideOptions, side: Side, name: &str, value: &Term) -> Result<bool, OptfileError> {
    let bad = |option: &'static str, expected: &'static str| OptfileError::BadValue { side, option, expected };
    match name {
        "certfile" => o.certfile = Some(path(value).ok_or_else(|| bad("certfile", "a file name"))?),
        "keyfile" => o.keyfile = Some(path(value).ok_or_else(|| bad("keyfile", "a file name"))?),
        "cacertfile" => o.cacertfile = Some(path(value).ok_or_else(|| bad("cacertfile", "a file name"))?),
        "verify" => {
            o.verify = Some(if value.is_atom("verify_peer") {
                Verify::Peer
            } else if value.is_atom("verify_none") {
                Verify::None
            } else {
                return Err(bad("verify", "verify_peer or verify_none"));
            })
        }
        "fail_if_no_peer_cert" if side == Side::Server => {
            o.fail_if_no_peer_cert = Some(boolean(value).ok_or_else(|| bad("fail_if_no_peer_cert", "true or false"))?)
        }
        "versions" => {
            let expected = "a non-empty list of 'tlsv1.2' and 'tlsv1.3'";
            let list = value.as_list().filter(|l| !l.is_empty()).ok_or_else(|| bad("versions", expected))?;
            let mut versions = Vec::new();
            for v in list {
                versions.push(if v.is_atom("tlsv1.2") {
                    TlsVersion::Tls12
                } else if v.is_atom("tlsv1.3") {
                    TlsVersion::Tls13
                } else {
                    return Err(bad("versions", expected));
                });
            }
            o.versions = Some(versions);
        }
        // rustls never renegotiates, which is what `true` asks for; `false` would ask for less
        "secure_renegotiate" => {
            if boolean(value) != Some(true) {
                return Err(bad("secure_renegotiate", "true (erlnode never renegotiates)"));
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A file name: a string (a list of code points) or a binary, as `ssl` accepts.
fn path(t: &Term) -> Option<PathBuf> {
    let text = match t {
        Term::List(chars) => {
            chars.iter().map(|c| c.as_int().and_then(|i| char::from_u32(u32::try_from(i).ok()?))).collect()
        }
        Term::Binary(b) => std::str::from_utf8(b).ok().map(str::to_string),
        _ => None,
    }?;
    (!text.is_empty()).then(|| PathBuf::from(text))
}

fn boolean(t: &Term) -> Option<bool> {
    if t.is_atom("true") {
        Some(true)
    } else if t.is_atom("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        %% shared by iex and erlnode
        [{server, [{certfile, "/d/node.pem"}, {keyfile, <<"/d/node.key">>},
                   {cacertfile, "/d/ca.pem"}, {verify, verify_peer},
                   {fail_if_no_peer_cert, true}, {secure_renegotiate, true}]},
         {client, [{certfile, "/d/node.pem"}, {cacertfile, "/d/ca.pem"},
                   {verify, verify_none}, {versions, ['tlsv1.3', 'tlsv1.2']}]}].
    "#;

    #[test]
    fn reads_the_otp_format() {
        let o = parse(FILE).unwrap();
        assert_eq!(o.server.certfile, Some(PathBuf::from("/d/node.pem")));
        assert_eq!(o.server.keyfile, Some(PathBuf::from("/d/node.key")));
        assert_eq!(o.server.verify, Some(Verify::Peer));
        assert_eq!(o.server.fail_if_no_peer_cert, Some(true));
        assert_eq!(o.server.versions, None);
        assert_eq!(o.client.keyfile, None);
        assert_eq!(o.client.verify, Some(Verify::None));
        assert_eq!(o.client.versions, Some(vec![TlsVersion::Tls13, TlsVersion::Tls12]));
        assert_eq!(parse("[].").unwrap(), SslDistOptions::default());
    }

    #[test]
    fn names_every_unsupported_option() {
        let e = parse(r#"[{server, [{password, "x"}, {certfile, "a"}, {ciphers, []}]}, {client, [{depth, 2}]}]."#)
            .unwrap_err();
        assert_eq!(
            e,
            OptfileError::Unsupported(vec!["server:password".into(), "server:ciphers".into(), "client:depth".into()])
        );
        assert!(e.to_string().contains("server:password, server:ciphers, client:depth"), "{e}");
        // a server-only option on the client side is not silently dropped either
        let e = parse("[{client, [{fail_if_no_peer_cert, true}]}].").unwrap_err();
        assert_eq!(e, OptfileError::Unsupported(vec!["client:fail_if_no_peer_cert".into()]));
    }

    #[test]
    fn refuses_bad_shapes_and_values() {
        for (text, want) in [
            ("{server, []}.", "not a list"),
            ("[{other, []}].", "unexpected entry"),
            ("[{server, x}].", "not a list"),
            ("[{server, [certfile]}].", "not {Name, Value}"),
            ("[{server, [{verify, sometimes}]}].", "verify_peer or verify_none"),
            ("[{server, [{versions, ['tlsv1.1']}]}].", "'tlsv1.2' and 'tlsv1.3'"),
            ("[{server, [{versions, []}]}].", "non-empty"),
            ("[{server, [{certfile, 42}]}].", "a file name"),
            ("[{server, [{certfile, \"\"}]}].", "a file name"),
            ("[{server, [{secure_renegotiate, false}]}].", "never renegotiates"),
            ("[{server, [{fail_if_no_peer_cert, yes}]}].", "true or false"),
            ("[{server, [{certfile, File}]}].", "not an Erlang term"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
