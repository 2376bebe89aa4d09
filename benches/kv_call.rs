//! The article's KV call without a process: the plain [`GenServer`] path (`Kv::handle`, which
//! reads the request by hand, moving key and value) against the [`TypedGenServer`] path (serde
//! reads a `kv::Request` with `from_term`, the reply is written with `to_term`), as allocations
//! and ns per call; and PubSub's broadcast request, read by hand and by serde. The figures
//! decide which path `erlnode serve` and the benchmark host run (see `src/apps/kv.rs`).
//!
//! ```text
//! cargo bench --bench kv_call
//! ```
//!
//! Allocations are counted by a global allocator (exact, whatever the load on the machine);
//! the times are a mean over `N` calls of one pass, so only a rough guide on a busy machine.
//! Run as a test (`cargo test --benches`), it makes fewer calls and checks the hand-written
//! path allocates nothing.
//!
//! [`GenServer`]: erlnode::gen_server::GenServer
//! [`TypedGenServer`]: erlnode::gen_server::TypedGenServer

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use erlnode::apps::Kv;
use erlnode::apps::kv::Request;
use erlnode::apps::pubsub;
use erlnode::term::{Term, from_term, to_term};

/// The system allocator, counting allocations and reallocations.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// What `Typed<Kv>` does with a call that reads.
fn typed(kv: &mut Kv, request: Term) -> Term {
    let request: Request = from_term(&request).expect("a request");
    to_term(&kv.apply(request)).expect("a term")
}

/// Allocations and ns per call of `f` over `n` requests made by `make` (made beforehand, as
/// the node's decoder would hand them over).
fn measure(n: usize, make: &dyn Fn() -> Term, f: &mut dyn FnMut(Term) -> Term) -> (f64, f64) {
    let requests: Vec<Term> = (0..n).map(|_| make()).collect();
    let mut replies = Vec::with_capacity(n);
    let a0 = ALLOCS.load(Relaxed);
    let t0 = Instant::now();
    for r in requests {
        replies.push(black_box(f(r)));
    }
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    let allocs = (ALLOCS.load(Relaxed) - a0) as f64 / n as f64;
    drop(replies);
    (allocs, ns)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { 200_000 } else { 1_000 };
    let tuple = |v: Vec<Term>| Term::Tuple(v);
    // the cluster benchmark's requests (integers), and a string key and value
    let workloads: [(&str, &dyn Fn() -> Term); 4] = [
        ("{set, 1, 2}", &|| tuple(vec![Term::atom("set"), Term::Int(1), Term::Int(2)])),
        ("{get, 1}", &|| tuple(vec![Term::atom("get"), Term::Int(1)])),
        ("{set, <<\"user:42\">>, <<\"Ada Lovelace\">>}", &|| {
            tuple(vec![Term::atom("set"), Term::binary(b"user:42"), Term::binary(b"Ada Lovelace")])
        }),
        ("{get, <<\"user:42\">>}", &|| tuple(vec![Term::atom("get"), Term::binary(b"user:42")])),
    ];
    println!("| request | hand: allocs/call | typed: allocs/call | hand: ns/call | typed: ns/call |");
    println!("|---|---|---|---|---|");
    let (mut plain, mut typed_kv) = (Kv::new(), Kv::new());
    for (name, make) in workloads {
        let (ha, hns) = measure(n, make, &mut |r| plain.handle(r));
        let (ta, tns) = measure(n, make, &mut |r| typed(&mut typed_kv, r));
        println!("| `{name}` | {ha:.2} | {ta:.2} | {hns:.0} | {tns:.0} |");
        assert!(ha < 0.01, "the hand-written path allocates per call: {ha}");
    }
    // PubSub's broadcast call, reading the request only (applying it needs a process)
    let broadcast = || {
        let message = tuple(vec![Term::atom("bench_msg"), Term::Int(1)]);
        tuple(vec![Term::atom("broadcast"), Term::atom("t"), message])
    };
    let (ha, hns) = measure(n, &broadcast, &mut |r| {
        black_box(pubsub::Request::from_term(r));
        Term::Int(0)
    });
    let (ta, tns) = measure(n, &broadcast, &mut |r| {
        black_box(from_term::<pubsub::Request>(&r).expect("a request"));
        Term::Int(0)
    });
    println!("| PubSub `{{broadcast, t, {{bench_msg, 1}}}}`, read only | {ha:.2} | {ta:.2} | {hns:.0} | {tns:.0} |");
    assert!(ha < 0.01, "reading a PubSub request by hand allocates: {ha}");
}
