//! What the bench targets share: timing passes, the median, and the `erl` process that times
//! BEAM's `binary_to_term`/`term_to_binary` on the same bytes (`benches/beam_codec.erl`).
#![allow(dead_code)]

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Nanoseconds per call of `op` over about `pass`: the batch size doubles until a batch takes
/// a twentieth of the pass (warm-up, not counted), then batches run until the pass is spent.
/// The same procedure as `beam_codec.erl`'s.
pub fn pass_ns<R>(pass: Duration, mut op: impl FnMut() -> R) -> f64 {
    let batch = |n: u64, op: &mut dyn FnMut() -> R| {
        let t0 = Instant::now();
        for _ in 0..n {
            black_box(op());
        }
        t0.elapsed()
    };
    let mut n = 1u64;
    while batch(n, &mut op) < pass / 20 {
        n *= 2;
    }
    let (mut spent, mut ops) = (Duration::ZERO, 0u64);
    while spent < pass {
        spent += batch(n, &mut op);
        ops += n;
    }
    spent.as_nanos() as f64 / ops as f64
}

pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 }
}

/// The `erl` to compare with, and where it was found.
pub fn find_erl() -> Option<(PathBuf, &'static str)> {
    if let Some(e) = std::env::var_os("ERL").filter(|e| !e.is_empty()) {
        return Some((PathBuf::from(e), "$ERL"));
    }
    let otp_dir = match std::env::var_os("ERLNODE_OTP_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => manifest_dir().join("target/otp"),
    };
    let harness = otp_dir.join("25/bin/erl");
    if harness.is_file() {
        return Some((harness, "the interop harness's OTP 25"));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("erl")).find(|p| p.is_file()).map(|p| (p, "PATH"))
}

/// A running `erl -noshell` executing `beam_codec:main/0`.
pub struct Beam {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub info: String,
}

impl Beam {
    pub fn start(erl: &Path) -> std::io::Result<Beam> {
        let src = manifest_dir().join("benches/beam_codec.erl");
        let src = src.to_str().expect("UTF-8 path");
        let eval = format!(
            "{{ok, M, B}} = compile:file(\"{src}\", [binary, report]), \
             {{module, M}} = code:load_binary(M, \"{src}\", B), M:main()."
        );
        // no scheduler busy-waiting: an idle BEAM must not take CPU from erlnode's passes
        let mut child = Command::new(erl)
            .args(["-noshell", "+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none", "-eval", &eval])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut beam = Beam { child, stdin, stdout, info: String::new() };
        beam.info = beam.ask("info")?;
        Ok(beam)
    }

    fn ask(&mut self, request: &str) -> std::io::Result<String> {
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other(format!("erl exited on `{request}`")));
        }
        Ok(line.trim().to_string())
    }

    /// Has BEAM read the file at `path` as `name`.
    pub fn load(&mut self, name: &str, path: &Path) -> std::io::Result<()> {
        let path = path.to_str().expect("UTF-8 path");
        match self.ask(&format!("load {name} {path}"))?.as_str() {
            "ok" => Ok(()),
            other => Err(std::io::Error::other(format!("load {name}: {other}"))),
        }
    }

    pub fn pass(&mut self, op: &str, name: &str, pass: Duration) -> std::io::Result<f64> {
        let answer = self.ask(&format!("{op} {name} {}", pass.as_millis()))?;
        answer.parse().map_err(|_| std::io::Error::other(format!("{op} {name}: {answer}")))
    }
}

impl Drop for Beam {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `erl` of [`find_erl`] running `beam_codec`, or `None` (said loudly).
pub fn start_beam() -> Option<Beam> {
    match find_erl() {
        Some((erl, from)) => match Beam::start(&erl) {
            Ok(b) => {
                eprintln!("BEAM: {} (from {from}), OTP {}", erl.display(), b.info);
                Some(b)
            }
            Err(e) => {
                loud(&format!("could not run {} (from {from}): {e}", erl.display()));
                None
            }
        },
        None => {
            loud("no erl found ($ERL, target/otp/25/bin/erl, PATH)");
            None
        }
    }
}

pub fn beam_pass(beam: &mut Option<Beam>, op: &str, name: &str, pass: Duration) -> f64 {
    let Some(b) = beam.as_mut() else { return f64::NAN };
    match b.pass(op, name, pass) {
        Ok(ns) => ns,
        Err(e) => {
            loud(&format!("BEAM failed: {e}"));
            *beam = None;
            f64::NAN
        }
    }
}

pub fn loud(msg: &str) {
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! bench: {msg}");
    eprintln!("!!! the BEAM columns are skipped (set ERL=/path/to/erl)");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
}

/// `target/`: three levels above this executable (`target/release/deps/codec-*`).
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| manifest_dir().join("target"))
}

pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() { format!("{r:.2}x") } else { "—".into() }
}

/// `"2.31x met"` or `"1.20x MISSED"` against `target`.
pub fn verdict(r: f64, target: f64) -> String {
    if !r.is_finite() {
        "not measured".into()
    } else if r >= target {
        format!("{r:.2}x met")
    } else {
        format!("{r:.2}x MISSED")
    }
}
