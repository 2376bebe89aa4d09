//! 12. Joining a cluster: a fresh node connects to one member of a full mesh of BEAM nodes
//! (`global` and the default `pg` scope running, one `pg` group per member), and the time runs
//! until it is connected to every member and `global` has synced with them all
//! (`erlnode_bench:join/2` on BEAM, the host's `{join, Members, TimeoutMs}` on erlnode). Also
//! the joiner's CPU time over the join, its RSS once joined, and the CPU the members spent
//! meanwhile. The mesh grows through [`MESH_SIZES`] (the last only if memory allows); the
//! joiner is killed after each pass and the members wait until they have seen it go.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Host, Side, cpu_ns, eval, eval_raw, ints, start_beam};
use crate::harness::{BeamNode, NodeOpts, erlang_atom};
use crate::report::{Goal, Unit};
use crate::{Run, host, interleave};

/// Cluster sizes measured, in order (`--quick`: the first two).
const MESH_SIZES: [usize; 3] = [8, 32, 100];
/// RSS one more BEAM member may need, for the memory check before growing the mesh.
const MEMBER_RSS_BYTES: u64 = 64 << 20;
/// How long a join may take.
const JOIN_TIMEOUT_MS: u64 = 120_000;

/// `MemAvailable` in bytes.
fn mem_available() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

/// Starts members until there are `n`, each joining the mesh through the first, and waits until
/// every member sees all the others (global synced).
fn grow_mesh(c: &Cluster, mesh: &mut Vec<BeamNode>, n: usize) -> Result<(), String> {
    let t = Instant::now();
    while mesh.len() < n {
        let m = start_beam(&c.otp, &c.epmd, &c.ebin, NodeOpts::erlang().prefix("mesh"))?;
        eval_raw(&m, "erlnode_bench:mesh_member()", 30)?;
        if let Some(first) = mesh.first() {
            let got = eval_raw(&m, &format!("net_kernel:connect_node({})", erlang_atom(first.name())), 30)?;
            if got != "true" {
                return Err(format!("{} cannot join the mesh: {got}", m.name()));
            }
        }
        mesh.push(m);
    }
    for m in mesh.iter() {
        wait_mesh_size(m, n - 1)?;
    }
    eprintln!("[bench] mesh of {n} BEAM nodes up in {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

/// Waits until `m` is connected to exactly `want` visible nodes, global synced.
fn wait_mesh_size(m: &BeamNode, want: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = eval_raw(m, "erlnode_bench:mesh_size()", 120)?;
        if got == want.to_string() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{} sees {got} nodes, not {want}", m.name()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One join. -> [ms to joined, joiner CPU ms, joiner RSS, members' CPU ms]
fn join_pass(c: &Cluster, mesh: &[BeamNode], side: Side, driver: &BeamNode) -> Result<Vec<f64>, String> {
    let members: Vec<String> = mesh.iter().map(|m| erlang_atom(m.name())).collect();
    let list = format!("[{}]", members.join(", "));
    let mesh_cpu = || mesh.iter().map(|m| cpu_ns(m.os_pid())).sum::<u64>();
    let (r, pid, cpu0, mcpu0, keep): (Result<_, String>, u32, u64, u64, Box<dyn std::any::Any>) = match side {
        Side::Erlnode => {
            let h = Host::start(c.epmd.port(), "ejoin")?;
            // a hidden driver asks the host to join: its own connection takes no part in global
            let ping = format!("gen_server:call({{bench_ctl, {}}}, ping, 30000)", erlang_atom(h.name()));
            eval_raw(driver, &ping, 60)?;
            let (cpu0, mcpu0) = (cpu_ns(h.os_pid()), mesh_cpu());
            let call = format!(
                "gen_server:call({{bench_ctl, {}}}, {{join, {list}, {JOIN_TIMEOUT_MS}}}, infinity)",
                erlang_atom(h.name())
            );
            let r = eval(driver, &call, JOIN_TIMEOUT_MS / 1000 + 60);
            (r, h.os_pid(), cpu0, mcpu0, Box::new(h))
        }
        Side::Beam => {
            let b = start_beam(&c.otp, &c.epmd, &c.ebin, NodeOpts::erlang().prefix("bjoin"))?;
            let (cpu0, mcpu0) = (cpu_ns(b.os_pid()), mesh_cpu());
            let r = eval(&b, &format!("erlnode_bench:join({list}, {JOIN_TIMEOUT_MS})"), JOIN_TIMEOUT_MS / 1000 + 60);
            (r, b.os_pid(), cpu0, mcpu0, Box::new(b))
        }
    };
    let (cpu, mcpu) = (cpu_ns(pid).saturating_sub(cpu0), mesh_cpu().saturating_sub(mcpu0));
    let rss = host::rss_bytes(pid).unwrap_or(0);
    let r = r?;
    let v = ints(&r).filter(|v| v.len() == 2).ok_or_else(|| format!("join gave {r}"))?;
    drop(keep);
    // the members must have seen the joiner go before the next pass
    for m in mesh {
        wait_mesh_size(m, mesh.len() - 1)?;
    }
    if v[1] != 0 {
        return Err(format!("{} joiner still missing {} of {} members", crate::side_name(side), v[1], mesh.len()));
    }
    Ok(vec![v[0] as f64 / 1e3, cpu as f64 / 1e6, rss as f64, mcpu as f64 / 1e6])
}

pub fn join(c: &Cluster, run: &mut Run) -> Result<(), String> {
    let driver = start_beam(&c.otp, &c.epmd, &c.ebin, NodeOpts::erlang().prefix("jdrv").hidden())?;
    let mut mesh: Vec<BeamNode> = Vec::new();
    let sizes = if run.p.quick { &MESH_SIZES[..2] } else { &MESH_SIZES[..] };
    for &n in sizes {
        let need = (n - mesh.len()) as u64 * MEMBER_RSS_BYTES;
        if mem_available() < need + (1 << 30) {
            run.notes.push(format!("join: a mesh of {n} skipped: {} MiB available", mem_available() >> 20));
            break;
        }
        grow_mesh(c, &mut mesh, n)?;
        let s = interleave(run.p.passes.min(3), |side, warm| {
            if warm {
                return Ok(vec![]);
            }
            join_pass(c, &mesh, side, &driver)
        })?;
        let name = format!("12. join a mesh of {n} BEAM nodes (global, pg)");
        run.rows.push(crate::row(&name, "time to connected + global synced", Unit::Millis, &s, 0, Goal::None));
        run.rows.push(crate::row(&name, "joiner CPU", Unit::Millis, &s, 1, Goal::None));
        run.rows.push(crate::row(&name, "joiner RSS once joined", Unit::MiB, &s, 2, Goal::None));
        run.rows.push(crate::row(&name, "members' CPU, all together", Unit::Millis, &s, 3, Goal::None));
    }
    Ok(())
}
