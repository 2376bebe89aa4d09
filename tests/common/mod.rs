//! The shared interop test harness: real Erlang/OTP and Elixir nodes for integration tests.
//!
//! Use it from a test file with `mod common;`. What it gives:
//!
//! - [`otp_versions`] / [`Otp::get`]: the OTP installs to test against (`ERLNODE_OTP_VERSIONS`,
//!   default `25,27,29`), provisioned by `scripts/provision-otp` on first use (once per process,
//!   file-locked across processes by the script) into `ERLNODE_OTP_DIR` (default `target/otp`).
//! - [`for_each_otp`] / [`for_each_otp_async`]: run one test body against every version; a
//!   failure names the version(s) it failed on.
//! - [`Epmd`]: a private `epmd` on a free loopback port, killed on drop.
//! - [`BeamNode`]: an `erl` or `elixir` node with a unique `-sname`, registered in that EPMD,
//!   with a control channel that evaluates expressions like a person typing into its shell
//!   ([`BeamNode::eval`]: Erlang syntax on `erl` nodes, Elixir syntax on `elixir` nodes, the
//!   printed result back as a `String`), its stdout/stderr captured as log lines, and every OS
//!   process it started killed on drop (also when the test panics).
//! - [`wait_until`] / [`wait_until_async`] / [`wait_for`]: poll a condition against a
//!   deadline; tests never sleep a fixed time.
//! - [`hostname_short`]: the host part `erl -sname` uses on this machine.
//!
//! Isolation: every node name and EPMD port is unique per process, thread and run, so tests
//! may run in parallel threads and parallel test binaries. Child processes get their own
//! process group (a kill reaches the whole tree) and `PR_SET_PDEATHSIG`, and a node halts when
//! its stdin closes, so nothing outlives the test process even if it is SIGKILLed. BEAM nodes
//! resolve this host's short name to 127.0.0.1 (an `ERL_INETRC` file), so all of their
//! distribution traffic stays on loopback.
//!
//! The Erlang side of the control channel is `erlang_interop/erlnode_ctl.erl` (protocol
//! described there); each node compiles it in memory at start.
// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

/// The ecosystem libraries (Phoenix.PubSub, libcluster, syn, ...) compiled for each OTP.
pub mod peers;
/// The canonical rendering the BEAM vectors are compared with (`tests/vectors.rs`).
pub mod render;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// OTP major versions tested when `ERLNODE_OTP_VERSIONS` is not set.
pub const DEFAULT_OTP_VERSIONS: &str = "25,27,29";
/// How long [`BeamNode::eval`] waits for a reply.
pub const DEFAULT_EVAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take from spawn to a ready control channel (2 shared cores, many
/// nodes booting in parallel: generous on purpose).
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a fresh EPMD may take to answer.
pub const EPMD_START_TIMEOUT: Duration = Duration::from_secs(20);
/// The cookie nodes get unless [`NodeOpts::cookie`] says otherwise.
pub const DEFAULT_COOKIE: &str = "erlnode_test_cookie";

/// Marks a control-channel reply line (see `erlang_interop/erlnode_ctl.erl`).
const CTL_MARK: &str = "\u{1e}ERLNODE_CTL ";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make the harness unusable for Drop.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------
// Paths and OTP installs
// ---------------------------------------------------------------------------------------

/// The repository root (where `scripts/` and `erlang_interop/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parent directory of the OTP installs: `ERLNODE_OTP_DIR`, else `$CARGO_TARGET_DIR/otp`,
/// else `target/otp` (the same rule as `scripts/provision-otp`).
pub fn otp_dir() -> PathBuf {
    let abs = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { std::env::current_dir().expect("cwd").join(p) }
    };
    match std::env::var("ERLNODE_OTP_DIR") {
        Ok(d) if !d.is_empty() => abs(d),
        _ => match std::env::var("CARGO_TARGET_DIR") {
            Ok(d) if !d.is_empty() => abs(d).join("otp"),
            _ => repo_root().join("target").join("otp"),
        },
    }
}

/// One provisioned Erlang/OTP (+ Elixir) install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Otp {
    version: u32,
    bin: PathBuf,
}

impl fmt::Display for Otp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OTP {}", self.version)
    }
}

static PROVISIONED: OnceLock<Mutex<HashMap<u32, Result<PathBuf, String>>>> = OnceLock::new();

impl Otp {
    /// The install of OTP `version`, provisioned with `scripts/provision-otp` if missing
    /// (at most once per process). Panics if that fails.
    pub fn get(version: u32) -> Otp {
        match Self::try_get(version) {
            Ok(otp) => otp,
            Err(e) => panic!("OTP {version} is not available: {e}"),
        }
    }

    /// Like [`Otp::get`], returning the provisioning error.
    pub fn try_get(version: u32) -> Result<Otp, String> {
        let map = PROVISIONED.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = lock(map);
        let entry = map.entry(version).or_insert_with(|| find_or_provision(version));
        entry.clone().map(|bin| Otp { version, bin })
    }

    /// The OTP major version (25, 27, 29, ...).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The directory holding `erl`, `elixir`, `epmd`, ...
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// Path of one of the install's programs (`erl`, `erlc`, `escript`, `epmd`, `erl_call`,
    /// `elixir`, `iex`, `mix`).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

fn find_or_provision(version: u32) -> Result<PathBuf, String> {
    let prefix = otp_dir().join(version.to_string());
    let script = repo_root().join("scripts/provision-otp");
    // The script writes its manifest only after the install passed its self-test; a tree made
    // by an older version of the script (which may lack packages tests need) is redone.
    let manifest = std::fs::read_to_string(prefix.join(".erlnode-otp")).unwrap_or_default();
    let current = std::fs::read_to_string(&script)
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("SCRIPT_VERSION=").map(|v| format!("script={v} "))));
    let up_to_date = current.is_some_and(|c| manifest.starts_with(&c));
    if up_to_date && prefix.join("bin/erl").is_file() {
        return Ok(prefix.join("bin"));
    }
    eprintln!("[harness] provisioning OTP {version} with {}", script.display());
    let out = Command::new("bash")
        .arg(&script)
        .arg(version.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!("{} {version} failed ({})", script.display(), out.status));
    }
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if bin.join("erl").is_file() {
        Ok(bin)
    } else {
        Err(format!("{} {version} printed {:?}, which holds no erl", script.display(), bin))
    }
}

/// The OTP versions to test against: `ERLNODE_OTP_VERSIONS` (comma separated), default
/// [`DEFAULT_OTP_VERSIONS`]. Each is provisioned if needed; panics if one cannot be.
pub fn otp_versions() -> Vec<Otp> {
    let spec = std::env::var("ERLNODE_OTP_VERSIONS").unwrap_or_default();
    let spec = if spec.trim().is_empty() { DEFAULT_OTP_VERSIONS.to_string() } else { spec };
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let v = s.parse().unwrap_or_else(|_| panic!("ERLNODE_OTP_VERSIONS: bad version {s:?}"));
            Otp::get(v)
        })
        .collect()
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

fn report_failures(failures: Vec<(u32, String)>) {
    if failures.is_empty() {
        return;
    }
    let versions: Vec<String> = failures.iter().map(|(v, _)| v.to_string()).collect();
    let details: Vec<String> = failures.iter().map(|(v, m)| format!("  OTP {v}: {m}")).collect();
    panic!("failed on OTP {}:\n{}", versions.join(", "), details.join("\n"));
}

/// Runs `body` once per OTP version of [`otp_versions`], each to completion even if an
/// earlier one failed; then panics naming every version that failed.
pub fn for_each_otp(body: impl Fn(&Otp)) {
    let mut failures = Vec::new();
    for otp in otp_versions() {
        eprintln!("[harness] ---- {otp} ----");
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| body(&otp))) {
            failures.push((otp.version(), panic_message(&*p)));
        }
    }
    report_failures(failures);
}

/// [`for_each_otp`] for async bodies: each version runs on a fresh multi-threaded tokio
/// runtime (dropped afterwards, which cancels the body's leftover tasks).
pub fn for_each_otp_async<F, Fut>(body: F)
where
    F: Fn(Otp) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut failures = Vec::new();
    for otp in otp_versions() {
        eprintln!("[harness] ---- {otp} ----");
        let version = otp.version();
        let run = panic::catch_unwind(AssertUnwindSafe(|| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(body(otp));
            // Do not wait for a blocking eval a panicking body left behind.
            rt.shutdown_timeout(Duration::from_secs(1));
        }));
        if let Err(p) = run {
            failures.push((version, panic_message(&*p)));
        }
    }
    report_failures(failures);
}

// ---------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------

fn poll_interval(attempt: u32) -> Duration {
    // 5, 10, 20, 40, 80, 100, 100, ... ms
    Duration::from_millis((5u64 << attempt.min(5)).min(100))
}

/// Polls `cond` until it returns true (-> true) or `timeout` passes (-> false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for(timeout, || cond().then_some(())).is_some()
}

/// Polls `f` until it returns `Some` (-> that value) or `timeout` passes (-> `None`).
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(poll_interval(attempt).min(deadline - now));
        attempt += 1;
    }
}

/// [`wait_until`] for async tests: `cond` is an async closure, so it can await, e.g.
/// `wait_until_async(T, async || node.eval_async("nodes()").await.as_deref() == Ok("[]"))`;
/// tokio sleeps between polls.
pub async fn wait_until_async(timeout: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        if cond().await {
            return true;
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(poll_interval(attempt).min(deadline - now)).await;
        attempt += 1;
    }
}

// ---------------------------------------------------------------------------------------
// Host name, unique names, inetrc
// ---------------------------------------------------------------------------------------

/// The host part of `erl -sname foo` on this machine: gethostname(2) up to the first dot.
pub fn hostname_short() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for buf.len() bytes; gethostname NUL-terminates on success
    // when the name fits, and we also stop at the buffer end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(rc, 0, "gethostname: {}", io::Error::last_os_error());
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let full = String::from_utf8_lossy(&buf[..end]).into_owned();
    full.split('.').next().unwrap_or_default().to_string()
}

static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A node name (the part before `@`) unique across threads, processes and runs:
/// `prefix_pid_counter_random`.
pub fn unique_name(prefix: &str) -> String {
    let prefix: String = prefix.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_{n}_{:06x}", std::process::id(), rand::random::<u32>() & 0xff_ffff)
}

/// An `ERL_INETRC` file making BEAM nodes resolve this host's short name to 127.0.0.1.
fn inetrc_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("erlnode-harness-{}", unsafe { libc::getuid() }));
        std::fs::create_dir_all(&dir).expect("create harness temp dir");
        let host = hostname_short();
        let path = dir.join(format!("inetrc-{host}"));
        let tmp = dir.join(format!("inetrc-{host}.{}", std::process::id()));
        let text = format!(
            "%% written by erlnode's test harness\n{{host, {{127,0,0,1}}, [\"{host}\"]}}.\n{{lookup, [file, native]}}.\n"
        );
        std::fs::write(&tmp, text).expect("write inetrc");
        std::fs::rename(&tmp, &path).expect("install inetrc");
        path
    })
}

// ---------------------------------------------------------------------------------------
// Spawning children that cannot outlive us
// ---------------------------------------------------------------------------------------

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` in its own process group with `PR_SET_PDEATHSIG = SIGKILL`. The death
/// signal fires when the *thread* that forked exits, so all children are forked by one
/// spawner thread that lives as long as the process.
pub fn spawn_guarded(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn harness-spawner thread");
        Mutex::new(tx)
    });
    let parent = std::process::id() as libc::pid_t;
    cmd.process_group(0);
    // SAFETY: the closure only makes async-signal-safe calls (prctl, getppid) and does not
    // allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                // We already died between fork and prctl.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    lock(tx).send((cmd, reply_tx)).map_err(|_| io::Error::other("spawner thread gone"))?;
    reply_rx.recv().map_err(|_| io::Error::other("spawner thread gone"))?
}

/// SIGKILLs the process group led by `child` and reaps the leader. Safe to repeat.
fn kill_group(child: &mut Child, reaped: &mut bool) {
    if *reaped {
        return;
    }
    // The unreaped leader keeps its pid (= the group id) reserved, so this cannot hit a
    // stranger.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.wait();
    *reaped = true;
}

/// Error starting a harness process.
#[derive(Debug)]
pub struct HarnessError(pub String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

// ---------------------------------------------------------------------------------------
// EPMD
// ---------------------------------------------------------------------------------------

/// A private `epmd` listening on a free port of 127.0.0.1; killed on drop.
pub struct Epmd {
    /// `None` for an EPMD this harness did not start ([`Epmd::at_port`]).
    child: Option<Child>,
    reaped: bool,
    port: u16,
    otp: Otp,
}

impl Epmd {
    /// Starts an EPMD of `otp`; panics on failure.
    pub fn start(otp: &Otp) -> Epmd {
        Self::try_start(otp).unwrap_or_else(|e| panic!("{otp}: {e}"))
    }

    /// Starts an EPMD of `otp` on a free port (retrying if another process takes the port
    /// first) and waits until it answers a NAMES_REQ.
    pub fn try_start(otp: &Otp) -> Result<Epmd, HarnessError> {
        let mut last_err = String::new();
        for _ in 0..10 {
            let port = free_port().map_err(|e| HarnessError(format!("no free port: {e}")))?;
            let mut cmd = Command::new(otp.tool("epmd"));
            cmd.args(["-port", &port.to_string(), "-address", "127.0.0.1", "-relaxed_command_check"])
                .current_dir(std::env::temp_dir())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let child = spawn_guarded(cmd)
                .map_err(|e| HarnessError(format!("cannot start {}: {e}", otp.tool("epmd").display())))?;
            let mut epmd = Epmd { child: Some(child), reaped: false, port, otp: otp.clone() };
            let deadline = Instant::now() + EPMD_START_TIMEOUT;
            loop {
                let Some(child) = epmd.child.as_mut() else { unreachable!("just started") };
                if let Ok(Some(status)) = child.try_wait() {
                    epmd.reaped = true;
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    last_err = format!("epmd on port {port} exited ({status}): {}", err.trim());
                    break; // port taken meanwhile? try another
                }
                if epmd.answers() {
                    return Ok(epmd);
                }
                if Instant::now() >= deadline {
                    return Err(HarnessError(format!("epmd on port {port} did not answer in time")));
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        Err(HarnessError(format!("could not start epmd: {last_err}")))
    }

    /// An EPMD someone else runs on `port` (for example one embedded in an erlnode process),
    /// for starting nodes that register with it. Nothing is killed on drop.
    pub fn at_port(otp: &Otp, port: u16) -> Epmd {
        Epmd { child: None, reaped: true, port, otp: otp.clone() }
    }

    /// The port this EPMD listens on (what nodes get as `ERL_EPMD_PORT`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The OTP install this EPMD is from.
    pub fn otp(&self) -> &Otp {
        &self.otp
    }

    /// The NAMES_REQ answer: one `name <name> at port <port>` line per registered node.
    pub fn names(&self) -> io::Result<String> {
        let (epmd_port, text) = names_req(self.port)?;
        if epmd_port != u32::from(self.port) {
            return Err(io::Error::other(format!("port {} answered as epmd on {epmd_port}", self.port)));
        }
        Ok(text)
    }

    fn answers(&self) -> bool {
        matches!(names_req(self.port), Ok((p, _)) if p == u32::from(self.port))
    }

    /// SIGKILLs the EPMD now.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            kill_group(child, &mut self.reaped);
        }
    }
}

impl Drop for Epmd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// NAMES_REQ (`110`) to the EPMD on `port`: its own port number and the names text.
fn names_req(port: u16) -> io::Result<(u32, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(&[0, 1, 110])?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    let head: [u8; 4] =
        reply.get(..4).and_then(|h| h.try_into().ok()).ok_or_else(|| io::Error::other("short NAMES_RESP"))?;
    Ok((u32::from_be_bytes(head), String::from_utf8_lossy(&reply[4..]).into_owned()))
}

// ---------------------------------------------------------------------------------------
// BEAM nodes
// ---------------------------------------------------------------------------------------

/// Which launcher a [`BeamNode`] runs, and so which language [`BeamNode::eval`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// `erl`; expressions in Erlang syntax, results printed with `~0tp`.
    Erlang,
    /// `elixir`; expressions in Elixir syntax, results printed with `inspect/2`.
    Elixir,
}

/// How to start a [`BeamNode`].
#[derive(Clone, Debug)]
pub struct NodeOpts {
    lang: Lang,
    /// `-name NAME@127.0.0.1` instead of `-sname NAME`.
    long_names: bool,
    prefix: String,
    exact_name: Option<String>,
    cookie: String,
    erl_args: Vec<String>,
    env: Vec<(String, String)>,
}

impl NodeOpts {
    /// An `erl` node.
    pub fn erlang() -> Self {
        Self::new(Lang::Erlang, "erl")
    }

    /// An `elixir` node.
    pub fn elixir() -> Self {
        Self::new(Lang::Elixir, "ex")
    }

    fn new(lang: Lang, prefix: &str) -> Self {
        NodeOpts {
            lang,
            long_names: false,
            prefix: prefix.to_string(),
            exact_name: None,
            cookie: DEFAULT_COOKIE.to_string(),
            erl_args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Prefix of the node's unique short name (default `erl` / `ex`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        self
    }

    /// Start under exactly this short name (the part before `@`) instead of a unique one:
    /// with the [`BeamNode::alive_name`] of a node that is gone, this restarts "the same
    /// node" as a new incarnation (a new creation from EPMD). The caller keeps it unique.
    pub fn exact_name(mut self, alive_name: &str) -> Self {
        self.exact_name = Some(alive_name.to_string());
        self
    }

    /// The node's cookie (default [`DEFAULT_COOKIE`]).
    pub fn cookie(mut self, cookie: &str) -> Self {
        self.cookie = cookie.to_string();
        self
    }

    /// Extra `erl` arguments, e.g. `["-kernel", "net_ticktime", "4"]` (passed with `--erl`
    /// to `elixir`, so no argument may contain whitespace).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.erl_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Long names: `-name NAME@127.0.0.1` (the node's name is then `NAME@127.0.0.1`).
    pub fn long_names(mut self) -> Self {
        self.long_names = true;
        self
    }

    /// Start as a hidden node (`-hidden`).
    pub fn hidden(self) -> Self {
        self.args(["-hidden"])
    }

    /// An extra environment variable for the node's OS process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// Why [`BeamNode::eval`] did not return a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalError {
    /// The expression raised, threw or exited; the node's rendering (Erlang:
    /// `Class:Reason` with `~0tp`; Elixir: `Exception.format_banner/3`).
    Exception(String),
    /// The expression did not scan or parse (Erlang nodes; Elixir reports these as
    /// exceptions).
    Syntax(String),
    /// No result within the timeout; the node's evaluator was killed and replaced
    /// (bindings kept).
    Timeout(Duration),
    /// The node's OS process is gone.
    NodeDown,
    /// The control channel misbehaved (a bug in the harness).
    Protocol(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Exception(e) => write!(f, "exception: {e}"),
            EvalError::Syntax(e) => write!(f, "syntax error: {e}"),
            EvalError::Timeout(d) => write!(f, "no result within {d:?}"),
            EvalError::NodeDown => f.write_str("node is down"),
            EvalError::Protocol(e) => write!(f, "control channel: {e}"),
        }
    }
}

impl std::error::Error for EvalError {}

#[derive(Default)]
struct State {
    logs: Vec<String>,
    replies: HashMap<u64, Result<String, EvalError>>,
    ready: Option<String>,
    stdout_closed: bool,
    stderr_closed: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut lock(&self.state));
        self.changed.notify_all();
    }

    /// Waits until `f` gives a value or `deadline` passes.
    fn wait<T>(&self, deadline: Instant, mut f: impl FnMut(&mut State) -> Option<T>) -> Option<T> {
        let mut st = lock(&self.state);
        loop {
            if let Some(v) = f(&mut st) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            st = self.changed.wait_timeout(st, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

struct Inner {
    shared: Arc<Shared>,
    stdin: Mutex<Option<ChildStdin>>,
    next_id: AtomicU64,
}

impl Inner {
    fn eval(&self, expr: &str, timeout: Duration) -> Result<String, EvalError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let millis = timeout.as_millis().max(1);
        let line = format!("{id} {millis} {}\n", hex_encode(expr.as_bytes()));
        {
            let mut stdin = lock(&self.stdin);
            let Some(w) = stdin.as_mut() else {
                return Err(EvalError::NodeDown);
            };
            if w.write_all(line.as_bytes()).and_then(|()| w.flush()).is_err() {
                return Err(EvalError::NodeDown);
            }
        }
        // The node enforces `timeout` itself; the margin covers a node too busy to answer.
        let deadline = Instant::now() + timeout + Duration::from_secs(10);
        let got = self.shared.wait(deadline, |st| {
            if let Some(r) = st.replies.remove(&id) {
                Some(r)
            } else if st.stdout_closed {
                Some(Err(EvalError::NodeDown))
            } else {
                None
            }
        });
        got.unwrap_or(Err(EvalError::Timeout(timeout)))
    }
}

/// A real `erl` or `elixir` node, registered as `<unique>@<hostname_short()>` in an
/// [`Epmd`], driven through its control channel. Dropping it SIGKILLs its process group.
pub struct BeamNode {
    inner: Arc<Inner>,
    child: Mutex<(Child, bool)>,
    name: String,
    otp: Otp,
    lang: Lang,
    cookie: String,
    epmd_port: u16,
}

impl BeamNode {
    /// Starts a node; panics (with the node's output) if it does not come up.
    pub fn start(otp: &Otp, epmd: &Epmd, opts: NodeOpts) -> BeamNode {
        Self::try_start(otp, epmd, opts).unwrap_or_else(|e| panic!("{otp}: {e}"))
    }

    /// Starts a node and waits for its control channel.
    pub fn try_start(otp: &Otp, epmd: &Epmd, opts: NodeOpts) -> Result<BeamNode, HarnessError> {
        let sname = match &opts.exact_name {
            Some(name) => name.clone(),
            None => unique_name(&opts.prefix),
        };
        let (name_flag, name_arg, expected) = if opts.long_names {
            let full = format!("{sname}@127.0.0.1");
            ("name", full.clone(), full)
        } else {
            ("sname", sname.clone(), format!("{sname}@{}", hostname_short()))
        };
        let ctl = repo_root().join("erlang_interop/erlnode_ctl.erl");
        let ctl = ctl.to_str().ok_or_else(|| HarnessError("non-UTF-8 repository path".into()))?;
        let mut cmd;
        match opts.lang {
            Lang::Erlang => {
                let ctl = erlang_string(ctl);
                cmd = Command::new(otp.tool("erl"));
                cmd.args([
                    "-noshell",
                    &format!("-{name_flag}"),
                    &name_arg,
                    "-setcookie",
                    &opts.cookie,
                    "-start_epmd",
                    "false",
                ]);
                cmd.args(&opts.erl_args);
                cmd.arg("-eval").arg(format!(
                    "{{ok, M, B}} = compile:file({ctl}, [binary, report]), \
                     {{module, M}} = code:load_binary(M, {ctl}, B), erlnode_ctl:start(erlang)."
                ));
            }
            Lang::Elixir => {
                if let Some(a) = opts.erl_args.iter().find(|a| a.chars().any(char::is_whitespace)) {
                    return Err(HarnessError(format!("erl argument {a:?} has whitespace")));
                }
                let ctl = elixir_string(ctl);
                let mut erl = vec!["-start_epmd".to_string(), "false".to_string()];
                erl.extend(opts.erl_args.iter().cloned());
                cmd = Command::new(otp.tool("elixir"));
                cmd.args([&format!("--{name_flag}"), &name_arg, "--cookie", &opts.cookie, "--erl", &erl.join(" ")]);
                cmd.arg("-e").arg(format!(
                    "ctl = String.to_charlist({ctl}); {{:ok, m, b}} = :compile.file(ctl, [:binary, :report]); \
                     {{:module, m}} = :code.load_binary(m, ctl, b); :erlnode_ctl.start(:elixir)"
                ));
            }
        }
        for var in ["ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS", "ELIXIR_ERL_OPTIONS", "ERL_LIBS"] {
            cmd.env_remove(var);
        }
        cmd.env("ERL_EPMD_PORT", epmd.port().to_string())
            .env("ERL_INETRC", inetrc_path())
            .env("ERL_CRASH_DUMP_SECONDS", "0")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_guarded(cmd).map_err(|e| HarnessError(format!("cannot start {sname}: {e}")))?;

        let shared = Arc::new(Shared { state: Mutex::new(State::default()), changed: Condvar::new() });
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        spawn_reader(&sname, "stdout", stdout, shared.clone(), true);
        spawn_reader(&sname, "stderr", stderr, shared.clone(), false);
        let inner = Arc::new(Inner {
            shared: shared.clone(),
            stdin: Mutex::new(child.stdin.take()),
            next_id: AtomicU64::new(1),
        });
        let mut node = BeamNode {
            inner,
            child: Mutex::new((child, false)),
            name: String::new(),
            otp: otp.clone(),
            lang: opts.lang,
            cookie: opts.cookie,
            epmd_port: epmd.port(),
        };
        let ready = shared.wait(Instant::now() + NODE_START_TIMEOUT, |st| {
            if let Some(name) = &st.ready {
                Some(Ok(name.clone()))
            } else if st.stdout_closed {
                Some(Err("exited"))
            } else {
                None
            }
        });
        match ready {
            Some(Ok(name)) if name == expected => {
                node.name = name;
                Ok(node)
            }
            other => {
                let why = match other {
                    Some(Ok(name)) => format!("came up as {name}, expected {expected}"),
                    Some(Err(e)) => e.to_string(),
                    None => format!("no control channel within {NODE_START_TIMEOUT:?}"),
                };
                node.kill();
                node.wait_output_closed();
                Err(HarnessError(format!(
                    "{:?} node {expected} did not start ({why}); its output:\n{}",
                    opts.lang,
                    node.logs().join("\n")
                )))
            }
        }
    }

    /// The full node name, `name@host`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The part of the name before `@`.
    pub fn alive_name(&self) -> &str {
        self.name.split('@').next().unwrap_or_default()
    }

    /// The OTP install the node runs.
    pub fn otp(&self) -> &Otp {
        &self.otp
    }

    /// `erl` or `elixir`.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The node's cookie.
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The port of the EPMD the node registered with.
    pub fn epmd_port(&self) -> u16 {
        self.epmd_port
    }

    /// The OS pid of the node (the BEAM emulator; the launchers `exec` it).
    pub fn os_pid(&self) -> u32 {
        lock(&self.child).0.id()
    }

    /// Stops the node's OS process (`SIGSTOP`): its sockets stay open, but it reads and says
    /// nothing until [`BeamNode::resume`].
    pub fn suspend(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a [`BeamNode::suspend`]ed node run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let r = unsafe { libc::kill(self.os_pid() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill({}, {sig}): {}", self.os_pid(), io::Error::last_os_error());
    }

    /// Evaluates `expr` on the node (Erlang syntax on `erl` nodes, the final `.` optional;
    /// Elixir syntax on `elixir` nodes) and returns the printed value. Bindings persist
    /// between calls. Blocks up to [`DEFAULT_EVAL_TIMEOUT`]; in async tests use
    /// [`BeamNode::eval_async`].
    pub fn eval(&self, expr: &str) -> Result<String, EvalError> {
        self.eval_timeout(expr, DEFAULT_EVAL_TIMEOUT)
    }

    /// [`BeamNode::eval`] with an explicit timeout.
    pub fn eval_timeout(&self, expr: &str, timeout: Duration) -> Result<String, EvalError> {
        self.inner.eval(expr, timeout)
    }

    /// [`BeamNode::eval`] without blocking the async runtime (runs on tokio's blocking pool).
    pub async fn eval_async(&self, expr: &str) -> Result<String, EvalError> {
        self.eval_timeout_async(expr, DEFAULT_EVAL_TIMEOUT).await
    }

    /// [`BeamNode::eval_timeout`] without blocking the async runtime.
    pub async fn eval_timeout_async(&self, expr: &str, timeout: Duration) -> Result<String, EvalError> {
        let inner = self.inner.clone();
        let expr = expr.to_string();
        match tokio::task::spawn_blocking(move || inner.eval(&expr, timeout)).await {
            Ok(r) => r,
            Err(e) => Err(EvalError::Protocol(format!("eval task failed: {e}"))),
        }
    }

    /// Every line the node wrote to stdout or stderr so far (stderr lines start with
    /// `[stderr] `; control-channel replies are not included).
    pub fn logs(&self) -> Vec<String> {
        lock(&self.inner.shared.state).logs.clone()
    }

    /// Whether some log line contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        lock(&self.inner.shared.state).logs.iter().any(|l| l.contains(needle))
    }

    /// Waits up to `timeout` for a log line containing `needle` and returns it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.inner.shared.wait(Instant::now() + timeout, |st| st.logs.iter().find(|l| l.contains(needle)).cloned())
    }

    /// SIGKILLs the node (and everything it started) now, as if its host died.
    pub fn kill(&self) {
        let mut guard = lock(&self.child);
        let (child, reaped) = &mut *guard;
        kill_group(child, reaped);
        *lock(&self.inner.stdin) = None;
    }

    /// After a kill: waits (briefly) until the node's last output has been read.
    fn wait_output_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        self.inner.shared.wait(deadline, |st| (st.stdout_closed && st.stderr_closed).then_some(()));
    }

    /// Whether the node's OS process is still running.
    pub fn is_alive(&self) -> bool {
        let mut guard = lock(&self.child);
        let (child, reaped) = &mut *guard;
        !*reaped && matches!(child.try_wait(), Ok(None))
    }
}

impl fmt::Debug for BeamNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BeamNode({}, {:?}, {})", self.name, self.lang, self.otp)
    }
}

impl Drop for BeamNode {
    fn drop(&mut self) {
        self.kill();
        // The readers end at EOF, which the kill brings; they are not joined, so that a
        // stray process holding a pipe cannot hang the test.
        if thread::panicking() {
            self.wait_output_closed();
            eprintln!("[harness] output of {} ({}):", self.name, self.otp);
            for line in self.logs() {
                eprintln!("[{}] {line}", self.alive_name());
            }
        }
    }
}

fn spawn_reader(
    sname: &str,
    stream: &'static str,
    pipe: impl Read + Send + 'static,
    shared: Arc<Shared>,
    is_stdout: bool,
) {
    let verbose = std::env::var_os("ERLNODE_TEST_VERBOSE").is_some_and(|v| !v.is_empty());
    let tag = sname.to_string();
    thread::Builder::new()
        .name(format!("{sname}-{stream}"))
        .spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if verbose {
                    eprintln!("[{tag} {stream}] {line}");
                }
                if !is_stdout {
                    shared.update(|st| st.logs.push(format!("[stderr] {line}")));
                    continue;
                }
                match line.find(CTL_MARK) {
                    Some(at) => {
                        let before = &line[..at];
                        let reply = parse_reply(&line[at + CTL_MARK.len()..]);
                        shared.update(|st| {
                            if !before.is_empty() {
                                st.logs.push(before.to_string());
                            }
                            match reply {
                                Ok((0, Ok(name))) => st.ready = Some(name),
                                Ok((id, r)) => {
                                    st.replies.insert(id, r);
                                }
                                Err(e) => st.logs.push(format!("[harness] bad control reply: {e}")),
                            }
                        });
                    }
                    None => shared.update(|st| st.logs.push(line.to_string())),
                }
            }
            shared.update(|st| if is_stdout { st.stdout_closed = true } else { st.stderr_closed = true });
        })
        .expect("spawn reader thread");
}

/// Parses `<Id> <Status> <Hex>` (the part after the marker).
fn parse_reply(s: &str) -> Result<(u64, Result<String, EvalError>), String> {
    let mut parts = s.split(' ');
    let (Some(id), Some(status), Some(hex), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(format!("malformed {s:?}"));
    };
    let text = hex_decode(hex).ok_or_else(|| format!("bad hex in {s:?}"))?;
    let text = String::from_utf8_lossy(&text).into_owned();
    if id == "-1" {
        return Err(format!("node rejected a request: {text}"));
    }
    let id: u64 = id.parse().map_err(|_| format!("bad id in {s:?}"))?;
    let r = match status {
        "ok" | "ready" => Ok(text),
        "exception" => Err(EvalError::Exception(text)),
        "syntax" => Err(EvalError::Syntax(text)),
        "timeout" => Err(EvalError::Timeout(Duration::from_millis(text.parse().unwrap_or_default()))),
        other => Err(EvalError::Protocol(format!("unknown status {other:?}: {text}"))),
    };
    Ok((id, r))
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// `s` as an Erlang string literal.
pub fn erlang_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` as an Elixir string literal.
pub fn elixir_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `name` (e.g. a node name) as an Erlang atom literal, written the way `~p` prints it:
/// bare when it may be (`a@b`), else quoted (`'A-b'`). Usable both to build expressions and
/// to compare with printed results.
pub fn erlang_atom(name: &str) -> String {
    const RESERVED: &[&str] = &[
        "after", "and", "andalso", "band", "begin", "bnot", "bor", "bsl", "bsr", "bxor", "case", "catch", "cond",
        "div", "else", "end", "fun", "if", "let", "maybe", "not", "of", "or", "orelse", "receive", "rem", "try",
        "when", "xor",
    ];
    let bare = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
        && !RESERVED.contains(&name);
    if bare {
        return name.to_string();
    }
    let mut out = String::from("'");
    for c in name.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// `name` as an Elixir atom literal, written the way `inspect/1` prints it: bare when it may
/// be (`:a@b`), else quoted (`:"a-b"`).
pub fn elixir_atom(name: &str) -> String {
    let body = name.strip_suffix(['?', '!']).unwrap_or(name);
    let bare = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@')
        && !["true", "false", "nil"].contains(&name);
    if bare { format!(":{name}") } else { format!(":{}", elixir_string(name)) }
}
