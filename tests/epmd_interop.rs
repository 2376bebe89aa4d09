//! EPMD interop: our client against a real `epmd`, and our embedded EPMD against real `erl`
//! nodes (OTP 25 from /usr/bin, 27 and 29 from /opt/otp).
//!
//! The helpers below are deliberately small and self-contained; they move to the shared test
//! harness (tests/common/) once it lands.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use erlnode::epmd::{self, EpmdError, proto};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::time::Instant;

// ---- minimal helpers (to be replaced by tests/common) ----------------------------------------

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node name unique to this test process.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}x{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A child process killed (and reaped) on drop.
struct Proc(Child);

impl Proc {
    fn spawn(cmd: &mut Command) -> Proc {
        Proc(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")))
    }
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 50 ms until it yields `Some`, or panics after `secs`.
async fn poll<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `erl` from `bin` with an isolated EPMD port; never starts an epmd of its own.
fn erl(bin: &str, epmd_port: u16, sname: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(Path::new(bin).join("erl"));
    c.env("ERL_EPMD_PORT", epmd_port.to_string())
        .args(["-sname", sname, "-setcookie", "epmdtestcookie", "-noshell", "-start_epmd", "false"])
        .args(["-kernel", "connect_all", "false"])
        .args(extra)
        .stdin(Stdio::null());
    c
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn has_name(port: u16, name: &str) -> Option<bool> {
    let names = epmd::names(local(port)).await.ok()?;
    Some(names.iter().any(|(n, _)| n == name))
}

// ---- client against the real epmd -----------------------------------------------------------

#[tokio::test]
async fn client_against_real_epmd() {
    let port = free_port();
    let _epmd = Proc::spawn(
        Command::new("/usr/bin/epmd").args(["-port", &port.to_string()]).stdin(Stdio::null()),
    );
    poll("epmd up", 10, || async { epmd::names(local(port)).await.ok() }).await;

    let name = unique("cli");
    let reg = epmd::register(local(port), &name, 12345, false).await.unwrap();
    assert_ne!(reg.creation(), 0);

    let reply = epmd::client::names_reply(local(port)).await.unwrap();
    assert_eq!(u32::from(port), reply.epmd_port);
    assert!(reply.names.contains(&(name.clone(), 12345)), "{:?}", reply.names);

    let entry = epmd::port_please(("localhost", port), &name).await.unwrap().unwrap();
    assert_eq!(entry, proto::NodeEntry::new(&name, 12345, false));
    assert_eq!(epmd::port_please(local(port), "nosuchnode").await.unwrap(), None);

    // A live name cannot be registered twice.
    match epmd::register(local(port), &name, 12346, true).await {
        Err(EpmdError::Refused { result }) => assert_ne!(result, 0),
        other => panic!("duplicate registration: {other:?}"),
    }

    // A hidden registration carries NodeType 72.
    let hidden = unique("hid");
    let hreg = epmd::register(local(port), &hidden, 23456, true).await.unwrap();
    let he = epmd::port_please(local(port), &hidden).await.unwrap().unwrap();
    assert_eq!(he.node_type, proto::NODE_TYPE_HIDDEN);

    // KILL is refused while nodes are registered.
    assert!(!epmd::client::kill(local(port)).await.unwrap());

    // Dropping the registration unregisters the name; re-registering gives a new creation.
    let first = reg.creation();
    drop(reg);
    poll("name gone", 10, || async { has_name(port, &name).await.filter(|b| !b) }).await;
    let again = epmd::register(local(port), &name, 12345, false).await.unwrap();
    assert_ne!(again.creation(), first);
    drop((again, hreg));
}

#[tokio::test]
async fn client_errors() {
    // Nothing listens: connection refused is an I/O error, not a hang.
    let port = free_port();
    assert!(matches!(epmd::names(local(port)).await, Err(EpmdError::Io(_))));
    // A bad name is refused locally, before any connection.
    assert!(matches!(
        epmd::port_please(local(port), "").await,
        Err(EpmdError::InvalidArgument(_))
    ));

    // A server that answers garbage is a protocol error; one that closes early is Closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        for reply in [&b"Zgarbage"[..], &b""[..]] {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 64];
            let _ = s.read(&mut b).await;
            s.write_all(reply).await.unwrap();
        }
    });
    assert!(matches!(
        epmd::port_please(addr, "x").await,
        Err(EpmdError::Protocol(proto::ProtoError::UnexpectedReply { .. }))
    ));
    assert!(matches!(epmd::register(addr, "x", 1, false).await, Err(EpmdError::Closed)));
    server.await.unwrap();
}
