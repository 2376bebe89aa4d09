//! Codec throughput: erlnode's ETF decoder and encoder next to BEAM's own `binary_to_term` /
//! `term_to_binary` and the `eetf` crate, on the committed corpus `benches/corpus/*.etf`
//! (written by `erlang_interop/make_bench_corpus.escript`).
//!
//! ```text
//! cargo bench --bench codec
//! ```
//!
//! Two parts, in one run:
//! 1. criterion benchmarks (short), one group per operation, throughput in bytes of the
//!    encoded term;
//! 2. the comparison table: per file, passes of erlnode `decode_bytes` (zero-copy binaries from
//!    a `Bytes`), erlnode `decode` (from a slice), `eetf` decode, BEAM `binary_to_term`, then
//!    erlnode `encode`, `eetf` encode, BEAM `term_to_binary(T, [{minor_version, 2}])`,
//!    interleaved (A B C A B C ...); each figure is the median over the passes, MB/s counts
//!    the bytes of the encoded term, and the ratios are erlnode over the others. BEAM runs in
//!    one `erl -noshell` that compiles `benches/beam_codec.erl` and answers one pass per request.
//!    The table is printed and written to `target/bench-codec.md`.
//!
//! Finding `erl`: `$ERL`, else the interop harness's `$ERLNODE_OTP_DIR/25/bin/erl` or
//! `target/otp/25/bin/erl`, else `erl` on `PATH`. Without one the BEAM columns are skipped,
//! loudly.
//!
//! Knobs (environment): `BENCH_PASSES` (default 7), `BENCH_PASS_MS` (default 150),
//! `BENCH_CRITERION=0` skips part 1, `BENCH_TABLE=0` skips part 2; `BENCH_FILES=a,b` limits
//! both to some corpus files. `BENCH_PROFILE=decode_bytes|decode|encode|eetf_decode|eetf_encode`
//! (with `BENCH_ITERS`, default 1000) only runs that operation, untimed, for a profiler. Criterion's own arguments (a filter, `--save-baseline`) still
//! apply to part 1.
//!
//! Run as a test (`cargo test --benches`, no `--bench` argument), it only checks that every
//! corpus file decodes and re-encodes to the same bytes, with erlnode and with eetf.

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use criterion::{Criterion, Throughput};
use erlnode::term::{Term, decode, decode_bytes, encode};

/// One corpus file, decoded once by each codec.
struct File {
    name: String,
    path: PathBuf,
    bytes: Bytes,
    term: Term,
    /// `None` when eetf cannot decode the file.
    eetf: Option<eetf::Term>,
}

fn load_corpus() -> Vec<File> {
    let dir = manifest_dir().join("benches/corpus");
    // the order of the issue's list, then anything else alphabetically
    const ORDER: [&str; 9] = [
        "small_ints",
        "atom_tuple",
        "map_1000",
        "binary_1mib",
        "binaries_1000",
        "bigints_1000",
        "floats_1000",
        "nested_1000",
        "gen_call",
    ];
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "etf"))
        .collect();
    let rank = |p: &PathBuf| {
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        (ORDER.iter().position(|n| *n == stem).unwrap_or(ORDER.len()), stem.to_string())
    };
    paths.sort_by_key(rank);
    let only: Option<Vec<String>> =
        std::env::var("BENCH_FILES").ok().map(|s| s.split(',').map(str::to_string).collect());
    paths
        .into_iter()
        .filter_map(|path| {
            let name = path.file_stem()?.to_str()?.to_string();
            if only.as_ref().is_some_and(|o| !o.contains(&name)) {
                return None;
            }
            let bytes = Bytes::from(std::fs::read(&path).expect("read corpus file"));
            let term = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            let eetf = eetf::Term::decode(&bytes[..]).ok();
            Some(File { name, path, bytes, term, eetf })
        })
        .collect()
}

/// Every file decodes and re-encodes byte for byte (the corpus is BEAM's own output).
fn check(files: &[File]) {
    for f in files {
        assert_eq!(decode_bytes(f.bytes.clone()).expect("decode_bytes"), f.term, "{}", f.name);
        assert!(encode(&f.term) == f.bytes, "{}: erlnode re-encoding differs from BEAM's", f.name);
        match &f.eetf {
            Some(t) => {
                let mut v = Vec::new();
                t.encode(&mut v).expect("eetf encode");
            }
            None => eprintln!("note: eetf cannot decode {}", f.name),
        }
    }
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let files = load_corpus();
    assert!(!files.is_empty(), "no corpus files");
    check(&files);
    if !bench_mode {
        println!("codec bench (test mode): {} corpus files decode and re-encode byte for byte", files.len());
        return;
    }
    if let Ok(op) = std::env::var("BENCH_PROFILE") {
        profile(&files, &op, env_or("BENCH_ITERS", 1000));
        return;
    }
    if std::env::var("BENCH_CRITERION").as_deref() != Ok("0") {
        run_criterion(&files);
    }
    if std::env::var("BENCH_TABLE").as_deref() != Ok("0") {
        run_table(&files);
    }
}

/// `BENCH_PROFILE=OP`: runs one operation `iters` times per file, untimed, for a profiler
/// (`valgrind --tool=callgrind`, whose instruction counts are stable on a noisy machine).
fn profile(files: &[File], op: &str, iters: usize) {
    for f in files {
        for _ in 0..iters {
            match op {
                "decode_bytes" => drop(black_box(decode_bytes(black_box(f.bytes.clone())))),
                "decode" => drop(black_box(decode(black_box(&f.bytes)))),
                "encode" => drop(black_box(encode(black_box(&f.term)))),
                "eetf_decode" => drop(black_box(eetf::Term::decode(black_box(&f.bytes[..])))),
                "eetf_encode" => {
                    let mut v = Vec::new();
                    if let Some(t) = &f.eetf {
                        let _ = t.encode(&mut v);
                    }
                    drop(black_box(v))
                }
                _ => panic!("BENCH_PROFILE: unknown operation {op}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Part 1: criterion

fn run_criterion(files: &[File]) {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(900))
        .sample_size(20)
        .configure_from_args();
    for f in files {
        let mut g = c.benchmark_group(format!("codec/{}", f.name));
        g.throughput(Throughput::Bytes(f.bytes.len() as u64));
        g.bench_function("erlnode_decode_bytes", |b| b.iter(|| decode_bytes(black_box(f.bytes.clone()))));
        g.bench_function("erlnode_decode", |b| b.iter(|| decode(black_box(&f.bytes[..]))));
        if f.eetf.is_some() {
            g.bench_function("eetf_decode", |b| b.iter(|| eetf::Term::decode(black_box(&f.bytes[..]))));
        }
        g.bench_function("erlnode_encode", |b| b.iter(|| encode(black_box(&f.term))));
        if let Some(t) = &f.eetf {
            g.bench_function("eetf_encode", |b| {
                b.iter(|| {
                    let mut v = Vec::new();
                    let _ = black_box(t).encode(&mut v);
                    v
                })
            });
        }
        g.finish();
    }
    c.final_summary();
}

// ---------------------------------------------------------------------------------------------
// Part 2: the interleaved comparison table

/// Median ns/op of each measured operation for one file (`NaN`: not measured).
#[derive(Default)]
struct Row {
    dec_bytes: f64,
    dec_slice: f64,
    dec_eetf: f64,
    dec_beam: f64,
    enc: f64,
    enc_eetf: f64,
    enc_beam: f64,
}

fn run_table(files: &[File]) {
    let passes: usize = env_or("BENCH_PASSES", 7);
    let pass = Duration::from_millis(env_or("BENCH_PASS_MS", 150));
    let mut beam = start_beam();
    let mut rows = Vec::new();
    for f in files {
        let mut s: [Vec<f64>; 7] = Default::default();
        if let Some(Err(e)) = beam.as_mut().map(|b| b.load(&f.name, &f.path)) {
            loud(&format!("BEAM failed: {e}"));
            beam = None;
        }
        eprint!("{:>14}: {passes} passes of {} ms per column ", f.name, pass.as_millis());
        for _ in 0..passes {
            s[0].push(pass_ns(pass, || decode_bytes(f.bytes.clone())));
            s[1].push(pass_ns(pass, || decode(&f.bytes)));
            if f.eetf.is_some() {
                s[2].push(pass_ns(pass, || eetf::Term::decode(&f.bytes[..])));
            }
            s[3].push(beam_pass(&mut beam, "dec", &f.name, pass));
            s[4].push(pass_ns(pass, || encode(&f.term)));
            if let Some(t) = &f.eetf {
                s[5].push(pass_ns(pass, || {
                    let mut v = Vec::new();
                    let _ = t.encode(&mut v);
                    v
                }));
            }
            s[6].push(beam_pass(&mut beam, "enc", &f.name, pass));
            eprint!(".");
        }
        eprintln!();
        let m: Vec<f64> = s.iter().map(|v| median(v)).collect();
        rows.push(Row {
            dec_bytes: m[0],
            dec_slice: m[1],
            dec_eetf: m[2],
            dec_beam: m[3],
            enc: m[4],
            enc_eetf: m[5],
            enc_beam: m[6],
        });
    }
    let beam_info = beam.as_ref().map(|b| b.info.clone());
    drop(beam);
    let table = render(files, &rows, beam_info.as_deref(), passes, pass);
    println!("\n{table}");
    let out = target_dir().join("bench-codec.md");
    match std::fs::write(&out, &table) {
        Ok(()) => println!("(written to {})", out.display()),
        Err(e) => eprintln!("could not write {}: {e}", out.display()),
    }
}

fn mbps(size: usize, ns: f64) -> String {
    if ns.is_finite() { format!("{:.0}", size as f64 / ns * 1e3) } else { "—".into() }
}

fn ratio(ours_ns: f64, theirs_ns: f64) -> f64 {
    theirs_ns / ours_ns
}

fn size(n: usize) -> String {
    if n >= 1 << 20 { format!("{:.1} MiB", n as f64 / (1 << 20) as f64) } else { format!("{n} B") }
}

fn render(files: &[File], rows: &[Row], beam: Option<&str>, passes: usize, pass: Duration) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let beam = beam.map(|i| format!("OTP {i}")).unwrap_or_else(|| "not measured (no erl)".into());
    let _ = writeln!(
        s,
        "MB/s of encoded bytes (10^6 B/s), median of {passes} interleaved passes of {} ms; BEAM: {beam}.\n\
         Ratios are erlnode's throughput over the other's (above 1: erlnode is faster).\n",
        pass.as_millis()
    );
    let _ = writeln!(s, "### Decode\n");
    let _ = writeln!(
        s,
        "| file | size | erlnode `decode_bytes` | erlnode `decode` | eetf | BEAM `binary_to_term` | bytes / BEAM | slice / BEAM | bytes / eetf |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    let (mut r_beam, mut r_slice, mut r_eetf) = (vec![], vec![], vec![]);
    for (f, r) in files.iter().zip(rows) {
        let n = f.bytes.len();
        let (a, b, c) =
            (ratio(r.dec_bytes, r.dec_beam), ratio(r.dec_slice, r.dec_beam), ratio(r.dec_bytes, r.dec_eetf));
        r_beam.push(a);
        r_slice.push(b);
        r_eetf.push(c);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.name,
            size(n),
            mbps(n, r.dec_bytes),
            mbps(n, r.dec_slice),
            mbps(n, r.dec_eetf),
            mbps(n, r.dec_beam),
            fmt_ratio(a),
            fmt_ratio(b),
            fmt_ratio(c)
        );
    }
    let _ = writeln!(
        s,
        "| **median** | | | | | | **{}** | **{}** | **{}** |\n",
        fmt_ratio(median(&r_beam)),
        fmt_ratio(median(&r_slice)),
        fmt_ratio(median(&r_eetf))
    );
    let _ = writeln!(s, "### Encode\n");
    let _ = writeln!(
        s,
        "| file | size | erlnode `encode` | eetf | BEAM `term_to_binary` | erlnode / BEAM | erlnode / eetf |"
    );
    let _ = writeln!(s, "|---|--:|--:|--:|--:|--:|--:|");
    let (mut e_beam, mut e_eetf) = (vec![], vec![]);
    for (f, r) in files.iter().zip(rows) {
        let n = f.bytes.len();
        let (a, b) = (ratio(r.enc, r.enc_beam), ratio(r.enc, r.enc_eetf));
        e_beam.push(a);
        e_eetf.push(b);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.name,
            size(n),
            mbps(n, r.enc),
            mbps(n, r.enc_eetf),
            mbps(n, r.enc_beam),
            fmt_ratio(a),
            fmt_ratio(b)
        );
    }
    let _ = writeln!(
        s,
        "| **median** | | | | | **{}** | **{}** |\n",
        fmt_ratio(median(&e_beam)),
        fmt_ratio(median(&e_eetf))
    );
    let _ = writeln!(
        s,
        "Targets (median over the corpus): decode ≥ 2x BEAM and ≥ 3x eetf, encode ≥ 1.5x BEAM: \
         decode {} / {}, encode {}.",
        verdict(median(&r_beam), 2.0),
        verdict(median(&r_eetf), 3.0),
        verdict(median(&e_beam), 1.5)
    );
    s
}
