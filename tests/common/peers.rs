//! The ecosystem libraries as test peers: `../shared/peers/` (Phoenix.PubSub, libcluster, syn,
//! Horde, GenStage, Broadway and their deps, as sources) compiled with `build.sh` by the Elixir
//! of each provisioned OTP, once per OTP version, cached under `target/peers/<version>`.
//!
//! - [`PeerLibs::get`]: the compiled libraries for an OTP install (built on first use, at most
//!   once per process, file-locked across processes; rebuilt when the sources change).
//! - [`PeerLibs::elixir_node`]: [`NodeOpts`] for an `elixir` node that can load them
//!   (`ERL_LIBS`), as a Phoenix app's release would have them on its code path.
//!
//! `ERLNODE_PEERS_DIR` points at another copy of the sources (default: `../shared/peers`
//! beside the repository, or beside the local checkout it was cloned from: [`sources_dir`]).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::{BeamNode, Epmd, NodeOpts, Otp, elixir_string, lock, otp_dir, repo_root};

/// Compiled peer libraries for one OTP version.
#[derive(Clone, Debug)]
pub struct PeerLibs {
    dir: PathBuf,
}

/// Where the library sources are: `ERLNODE_PEERS_DIR`, else `../shared/peers` beside the
/// repository, else the same beside the checkout this one was cloned from (a clone made
/// elsewhere, `git clone . "$(mktemp -d)"`, finds them through its `origin`).
pub fn sources_dir() -> PathBuf {
    if let Ok(d) = std::env::var("ERLNODE_PEERS_DIR")
        && !d.is_empty()
    {
        return PathBuf::from(d);
    }
    let beside = |checkout: &Path| checkout.join("../shared/peers");
    let here = beside(&repo_root());
    if here.is_dir() {
        return here;
    }
    local_origin().map(|o| beside(&o)).filter(|p| p.is_dir()).unwrap_or(here)
}

/// The checkout this repository was cloned from, when its `origin` is a directory on this
/// machine.
fn local_origin() -> Option<PathBuf> {
    let out = Command::new("git")
        .args(["config", "--get", "remote.origin.url"])
        .current_dir(repo_root())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let url = String::from_utf8(out.stdout).ok()?;
    let url = url.trim();
    let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    (out.status.success() && path.is_absolute() && path.is_dir()).then_some(path)
}

/// A fingerprint of the sources: every file's path, size and modification time, and build.sh's
/// content. A copy of `shared/` with other contents gets a new build.
fn fingerprint(src: &Path) -> io::Result<String> {
    fn walk(dir: &Path, out: &mut Vec<(String, u64, i64)>) -> io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let meta = e.metadata()?;
            if meta.is_dir() {
                walk(&e.path(), out)?;
            } else {
                use std::os::unix::fs::MetadataExt;
                out.push((e.path().to_string_lossy().into_owned(), meta.len(), meta.mtime()));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(src, &mut files)?;
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (p, len, mtime) in &files {
        p.strip_prefix(src.to_string_lossy().as_ref()).unwrap_or(p).hash(&mut h);
        len.hash(&mut h);
        mtime.hash(&mut h);
    }
    std::fs::read(src.join("build.sh"))?.hash(&mut h);
    Ok(format!("{:016x} {} files", h.finish(), files.len()))
}

static BUILT: OnceLock<Mutex<HashMap<u32, Result<PathBuf, String>>>> = OnceLock::new();

impl PeerLibs {
    /// The libraries compiled for `otp`; panics if they cannot be built.
    pub fn get(otp: &Otp) -> PeerLibs {
        let map = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = lock(map);
        let r = map.entry(otp.version()).or_insert_with(|| build(otp)).clone();
        match r {
            Ok(dir) => PeerLibs { dir },
            Err(e) => panic!("{otp}: the peer libraries cannot be built: {e}"),
        }
    }

    /// The directory holding `<app>/ebin` for every library (what `ERL_LIBS` names).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Options for an `elixir` node with the libraries on its code path.
    pub fn elixir_node(&self) -> NodeOpts {
        NodeOpts::elixir().env("ERL_LIBS", self.dir.to_str().expect("UTF-8 target path"))
    }

    /// Starts an `elixir` node from `opts` (made from [`PeerLibs::elixir_node`]) and loads
    /// `erlang_interop/ecosystem_peer.ex` (`ErlnodePeer`: what the tests do as an app would).
    pub fn start_elixir(&self, otp: &Otp, epmd: &Epmd, opts: NodeOpts) -> BeamNode {
        let n = BeamNode::start(otp, epmd, opts);
        let helper = repo_root().join("erlang_interop/ecosystem_peer.ex");
        let helper = elixir_string(helper.to_str().expect("UTF-8 path"));
        if let Err(e) = n.eval(&format!("Code.compile_file({helper}) |> length()")) {
            panic!("{otp}: ecosystem_peer.ex does not load on {}: {e:?}", n.name());
        }
        n
    }
}

/// Holds an exclusive `flock` on a file while alive.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> io::Result<FileLock> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        // SAFETY: flock on a file descriptor we own; released when the file is closed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(FileLock(f))
    }
}

fn build(otp: &Otp) -> Result<PathBuf, String> {
    let src = sources_dir();
    let src = src.canonicalize().map_err(|e| {
        format!(
            "no peer library sources at {}: {e} (a clone away from `shared/`, and not cloned from a checkout beside it, names them with ERLNODE_PEERS_DIR)",
            src.display()
        )
    })?;
    let root = otp_dir().parent().map(|p| p.join("peers")).unwrap_or_else(|| repo_root().join("target/peers"));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let _lock = FileLock::acquire(&root.join(format!("{}.lock", otp.version())))
        .map_err(|e| format!("locking {}: {e}", root.display()))?;
    let out = root.join(otp.version().to_string());
    let stamp = out.join(".erlnode-peers");
    let want = fingerprint(&src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == want) {
        return Ok(out);
    }
    let _ = std::fs::remove_dir_all(&out);
    eprintln!("[harness] building the peer libraries for {otp} into {}", out.display());
    let result = Command::new("bash")
        .arg(src.join("build.sh"))
        .arg("-b")
        .arg(otp.bin_dir())
        .arg(&out)
        .env("PATH", format!("{}:{}", otp.bin_dir().display(), std::env::var("PATH").unwrap_or_default()))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run build.sh: {e}"))?;
    if !result.status.success() {
        return Err(format!(
            "build.sh failed ({}):\n{}{}",
            result.status,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    std::fs::write(&stamp, want).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(out)
}
