//! Memory per idle process: spawns N processes that wait for a message, and prints the RSS
//! growth per process (`cargo run --release --example idle_procs -- 100000`).

use erlnode::node::normal;
use erlnode::{Atom, Node, Process};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let node = Node::new_local(Atom::new("idle@localhost"), 1);
    // warm up the runtime and allocator
    for _ in 0..1000 {
        node.spawn(|mut p: Process| async move {
            p.receive().await;
            normal()
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let before = rss_kib();
    for _ in 0..n {
        node.spawn(|mut p: Process| async move {
            p.receive().await;
            normal()
        });
    }
    // let every process reach its receive
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let after = rss_kib();
    println!(
        "{n} idle processes: RSS +{} KiB, {} bytes per process",
        after - before,
        (after - before) * 1024 / n as u64
    );
}
