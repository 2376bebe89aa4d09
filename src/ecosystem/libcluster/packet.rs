//! The Gossip heartbeat datagram (sans-IO), as libcluster 3.5.0 writes and reads it in
//! `lib/strategy/gossip.ex` (`heartbeat/2`, `handle_heartbeat/2`, `encrypt/3`, `decrypt/4`).
//!
//! | secret | datagram |
//! |---|---|
//! | none | `"heartbeat::" <> :erlang.term_to_binary(%{node: node()})` |
//! | `secret: S` | `IV(16) <> AES-256-CBC(key = SHA-256(S), IV, PKCS#7(the datagram above))` |
//!
//! The map may carry other keys (libcluster matches `%{node: n}`); `n` must be an atom that is
//! a node name. Anything else is a [`PacketError`]: a datagram that is not a heartbeat is
//! dropped, as libcluster drops it.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use sha2::{Digest, Sha256};

use crate::node::name::{NameMode, NodeName};
use crate::term::{Atom, Term};

/// What a heartbeat starts with, before the term.
pub const HEARTBEAT_PREFIX: &[u8] = b"heartbeat::";
/// The longest datagram read as a heartbeat. A heartbeat holds one node name (at most 255
/// characters, 1020 bytes of UTF-8) in a one-entry map: well under 1.2 KiB even encrypted.
pub const MAX_PACKET_LEN: usize = 2048;
/// AES block size, and the IV's length.
pub const IV_LEN: usize = 16;

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// Why a datagram is not a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// Longer than [`MAX_PACKET_LEN`].
    TooLong(usize),
    /// No `heartbeat::` prefix (a datagram of something else, or a plain one on a secret port).
    NotHeartbeat,
    /// With a secret: shorter than an IV and one block, or not a whole number of blocks.
    BadCiphertext,
    /// With a secret: the padding was wrong after decryption (another secret, or noise).
    BadPadding,
    /// The term after the prefix does not decode.
    BadTerm(String),
    /// The term is not a map with an atom under `node`.
    NoNode,
    /// `node` is an atom but not a node name (`name@host`).
    BadNodeName(String),
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketError::TooLong(n) => write!(f, "datagram of {n} bytes (at most {MAX_PACKET_LEN})"),
            PacketError::NotHeartbeat => write!(f, "not a heartbeat"),
            PacketError::BadCiphertext => write!(f, "not an IV and whole AES blocks"),
            PacketError::BadPadding => write!(f, "bad padding after decryption (another secret?)"),
            PacketError::BadTerm(e) => write!(f, "bad term: {e}"),
            PacketError::NoNode => write!(f, "no node atom in the heartbeat"),
            PacketError::BadNodeName(n) => write!(f, "not a node name: {n:?}"),
        }
    }
}

impl std::error::Error for PacketError {}

/// A shared gossip secret, kept as its AES-256 key.
#[derive(Clone)]
pub struct Secret {
    key: [u8; 32],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The key libcluster derives: `:crypto.hash(:sha256, secret)`.
    pub fn new(secret: impl AsRef<[u8]>) -> Secret {
        Secret { key: Sha256::digest(secret.as_ref()).into() }
    }
}

/// The heartbeat announcing `node`, encrypted with `secret` under `iv` if there is one.
pub fn encode(node: &Atom, secret: Option<&Secret>, iv: [u8; IV_LEN]) -> Vec<u8> {
    let term = Term::Map(crate::term::Map::from_entries([(Term::atom("node"), Term::Atom(node.clone()))]));
    let mut plain = HEARTBEAT_PREFIX.to_vec();
    crate::term::encode_to(&term, &mut plain);
    match secret {
        None => plain,
        Some(s) => {
            let mut out = iv.to_vec();
            out.extend(Encryptor::new(&s.key.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(&plain));
            out
        }
    }
}

/// The node a heartbeat announces.
pub fn decode(datagram: &[u8], secret: Option<&Secret>) -> Result<Atom, PacketError> {
    if datagram.len() > MAX_PACKET_LEN {
        return Err(PacketError::TooLong(datagram.len()));
    }
    match secret {
        None => decode_plain(datagram),
        Some(s) => {
            let (iv, ciphertext) = datagram.split_at_checked(IV_LEN).ok_or(PacketError::BadCiphertext)?;
            if ciphertext.is_empty() || ciphertext.len() % IV_LEN != 0 {
                return Err(PacketError::BadCiphertext);
            }
            let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| PacketError::BadCiphertext)?;
            let plain = Decryptor::new(&s.key.into(), &iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
                .map_err(|_| PacketError::BadPadding)?;
            decode_plain(&plain)
        }
    }
}

fn decode_plain(plain: &[u8]) -> Result<Atom, PacketError> {
    let etf = plain.strip_prefix(HEARTBEAT_PREFIX).ok_or(PacketError::NotHeartbeat)?;
    let term = crate::term::decode(etf).map_err(|e| PacketError::BadTerm(e.to_string()))?;
    let node = match term.as_map().and_then(|m| m.get(&Term::atom("node"))) {
        Some(Term::Atom(a)) => a.clone(),
        _ => return Err(PacketError::NoNode),
    };
    // `alive@host` with a non-empty host (either naming mode: the cluster's mode decides)
    match NodeName::parse(node.as_str(), NameMode::Long) {
        Ok(_) if node.as_str().contains('@') => Ok(node),
        _ => Err(PacketError::BadNodeName(node.as_str().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // what gossip.ex's heartbeat/2 sends: "heartbeat::" <> term_to_binary(%{node: :"a@h"}), the
    // term's bytes as OTP 25 writes them (ATOM_EXT) and as OTP 27 writes them
    // (SMALL_ATOM_UTF8_EXT), printed by `erl` of each version
    const OTP25: &[u8] = b"heartbeat::\x83t\x00\x00\x00\x01d\x00\x04noded\x00\x03a@h";
    const OTP27: &[u8] = b"heartbeat::\x83t\x00\x00\x00\x01w\x04nodew\x03a@h";

    #[test]
    fn plain_heartbeats_as_beam_writes_them() {
        assert_eq!(decode(OTP25, None).unwrap().as_str(), "a@h");
        assert_eq!(decode(OTP27, None).unwrap().as_str(), "a@h");
        assert_eq!(encode(&Atom::new("a@h"), None, [0; 16]), OTP27);
    }

    #[test]
    fn encrypted_heartbeats_round_trip_and_other_secrets_fail() {
        let s = Secret::new("s3cret");
        let iv = [7u8; 16];
        let d = encode(&Atom::new("a@h"), Some(&s), iv);
        assert_eq!(&d[..16], &iv);
        assert_eq!((d.len() - 16) % 16, 0);
        assert_eq!(decode(&d, Some(&s)).unwrap().as_str(), "a@h");
        // another secret: padding (almost always) or the prefix fails
        assert!(decode(&d, Some(&Secret::new("other"))).is_err());
        // a plain heartbeat on a port that expects a secret, and the other way round
        assert!(decode(OTP27, Some(&s)).is_err());
        assert_eq!(decode(&d, None), Err(PacketError::NotHeartbeat));
    }

    #[test]
    fn beam_encrypted_heartbeat() {
        // :crypto.crypto_one_time(:aes_256_cbc, :crypto.hash(:sha256, "k"), <<0::128>>,
        //   pkcs7_pad("heartbeat::" <> term_to_binary(%{node: :"a@h"})), true) on OTP 27
        let beam: [u8; 32] = [
            56, 175, 0, 38, 242, 150, 240, 83, 6, 10, 246, 11, 107, 141, 92, 118, 208, 237, 248, 33, 67, 19, 79, 110,
            98, 223, 91, 34, 105, 62, 10, 100,
        ];
        let mut datagram = vec![0u8; 16];
        datagram.extend(beam);
        let s = Secret::new("k");
        assert_eq!(decode(&datagram, Some(&s)).unwrap().as_str(), "a@h");
        assert_eq!(encode(&Atom::new("a@h"), Some(&s), [0; 16]), datagram);
    }

    #[test]
    fn hostile_datagrams_are_typed_errors() {
        let s = Secret::new("k");
        assert_eq!(decode(&[0; MAX_PACKET_LEN + 1], None), Err(PacketError::TooLong(MAX_PACKET_LEN + 1)));
        assert_eq!(decode(b"", None), Err(PacketError::NotHeartbeat));
        assert_eq!(decode(b"heartbeat:", None), Err(PacketError::NotHeartbeat));
        assert!(matches!(decode(b"heartbeat::", None), Err(PacketError::BadTerm(_))));
        assert!(matches!(decode(b"heartbeat::\x83", None), Err(PacketError::BadTerm(_))));
        // a map without node, node not an atom, an atom that is no node name
        assert_eq!(decode(b"heartbeat::\x83t\x00\x00\x00\x00", None), Err(PacketError::NoNode));
        assert_eq!(decode(b"heartbeat::\x83t\x00\x00\x00\x01w\x04nodea\x01", None), Err(PacketError::NoNode));
        assert_eq!(decode(b"heartbeat::\x83w\x03a@h", None), Err(PacketError::NoNode));
        assert!(matches!(
            decode(b"heartbeat::\x83t\x00\x00\x00\x01w\x04nodew\x03abc", None),
            Err(PacketError::BadNodeName(_))
        ));
        assert!(matches!(
            decode(b"heartbeat::\x83t\x00\x00\x00\x01w\x04nodew\x02a@", None),
            Err(PacketError::BadNodeName(_))
        ));
        // a map claiming 2^32-1 entries in a few bytes
        assert!(matches!(decode(b"heartbeat::\x83t\xff\xff\xff\xff", None), Err(PacketError::BadTerm(_))));
        for bad in [&[0u8; 0][..], &[0; 15], &[0; 16], &[0; 17], &[0; 31]] {
            assert_eq!(decode(bad, Some(&s)), Err(PacketError::BadCiphertext), "{} bytes", bad.len());
        }
        assert_eq!(decode(&[0; 32], Some(&s)), Err(PacketError::BadPadding));
    }
}
