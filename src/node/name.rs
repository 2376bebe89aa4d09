//! Node names: `alive@host`, short (`-sname`) or long (`-name`), with the host part computed the
//! way `erl` computes it on the same machine (`net_kernel`, "Distributed Erlang": short names
//! take the host name up to the first dot; long names need a fully qualified host).

use std::fmt;

use crate::term::Atom;

/// Short (`-sname`) or long (`-name`) naming; a cluster must use one mode throughout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameMode {
    /// `-sname`: `alive@shorthost`.
    Short,
    /// `-name`: `alive@host.domain` or `alive@1.2.3.4`.
    Long,
}

/// A full node name split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeName {
    /// The part before `@` (what EPMD registers).
    pub alive: String,
    /// The host part.
    pub host: String,
}

/// A node name that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadNodeName(pub String);

impl fmt::Display for BadNodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad node name: {}", self.0)
    }
}

impl std::error::Error for BadNodeName {}

/// Longest `alive` part EPMD and BEAM accept.
pub const MAX_ALIVE_LEN: usize = 255;

impl NodeName {
    /// Parses `alive@host`, or completes a bare `alive` with this machine's host name as `erl`
    /// would for `mode`.
    pub fn parse(s: &str, mode: NameMode) -> Result<NodeName, BadNodeName> {
        let (alive, host) = match s.split_once('@') {
            Some((a, h)) => (a.to_string(), h.to_string()),
            None => (s.to_string(), local_host(mode)),
        };
        let ok_alive = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if alive.is_empty() || alive.len() > MAX_ALIVE_LEN || !alive.chars().all(ok_alive) {
            return Err(BadNodeName(s.to_string()));
        }
        if host.is_empty() || host.contains('@') {
            return Err(BadNodeName(s.to_string()));
        }
        if mode == NameMode::Short && host.contains('.') && host.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(BadNodeName(format!("{s} (a short name cannot have a dotted host)")));
        }
        Ok(NodeName { alive, host })
    }

    /// The full name as an atom.
    pub fn to_atom(&self) -> Atom {
        Atom::new(&format!("{}@{}", self.alive, self.host))
    }

    /// Splits a full node name atom.
    pub fn from_atom(node: &Atom) -> Option<NodeName> {
        let (a, h) = node.as_str().split_once('@')?;
        Some(NodeName { alive: a.to_string(), host: h.to_string() })
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.alive, self.host)
    }
}

/// This machine's host name (gethostname(2)).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for buf.len() bytes; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The host part `erl` uses for `mode` on this machine.
pub fn local_host(mode: NameMode) -> String {
    let h = hostname();
    match mode {
        NameMode::Short => h.split('.').next().unwrap_or("localhost").to_string(),
        NameMode::Long => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names() {
        let n = NodeName::parse("zed@pathfinder", NameMode::Short).unwrap();
        assert_eq!(n.to_atom(), Atom::new("zed@pathfinder"));
        let bare = NodeName::parse("zed", NameMode::Short).unwrap();
        assert!(!bare.host.contains('.'));
        assert!(NodeName::parse("zed@host.example.com", NameMode::Short).is_err());
        assert!(NodeName::parse("zed@host.example.com", NameMode::Long).is_ok());
        assert!(NodeName::parse("", NameMode::Short).is_err());
        assert!(NodeName::parse("a b@h", NameMode::Short).is_err());
    }
}
