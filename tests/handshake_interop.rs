//! The handshake against real BEAM nodes, without the rest of the stack: a tiny blocking driver
//! (std `TcpStream`) around [`erlnode::handshake::Handshake`], raw EPMD requests, and an isolated
//! `epmd` on a random port (`ERL_EPMD_PORT`).
//!
//! (a) we dial `erl` (OTP 25, 27, 29) and see the first frames after the handshake;
//! (b) `erl` dials us (`net_adm:ping`), and the BEAM side lists us in `nodes(connected)`;
//! (c) a wrong cookie is rejected in both directions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use erlnode::Atom;
use erlnode::handshake::{
    Cookie, DigestMessage, FlagOptions, Handshake, HandshakeError, LocalNode, Outcome, Progress, status_for_incoming,
};

const DEADLINE: Duration = Duration::from_secs(20);

mod common;

/// The bin directory of OTP `version`, provisioned by the harness when missing.
fn otp_bin(version: u32) -> PathBuf {
    common::Otp::get(version).bin_dir().to_path_buf()
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Kills the child on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An `epmd` of our own on a free port.
struct Epmd {
    port: u16,
    _proc: Proc,
}

impl Epmd {
    fn start(bin: &Path) -> Epmd {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let child = Command::new(bin.join("epmd"))
            .args(["-port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start epmd");
        let epmd = Epmd { port, _proc: Proc(child) };
        wait_for("epmd to listen", || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
        epmd
    }

    /// `PORT_PLEASE2_REQ` over a raw socket: the node's distribution port, if registered.
    fn port_please(&self, name: &str) -> Option<u16> {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        let mut req = vec![122];
        req.extend_from_slice(name.as_bytes());
        s.write_all(&(req.len() as u16).to_be_bytes()).ok()?;
        s.write_all(&req).ok()?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).ok()?;
        match resp.as_slice() {
            [119, 0, hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    /// `ALIVE2_REQ` over a raw socket; returns the open registration socket and our creation.
    fn alive2(&self, name: &str, port: u16) -> (TcpStream, u32) {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).unwrap();
        let mut req = vec![120];
        req.extend_from_slice(&port.to_be_bytes());
        req.extend_from_slice(&[77, 0]); // normal node, TCP/IPv4
        req.extend_from_slice(&6u16.to_be_bytes());
        req.extend_from_slice(&5u16.to_be_bytes());
        req.extend_from_slice(&(name.len() as u16).to_be_bytes());
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(&0u16.to_be_bytes());
        s.write_all(&(req.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&req).unwrap();
        let mut head = [0u8; 2];
        s.read_exact(&mut head).unwrap();
        let creation = match head {
            [118, 0] => {
                let mut c = [0u8; 4];
                s.read_exact(&mut c).unwrap();
                u32::from_be_bytes(c)
            }
            [121, 0] => {
                let mut c = [0u8; 2];
                s.read_exact(&mut c).unwrap();
                u32::from(u16::from_be_bytes(c))
            }
            other => panic!("ALIVE2 failed: {other:?}"),
        };
        (s, creation)
    }
}

/// A BEAM node whose stdout and stderr lines are collected.
struct Erl {
    _proc: Proc,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Erl {
    fn start(bin: &Path, epmd: &Epmd, sname: &str, cookie: &str, eval: &str) -> Erl {
        let mut child = Command::new(bin.join("erl"))
            .args(["-sname", &format!("{sname}@localhost"), "-setcookie", cookie, "-noshell"])
            .args(["-kernel", "net_ticktime", "4", "-eval", eval])
            .env("ERL_EPMD_PORT", epmd.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start erl");
        let (tx, lines) = mpsc::channel();
        for pipe in
            [Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.stderr.take().unwrap())]
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Erl { _proc: Proc(child), lines, seen: Vec::new() }
    }

    /// Waits for a line containing `needle`; returns it.
    fn expect_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let end = Instant::now() + DEADLINE;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("erl never printed {needle:?}; it printed: {:#?}", self.seen);
    }

    /// Everything printed so far (without waiting).
    fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

fn local(name: &str, cookie: &str, creation: u32) -> LocalNode {
    LocalNode {
        name: Atom::new(&format!("{name}@localhost")),
        flags: FlagOptions::PASS_THROUGH.flags(),
        creation,
        cookie: Cookie::new(cookie),
    }
}

#[derive(Debug)]
enum DriveError {
    Handshake(HandshakeError),
    /// The peer closed the socket before the handshake completed.
    Closed,
}

/// The blocking driver: write output, read input, answer the caller questions.
fn drive(stream: &mut TcpStream, hs: &mut Handshake, our_name: &Atom) -> Result<Outcome, DriveError> {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 1024];
    let mut progress = Ok(Progress::NeedInput);
    loop {
        let out = hs.take_output();
        if !out.is_empty() {
            stream.write_all(&out).map_err(|_| DriveError::Closed)?;
        }
        match progress.map_err(DriveError::Handshake)? {
            Progress::Complete(outcome) => return Ok(outcome),
            Progress::StatusRequest { peer, .. } => {
                progress = hs.reply_status(status_for_incoming(our_name, &peer, false, false));
            }
            Progress::AliveQuery { .. } => progress = hs.answer_alive(false),
            Progress::NeedInput => {
                let n = stream.read(&mut buf).map_err(|_| DriveError::Closed)?;
                if n == 0 {
                    return Err(DriveError::Closed);
                }
                progress = hs.handle_input(&buf[..n]);
            }
        }
    }
}

/// Reads one 4-byte framed message after the handshake (starting with the leftover bytes);
/// returns its payload (empty for a tick).
fn read_first_frame(stream: &mut TcpStream, leftover: Vec<u8>) -> Vec<u8> {
    let mut data = leftover;
    let mut buf = [0u8; 4096];
    loop {
        if let Some(len) = data.get(..4).map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize) {
            if data.len() >= 4 + len {
                return data[4..4 + len].to_vec();
            }
        }
        let n = stream.read(&mut buf).expect("read after handshake");
        assert!(n > 0, "BEAM closed the connection right after the handshake");
        data.extend_from_slice(&buf[..n]);
    }
}

/// Erlang that prints `SEEN <nodes>` once `nodes(connected)` is non-empty.
const PRINT_WHEN_CONNECTED: &str = "W = fun W() -> case nodes(connected) of [] -> timer:sleep(20), W(); \
     Ns -> io:format(\"SEEN ~p~n\", [Ns]) end end, W().";

/// (a) We dial a real node, complete the handshake, and see its first frame.
fn dial_beam_on(version: u32) {
    let bin = otp_bin(version);
    let epmd = Epmd::start(&bin);
    let beam = unique("hs_beam");
    let mut erl = Erl::start(&bin, &epmd, &beam, "c", PRINT_WHEN_CONNECTED);
    let mut port = None;
    wait_for("erl to register with epmd", || {
        port = epmd.port_please(&beam);
        port.is_some()
    });
    let me = local(&unique("hs_rust"), "c", 0x5eed_0001);
    let our_name = me.name.clone();
    let peer = Atom::new(&format!("{beam}@localhost"));
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port.unwrap())).unwrap();
    let mut hs = Handshake::initiator(me, peer.clone(), rand::random()).unwrap();
    let outcome = drive(&mut stream, &mut hs, &our_name).expect("handshake with BEAM");
    assert_eq!(outcome.name, peer);
    assert!(outcome.flags.contains(erlnode::dist::DistFlags::PUBLISHED));
    assert_ne!(outcome.creation, 0);
    assert_eq!(outcome.negotiated.missing(erlnode::dist::DistFlags::MANDATORY).0, 0);
    // The first frame: a tick (empty) or a pass-through message ('p' = 112).
    eprintln!("OTP {version}: {outcome:?}");
    let frame = read_first_frame(&mut stream, outcome.leftover);
    eprintln!("first frame: {} bytes {:?}", frame.len(), &frame[..frame.len().min(16)]);
    assert!(frame.is_empty() || frame[0] == 112, "unexpected first frame {frame:?}");
    let seen = erl.expect_line("SEEN");
    assert!(seen.contains(our_name.as_str()), "{seen}");
}

#[test]
fn dial_beam() {
    common::for_each_otp(|otp| dial_beam_on(otp.version()));
}

/// Erlang that pings `node` and reports both the connection and the ping result.
fn ping_eval(node: &Atom) -> String {
    format!(
        "N = '{}', spawn(fun() -> io:format(\"PING ~p~n\", [net_adm:ping(N)]) end), {PRINT_WHEN_CONNECTED}",
        node.as_str()
    )
}

/// Listens, registers with epmd, starts `erl` pinging us, and drives the acceptor.
fn accept_from_beam(
    version: u32,
    cookie_ours: &str,
    cookie_beam: &str,
) -> (Result<Outcome, DriveError>, Erl, TcpStream) {
    let bin = otp_bin(version);
    let epmd = Epmd::start(&bin);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let name = unique("hs_rust");
    let (_registration, creation) = epmd.alive2(&name, listener.local_addr().unwrap().port());
    let me = local(&name, cookie_ours, creation);
    let our_name = me.name.clone();
    let erl = Erl::start(&bin, &epmd, &unique("hs_beam"), cookie_beam, &ping_eval(&our_name));
    listener.set_nonblocking(true).unwrap();
    let mut stream = None;
    wait_for("erl to dial us", || {
        stream = listener.accept().ok().map(|(s, _)| s);
        stream.is_some()
    });
    let mut stream = stream.unwrap();
    stream.set_nonblocking(false).unwrap();
    let mut hs = Handshake::acceptor(me, rand::random()).unwrap();
    let result = drive(&mut stream, &mut hs, &our_name);
    (result, erl, stream)
}

/// (b) `net_adm:ping` from BEAM reaches us; the BEAM side completes the handshake.
fn beam_dials_us_on(version: u32) {
    let (result, mut erl, mut stream) = accept_from_beam(version, "c", "c");
    let outcome = result.expect("handshake from BEAM");
    assert!(outcome.name.as_str().starts_with("hs_beam_"));
    assert!(outcome.flags.contains(erlnode::dist::DistFlags::PUBLISHED));
    let seen = erl.expect_line("SEEN");
    assert!(seen.contains("hs_rust_"), "{seen}");
    let _ = read_first_frame(&mut stream, outcome.leftover);
    // nothing answers net_kernel: closing the socket makes the ping return pang
    drop(stream);
    erl.expect_line("PING pang");
    assert!(
        !erl.drain().iter().any(|l| l.contains("rejected") || l.contains("Invalid")),
        "BEAM logged a rejection: {:#?}",
        erl.seen
    );
}

#[test]
fn beam_dials_us() {
    common::for_each_otp(|otp| beam_dials_us_on(otp.version()));
}

/// (c) BEAM dials us with another cookie: our acceptor rejects its challenge reply.
#[test]
fn beam_with_wrong_cookie_is_rejected_by_us() {
    common::for_each_otp(|otp| beam_with_wrong_cookie_is_rejected_by_us_on(otp.version()));
}

fn beam_with_wrong_cookie_is_rejected_by_us_on(version: u32) {
    let (result, mut erl, _stream) = accept_from_beam(version, "ours", "theirs");
    match result {
        Err(DriveError::Handshake(HandshakeError::BadCookie { peer, message })) => {
            assert!(peer.as_str().starts_with("hs_beam_"));
            assert_eq!(message, DigestMessage::ChallengeReply);
        }
        other => panic!("expected a cookie error, got {other:?}"),
    }
    drop(_stream);
    erl.expect_line("PING pang");
}

/// (c) We dial BEAM with another cookie: BEAM rejects our challenge reply and closes.
#[test]
fn we_with_wrong_cookie_are_rejected_by_beam() {
    common::for_each_otp(|otp| we_with_wrong_cookie_are_rejected_by_beam_on(otp.version()));
}

fn we_with_wrong_cookie_are_rejected_by_beam_on(version: u32) {
    let bin = otp_bin(version);
    let epmd = Epmd::start(&bin);
    let beam = unique("hs_beam");
    let mut erl = Erl::start(&bin, &epmd, &beam, "theirs", "ok.");
    let mut port = None;
    wait_for("erl to register with epmd", || {
        port = epmd.port_please(&beam);
        port.is_some()
    });
    let me = local(&unique("hs_rust"), "ours", 7);
    let our_name = me.name.clone();
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port.unwrap())).unwrap();
    let mut hs = Handshake::initiator(me, Atom::new(&format!("{beam}@localhost")), rand::random()).unwrap();
    match drive(&mut stream, &mut hs, &our_name) {
        Err(DriveError::Closed) => {}
        other => panic!("expected BEAM to close on a bad digest, got {other:?}"),
    }
    erl.expect_line("Invalid challenge reply");
}
