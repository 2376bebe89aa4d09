//! Scenario 12: what a server makes its BEAM client do. The KV and ingest loads of scenarios
//! 1 and 2, with what happens in the kernel counted on both ends, per call or message: syscalls
//! by kind, context switches and wake-ups issued (`perf stat` on tracepoints, attached to the
//! client node's and the server's OS process for the pass only), and the TCP segments each
//! way on the one connection between them (`ss -ti`: `data_segs_in/out`, `segs_in/out`).
//!
//! This is a diagnostic, not a score: counting every syscall costs CPU, so the CPU figures
//! of this scenario are above those of scenarios 1 and 2. It needs `perf` (tracepoints,
//! root or `perf_event_paranoid` ≤ 1) and `ss`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::cluster::{Cluster, Side, eval, ints};
use crate::harness::erlang_atom;
use crate::report::{Goal, Unit};
use crate::{MAX_CALLS_PER_CALLER, Run, interleave};

/// The tracepoints counted, grouped into the figures reported (a syscall with several entry
/// points counts under each of its names).
const GROUPS: &[(&str, &[&str])] = &[
    ("syscalls", &["raw_syscalls:sys_enter"]),
    (
        "reads",
        &[
            "syscalls:sys_enter_read",
            "syscalls:sys_enter_readv",
            "syscalls:sys_enter_recvfrom",
            "syscalls:sys_enter_recvmsg",
        ],
    ),
    (
        "writes",
        &[
            "syscalls:sys_enter_write",
            "syscalls:sys_enter_writev",
            "syscalls:sys_enter_sendto",
            "syscalls:sys_enter_sendmsg",
        ],
    ),
    ("epoll waits", &["syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait"]),
    ("futex calls", &["syscalls:sys_enter_futex"]),
    ("context switches", &["context-switches"]),
    ("wake-ups issued", &["sched:sched_wakeup"]),
];

/// `perf stat` attached to a process, counting [`GROUPS`] while enabled.
struct PerfStat {
    child: Child,
    ctl: std::fs::File,
    ack: BufReader<std::fs::File>,
    dir: PathBuf,
}

impl PerfStat {
    /// Attaches `perf stat` to `pid` with counting off; [`PerfStat::enable`] turns it on.
    fn attach(pid: u32, tag: &str) -> Result<PerfStat, String> {
        let events: Vec<&str> = GROUPS.iter().flat_map(|(_, evs)| evs.iter().copied()).collect();
        let args = ["stat".to_string(), "-x".into(), ",".into(), "-e".into(), events.join(",")];
        PerfStat::start(pid, tag, &args)
    }

    /// `perf record -g` of `pid` into `file`, off until enabled (`ERLNODE_BENCH_PERF_RECORD`).
    fn record(pid: u32, tag: &str, file: &std::path::Path) -> Result<PerfStat, String> {
        let args =
            ["record".to_string(), "-g".into(), "-F".into(), "2999".into(), "-o".into(), file.display().to_string()];
        PerfStat::start(pid, tag, &args)
    }

    fn start(pid: u32, tag: &str, args: &[String]) -> Result<PerfStat, String> {
        let dir = crate::harness::repo_root().join("target/bench-cluster/perf").join(format!("{tag}-{pid}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (ctl_path, ack_path) = (dir.join("ctl"), dir.join("ack"));
        for p in [&ctl_path, &ack_path] {
            let _ = std::fs::remove_file(p);
            let c = std::ffi::CString::new(p.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
            // SAFETY: a valid NUL-terminated path.
            if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                return Err(format!("mkfifo {}: {}", p.display(), std::io::Error::last_os_error()));
            }
        }
        // read+write opens of a FIFO do not wait for the other end (Linux)
        let open = |p: &PathBuf| OpenOptions::new().read(true).write(true).open(p).map_err(|e| e.to_string());
        let (ctl, ack) = (open(&ctl_path)?, open(&ack_path)?);
        let mut cmd = Command::new("perf");
        cmd.arg(&args[0])
            .args(["-D", "-1", "--control"])
            .arg(format!("fifo:{},{}", ctl_path.display(), ack_path.display()))
            .args(&args[1..])
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        crate::cluster::die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| format!("cannot start perf: {e}"))?;
        Ok(PerfStat { child, ctl, ack: BufReader::new(ack), dir })
    }

    /// Sends a control command and waits for perf's `ack`.
    fn command(&mut self, what: &str) -> Result<(), String> {
        writeln!(self.ctl, "{what}").map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.ack.read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim_matches(|c: char| c == '\0' || c.is_whitespace()) == "ack" {
            Ok(())
        } else {
            Err(format!("perf answered {line:?} to {what}"))
        }
    }

    fn enable(&mut self) -> Result<(), String> {
        self.command("enable")
    }

    /// Stops perf and gives what it printed.
    fn stop(mut self) -> Result<String, String> {
        self.command("disable")?;
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().map_err(|e| e.to_string())?)
            .wait_with_output()
            .map_err(|e| e.to_string())?;
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Stops counting and gives the count of each group.
    fn finish(self) -> Result<HashMap<&'static str, f64>, String> {
        let text = self.stop()?;
        let mut by_event: HashMap<&str, f64> = HashMap::new();
        for line in text.lines() {
            // value,unit,event,...
            let mut f = line.split(',');
            let (Some(v), Some(_), Some(ev)) = (f.next(), f.next(), f.next()) else { continue };
            if let Ok(v) = v.parse::<f64>() {
                by_event.insert(ev, v);
            }
        }
        if by_event.is_empty() {
            return Err(format!("perf stat gave nothing: {text}"));
        }
        Ok(GROUPS.iter().map(|(g, evs)| (*g, evs.iter().filter_map(|e| by_event.get(e)).sum())).collect())
    }
}

impl Drop for PerfStat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Profiles recorded so far (file names).
static RECORDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// TCP counters of one socket (`ss -ti`).
#[derive(Default, Clone, Copy, Debug)]
struct Segs {
    segs_out: f64,
    segs_in: f64,
    data_segs_out: f64,
    data_segs_in: f64,
    bytes_sent: f64,
    bytes_received: f64,
}

/// The counters of `client`'s socket to `server` (both OS pids): the established TCP socket
/// of `client` whose peer address is the local address of one of `server`'s.
fn client_segs(client: u32, server: u32) -> Result<Segs, String> {
    let out = Command::new("ss").args(["-tinpH", "state", "established"]).output().map_err(|e| format!("ss: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // each socket: a line with the addresses and users:((..., pid=N, ...)), then an indented
    // line of counters
    let mut socks: Vec<(String, String, String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = socks.last_mut() {
                last.3.push_str(line);
            }
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 {
            // Recv-Q Send-Q Local Peer [Process]
            socks.push((f[2].to_string(), f[3].to_string(), line.to_string(), String::new()));
        }
    }
    let owned_by = |line: &str, pid: u32| line.contains(&format!("pid={pid},"));
    let server_locals: Vec<&str> = socks.iter().filter(|s| owned_by(&s.2, server)).map(|s| s.0.as_str()).collect();
    let sock = socks
        .iter()
        .find(|s| owned_by(&s.2, client) && server_locals.contains(&s.1.as_str()))
        .ok_or_else(|| format!("no socket of {client} connected to {server} in `ss`"))?;
    let mut segs = Segs::default();
    for tok in sock.3.split_whitespace() {
        let Some((k, v)) = tok.split_once(':') else { continue };
        let Ok(v) = v.parse::<f64>() else { continue };
        match k {
            "segs_out" => segs.segs_out = v,
            "segs_in" => segs.segs_in = v,
            "data_segs_out" => segs.data_segs_out = v,
            "data_segs_in" => segs.data_segs_in = v,
            "bytes_sent" => segs.bytes_sent = v,
            "bytes_received" => segs.bytes_received = v,
            _ => {}
        }
    }
    Ok(segs)
}

/// Runs one load (`expr` on the driver, giving the operation count), counted on both ends.
/// -> [ops/s, client CPU µs/op, server CPU µs/op, per op: client's GROUPS, server's GROUPS,
/// data segments server → client, client → server, pure ACKs server → client, client →
/// server; bytes per data segment server → client, client → server]
fn counted(
    c: &Cluster,
    side: Side,
    expr: &str,
    ops_of: impl Fn(&[i64]) -> Option<(i64, i64)>,
) -> Result<Vec<f64>, String> {
    let (client, server) = (c.driver().os_pid(), c.server_pid(side));
    let mut pc = PerfStat::attach(client, "client")?;
    let mut ps = PerfStat::attach(server, "server")?;
    // profiles of both ends, one file per pass (a diagnostic knob)
    let mut recs = Vec::new();
    if let Some(dir) = std::env::var_os("ERLNODE_BENCH_PERF_RECORD") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let n = RECORDED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let side = crate::side_name(side);
        for (who, pid) in [("client", client), ("server", server)] {
            let file = dir.join(format!("{n:03}-{side}-{who}.data"));
            recs.push(PerfStat::record(pid, &format!("rec-{who}"), &file)?);
        }
    }
    let seg0 = client_segs(client, server)?;
    for r in &mut recs {
        r.enable()?;
    }
    pc.enable()?;
    ps.enable()?;
    let (r, cpu, ccpu) = c.cpu_of(side, 1, || eval(c.driver(), expr, 300));
    let (cc, sc) = (pc.finish()?, ps.finish()?);
    for r in recs {
        r.stop()?;
    }
    let seg1 = client_segs(client, server)?;
    let r = r?;
    let v = ints(&r).ok_or_else(|| format!("{expr} gave {r}"))?;
    let (ops, elapsed_us) = ops_of(&v).ok_or_else(|| format!("{expr} gave {r}"))?;
    let n = ops.max(1) as f64;
    let mut out = vec![n * 1e6 / elapsed_us.max(1) as f64, ccpu as f64 / 1e3 / n, cpu as f64 / 1e3 / n];
    for counts in [&cc, &sc] {
        out.extend(GROUPS.iter().map(|(g, _)| counts.get(g).copied().unwrap_or(f64::NAN) / n));
    }
    let d = |f: fn(&Segs) -> f64| f(&seg1) - f(&seg0);
    let (din, dout) = (d(|s| s.data_segs_in), d(|s| s.data_segs_out));
    out.extend([
        din / n,
        dout / n,
        (d(|s| s.segs_in) - din) / n,
        (d(|s| s.segs_out) - dout) / n,
        d(|s| s.bytes_received) / din.max(1.0),
        d(|s| s.bytes_sent) / dout.max(1.0),
    ]);
    Ok(out)
}

/// The rows of one load's samples (see [`counted`]).
fn rows(run: &mut Run, name: &str, op: &str, s: &[Vec<Vec<f64>>; 2]) {
    let mut i = 0;
    let mut push = |run: &mut Run, metric: String, unit: Unit| {
        run.rows.push(crate::row(name, &metric, unit, s, i, Goal::None));
        i += 1;
    };
    push(run, format!("{op}s/s"), Unit::PerSec("ops"));
    push(run, format!("client CPU per {op}"), Unit::MicrosF);
    push(run, format!("server CPU per {op}"), Unit::MicrosF);
    for who in ["client", "server"] {
        for (g, _) in GROUPS {
            push(run, format!("{who} {g} per {op}"), Unit::Count);
        }
    }
    push(run, format!("data segments server → client per {op}"), Unit::Count);
    push(run, format!("data segments client → server per {op}"), Unit::Count);
    push(run, format!("pure ACKs server → client per {op}"), Unit::Count);
    push(run, format!("pure ACKs client → server per {op}"), Unit::Count);
    push(run, "bytes per data segment server → client".into(), Unit::Bytes);
    push(run, "bytes per data segment client → server".into(), Unit::Bytes);
}

pub fn wire(c: &Cluster, run: &mut Run) -> Result<(), String> {
    for callers in [1u32, 16, 64] {
        let s = interleave(run.p.passes, |side, warm| {
            let dur_ms = if warm { 100 } else { run.p.dur_ms };
            let expr = format!(
                "erlnode_bench:kv_pass({}, {}, {callers}, {}, {MAX_CALLS_PER_CALLER}, {dur_ms})",
                c.ctl(side),
                c.client_list(1),
                run.p.keys
            );
            counted(c, side, &expr, |v| (v.len() == 6).then(|| (v[0], v[1])))
        })?;
        rows(run, &format!("12. wire: KV, {callers} caller{}", if callers == 1 { "" } else { "s" }), "call", &s);
    }
    let kinds = [
        ("{msg, i}", "small", run.p.small_n),
        ("1 KiB binary", "{bin, 1024}", run.p.kib1_n),
        ("64 KiB binary", "{bin, 65536}", run.p.kib64_n),
    ];
    for (label, kind, n) in kinds {
        let s = interleave(run.p.passes, |side, warm| {
            let (n, dur) = if warm { (n / 10, 100) } else { (n, run.p.dur_ms * 2) };
            let expr =
                format!("erlnode_bench:ingest({{bench_sink, {}}}, {kind}, {n}, {dur})", erlang_atom(c.server(side)));
            counted(c, side, &expr, |v| (v.len() == 3).then(|| (v[1], v[2])))
        })?;
        rows(run, &format!("12. wire: ingest, {label}"), "msg", &s);
    }
    Ok(())
}
