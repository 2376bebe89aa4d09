//! The allocator's share of two codec targets (issue 14), with nothing decoded: what an owned
//! tree of 1000 nested one-element tuples, and 1000 short owned strings, cost to build and
//! drop with the system allocator. Compare with BEAM's whole `binary_to_term` of the same
//! shapes (`benches/RESULTS.md`, "What the allocator alone costs").
//!
//! `cargo bench --bench alloc_floor` prints the median of 7 rounds of each.

use std::hint::black_box;
use std::time::Instant;

use erlnode::term::Term;

/// Operations per round.
const N: u32 = 20_000;
/// Rounds; the median is printed.
const ROUNDS: usize = 7;

fn nested(levels: usize) -> Term {
    let mut t = Term::Int(1);
    for _ in 0..levels {
        t = Term::Tuple(vec![t]);
    }
    t
}

/// Median microseconds per operation of `f`.
fn median_us(mut f: impl FnMut()) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..N {
                f();
            }
            t0.elapsed().as_secs_f64() * 1e6 / f64::from(N)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    let nested_file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/corpus/nested_1000.etf"))
        .expect("benches/corpus/nested_1000.etf");
    // the typed bench's strings (`benches/typed.rs`)
    let strings: Vec<String> = (0..1000).map(|i| format!("short string {i}")).collect();
    let build = median_us(|| drop(black_box(nested(black_box(1000)))));
    let decode = median_us(|| drop(black_box(erlnode::term::decode(black_box(&nested_file)).unwrap())));
    let owned = median_us(|| {
        let v: Vec<String> = black_box(&strings).iter().map(|s| String::from(s.as_str())).collect();
        drop(black_box(v));
    });
    println!("1000 nested one-element tuples, built and dropped, nothing decoded: {build:.1} µs");
    println!("nested_1000.etf through term::decode, and dropped:                 {decode:.1} µs");
    println!("1000 short Strings copied into a Vec<String> and dropped:          {owned:.1} µs");
}
