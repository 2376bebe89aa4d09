//! EPMD interop: our client against a real `epmd`, and our embedded EPMD against real `erl`
//! nodes of OTP 25, 27 and 29 (provisioned by the shared harness, tests/common).
//!
//! The helpers below are deliberately small and self-contained; they move to the shared test
//! harness (tests/common/) once it lands.

mod common;

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
        Command::new(common::Otp::get(25).tool("epmd")).args(["-port", &port.to_string()]).stdin(Stdio::null()),
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
    assert!(matches!(epmd::port_please(local(port), "").await, Err(EpmdError::InvalidArgument(_))));

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

// ---- embedded server: our client, hostile input ---------------------------------------------

async fn spawn_server(config: epmd::ServerConfig) -> (epmd::EmbeddedEpmdHandle, u16) {
    let server = epmd::EmbeddedEpmd::bind(local(0)).await.unwrap().with_config(config);
    let handle = server.spawn().unwrap();
    let port = handle.local_addr().port();
    (handle, port)
}

/// Reads until EOF or error; true if the server closed within 5 s.
async fn closed_by_server(s: &mut tokio::net::TcpStream) -> bool {
    let mut b = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut b)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn embedded_server_with_our_client() {
    let (handle, port) = spawn_server(Default::default()).await;
    let name = unique("emb");
    let reg = epmd::register(local(port), &name, 40001, false).await.unwrap();
    assert!(reg.creation() >= 4);
    let reply = epmd::client::names_reply(local(port)).await.unwrap();
    assert_eq!(reply.epmd_port, u32::from(port));
    assert_eq!(reply.names, [(name.clone(), 40001)]);
    assert_eq!(handle.names(), [(name.clone(), 40001)]);
    assert_eq!(epmd::port_please(local(port), &name).await.unwrap(), Some(proto::NodeEntry::new(&name, 40001, false)));
    assert_eq!(epmd::port_please(local(port), "other").await.unwrap(), None);
    assert!(matches!(epmd::register(local(port), &name, 40002, false).await, Err(EpmdError::Refused { result: 1 })));
    assert!(!epmd::client::kill(local(port)).await.unwrap(), "KILL refused while registered");

    let first = reg.creation();
    drop(reg);
    poll("unregistered", 5, || async { has_name(port, &name).await.filter(|b| !b) }).await;
    let again = epmd::register(local(port), &name, 40001, false).await.unwrap();
    assert_ne!(again.creation(), first);

    // Bytes after a registration end it, as in epmd.
    let mut raw = tokio::net::TcpStream::connect(local(port)).await.unwrap();
    let mut req = Vec::new();
    proto::Request::Alive2(proto::NodeEntry::new("rawreg", 1, false)).encode(&mut req).unwrap();
    raw.write_all(&req).await.unwrap();
    let mut resp = [0u8; 6];
    raw.read_exact(&mut resp).await.unwrap();
    assert_eq!(resp[..2], [proto::ALIVE2_X_RESP, 0]);
    assert!(handle.names().iter().any(|(n, _)| n == "rawreg"));
    raw.write_all(b"x").await.unwrap();
    assert!(closed_by_server(&mut raw).await);
    poll("rawreg gone", 5, || async { (!handle.names().iter().any(|(n, _)| n == "rawreg")).then_some(()) }).await;

    // Shutdown closes registrations: the client sees it.
    let mut again = again;
    handle.shutdown().await;
    tokio::time::timeout(Duration::from_secs(5), again.closed()).await.expect("registration closed");
    assert!(epmd::names(local(port)).await.is_err());
}

#[tokio::test]
async fn embedded_server_hostile_input() {
    let config = epmd::ServerConfig { max_connections: 16, max_names: 2, idle_timeout: Duration::from_millis(300) };
    let (handle, port) = spawn_server(config).await;
    let connect = || tokio::net::TcpStream::connect(local(port));

    // Each malformed request closes its own connection only.
    let bad: [&[u8]; 5] = [
        &[0xff, 0xff],               // length over MAX_REQUEST_LEN
        &[0, 0],                     // empty request
        &[0, 1, 99],                 // unknown op
        &[0, 4, 122, b'a', 0, b'b'], // NUL in name
        &[0, 1, 110, 0, 1, 110],     // bytes after the request
    ];
    for b in bad {
        let mut s = connect().await.unwrap();
        s.write_all(b).await.unwrap();
        assert!(closed_by_server(&mut s).await, "{b:?}");
    }
    assert_eq!(epmd::names(local(port)).await.unwrap(), []);

    // A silent connection is dropped after the idle timeout.
    let mut idle = connect().await.unwrap();
    assert!(closed_by_server(&mut idle).await);
    // ...and so is one stuck mid-request.
    let mut partial = connect().await.unwrap();
    partial.write_all(&[0, 10, 122, b'a']).await.unwrap();
    assert!(closed_by_server(&mut partial).await);

    // Name limit: the third registration is refused.
    let r1 = epmd::register(local(port), "h1", 1, false).await.unwrap();
    let r2 = epmd::register(local(port), "h2", 2, false).await.unwrap();
    assert!(matches!(epmd::register(local(port), "h3", 3, false).await, Err(EpmdError::Refused { .. })));

    drop((r1, r2));

    // KILL with nothing registered stops the server.
    poll("names empty", 5, || async { handle.names().is_empty().then_some(()) }).await;
    assert!(epmd::client::kill(local(port)).await.unwrap());
    poll("server stopped", 5, || async { epmd::names(local(port)).await.is_err().then_some(()) }).await;
}

#[tokio::test]
async fn ensure_epmd_cases() {
    // Nothing on the port: we serve.
    let port = free_port();
    let ours = epmd::ensure_epmd(port).await.unwrap().expect("serves in-process");
    // Someone (we) already answers: use it.
    assert!(epmd::ensure_epmd(port).await.unwrap().is_none());
    let reg = epmd::register(local(port), "ens", 5, false).await.unwrap();
    assert_eq!(epmd::names(local(port)).await.unwrap(), [("ens".to_string(), 5)]);
    drop(reg);
    ours.shutdown().await;

    // A real epmd answers: use it.
    let port = free_port();
    let _epmd = Proc::spawn(
        Command::new(common::Otp::get(25).tool("epmd")).args(["-port", &port.to_string()]).stdin(Stdio::null()),
    );
    poll("epmd up", 10, || async { epmd::names(local(port)).await.ok() }).await;
    assert!(epmd::ensure_epmd(port).await.unwrap().is_none());

    // The race: the port is taken but its owner does not answer the first probe (it is still
    // starting); the bind fails and the owner, answering the next probe, is used.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let owner = tokio::spawn(async move {
        let (first, _) = listener.accept().await.unwrap();
        drop(first);
        let (mut s, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 3];
        s.read_exact(&mut b).await.unwrap();
        let mut reply = Vec::new();
        proto::NamesResp { epmd_port: u32::from(port), names: vec![] }.encode(&mut reply);
        s.write_all(&reply).await.unwrap();
    });
    assert!(epmd::ensure_epmd(port).await.unwrap().is_none());
    owner.await.unwrap();
}

#[tokio::test]
async fn embedded_server_connection_limit() {
    // Idle connections hold their slots for the (default, 10 s) idle timeout.
    let (_handle, port) = spawn_server(epmd::ServerConfig { max_connections: 2, ..Default::default() }).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(local(port)).await.unwrap());
    }
    // A third connection is closed at once, well before any idle timeout could explain it.
    let mut third = tokio::net::TcpStream::connect(local(port)).await.unwrap();
    let mut b = [0u8; 8];
    let r = tokio::time::timeout(Duration::from_secs(3), third.read(&mut b)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    // Freeing a slot lets requests through again.
    held.clear();
    poll("slot freed", 5, || async { epmd::names(local(port)).await.ok() }).await;
}

// ---- embedded server against real erl nodes -------------------------------------------------

/// Runs `cmd` to completion (stdout piped) within `secs`; kills it on timeout.
async fn run_output(cmd: &mut Command, secs: u64) -> String {
    let mut p = Proc::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()));
    let mut stdout = p.0.stdout.take().unwrap();
    let read = tokio::task::spawn_blocking(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).map(|_| s)
    });
    match tokio::time::timeout(Duration::from_secs(secs), read).await {
        Ok(out) => out.unwrap().unwrap(),
        Err(_) => {
            p.kill();
            panic!("{cmd:?} did not finish in {secs} s");
        }
    }
}

/// Two long-lived nodes A and B register with our embedded EPMD; a third, C, lists the names,
/// pings A and B, and asks A to ping B (A looks B up through our EPMD: `connect_all` is off, so
/// A and B are not yet connected). Then A is killed and its name must disappear.
async fn erl_scenario(bin: &str) {
    let (handle, port) = {
        let server = epmd::EmbeddedEpmd::bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
        let handle = server.spawn().unwrap();
        let port = handle.local_addr().port();
        (handle, port)
    };
    let (a, b, c) = (unique("ea"), unique("eb"), unique("ec"));
    let mut node_a = Proc::spawn(&mut erl(bin, port, &a, &[]));
    let _node_b = Proc::spawn(&mut erl(bin, port, &b, &[]));

    let names = poll("A and B registered", 60, || async {
        let n = epmd::names(local(port)).await.ok()?;
        let has = |x: &str| n.iter().any(|(name, _)| name == x);
        (has(&a) && has(&b)).then_some(n)
    })
    .await;
    let a_port = names.iter().find(|(n, _)| *n == a).map(|(_, p)| *p).unwrap();
    assert_ne!(a_port, 0);
    let entry = epmd::port_please(local(port), &a).await.unwrap().expect("A registered");
    assert_eq!(entry.port, a_port);
    assert_eq!(entry.node_type, proto::NODE_TYPE_NORMAL);
    assert_eq!(entry.highest_version, 6);

    // The C epmd client parses our NAMES reply.
    let out =
        run_output(Command::new(Path::new(bin).join("epmd")).args(["-port", &port.to_string(), "-names"]), 20).await;
    assert!(out.contains(&format!("up and running on port {port}")), "{out}");
    assert!(out.contains(&format!("name {a} at port {a_port}\n")), "{out}");

    let script = format!(
        "[_, H] = string:split(atom_to_list(node()), \"@\"), \
         A = list_to_atom(\"{a}@\" ++ H), B = list_to_atom(\"{b}@\" ++ H), \
         {{ok, Names}} = net_adm:names(), \
         PA = net_adm:ping(A), PB = net_adm:ping(B), \
         AB = rpc:call(A, net_adm, ping, [B]), \
         io:format(\"RESULT ~p ~p ~p ~p~n\", [lists:sort(Names), PA, PB, AB]), \
         halt()."
    );
    let out = run_output(&mut erl(bin, port, &c, &["-eval", &script]), 60).await;
    eprintln!("{bin}: {out}");
    let line = out.lines().find(|l| l.starts_with("RESULT ")).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&format!("{{\"{a}\",{a_port}}}")), "net_adm:names() misses A: {line}");
    assert!(line.contains(&format!("{{\"{b}\",")), "net_adm:names() misses B: {line}");
    assert!(line.ends_with(" pong pong pong"), "pings failed: {line}");

    // C halted: its name goes. Killing A removes A.
    node_a.kill();
    poll("A and C unregistered", 30, || async {
        let n = epmd::names(local(port)).await.ok()?;
        (!n.iter().any(|(name, _)| *name == a || *name == c)).then_some(())
    })
    .await;
    assert!(handle.names().iter().any(|(n, _)| *n == b));
    assert_eq!(epmd::port_please(local(port), &a).await.unwrap(), None);
    handle.shutdown().await;
}

#[tokio::test]
async fn embedded_server_with_erl_otp25() {
    erl_scenario(&common::Otp::get(25).bin_dir().to_string_lossy()).await;
}

#[tokio::test]
async fn embedded_server_with_erl_otp27() {
    erl_scenario(&common::Otp::get(27).bin_dir().to_string_lossy()).await;
}

#[tokio::test]
async fn embedded_server_with_erl_otp29() {
    erl_scenario(&common::Otp::get(29).bin_dir().to_string_lossy()).await;
}
