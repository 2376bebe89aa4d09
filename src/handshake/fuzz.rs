//! Entry points for fuzz targets (`fuzz/`): arbitrary bytes into fresh state machines. They must
//! never panic, whatever the input.

use super::{Cookie, FlagOptions, Handshake, LocalNode, Progress, Status};
use crate::term::Atom;

fn local(name: &str) -> LocalNode {
    LocalNode {
        name: Atom::new(name),
        flags: FlagOptions::FULL.flags(),
        creation: 0x1234_5678,
        cookie: Cookie::new("fuzz"),
    }
}

/// Feeds `data` to a fresh acceptor in one piece, answering `ok` to its status request. Returns
/// the handshake's outcome or error, for targets that want to check more.
pub fn acceptor(data: &[u8]) -> Result<Progress, super::HandshakeError> {
    let mut hs = Handshake::acceptor(local("fuzz@localhost"), 0x0bad_cafe)?;
    let mut progress = hs.handle_input(data)?;
    while let Progress::StatusRequest { .. } = progress {
        progress = hs.reply_status(Status::Ok)?;
    }
    let _ = hs.take_output();
    Ok(progress)
}

/// Feeds `data` to a fresh initiator that dialled `peer@localhost`, in one piece, answering
/// `true` to an alive query.
pub fn initiator(data: &[u8]) -> Result<Progress, super::HandshakeError> {
    let mut hs = Handshake::initiator(local("fuzz@localhost"), Atom::new("peer@localhost"), 0x0bad_cafe)?;
    let _ = hs.take_output();
    let mut progress = hs.handle_input(data)?;
    while let Progress::AliveQuery { .. } = progress {
        progress = hs.answer_alive(true)?;
    }
    let _ = hs.take_output();
    Ok(progress)
}
