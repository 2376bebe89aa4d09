//! Typed terms (`term::typed`) against BEAM: `from_slice` and `to_vec` of a list of 1000
//! Elixir user structs and of 1000 short strings, next to BEAM's `binary_to_term` and
//! `term_to_binary(T, [{minor_version, 2}])` of the very same bytes, in the same run.
//!
//! ```text
//! cargo bench --bench typed
//! ```
//!
//! Each workload is written once with `to_vec` into `target/bench-typed/NAME.etf`, which
//! BEAM loads (`benches/beam_codec.erl`, the codec bench's driver). Passes are interleaved
//! (Rust decode, Rust encode, BEAM decode, BEAM encode, repeat); each figure is the median
//! ns per operation over the passes; ratios are BEAM's time over ours (above 1: faster than
//! BEAM). For reference the table also has the untyped `term::decode` / `encode` of the same
//! bytes, and `from_slice` into borrowed `&str`. Targets: typed decode ≥ 2x BEAM, encode ≥
//! 1.5x. The table is printed and written to `target/bench-typed.md`.
//!
//! Knobs: `BENCH_PASSES` (default 9), `BENCH_PASS_MS` (default 150). Run as a test (`cargo
//! test --benches`), it only checks that every workload round-trips.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use erlnode::term::{Term, decode, encode, from_slice, to_vec};
use serde::{Deserialize, Serialize};

/// `%MyApp.User{}` as a typical Phoenix app's user: strings, an integer, a boolean, an atom,
/// an optional field and a short list.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename = "Elixir.MyApp.User")]
struct User {
    id: u64,
    name: String,
    email: String,
    age: u32,
    admin: bool,
    role: Role,
    nickname: Option<String>,
    tags: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Role {
    Member,
    Moderator,
    Owner,
}

fn users() -> Vec<User> {
    (0..1000u64)
        .map(|i| User {
            id: 1_000_000 + i,
            name: format!("User Number {i}"),
            email: format!("user{i}@example.com"),
            age: 18 + (i % 60) as u32,
            admin: i % 17 == 0,
            role: match i % 3 {
                0 => Role::Member,
                1 => Role::Moderator,
                _ => Role::Owner,
            },
            nickname: (i % 2 == 0).then(|| format!("u{i}")),
            tags: vec!["elixir".to_string(), format!("cohort-{}", i % 10)],
        })
        .collect()
}

fn strings() -> Vec<String> {
    (0..1000).map(|i| format!("short string {i}")).collect()
}

/// One operation on a workload's bytes.
type OnBytes = Box<dyn Fn(&[u8])>;

struct Workload {
    name: &'static str,
    bytes: Vec<u8>,
    path: PathBuf,
    /// One typed decode and one typed encode of the workload.
    decode: OnBytes,
    encode: Box<dyn Fn()>,
    /// `from_slice` borrowing its strings, where the type allows.
    decode_borrowed: Option<OnBytes>,
}

fn workloads() -> Vec<Workload> {
    let dir = target_dir().join("bench-typed");
    std::fs::create_dir_all(&dir).expect("target/bench-typed");
    let mut out = Vec::new();
    let mut add = |name: &'static str, bytes: Vec<u8>, decode, encode, decode_borrowed| {
        let path = dir.join(format!("{name}.etf"));
        std::fs::write(&path, &bytes).expect("write workload");
        out.push(Workload { name, bytes, path, decode, encode, decode_borrowed });
    };
    let u = users();
    let bytes = to_vec(&u).unwrap();
    assert_eq!(from_slice::<Vec<User>>(&bytes).unwrap(), u);
    add(
        "users_1000",
        bytes,
        Box::new(|b: &[u8]| drop(std::hint::black_box(from_slice::<Vec<User>>(b).unwrap()))),
        Box::new(move || drop(std::hint::black_box(to_vec(std::hint::black_box(&u)).unwrap()))),
        None,
    );
    let s = strings();
    let bytes = to_vec(&s).unwrap();
    assert_eq!(from_slice::<Vec<String>>(&bytes).unwrap(), s);
    add(
        "strings_1000",
        bytes,
        Box::new(|b: &[u8]| drop(std::hint::black_box(from_slice::<Vec<String>>(b).unwrap()))),
        Box::new(move || drop(std::hint::black_box(to_vec(std::hint::black_box(&s)).unwrap()))),
        Some(Box::new(|b: &[u8]| drop(std::hint::black_box(from_slice::<Vec<&str>>(b).unwrap())))),
    );
    out
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let ws = workloads();
    for w in &ws {
        // the Term codec reads and writes the same bytes (no maps are reordered: it keeps order)
        assert_eq!(encode(&decode(&w.bytes).unwrap()), w.bytes, "{}", w.name);
    }
    if !bench_mode {
        println!("typed bench (test mode): {} workloads round-trip", ws.len());
        return;
    }
    let passes: usize = env_or("BENCH_PASSES", 9);
    let pass = Duration::from_millis(env_or("BENCH_PASS_MS", 150));
    let mut beam = start_beam();
    let mut table = String::new();
    let beam_info = beam.as_ref().map(|b| format!("OTP {}", b.info)).unwrap_or_else(|| "not measured".into());
    let _ = writeln!(
        table,
        "ns per operation (median of {passes} interleaved passes of {} ms); BEAM: {beam_info}.\n\
         Ratios are BEAM's time over erlnode's (above 1: erlnode is faster).\n",
        pass.as_millis()
    );
    let _ = writeln!(
        table,
        "| workload | size | typed `from_slice` | borrowed `from_slice` | `term::decode` | BEAM `binary_to_term` | decode / BEAM | typed `to_vec` | `term::encode` | BEAM `term_to_binary` | encode / BEAM |"
    );
    let _ = writeln!(table, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let mut verdicts = Vec::new();
    for w in &ws {
        if let Some(Err(e)) = beam.as_mut().map(|b| b.load(w.name, &w.path)) {
            loud(&format!("BEAM failed: {e}"));
            beam = None;
        }
        let term: Term = decode(&w.bytes).unwrap();
        let mut s: [Vec<f64>; 7] = Default::default();
        eprint!("{:>14}: {passes} passes of {} ms per column ", w.name, pass.as_millis());
        for _ in 0..passes {
            s[0].push(pass_ns(pass, || (w.decode)(&w.bytes)));
            if let Some(d) = &w.decode_borrowed {
                s[1].push(pass_ns(pass, || d(&w.bytes)));
            }
            s[2].push(pass_ns(pass, || decode(&w.bytes)));
            s[3].push(beam_pass(&mut beam, "dec", w.name, pass));
            s[4].push(pass_ns(pass, || (w.encode)()));
            s[5].push(pass_ns(pass, || encode(&term)));
            s[6].push(beam_pass(&mut beam, "enc", w.name, pass));
            eprint!(".");
        }
        eprintln!();
        let m: Vec<f64> = s.iter().map(|v| median(v)).collect();
        let ns = |x: f64| if x.is_finite() { format!("{x:.0}") } else { "—".into() };
        let (dec, enc) = (m[3] / m[0], m[6] / m[4]);
        let _ = writeln!(
            table,
            "| {} | {} B | {} | {} | {} | {} | **{}** | {} | {} | {} | **{}** |",
            w.name,
            w.bytes.len(),
            ns(m[0]),
            ns(m[1]),
            ns(m[2]),
            ns(m[3]),
            fmt_ratio(dec),
            ns(m[4]),
            ns(m[5]),
            ns(m[6]),
            fmt_ratio(enc)
        );
        verdicts.push(format!("{}: decode {}, encode {}", w.name, verdict(dec, 2.0), verdict(enc, 1.5)));
    }
    let _ = writeln!(table, "\nTargets: typed decode ≥ 2x BEAM, typed encode ≥ 1.5x BEAM. {}.", verdicts.join("; "));
    println!("\n{table}");
    let out = target_dir().join("bench-typed.md");
    match std::fs::write(&out, &table) {
        Ok(()) => println!("(written to {})", out.display()),
        Err(e) => eprintln!("could not write {}: {e}", out.display()),
    }
}
