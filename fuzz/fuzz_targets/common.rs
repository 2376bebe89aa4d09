//! Shared by the two handshake targets: the node `erlnode::handshake::fuzz` plays, and a
//! driver that feeds the same bytes in pieces.

use erlnode::handshake::message::HANDSHAKE_FRAME_HEADER_LEN;
use erlnode::handshake::{
    Cookie, FlagOptions, Handshake, HandshakeError, LocalNode, MAX_HANDSHAKE_MESSAGE_LEN, Progress,
};
use erlnode::term::Atom;

/// The challenge `erlnode::handshake::fuzz` uses.
pub const OUR_CHALLENGE: u32 = 0x0bad_cafe;

/// The local node `erlnode::handshake::fuzz` uses.
pub fn local() -> LocalNode {
    LocalNode {
        name: Atom::new("fuzz@localhost"),
        flags: FlagOptions::FULL.flags(),
        creation: 0x1234_5678,
        cookie: Cookie::new("fuzz"),
    }
}

/// Splitting changes the outcome only through the bound on input buffered while the state
/// machine waits for its caller (a status or alive answer): fed whole, more than one framed
/// message's worth is over it. Below that bound every split must give the same result.
pub fn splits_comparable(data: &[u8]) -> bool {
    data.len() <= HANDSHAKE_FRAME_HEADER_LEN + MAX_HANDSHAKE_MESSAGE_LEN
}

/// Feeds `data` `chunk` bytes at a time to a fresh handshake, answering what `answer` answers,
/// until it completes or fails. Returns the outcome (with every byte not fed yet appended to a
/// completed handshake's leftover, as one piece would have it) and everything written.
pub fn feed(
    start: impl Fn() -> Result<Handshake, HandshakeError>,
    answer: impl Fn(&mut Handshake, Result<Progress, HandshakeError>) -> Result<Progress, HandshakeError>,
    data: &[u8],
    chunk: usize,
) -> (Result<Progress, HandshakeError>, Vec<u8>) {
    let mut hs = match start() {
        Ok(hs) => hs,
        Err(e) => return (Err(e), Vec::new()),
    };
    let mut out = Vec::new();
    let mut last = Ok(Progress::NeedInput);
    let mut fed = 0;
    for piece in data.chunks(chunk) {
        fed += piece.len();
        let p = hs.handle_input(piece);
        last = answer(&mut hs, p);
        out.extend(hs.take_output());
        if !matches!(last, Ok(Progress::NeedInput)) {
            break;
        }
    }
    if let Ok(Progress::Complete(outcome)) = &mut last {
        outcome.leftover.extend_from_slice(data.get(fed..).unwrap_or(&[]));
    }
    (last, out)
}

/// Feeds `data` in one piece and in pieces of 1 to 7 bytes (chosen by its first byte) to fresh
/// handshakes: both must end as `whole` (the one-call entry point's outcome) and write the same
/// bytes. Skipped where [`splits_comparable`] says splitting may change the outcome.
pub fn assert_split_invariant(
    start: impl Fn() -> Result<Handshake, HandshakeError>,
    answer: impl Fn(&mut Handshake, Result<Progress, HandshakeError>) -> Result<Progress, HandshakeError>,
    data: &[u8],
    whole: &Result<Progress, HandshakeError>,
) {
    if !splits_comparable(data) {
        return;
    }
    let (one, out_one) = feed(&start, &answer, data, data.len().max(1));
    assert_eq!(&one, whole);
    let chunk = usize::from(data.first().copied().unwrap_or(0) % 7) + 1;
    let (pieces, out_pieces) = feed(&start, &answer, data, chunk);
    assert_eq!(&pieces, whole, "fed {chunk} bytes at a time");
    assert_eq!(out_pieces, out_one, "fed {chunk} bytes at a time");
}
