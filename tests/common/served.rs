//! `erlnode` the command, as the tests run it: [`erlnode`] for a one-shot command and
//! [`Served`] for `erlnode serve` in the background with its output captured.
//!
//! Not part of `common/mod.rs` (the bench binary includes that, and has no `erlnode` binary to
//! run): a test file that wants it adds `#[path = "common/served.rs"] mod served;` next to
//! `mod common;`.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::io::BufRead;
use std::io::BufReader;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{DEFAULT_COOKIE, hostname_short, spawn_guarded, unique_name, wait_until};

/// How long `serve` may take to come up or to stop.
const T: Duration = Duration::from_secs(20);

/// The `erlnode` binary, with this EPMD port, no cookie from the environment, and `info` logs.
pub fn erlnode(epmd_port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_erlnode"));
    c.env("ERL_EPMD_PORT", epmd_port.to_string()).env_remove("ERLANG_COOKIE").env("RUST_LOG", "info");
    c
}

/// `erlnode serve` in the background; killed on drop, and with the test process. Collects its
/// stdout and stderr lines.
pub struct Served {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The full node name.
    pub name: String,
}

impl Served {
    pub fn start(epmd_port: u16, extra: &[&str]) -> Served {
        let alive = unique_name("zed");
        let mut cmd = erlnode(epmd_port);
        cmd.args(["serve", "--sname", &alive, "--cookie", DEFAULT_COOKIE])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // killed with the test process even if it is SIGKILLed (no Drop then)
        let mut child = spawn_guarded(cmd).expect("serve starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(l);
                }
            });
        }
        let name = format!("{alive}@{}", hostname_short());
        let s = Served { child, lines, name };
        assert!(
            wait_until(T, || s.has_line(&format!("erlnode: {} is up; serving", s.name))),
            "serve did not come up: {:?}",
            s.lines()
        );
        s
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn has_line(&self, needle: &str) -> bool {
        self.lines().iter().any(|l| l.contains(needle))
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + T;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(std::time::Instant::now() < deadline, "serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
