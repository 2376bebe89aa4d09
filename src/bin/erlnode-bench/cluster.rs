//! The benchmark cluster: a private EPMD, the BEAM server node (Elixir, the article's KV and
//! PubSub in `erlang_interop/bench_servers.ex`), BEAM client nodes running the load
//! generators of `erlang_interop/erlnode_bench.erl`, and erlnode hosts (`erlnode-bench host`).
//! Everything is on loopback and killed when dropped.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use erlnode::Term;
use erlnode::term::parse_erlang;

use crate::harness::{BeamNode, DEFAULT_COOKIE, Epmd, NodeOpts, Otp, erlang_atom, unique_name};

/// How long an erlnode host may take to print `ready`.
const HOST_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server a measurement targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The erlnode host.
    Erlnode,
    /// The BEAM server node.
    Beam,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Erlnode, Side::Beam];
}

/// An `erlnode-bench host` child process; killed on drop.
pub struct Host {
    child: Child,
    name: String,
}

impl Host {
    pub fn start(epmd_port: u16, prefix: &str) -> Result<Host, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        Host::start_exe(&exe, epmd_port, prefix)
    }

    /// A host run by another `erlnode-bench` build (see [`baseline_exe`]).
    pub fn start_exe(exe: &Path, epmd_port: u16, prefix: &str) -> Result<Host, String> {
        Host::start_exe_with(exe, epmd_port, prefix, &[])
    }

    /// [`Host::start_exe`] with extra environment variables (see [`baseline_env`]).
    pub fn start_exe_with(exe: &Path, epmd_port: u16, prefix: &str, env: &[(String, String)]) -> Result<Host, String> {
        let sname = unique_name(prefix);
        // the thread count is an argument: an ERLNODE_BENCH_HOST_THREADS among `env` sets it
        let threads = env
            .iter()
            .find(|(k, _)| k == "ERLNODE_BENCH_HOST_THREADS")
            .map_or_else(|| host_threads().to_string(), |(_, v)| v.clone());
        let mut cmd = Command::new(exe);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.args(["host", "--sname", &sname, "--cookie", DEFAULT_COOKIE, "--epmd-port", &epmd_port.to_string()])
            .args(["--threads", &threads])
            .args(tls_optfile().map(|f| format!("--ssl-dist-optfile={}", f.display())))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("cannot start host: {e}"))?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(name) = line.strip_prefix("ready ") {
                    let _ = tx.send(name.to_string());
                }
            }
        });
        let mut host = Host { child, name: String::new() };
        match rx.recv_timeout(HOST_START_TIMEOUT) {
            Ok(name) => {
                host.name = name;
                Ok(host)
            }
            Err(_) => Err(format!("erlnode host {sname} did not start within {HOST_START_TIMEOUT:?}")),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn os_pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time used so far by every thread of OS process `pid`, in nanoseconds
/// (`/proc/PID/task/*/schedstat`: exact, unlike the 10 ms ticks of `/proc/PID/stat`).
pub fn cpu_ns(pid: u32) -> u64 {
    schedstat_sum(pid, 0)
}

/// How many times the threads of OS process `pid` have been put on a CPU so far (each a wake-up
/// or a preemption's return).
pub fn slices(pid: u32) -> u64 {
    schedstat_sum(pid, 2)
}

/// Field `i` of `/proc/PID/task/*/schedstat` (CPU time, run-queue wait, slices), summed over the
/// threads of `pid`.
fn schedstat_sum(pid: u32, i: usize) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(i).and_then(|n| n.parse::<u64>().ok()))
        .sum()
}

/// Children get SIGKILL when the driver thread that forked them dies.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing is allocated.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        });
    }
}

/// The running cluster.
pub struct Cluster {
    pub otp: Otp,
    pub epmd: Epmd,
    pub ebin: PathBuf,
    /// The BEAM server (Elixir).
    pub srv: BeamNode,
    /// Client nodes; `clients[0]` drives, the others carry load or subscribers.
    pub clients: Vec<BeamNode>,
    /// The erlnode server, and a second erlnode node (Rust-to-Rust sends).
    pub host: Host,
    pub host2: Host,
}

impl Cluster {
    pub fn start(otp_version: u32) -> Result<Cluster, String> {
        let otp = Otp::try_get(otp_version)?;
        let epmd = Epmd::try_start(&otp).map_err(|e| e.to_string())?;
        let ebin = compile_bench_module(&otp)?;
        let t = Instant::now();
        let host2 = match baseline_exe() {
            Some(exe) => Host::start_exe_with(&exe, epmd.port(), "ebase", &baseline_env())?,
            None => Host::start(epmd.port(), "ehost2")?,
        };
        let (srv, host) = start_servers(&otp, &epmd, &ebin, &host2)?;
        let mut cluster = Cluster { otp, epmd, ebin, srv, clients: Vec::new(), host, host2 };
        cluster.ensure_clients(2)?;
        eprintln!(
            "[bench] cluster up in {:.1} s (OTP {}, EPMD port {})",
            t.elapsed().as_secs_f64(),
            cluster.otp.version(),
            cluster.epmd.port()
        );
        Ok(cluster)
    }

    /// Replaces both servers with fresh ones (for memory figures not skewed by what earlier
    /// scenarios allocated) and connects every client to them.
    pub fn restart_servers(&mut self) -> Result<(), String> {
        let (srv, host) = start_servers(&self.otp, &self.epmd, &self.ebin, &self.host2)?;
        self.srv = srv;
        self.host = host;
        for c in &self.clients {
            connect_and_ping(c, &[self.srv.name(), self.host.name()], &[self.srv.name(), self.host.name()])?;
        }
        Ok(())
    }

    /// Starts client nodes until there are `n`, each with a sink and connected to everyone.
    pub fn ensure_clients(&mut self, n: usize) -> Result<(), String> {
        while self.clients.len() < n {
            let opts = NodeOpts::erlang().prefix("bcli").args(client_args());
            let c = start_beam(&self.otp, &self.epmd, &self.ebin, opts)?;
            eval(&c, "erlnode_bench:start_sink()", 10)?;
            let mut peers = vec![self.srv.name(), self.host.name(), self.host2.name()];
            peers.extend(self.clients.iter().map(|c| c.name()));
            connect_and_ping(&c, &peers, &[self.srv.name(), self.host.name(), self.host2.name()])?;
            self.clients.push(c);
        }
        Ok(())
    }

    /// The driving client node.
    pub fn driver(&self) -> &BeamNode {
        &self.clients[0]
    }

    /// The node name of a side's server (with [`baseline_exe`], the BEAM side is the
    /// baseline erlnode host).
    pub fn server(&self, side: Side) -> &str {
        match side {
            Side::Erlnode => self.host.name(),
            Side::Beam if baseline_exe().is_some() => self.host2.name(),
            Side::Beam => self.srv.name(),
        }
    }

    /// The OS pid of a side's server.
    pub fn server_pid(&self, side: Side) -> u32 {
        match side {
            Side::Erlnode => self.host.os_pid(),
            Side::Beam if baseline_exe().is_some() => self.host2.os_pid(),
            Side::Beam => self.srv.os_pid(),
        }
    }

    /// CPU time of the first `n` client nodes, summed ([`cpu_ns`]).
    pub fn clients_cpu_ns(&self, n: usize) -> u64 {
        self.clients.iter().take(n).map(|c| cpu_ns(c.os_pid())).sum()
    }

    /// Runs `work` and gives its result with the CPU nanoseconds it took on `side`'s server and
    /// on the first `clients` client nodes.
    pub fn cpu_of<T>(&self, side: Side, clients: usize, work: impl FnOnce() -> T) -> (T, u64, u64) {
        let (server0, clients0) = (cpu_ns(self.server_pid(side)), self.clients_cpu_ns(clients));
        let out = work();
        let server = cpu_ns(self.server_pid(side)).saturating_sub(server0);
        (out, server, self.clients_cpu_ns(clients).saturating_sub(clients0))
    }

    /// `{bench_ctl, Node}` of a side, as an Erlang expression.
    pub fn ctl(&self, side: Side) -> String {
        format!("{{bench_ctl, {}}}", erlang_atom(self.server(side)))
    }

    /// The first `n` client node names as an Erlang list.
    pub fn client_list(&self, n: usize) -> String {
        let names: Vec<String> = self.clients.iter().take(n).map(|c| erlang_atom(c.name())).collect();
        format!("[{}]", names.join(", "))
    }
}

/// Starts the BEAM server (Elixir, with the article's servers) and the erlnode host, and
/// connects them with each other and with `host2`.
fn start_servers(otp: &Otp, epmd: &Epmd, ebin: &Path, host2: &Host) -> Result<(BeamNode, Host), String> {
    let srv = start_beam(otp, epmd, ebin, NodeOpts::elixir().prefix("bsrv"))?;
    let servers = crate::harness::repo_root().join("erlang_interop/bench_servers.ex");
    eval(&srv, &format!("Code.compile_file({}); :ok", crate::harness::elixir_string(path_str(&servers)?)), 60)?;
    eval(&srv, ":erlnode_bench.start_server_side()", 10)?;
    let host = Host::start(epmd.port(), "ehost")?;
    for h in [&host, host2] {
        let got = eval_raw(&srv, &format!(":net_kernel.connect_node({})", crate::harness::elixir_atom(h.name())), 30)?;
        if got != "true" {
            return Err(format!("{} cannot connect to {}: {got}", srv.name(), h.name()));
        }
    }
    Ok((srv, host))
}

/// Connects client `c` to `peers`, waits for global, and makes one call to each `ctls`
/// node's bench_ctl, so that no measurement pays for a connection.
fn connect_and_ping(c: &BeamNode, peers: &[&str], ctls: &[&str]) -> Result<(), String> {
    for p in peers {
        let got = eval_raw(c, &format!("net_kernel:connect_node({})", erlang_atom(p)), 30)?;
        if got != "true" {
            return Err(format!("{} cannot connect to {p}: {got}", c.name()));
        }
    }
    eval_raw(c, "global:sync()", 60)?;
    for s in ctls {
        let got = eval_raw(c, &format!("gen_server:call({{bench_ctl, {}}}, ping)", erlang_atom(s)), 30)?;
        if got != "pong" {
            return Err(format!("bench_ctl on {s} answered {got}"));
        }
    }
    Ok(())
}

/// `ERLNODE_BENCH_BASELINE`: another build's `erlnode-bench` executable. When set, the second
/// erlnode host runs that build and takes the BEAM server's place in the comparisons (for
/// `kv` and `ingest`): a before/after of erlnode itself, interleaved in one run.
pub fn baseline_exe() -> Option<PathBuf> {
    std::env::var_os("ERLNODE_BENCH_BASELINE").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `ERLNODE_BENCH_BASELINE_ENV`: `NAME=VALUE` pairs (split at whitespace) set for the baseline
/// host only, so that the baseline may be this very build with other settings
/// (`ERLNODE_BENCH_BASELINE=target/release/erlnode-bench
/// ERLNODE_BENCH_BASELINE_ENV=ERLNODE_BENCH_HOST_BUSY_NAP_US=0`: an A/B of one knob in one run).
pub fn baseline_env() -> Vec<(String, String)> {
    env_words("ERLNODE_BENCH_BASELINE_ENV")
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

/// Runtime worker threads of the erlnode hosts (`erlnode serve --threads`), from
/// `ERLNODE_BENCH_HOST_THREADS` (default 0: one per core, as `erlnode serve` does by default).
pub fn host_threads() -> usize {
    std::env::var("ERLNODE_BENCH_HOST_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Extra `erl` arguments for the client nodes that generate the load, from
/// `ERLNODE_BENCH_CLIENT_ARGS` (split at whitespace; none by default). For example
/// `+sbwt none +sbwtdcpu none +sbwtdio none` stops the clients' schedulers from busy-waiting,
/// so that the time they spend waiting for a server is not spent on the cores the server shares.
pub fn client_args() -> Vec<String> {
    env_words("ERLNODE_BENCH_CLIENT_ARGS")
}

/// The words of environment variable `var`, split at whitespace (none when it is unset).
pub fn env_words(var: &str) -> Vec<String> {
    std::env::var(var).unwrap_or_default().split_whitespace().map(String::from).collect()
}

static TLS_OPTFILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The optfile every node of the run uses under `--tls`.
pub fn tls_optfile() -> Option<&'static Path> {
    TLS_OPTFILE.get().map(PathBuf::as_path)
}

/// `--tls`: makes a CA and one node certificate (SAN `DNS:<short host name>`, for server and
/// client use) with the `openssl` command, and an optfile with mutual authentication, in
/// `target/bench-cluster/tls`; every node started afterwards uses them.
pub fn enable_tls() -> Result<(), String> {
    let dir = crate::harness::repo_root().join("target/bench-cluster/tls");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let ext =
        format!("subjectAltName=DNS:{}\nextendedKeyUsage=serverAuth,clientAuth\n", crate::harness::hostname_short());
    std::fs::write(dir.join("node.ext"), ext).map_err(|e| e.to_string())?;
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let (ca_key, ca, key, csr, cert, ext) =
        (p("ca.key"), p("ca.pem"), p("node.key"), p("node.csr"), p("node.pem"), p("node.ext"));
    openssl(&format!("req -x509 {ec} -keyout {ca_key} -out {ca} -days 30 -subj /CN=erlnode-bench-CA"))?;
    openssl(&format!("req {ec} -keyout {key} -out {csr} -subj /CN=erlnode-bench-node"))?;
    openssl(&format!(
        "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial -out {cert} -days 30 -extfile {ext}"
    ))?;
    let s = |f: &str| crate::harness::erlang_string(&p(f));
    let own =
        format!("{{certfile, {}}}, {{keyfile, {}}}, {{cacertfile, {}}}", s("node.pem"), s("node.key"), s("ca.pem"));
    let conf = format!(
        "[{{server, [{own}, {{verify, verify_peer}}, {{fail_if_no_peer_cert, true}}]}},\n \
         {{client, [{own}, {{verify, verify_peer}}]}}].\n"
    );
    let file = dir.join("dist.conf");
    std::fs::write(&file, conf).map_err(|e| e.to_string())?;
    TLS_OPTFILE.set(file).map_err(|_| "TLS enabled twice".to_string())
}

/// Runs `openssl` with `args` (split at spaces: the paths under target/ have none).
fn openssl(args: &str) -> Result<(), String> {
    let out = Command::new("openssl").args(args.split(' ')).output().map_err(|e| format!("openssl: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("openssl {args}: {}", String::from_utf8_lossy(&out.stderr))) }
}

/// Starts a BEAM node with the bench module on its code path (and TLS under `--tls`).
pub fn start_beam(otp: &Otp, epmd: &Epmd, ebin: &Path, opts: NodeOpts) -> Result<BeamNode, String> {
    let mut opts = opts.args(["-pa", path_str(ebin)?]);
    if let Some(f) = tls_optfile() {
        opts = opts.args(["-proto_dist", "inet_tls", "-ssl_dist_optfile", path_str(f)?]);
    }
    BeamNode::try_start(otp, epmd, opts).map_err(|e| e.to_string())
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("non-UTF-8 path {}", p.display()))
}

/// Compiles `erlang_interop/erlnode_bench.erl` with the OTP's `erlc` into
/// `target/bench-cluster/ebin-OTP`.
fn compile_bench_module(otp: &Otp) -> Result<PathBuf, String> {
    let root = crate::harness::repo_root();
    let ebin = root.join("target/bench-cluster").join(format!("ebin-{}", otp.version()));
    std::fs::create_dir_all(&ebin).map_err(|e| format!("{}: {e}", ebin.display()))?;
    let out = Command::new(otp.tool("erlc"))
        .arg("-o")
        .arg(&ebin)
        .arg(root.join("erlang_interop/erlnode_bench.erl"))
        .output()
        .map_err(|e| format!("erlc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "erlc failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(ebin)
}

/// Evaluates `expr` on `node` and returns the printed result.
pub fn eval_raw(node: &BeamNode, expr: &str, timeout_s: u64) -> Result<String, String> {
    node.eval_timeout(expr, Duration::from_secs(timeout_s)).map_err(|e| format!("{expr} on {}: {e}", node.name()))
}

/// Evaluates `expr` on `node` and parses the printed result as an Erlang term (numbers,
/// atoms, tuples, lists; pids do not parse).
pub fn eval(node: &BeamNode, expr: &str, timeout_s: u64) -> Result<Term, String> {
    let text = eval_raw(node, expr, timeout_s)?;
    let text = match node.lang() {
        crate::harness::Lang::Erlang => text,
        // what an Elixir node prints for the results used here reads as Erlang once
        // `:atom` loses its colon
        crate::harness::Lang::Elixir => text.replace(':', ""),
    };
    parse_erlang(&text).map_err(|e| format!("{expr}: cannot parse {text:?}: {e}"))
}

/// The integers of a flat tuple result.
pub fn ints(t: &Term) -> Option<Vec<i64>> {
    t.as_tuple()?.iter().map(Term::as_int).collect()
}
