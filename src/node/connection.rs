//! One connection to another node, after the handshake: a reader task that parses frames and
//! applies the signals to local processes, and a writer task that batches queued signals into
//! one buffer and one write, and ticks (`erl_dist_protocol`, "Protocol between Connected Nodes";
//! `net_kernel`, `net_ticktime`).
//!
//! The writer drains everything queued before each write, so under load many messages share a
//! syscall; its buffer is reused, and each write marks the socket for the runtime's short watch
//! before sleeping (`node::spin`), so that the answered peer's next request seldom has to wake
//! a thread. The reader parses every frame a read brought in before reading again, reads into
//! pooled memory (`dist::pool`), and yields to the processes it delivered to after every
//! [`YIELD_AFTER_BYTES`] read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};
use tracing::Instrument;

use super::distribution::Distribution;
use super::transport::{DistRead, DistStream, DistWrite};
use super::{Node, Outbound};
use crate::dist::DistFlags;
use crate::dist::pool::{BLOCK_SIZE, BufferPool};
use crate::handshake::Outcome;
use crate::term::Atom;

/// Bytes the writer gathers before it writes, even if more is queued.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Free room below which the reader moves to a new buffer region before reading.
const MIN_READ: usize = 16 * 1024;
/// Bytes the reader takes in before it lets other tasks run.
const YIELD_AFTER_BYTES: usize = 256 * 1024;

/// The sending side of a connection, held in the connection table.
#[derive(Clone, Debug)]
pub(crate) struct ConnHandle {
    pub id: u64,
    pub visible: bool,
    /// The negotiated distribution flags.
    pub flags: DistFlags,
    tx: mpsc::UnboundedSender<Outbound>,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    closing: AtomicBool,
    close_reason: std::sync::Mutex<Option<String>>,
    /// Flips to `true` once, when the connection is to close.
    close: watch::Sender<bool>,
    /// Milliseconds since `epoch` at the last read, for the tick timer.
    last_read_ms: AtomicU64,
    epoch: Instant,
    /// The node's byte counters (`statistics(io)`).
    io: Arc<super::distribution::IoCounters>,
    /// Signals queued and not yet encoded by the writer (the dist port's queue, as
    /// `busy_dist_port` sees it on BEAM).
    queued: AtomicUsize,
    /// Woken after every write, and when the connection closes.
    written: Notify,
}

impl ConnHandle {
    /// Queues a signal; gives it back if the connection is closing.
    #[allow(clippy::result_large_err, reason = "the signal is given back whole, to be reported undeliverable")]
    pub(crate) fn send(&self, signal: Outbound) -> Result<(), Outbound> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(signal);
        }
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        self.tx.send(signal).map_err(|e| {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            e.0
        })
    }

    /// Signals queued and not yet encoded by the writer.
    pub(crate) fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Waits until at most `max` signals are queued for the writer, or the connection closes:
    /// the back-pressure a BEAM process meets as `busy_dist_port` (a sender that produces
    /// without bound, such as a producer serving unbounded demand, keeps to the pace of the
    /// socket).
    pub(crate) async fn until_queued_at_most(&self, max: usize) {
        loop {
            let written = self.shared.written.notified();
            if self.shared.queued.load(Ordering::Acquire) <= max || self.shared.closing.load(Ordering::Acquire) {
                return;
            }
            written.await;
        }
    }

    /// Asks both tasks to stop.
    pub(crate) fn close(&self, reason: &str) {
        self.shared.shutdown(reason);
    }
}

impl Shared {
    fn shutdown(&self, reason: &str) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            *self.close_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
        }
        self.close.send_replace(true);
        self.written.notify_waiters();
    }

    /// Resolves once the connection is to close (at once if it already is).
    async fn closed(&self) {
        let mut rx = self.close.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    fn reason(&self) -> String {
        self.close_reason.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(|| "closed".into())
    }
}

/// Starts the reader and writer of an established connection.
pub(crate) fn start(
    node: Node,
    dist: Arc<Distribution>,
    stream: DistStream,
    outcome: &Outcome,
    id: u64,
    ticktime: Duration,
    now: Instant,
) -> ConnHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        closing: AtomicBool::new(false),
        close_reason: std::sync::Mutex::new(None),
        close: watch::channel(false).0,
        last_read_ms: AtomicU64::new(0),
        epoch: now,
        io: dist.io.clone(),
        queued: AtomicUsize::new(0),
        written: Notify::new(),
    });
    let visible = outcome.flags.contains(DistFlags::PUBLISHED);
    let handle = ConnHandle { id, visible, flags: outcome.negotiated, tx, shared: shared.clone() };
    let peer = outcome.name.clone();
    let watched = super::spin::Watched::new(stream.raw_fd());
    let (read_half, write_half) = stream.into_split();
    let span = tracing::info_span!("conn", peer = %peer.as_str());

    let writer = Writer {
        wrote: watched.writes(),
        shared: shared.clone(),
        negotiated: outcome.negotiated,
        ticker: crate::dist::Ticker::new(ticktime, now).hidden_peer(!visible),
        atoms: crate::dist::OutAtomCache::new(),
    };
    let reader =
        Reader { node: node.clone(), peer: peer.clone(), negotiated: outcome.negotiated, shared: shared.clone() };
    let leftover = outcome.leftover.clone();
    {
        let (node, dist, peer, shared) = (node.clone(), dist.clone(), peer.clone(), shared.clone());
        tokio::spawn(
            async move {
                if let Err(e) = writer.run(write_half, rx).await {
                    shared.shutdown(&e);
                }
                finish(&node, &dist, &peer, id, &shared);
            }
            .instrument(span.clone()),
        );
    }
    tokio::spawn(
        async move {
            let _watched = watched;
            if let Err(e) = reader.run(read_half, leftover).await {
                shared.shutdown(&e);
            }
            finish(&node, &dist, &peer, id, &shared);
        }
        .instrument(span),
    );
    handle
}

/// Runs when either task ends: stops the other and reports the connection closed (the table
/// acts on the first report for this connection id only).
fn finish(node: &Node, dist: &Distribution, peer: &Atom, id: u64, shared: &Shared) {
    shared.shutdown("closed");
    dist.connection_closed(node, peer, id, &shared.reason());
}

struct Writer {
    /// Marks each write, for the runtime's spin before sleeping (`node::spin`).
    wrote: super::spin::WriteMark,
    shared: Arc<Shared>,
    negotiated: DistFlags,
    ticker: crate::dist::Ticker,
    /// The atoms the peer holds from our distribution headers.
    atoms: crate::dist::OutAtomCache,
}

impl Writer {
    async fn run(mut self, mut sock: DistWrite, mut rx: mpsc::UnboundedReceiver<Outbound>) -> Result<(), String> {
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
        loop {
            let now = Instant::now();
            let last_read = self.shared.epoch + Duration::from_millis(self.shared.last_read_ms.load(Ordering::Acquire));
            if last_read > self.ticker.last_read() {
                self.ticker.on_read(last_read);
            }
            let wake = match self.ticker.poll(now) {
                crate::dist::TickAction::SendTick => {
                    sock.write_all(&crate::dist::frame::TICK).await.map_err(|e| e.to_string())?;
                    sock.flush().await.map_err(|e| e.to_string())?;
                    continue;
                }
                crate::dist::TickAction::PeerTimedOut => return Err("net_tick_timeout".into()),
                crate::dist::TickAction::Wait(t) => t,
            };
            tokio::select! {
                biased;
                _ = self.shared.closed() => {
                    let _ = sock.shutdown().await;
                    return Ok(());
                }
                sig = rx.recv() => {
                    let Some(sig) = sig else { return Ok(()) };
                    self.encode(sig, &mut buf);
                    self.drain(&mut rx, &mut buf);
                    // No waiting for more: a process answering a batch of calls queues all its
                    // replies before this task runs (woken by the first, it runs once that
                    // process waits). Yielding here to gather more made tokio wake a second
                    // worker to look for work each time (0.65–0.72 futex calls per KV call at 16
                    // callers), which cost more than the segments it saved (issue 16,
                    // benches/RESULTS.md).
                    if !buf.is_empty() {
                        sock.write_all(&buf).await.map_err(|e| e.to_string())?;
                        // TLS may hold records back until flushed (a no-op on TCP)
                        sock.flush().await.map_err(|e| e.to_string())?;
                        self.shared.io.output.fetch_add(buf.len() as u64, Ordering::Relaxed);
                        self.ticker.on_wrote(Instant::now());
                        self.wrote.wrote();
                        buf.clear();
                        if buf.capacity() > 4 * WRITE_BATCH_BYTES {
                            buf.shrink_to(64 * 1024);
                        }
                    }
                    self.shared.written.notify_waiters();
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Encodes what is queued, up to [`WRITE_BATCH_BYTES`].
    fn drain(&mut self, rx: &mut mpsc::UnboundedReceiver<Outbound>, buf: &mut Vec<u8>) {
        while buf.len() < WRITE_BATCH_BYTES {
            match rx.try_recv() {
                Ok(s) => self.encode(s, buf),
                Err(_) => break,
            }
        }
    }

    fn encode(&mut self, sig: Outbound, buf: &mut Vec<u8>) {
        self.shared.queued.fetch_sub(1, Ordering::AcqRel);
        if let Err(e) = super::wire::encode_outbound(sig, self.negotiated, &mut self.atoms, buf) {
            tracing::debug!("signal not sent: {e}");
        }
    }
}

struct Reader {
    node: Node,
    peer: Atom,
    negotiated: DistFlags,
    shared: Arc<Shared>,
}

impl Reader {
    async fn run(self, mut sock: DistRead, leftover: Vec<u8>) -> Result<(), String> {
        // frames are zero-copy slices of the read buffer, and so are the binaries decoded from
        // them: the buffer's memory lives until the last message read into it is dropped, so
        // it comes from a pool that reuses it after that (see `dist::pool`)
        let mut pool = BufferPool::new();
        let mut buf = pool.region(BLOCK_SIZE);
        buf.extend_from_slice(&leftover);
        let mut frames = crate::dist::FrameDecoder::new();
        let mut receiver = crate::dist::Receiver::new(self.negotiated);
        let mut since_yield = 0usize;
        loop {
            while let Some(frame) = frames.decode(&mut buf).map_err(|e| self.violation(e))? {
                if let crate::dist::Frame::Data(bytes) = frame {
                    let dispatched =
                        receiver.handle_frame_with(bytes, |msg| super::wire::dispatch(&self.node, &self.peer, msg));
                    if let Some(result) = dispatched.map_err(|e| self.violation(e))? {
                        result.map_err(|e| self.violation(e))?;
                    }
                }
            }
            // room for the rest of the frame being read (at least MIN_READ): a new region, with
            // the part already read moved there (earlier frames keep the old one alive)
            let want = frames.frame_len(&buf).unwrap_or(0).saturating_sub(buf.len()).max(MIN_READ);
            if buf.capacity() - buf.len() < want {
                let mut next = pool.region(BLOCK_SIZE.max(buf.len() + want));
                next.extend_from_slice(&buf);
                buf = next;
            }
            // let the processes just given messages run before reading more: otherwise their
            // mailboxes fill for as long as the socket has data (tokio runs a task woken here
            // only when this one yields), and the memory of all those messages is held at once
            if since_yield >= YIELD_AFTER_BYTES {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
            tokio::select! {
                biased;
                _ = self.shared.closed() => return Ok(()),
                n = sock.read_buf(&mut buf) => {
                    let n = n.map_err(|e| e.to_string())?;
                    if n == 0 {
                        return Err("connection_closed".into());
                    }
                    since_yield += n;
                    self.shared.io.input.fetch_add(n as u64, Ordering::Relaxed);
                    let ms = self.shared.epoch.elapsed().as_millis() as u64;
                    self.shared.last_read_ms.store(ms, Ordering::Release);
                }
            }
        }
    }

    /// A protocol violation by the peer: logged once, here, and the connection closes.
    fn violation(&self, e: impl std::fmt::Display) -> String {
        tracing::warn!(peer = %self.peer.as_str(), "closing connection: {e}");
        format!("protocol error: {e}")
    }
}
