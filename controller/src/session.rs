//! One switch connection: handshake, then converge and follow the policy.
//!
//! A session is three tasks around one TCP connection:
//!
//! ```text
//!   socket ──► reader ──(frames)──► session loop ──(flow-mod batches)──► writer ──► socket
//!                 │                                                       ▲
//!                 └────────────(echo replies, priority queue)─────────────┘
//! ```
//!
//! The reader answers echo requests itself through the writer's priority
//! queue, so a session busy compiling or queueing a large round still
//! answers OVS's keepalives (OVS drops a controller that is silent ~5 s).
//! The reader also enforces the idle timeout. The writer enforces a write
//! timeout, so a switch that stops reading cannot wedge the session.
//!
//! The session loop is a state machine: `Handshake` (Hello, then
//! Features) and then rounds. Each round ends with one barrier; only its
//! reply confirms a policy version. Two kinds of round:
//!
//! - **full**: read back our flows (flow stats filtered by our cookie),
//!   compile the policy for this switch and converge by difference. Used
//!   on connect, after any error, and when the switch fell too far behind
//!   the policy's change log.
//! - **delta**: the switch is known to hold exactly the flows of the
//!   snapshot it last confirmed; send only what the change sets since then
//!   touch. A grant costs two flow-mods per switch, whatever the number of
//!   stored exemptions, and the session keeps no copy of the switch's
//!   flows (only an `Arc` of the confirmed snapshot, which shares its
//!   structure with the current one).
//!
//! See [`crate::reconcile`] for the order of changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use port25_rules::{compile, CookieKind, CookieSpace, Dpid, FlowAction, PolicyConfig, Snapshot};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn, Instrument};

use crate::fleet::{BlockedCounter, Fleet, RoundSummary, SwitchState, SwitchStatus};
use crate::metrics::Metrics;
use crate::ofp::bundle::{self, BundleCtrl};
use crate::ofp::v13::OFPTT_ALL;
use crate::ofp::{self, msg_type, DecodeError, FlowMod, FlowModCommand, Frame, MatchSpec, Message, OfpCodec};
use crate::reconcile::{self, Change, Installed, Plan};
use crate::server::RateLimit;

/// Tunables for every session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Flow layout.
    pub policy: PolicyConfig,
    /// How often we send an echo request.
    pub echo_interval: Duration,
    /// A switch that sends nothing (not even echo replies) for this long is dropped.
    pub idle_timeout: Duration,
    /// Hello + Features must complete within this.
    pub handshake_timeout: Duration,
    /// A flow-stats read-back or a barrier not answered within this fails
    /// the round (read-back: converge without deletions; barrier: drop the
    /// connection, the switch is not processing our messages).
    pub request_timeout: Duration,
    /// A write that cannot complete within this ends the session (the
    /// switch stopped reading).
    pub write_timeout: Duration,
    /// First retry delay after a failed round; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Cap on flows accepted in one read-back (memory bound); more makes the
    /// read-back incomplete.
    pub max_readback_flows: usize,
    /// When set, only these datapath ids are served; any other switch is
    /// refused after the features reply (and logged with its address).
    pub allow_dpids: Option<Arc<BTreeSet<Dpid>>>,
    /// Serve switches that speak only OpenFlow 1.0. They enforce the IPv4
    /// policy only: 1.0 cannot match IPv6 ports or IP fragments.
    pub allow_openflow10: bool,
    /// How often the packet and byte counters of the port-25 drop flows
    /// are read from the switch (for `/v1/switches` and metrics). `None`
    /// turns polling off.
    pub counters_interval: Option<Duration>,
    /// How often an in-sync switch is read back in full anyway, to find
    /// and repair drift (flows deleted or changed by hand, a switch that
    /// lost flows without reconnecting). Each session adds up to 10 %
    /// jitter so switches do not audit in step. `None` turns it off.
    pub audit_interval: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            policy: PolicyConfig::default(),
            echo_interval: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            max_readback_flows: 4_000_000,
            allow_dpids: None,
            allow_openflow10: true,
            counters_interval: Some(Duration::from_secs(15)),
            audit_interval: Some(Duration::from_secs(300)),
        }
    }
}

/// A live session in [`Shared::by_dpid`].
#[derive(Clone)]
pub struct Registered {
    session: u64,
    /// Cancelled to end the session.
    end: CancellationToken,
    /// When the session last received anything, in ms since [`epoch`].
    last_rx: Arc<AtomicU64>,
}

/// The zero of `Registered::last_rx`.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What every session shares.
#[derive(Clone)]
pub struct Shared {
    pub cfg: Arc<SessionConfig>,
    pub policy: watch::Receiver<Arc<Snapshot>>,
    pub fleet: Fleet,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    /// Full rounds (read-back, compile, plan, send) running at once, across
    /// all switches. Each holds a few MB while it runs and works the CPU;
    /// a thousand switches connecting together queue here instead of all
    /// at once, so memory stays bounded and the API stays responsive.
    /// Delta rounds do not take a permit.
    pub full_rounds: Arc<tokio::sync::Semaphore>,
    /// The last compiled flow set, shared by every switch it applies to.
    pub compiled: Arc<std::sync::Mutex<Option<Compiled>>>,
    /// The live session of each datapath id, and how to end it. A switch
    /// that reconnects while its old connection is still open (a network
    /// blip with no FIN) replaces it at once, instead of two sessions
    /// serving one switch until the old one's idle timeout: the old one
    /// can confirm nothing, and `?wait=applied` would wait for it. A std
    /// Mutex: held only to swap an entry, never across an await.
    pub by_dpid: Arc<std::sync::Mutex<std::collections::HashMap<Dpid, Registered>>>,
}

impl Shared {
    /// Everything a session needs, with the default limit on concurrent
    /// full rounds (twice the CPUs, at least 4).
    pub fn new(
        cfg: SessionConfig,
        policy: watch::Receiver<Arc<Snapshot>>,
        fleet: Fleet,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Shared {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Shared {
            cfg: Arc::new(cfg),
            policy,
            fleet,
            shutdown,
            metrics,
            full_rounds: Arc::new(tokio::sync::Semaphore::new((cpus * 2).max(4))),
            compiled: Arc::default(),
            by_dpid: Arc::default(),
        }
    }

    /// The flows for `dpid` under `snap`: compiled once per snapshot and
    /// shared, unless some exemption is scoped to particular switches
    /// (then per switch).
    fn desired(&self, snap: &Snapshot, dpid: Dpid) -> Arc<Vec<port25_rules::FlowSpec>> {
        // A std Mutex: held only to look up or store an Arc, never across
        // an await; the compile itself runs outside the lock.
        if let Some(c) = self.compiled.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if c.version == snap.version && (c.dpid.is_none() || c.dpid == Some(dpid)) {
                return c.flows.clone();
            }
        }
        let flows = Arc::new(compile(&self.cfg.policy, snap.exemptions.values(), dpid));
        let shared = snap.exemptions.values().all(|e| e.switches == port25_rules::Scope::All);
        *self.compiled.lock().unwrap_or_else(|p| p.into_inner()) = Some(Compiled {
            version: snap.version,
            dpid: if shared { None } else { Some(dpid) },
            flows: flows.clone(),
        });
        flows
    }
}

/// A compiled flow set and what it is valid for.
#[derive(Debug)]
pub struct Compiled {
    version: u64,
    /// `None`: valid for every switch (no scoped exemption).
    dpid: Option<Dpid>,
    flows: Arc<Vec<port25_rules::FlowSpec>>,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("controller shutting down")]
    Shutdown,
    #[error("switch closed the connection")]
    Closed,
    #[error("peer closed the connection in the middle of a message (is it an OpenFlow switch?)")]
    ClosedMidMessage,
    #[error("read failed: {0}")]
    Read(String),
    #[error("switch silent for {0:?}")]
    Idle(Duration),
    #[error("handshake not finished within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("refused: {0}")]
    Refused(String),
    #[error("corrupt stream: {0}")]
    Corrupt(DecodeError),
    #[error("write failed: {0}")]
    Write(String),
    #[error("barrier not answered within {0:?}")]
    BarrierTimeout(Duration),
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("replaced by a newer connection from the same switch (session {0})")]
    Replaced(u64),
}

/// Messages from the reader to the session loop.
enum Inbound {
    Frame(Frame),
    End(SessionEnd),
}

const DATA_CHUNK: usize = 64 * 1024;
const DATA_QUEUE: usize = 64;
const PRIO_QUEUE: usize = 32;
const INBOUND_QUEUE: usize = 256;

/// Limits on connections. Connections still in their handshake (TCP, TLS,
/// Hello, Features) hold a handshake slot, so a crowd of silent or slow
/// peers cannot take the places of real switches; a switch that finished
/// its handshake moves to a session slot, or is refused when all
/// `max_switches` are taken.
pub struct Admission {
    handshake: Option<tokio::sync::OwnedSemaphorePermit>,
    sessions: Option<Arc<tokio::sync::Semaphore>>,
    session: Option<tokio::sync::OwnedSemaphorePermit>,
    max_switches: usize,
}

impl Admission {
    /// No limits (tests that drive a session directly).
    pub fn unlimited() -> Admission {
        Admission { handshake: None, sessions: None, session: None, max_switches: usize::MAX }
    }

    /// A connection holding `handshake`, to be promoted into `sessions`.
    pub fn new(
        handshake: tokio::sync::OwnedSemaphorePermit,
        sessions: Arc<tokio::sync::Semaphore>,
        max_switches: usize,
    ) -> Admission {
        Admission { handshake: Some(handshake), sessions: Some(sessions), session: None, max_switches }
    }

    fn promote(&mut self) -> Result<(), String> {
        self.handshake = None;
        let Some(sessions) = &self.sessions else { return Ok(()) };
        match sessions.clone().try_acquire_owned() {
            Ok(p) => {
                self.session = Some(p);
                Ok(())
            }
            Err(_) => {
                Err(format!("too many switches: all {} session slots are taken (max_switches)", self.max_switches))
            }
        }
    }
}

/// A switch connection: plain TCP or TLS.
pub trait SwitchStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> SwitchStream for T {}

/// Run one switch connection to its end. `stream` is a connected TCP or
/// TLS stream (Nagle already off). Never panics on input; every end is
/// logged once.
pub async fn run<S: SwitchStream>(stream: S, peer: SocketAddr, id: u64, shared: Shared, admission: Admission) {
    let span = tracing::info_span!("switch", session = id, %peer, dpid = tracing::field::Empty);
    async move {
        shared.fleet.put(SwitchStatus {
            session: id,
            dpid: None,
            openflow_version: None,
            peer,
            connected_since: OffsetDateTime::now_utc(),
            state: SwitchState::Handshaking,
            flow_count: 0,
            in_sync: false,
            policy_version: 0,
            ipv6_enforced: false,
            fragments_enforced: false,
            bundles: None,
            blocked: Vec::new(),
            blocked_at: None,
            last_round: None,
            last_error: None,
            last_error_at: None,
            overridden_by: Vec::new(),
        });
        let fleet = shared.fleet.clone();
        let end = drive(stream, id, shared, admission).await;
        match &end {
            SessionEnd::Shutdown => debug!("session closed for shutdown"),
            SessionEnd::Refused(why) => {
                warn!(reason = %why, "switch refused");
                fleet.refuse(id, why.clone(), OffsetDateTime::now_utc());
                // Keep refused switches visible for a while, then forget them.
                let fleet = fleet.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    fleet.remove(id);
                });
                return;
            }
            SessionEnd::Closed => info!("switch disconnected"),
            SessionEnd::Replaced(_) => info!(reason = %end, "switch session ended"),
            other => warn!(reason = %other, "switch session ended"),
        }
        fleet.remove(id);
    }
    .instrument(span)
    .await
}

async fn drive<S: SwitchStream>(stream: S, id: u64, shared: Shared, admission: Admission) -> SessionEnd {
    let (rd, wr) = tokio::io::split(stream);
    let (prio_tx, prio_rx) = mpsc::channel::<Bytes>(PRIO_QUEUE);
    let (data_tx, data_rx) = mpsc::channel::<Bytes>(DATA_QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
    let cancel = shared.shutdown.child_token();
    let last_rx = Arc::new(AtomicU64::new(now_ms()));
    let reader = tokio::spawn(
        read_loop(
            FramedRead::new(rd, OfpCodec::new()),
            prio_tx,
            in_tx,
            shared.cfg.idle_timeout,
            cancel.clone(),
            Arc::clone(&last_rx),
        )
        .in_current_span(),
    );
    let mut writer = tokio::spawn(write_loop(wr, prio_rx, data_rx, shared.cfg.write_timeout).in_current_span());
    let mut session = Session::new(id, shared, data_tx, admission);
    session.last_rx = last_rx;
    let end = session.run(in_rx).await;
    // Let queued bytes (e.g. a HELLO_FAILED error) go out before closing.
    drop(session);
    cancel.cancel();
    let written = timeout(Duration::from_secs(1), &mut writer).await;
    writer.abort();
    reader.abort();
    match (end, written) {
        // The session saw only that the writer went away; the writer
        // knows why (e.g. the switch stopped reading).
        (SessionEnd::Write(_), Ok(Ok(Err(why)))) => SessionEnd::Write(why),
        (end, _) => end,
    }
}

async fn read_loop<S: SwitchStream>(
    mut rd: FramedRead<ReadHalf<S>, OfpCodec>,
    prio: mpsc::Sender<Bytes>,
    tx: mpsc::Sender<Inbound>,
    idle: Duration,
    cancel: CancellationToken,
    last_rx: Arc<AtomicU64>,
) {
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            n = timeout(idle, rd.next()) => n,
        };
        if matches!(next, Ok(Some(Ok(_)))) {
            last_rx.store(now_ms(), Ordering::Relaxed);
        }
        let item = match next {
            Err(_) => Inbound::End(SessionEnd::Idle(idle)),
            Ok(None) => Inbound::End(SessionEnd::Closed),
            // tokio-util's framing says "bytes remaining on stream" when
            // the peer closes with part of a message unread.
            Ok(Some(Err(DecodeError::Io(e)))) if e.to_string().contains("bytes remaining") => {
                Inbound::End(SessionEnd::ClosedMidMessage)
            }
            Ok(Some(Err(DecodeError::Io(e)))) => Inbound::End(SessionEnd::Read(e.to_string())),
            Ok(Some(Err(e))) => Inbound::End(SessionEnd::Corrupt(e)),
            Ok(Some(Ok(frame))) if frame.msg_type == msg_type::ECHO_REQUEST => {
                let mut buf = BytesMut::with_capacity(8 + frame.body.len());
                ofp::encode_echo_reply(&mut buf, frame.version, frame.xid, &frame.body);
                // A full priority queue means the switch is not reading
                // our replies either; dropping one reply changes nothing.
                let _ = prio.try_send(buf.freeze());
                continue;
            }
            Ok(Some(Ok(frame))) => Inbound::Frame(frame),
        };
        let end = matches!(item, Inbound::End(_));
        if tx.send(item).await.is_err() || end {
            return;
        }
    }
}

async fn write_loop<S: SwitchStream>(
    mut wr: WriteHalf<S>,
    mut prio: mpsc::Receiver<Bytes>,
    mut data: mpsc::Receiver<Bytes>,
    write_timeout: Duration,
) -> Result<(), String> {
    loop {
        let buf = tokio::select! {
            biased;
            Some(b) = prio.recv() => b,
            Some(b) = data.recv() => b,
            else => break,
        };
        match timeout(write_timeout, wr.write_all(&buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("switch did not read for {write_timeout:?}")),
        }
    }
    let _ = wr.shutdown().await;
    Ok(())
}

/// The round in progress.
enum Round {
    /// Collecting flow-stats replies.
    ReadBack {
        xid: u32,
        deadline: Instant,
        flows: Vec<Installed>,
        truncated: bool,
        /// `Session::drift` when the read-back was sent.
        drift: u64,
    },
    /// Changes sent; waiting for the barrier reply.
    Apply(Applying),
}

struct Applying {
    /// `full` (after a read-back) or `delta`.
    kind: &'static str,
    barrier_xid: u32,
    deadline: Instant,
    /// The snapshot the switch holds once this round is confirmed.
    snapshot: Arc<Snapshot>,
    plan: Plan,
    /// Whether the plan started from a complete picture of the switch.
    complete: bool,
    /// Our flows in the switch after the round, if every change is accepted.
    flows_after: usize,
    /// xid of the first change; change `i` has xid `first_xid + i`.
    first_xid: u32,
    errors: Vec<String>,
    /// Indices into `plan.changes` the switch refused.
    refused: Vec<usize>,
    started: Instant,
    /// Set when the changes went in a bundle.
    bundle: Option<BundleRound>,
    /// `Session::drift` when what this round starts from was read (the
    /// read-back of a full round, the confirmed model of a delta round).
    drift: u64,
}

/// A bundle in flight.
struct BundleRound {
    id: u32,
    open_xid: u32,
    commit_xid: u32,
    /// The commit reply arrived: every change took effect at once.
    committed: bool,
    /// The switch refused the bundle (open or commit): nothing took effect.
    failed: bool,
}

/// Rounds with more changes than this go in a bundle. A grant or revoke
/// (two flow-mods) goes plain, which is faster for one small change.
const BUNDLE_MIN_CHANGES: usize = 4;
const BUNDLE_FLAGS: u16 = bundle::BUNDLE_ATOMIC | bundle::BUNDLE_ORDERED;

struct Session {
    id: u64,
    shared: Shared,
    data_tx: mpsc::Sender<Bytes>,
    next_xid: u32,
    dpid: Option<Dpid>,
    /// The connection's place: a handshake slot until the handshake is
    /// done, then a session slot.
    admission: Admission,
    /// The negotiated wire version (`OFP13` or `OFP10`).
    version: u8,
    /// The snapshot whose flows the switch is known to hold exactly (the
    /// last round was complete and every change accepted); `None` means
    /// the next round must read the switch back.
    synced: Option<Arc<Snapshot>>,
    /// Our flows in the switch as of the last finished round.
    flow_count: usize,
    round: Option<Round>,
    /// The policy changed (or a retry is due) while a round was running.
    pending: bool,
    retry_at: Option<Instant>,
    /// Rate limit for warnings a switch can trigger at will.
    noisy: RateLimit,
    /// Lines about refused flow-mods: a full table refuses thousands in
    /// one round; each is counted in metrics and kept for the round's
    /// summary, and at most a few per second are logged.
    refusals: RateLimit,
    /// When the next full read-back of an in-sync switch is due.
    audit_at: Option<Instant>,
    /// When the drop-flow counters are next polled.
    counters_at: Option<Instant>,
    /// A full round is due but waits for a permit.
    want_full: bool,
    /// The permit of the full round in progress.
    full_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The counters poll in flight: its xid and what has arrived.
    counters: Option<(u32, Vec<BlockedCounter>)>,
    /// A scan of our table for foreign flows that override the drops is
    /// due (after each clean full round: connect and every audit).
    /// When the scan is due: spread over 16 s by session id, so a fleet
    /// connecting at once does not list every table at once.
    scan_after: Option<Instant>,
    /// The scan in flight: its xid, what it found so far (at most 32),
    /// flows seen, and how many more it found past those 32.
    scan: Option<(u32, Vec<String>, usize, usize)>,
    backoff: Duration,
    /// Whether the switch accepts bundles: unknown until the first try;
    /// `Some(false)` after it refused one, then rounds use ordered
    /// flow-mods and a barrier instead.
    bundles: Option<bool>,
    next_bundle: u32,
    /// A bundle was refused as a whole (a full table, say): send rounds as
    /// ordered flow-mods, which put in everything the switch accepts,
    /// until one finishes clean; then bundles again.
    plain_next: bool,
    /// (cookie, priority) of the base flows the last finished round
    /// deleted itself: their flow-removed reports are not alarms.
    own_deletes: BTreeMap<(u8, u64, u16), Instant>,
    /// Counts base-flow removals reported by the switch that were not our
    /// own deletes. A round that started before the latest one cannot
    /// confirm the switch: it may have been planned from a table that
    /// still held the flow.
    drift: u64,
    /// Shared with the reader: when anything last arrived.
    last_rx: Arc<AtomicU64>,
    /// When a reported base-flow removal last started a repair, and the
    /// pause before the next one if removals keep coming.
    last_repair: Option<Instant>,
    repair_backoff: Duration,
}

impl Session {
    fn new(id: u64, shared: Shared, data_tx: mpsc::Sender<Bytes>, admission: Admission) -> Session {
        let backoff = shared.cfg.retry_min;
        Session {
            id,
            shared,
            data_tx,
            next_xid: 1,
            dpid: None,
            version: ofp::OFP13,
            admission,
            synced: None,
            flow_count: 0,
            round: None,
            pending: false,
            retry_at: None,
            noisy: RateLimit::new(5),
            refusals: RateLimit::new(5),
            audit_at: None,
            counters_at: None,
            counters: None,
            scan_after: None,
            scan: None,
            want_full: false,
            full_permit: None,
            backoff,
            bundles: None,
            next_bundle: 1,
            plain_next: false,
            own_deletes: BTreeMap::new(),
            drift: 0,
            last_rx: Arc::new(AtomicU64::new(now_ms())),
            last_repair: None,
            repair_backoff: Duration::ZERO,
        }
    }

    fn xid(&mut self) -> u32 {
        let x = self.next_xid;
        // xid 0 is avoided: some switches use it for unsolicited messages.
        self.next_xid = self.next_xid.checked_add(1).unwrap_or(1);
        x
    }

    async fn send(&self, buf: BytesMut) -> Result<(), SessionEnd> {
        if buf.is_empty() {
            return Ok(());
        }
        self.data_tx.send(buf.freeze()).await.map_err(|_| SessionEnd::Write("writer gone".into()))
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Inbound>) -> SessionEnd {
        let cfg = self.shared.cfg.clone();
        let deadline = Instant::now() + cfg.handshake_timeout;
        match self.handshake(&mut rx, deadline).await {
            Ok(()) => {}
            Err(e) => return e,
        }
        // Handshake done: give back the handshake slot and take a session
        // slot, or refuse if every one is taken.
        if let Err(why) = self.admission.promote() {
            return SessionEnd::Refused(why);
        }
        // Replace an older connection of this switch only if it has gone
        // quiet (missed an echo round): a network blip that left it open.
        // Two live connections (two controller targets on this daemon, an
        // impostor claiming a switch's dpid) are both served as before:
        // evicting would make the pair flap, or let the impostor cut off
        // the real switch.
        let replaced = CancellationToken::new();
        let me = Registered { session: self.id, end: replaced.clone(), last_rx: Arc::clone(&self.last_rx) };
        let quiet_after = cfg_echo_ms(&self.shared.cfg);
        if let Some(dpid) = self.dpid {
            let mut g = self.shared.by_dpid.lock().unwrap_or_else(|p| p.into_inner());
            match g.get(&dpid).cloned() {
                Some(old) if old.session != self.id => {
                    let silent_ms = now_ms().saturating_sub(old.last_rx.load(Ordering::Relaxed));
                    if silent_ms > quiet_after {
                        info!(
                            previous_session = old.session,
                            silent_ms, "switch reconnected; closing its previous, silent connection"
                        );
                        old.end.cancel();
                        g.insert(dpid, me);
                    } else {
                        warn!(
                            other_session = old.session,
                            "a second live connection from the same datapath id; serving both"
                        );
                    }
                }
                _ => {
                    g.insert(dpid, me);
                }
            }
        }
        let end = self.serve(rx, replaced).await;
        if let Some(dpid) = self.dpid {
            let mut g = self.shared.by_dpid.lock().unwrap_or_else(|p| p.into_inner());
            if g.get(&dpid).is_some_and(|r| r.session == self.id) {
                g.remove(&dpid);
            }
        }
        end
    }

    /// After the handshake: rounds until the connection ends.
    async fn serve(&mut self, mut rx: mpsc::Receiver<Inbound>, replaced: CancellationToken) -> SessionEnd {
        let cfg = self.shared.cfg.clone();
        let mut policy = self.shared.policy.clone();
        policy.mark_changed(); // the first round starts at once
        let mut echo = tokio::time::interval(cfg.echo_interval);
        echo.tick().await;
        loop {
            let round_deadline = match &self.round {
                Some(Round::ReadBack { deadline, .. }) => Some(*deadline),
                Some(Round::Apply(a)) => Some(a.deadline),
                None => None,
            };
            let retry_at = self.retry_at;
            let audit_at = self.audit_at;
            let counters_at = self.counters_at;
            let scan_after = self.scan_after;
            let wait_permit = self.want_full && self.full_permit.is_none();
            let permits = self.shared.full_rounds.clone();
            let shutdown = self.shared.shutdown.clone();
            let res = tokio::select! {
                _ = shutdown.cancelled() => return SessionEnd::Shutdown,
                _ = replaced.cancelled() => {
                    let by = self.dpid.and_then(|d| {
                        self.shared.by_dpid.lock().unwrap_or_else(|p| p.into_inner()).get(&d).map(|r| r.session)
                    });
                    return SessionEnd::Replaced(by.unwrap_or(0));
                }
                msg = rx.recv() => match msg {
                    Some(Inbound::Frame(f)) => self.on_frame(f).await,
                    Some(Inbound::End(e)) => return e,
                    None => return SessionEnd::Closed,
                },
                changed = policy.changed() => {
                    if changed.is_err() {
                        // The policy publisher is gone: the daemon is stopping.
                        return SessionEnd::Shutdown;
                    }
                    self.pending = true;
                    Ok(())
                }
                _ = echo.tick() => {
                    let mut b = BytesMut::new();
                    let x = self.xid();
                    ofp::encode_echo_request(&mut b, self.version, x, b"port25");
                    self.send(b).await
                }
                _ = sleep_until(round_deadline.unwrap_or_else(far_future)), if round_deadline.is_some() => {
                    self.on_round_timeout().await
                }
                _ = sleep_until(retry_at.unwrap_or_else(far_future)), if retry_at.is_some() => {
                    self.retry_at = None;
                    self.pending = true;
                    Ok(())
                }
                permit = permits.acquire_owned(), if wait_permit => {
                    // Closed only if the daemon is going away; go on without.
                    self.full_permit = permit.ok();
                    self.want_full = false;
                    self.pending = true;
                    Ok(())
                }
                _ = sleep_until(counters_at.unwrap_or_else(far_future)), if counters_at.is_some() => {
                    self.poll_counters().await
                }
                // The scan itself starts below, once no round is running.
                _ = sleep_until(scan_after.unwrap_or_else(far_future)), if scan_after.is_some() => Ok(()),
                _ = sleep_until(audit_at.unwrap_or_else(far_future)), if audit_at.is_some() => {
                    // Forget what we believe the switch holds: the next
                    // round reads it back and repairs any drift.
                    self.audit_at = None;
                    if self.synced.is_some() {
                        debug!("periodic audit: reading the switch back");
                        self.synced = None;
                        self.pending = true;
                    }
                    Ok(())
                }
            };
            if let Err(e) = res {
                return e;
            }
            if self.round.is_none() && self.pending {
                self.pending = false;
                if let Err(e) = self.start_round(&mut policy).await {
                    return e;
                }
            }
            if self.scan_after.is_some_and(|t| Instant::now() >= t) && self.scan.is_none() && self.round.is_none() {
                self.scan_after = None;
                if let Err(e) = self.scan_foreign().await {
                    return e;
                }
            }
        }
    }

    async fn handshake(&mut self, rx: &mut mpsc::Receiver<Inbound>, deadline: Instant) -> Result<(), SessionEnd> {
        let cfg = self.shared.cfg.clone();
        let mut b = BytesMut::new();
        let x = self.xid();
        let ours: &[u8] = if cfg.allow_openflow10 { &[ofp::OFP10, ofp::OFP13] } else { &[ofp::OFP13] };
        ofp::encode_hello(&mut b, x, ours);
        self.send(b).await?;
        // 1. The switch's Hello.
        let frame = self.recv_until(rx, deadline, cfg.handshake_timeout).await?;
        let hello = match ofp::decode_message(&frame) {
            Ok(Message::Hello(h)) => h,
            Ok(_) => {
                return Err(SessionEnd::Protocol(format!("expected HELLO first, got message type {}", frame.msg_type)))
            }
            Err(e) => return Err(SessionEnd::Corrupt(e)),
        };
        // The highest version both speak: from the bitmaps when the switch
        // sent one, otherwise the lower of the two header versions.
        let negotiated = match hello.versions {
            Some(bitmap) => ours.iter().rev().copied().find(|v| bitmap & (1u32 << v) != 0),
            None => ours.iter().rev().copied().find(|v| *v <= frame.version),
        };
        if let Some(v) = negotiated {
            self.version = v;
        }
        if negotiated.is_none() {
            let offered = match hello.versions {
                Some(bm) => {
                    (0..32u8).filter(|v| bm & (1u32 << v) != 0).map(version_name).collect::<Vec<_>>().join(", ")
                }
                None => format!("up to {}", version_name(frame.version)),
            };
            let wanted =
                if cfg.allow_openflow10 { "1.3 or 1.0" } else { "1.3 (OpenFlow 1.0 is turned off: allow_openflow10)" };
            let why = format!("switch offers OpenFlow {offered}; port25d requires {wanted}");
            let mut b = BytesMut::new();
            ofp::encode_error(
                &mut b,
                frame.version.min(ofp::OFP13),
                frame.xid,
                ofp::OFPET_HELLO_FAILED,
                ofp::OFPHFC_INCOMPATIBLE,
                why.as_bytes(),
            );
            let _ = self.send(b).await;
            return Err(SessionEnd::Refused(why));
        }
        // 2. Features: the datapath id.
        if self.version == ofp::OFP10 && cfg.policy.forward != port25_rules::Forward::Normal {
            return Err(SessionEnd::Refused(
                "switch speaks only OpenFlow 1.0, which has no goto_table; policy.forward must be \"normal\" to serve it"
                    .into(),
            ));
        }
        if self.version == ofp::OFP10 && cfg.policy.table != 0 {
            return Err(SessionEnd::Refused(format!(
                "switch speaks only OpenFlow 1.0; port25d can serve it only with policy.table = 0 (is {})",
                cfg.policy.table
            )));
        }
        let mut b = BytesMut::new();
        let fx = self.xid();
        if self.version == ofp::OFP10 {
            ofp::v10::encode_features_request(&mut b, fx);
        } else {
            ofp::encode_features_request(&mut b, fx);
        }
        self.send(b).await?;
        loop {
            let frame = self.recv_until(rx, deadline, cfg.handshake_timeout).await?;
            match ofp::decode_message(&frame) {
                Ok(Message::FeaturesReply(f)) => {
                    let dpid = Dpid(f.datapath_id);
                    tracing::Span::current().record("dpid", tracing::field::display(dpid));
                    self.shared.fleet.update(self.id, |s| s.dpid = Some(dpid));
                    if let Some(allow) = &cfg.allow_dpids {
                        if !allow.contains(&dpid) {
                            return Err(SessionEnd::Refused(format!(
                                "datapath id {dpid} is not on the allowlist (allow_dpids)"
                            )));
                        }
                    }
                    self.dpid = Some(dpid);
                    let v13 = self.version == ofp::OFP13;
                    if v13 {
                        info!(n_tables = f.n_tables, "switch connected (OpenFlow 1.3)");
                    } else {
                        // Said loudly, every time: this switch does not
                        // enforce the whole policy.
                        warn!(
                            n_tables = f.n_tables,
                            "switch connected with OpenFlow 1.0: enforcing IPv4 only. IPv6 port 25 and fragmented \
                             TCP are NOT blocked on this switch (OpenFlow 1.0 cannot match them)"
                        );
                    }
                    self.shared.fleet.update(self.id, |s| {
                        s.dpid = Some(dpid);
                        s.openflow_version = Some(version_name(self.version));
                        s.state = SwitchState::Syncing;
                        s.ipv6_enforced = v13;
                        s.fragments_enforced = v13;
                        if !v13 {
                            s.bundles = Some(false);
                        }
                    });
                    if !v13 {
                        self.bundles = Some(false);
                    }
                    return Ok(());
                }
                Ok(Message::Error(e)) => {
                    return Err(SessionEnd::Protocol(format!(
                        "switch answered the handshake with an error: {}",
                        describe_error_for(self.version, e.err_type, e.code)
                    )))
                }
                // Port status and the like may arrive before the reply.
                Ok(other) => debug!(msg = ?kind(&other), "ignored during handshake"),
                Err(e) => debug!(error = %e, "malformed message during handshake skipped"),
            }
        }
    }

    async fn recv_until(
        &mut self,
        rx: &mut mpsc::Receiver<Inbound>,
        deadline: Instant,
        limit: Duration,
    ) -> Result<Frame, SessionEnd> {
        let shutdown = self.shared.shutdown.clone();
        tokio::select! {
            _ = shutdown.cancelled() => Err(SessionEnd::Shutdown),
            _ = sleep_until(deadline) => Err(SessionEnd::HandshakeTimeout(limit)),
            m = rx.recv() => match m {
                Some(Inbound::Frame(f)) => Ok(f),
                Some(Inbound::End(e)) => Err(e),
                None => Err(SessionEnd::Closed),
            }
        }
    }

    /// Start a round for the current policy.
    async fn start_round(&mut self, policy: &mut watch::Receiver<Arc<Snapshot>>) -> Result<(), SessionEnd> {
        let current = policy.borrow_and_update().clone();
        if let (Some(synced), Some(dpid)) = (&self.synced, self.dpid) {
            if let Some(changes) = current.changes_since(synced.version) {
                let started = Instant::now();
                let v10 = self.version == ofp::OFP10;
                let (plan, delta) =
                    reconcile::plan_delta(&self.shared.cfg.policy, synced, &current, &changes, dpid, |f| {
                        !v10 || ofp::v10::match_to_v10(&f.matcher).is_ok()
                    });
                let flows_after = usize::try_from(self.flow_count as i64 + delta).unwrap_or(0);
                let drift = self.drift;
                return self.send_round("delta", plan, true, current, flows_after, (started, drift)).await;
            }
            debug!(from = synced.version, to = current.version, "change log does not reach back; full round");
        }
        if self.full_permit.is_none() {
            self.want_full = true;
            self.set_state(SwitchState::Syncing, false);
            return Ok(());
        }
        {
            let cfg = self.shared.cfg.policy;
            let mut b = BytesMut::new();
            let xid = self.xid();
            if self.version == ofp::OFP10 {
                // 1.0 cannot filter by cookie: everything comes back, and
                // only flows carrying our prefix are kept (below).
                ofp::v10::encode_flow_stats_request(&mut b, xid, cfg.table);
            } else {
                // Every table, not only ours: flows of ours left in
                // another table (policy.table changed) would otherwise
                // stay, with their allows, after a revocation.
                ofp::encode_flow_stats_request(
                    &mut b,
                    xid,
                    OFPTT_ALL,
                    cfg.cookies.filter_value(),
                    cfg.cookies.filter_mask(),
                );
            }
            self.send(b).await?;
            // The read-back answers for the current policy (borrowed
            // above); changes after this point trigger another round.
            self.round = Some(Round::ReadBack {
                xid,
                deadline: Instant::now() + self.shared.cfg.request_timeout,
                flows: Vec::new(),
                truncated: false,
                drift: self.drift,
            });
            self.set_state(SwitchState::Syncing, false);
            Ok(())
        }
    }

    /// Full round, second half: converge from what was read back.
    async fn converge_from(&mut self, base: Vec<Installed>, complete: bool, drift: u64) -> Result<(), SessionEnd> {
        let Some(dpid) = self.dpid else {
            return Err(SessionEnd::Protocol("round before the datapath id is known".into()));
        };
        let started = Instant::now();
        let snap = self.shared.policy.borrow().clone();
        let mut desired = self.shared.desired(&snap, dpid);
        if self.version == ofp::OFP10 {
            let mut v = (*desired).clone();
            v.retain(|f| ofp::v10::match_to_v10(&f.matcher).is_ok());
            desired = Arc::new(v);
        }
        let plan = reconcile::plan(&base, &desired, complete);
        drop(base);
        if plan.deletions_withheld > 0 {
            warn!(withheld = plan.deletions_withheld, "read-back incomplete: stale flows left in place this round");
        }
        let flows_after = desired.len() + plan.deletions_withheld;
        drop(desired);
        self.send_round("full", plan, complete, snap, flows_after, (started, drift)).await
    }

    /// Send a plan's changes, then a barrier.
    async fn send_round(
        &mut self,
        kind: &'static str,
        plan: Plan,
        complete: bool,
        snap: Arc<Snapshot>,
        flows_after: usize,
        (started, drift): (Instant, u64),
    ) -> Result<(), SessionEnd> {
        let mut buf = BytesMut::with_capacity(DATA_CHUNK + 512);
        // Larger rounds go in one atomic bundle: the switch moves from the
        // old table to the new in one step, so no packet sees a half-applied
        // policy (and OVS applies a bundle several times faster).
        let use_bundle = plan.changes.len() > BUNDLE_MIN_CHANGES && self.bundles != Some(false) && !self.plain_next;
        let bundle = if use_bundle {
            let id = self.next_bundle;
            self.next_bundle = self.next_bundle.wrapping_add(1);
            let open_xid = self.xid();
            bundle::encode_bundle_ctrl(&mut buf, open_xid, id, BundleCtrl::OpenRequest, BUNDLE_FLAGS);
            Some(BundleRound { id, open_xid, commit_xid: 0, committed: false, failed: false })
        } else {
            None
        };
        let first_xid = self.next_xid;
        // A copy (CookieSpace is Copy): self is borrowed mutably below.
        let cookies = self.shared.cfg.policy.cookies;
        let mut inner = BytesMut::with_capacity(512);
        for (n, change) in plan.changes.iter().enumerate() {
            if n % 1024 == 1023 {
                // Let other sessions and the API run between batches.
                tokio::task::yield_now().await;
            }
            let xid = self.xid();
            match &bundle {
                None if self.version == ofp::OFP10 => encode_change_v10(&mut buf, xid, change),
                None => encode_change(&mut buf, xid, change, &cookies),
                Some(b) => {
                    inner.clear();
                    encode_change(&mut inner, xid, change, &cookies);
                    if let Err(e) = bundle::encode_bundle_add(&mut buf, b.id, BUNDLE_FLAGS, &inner) {
                        error!(error = %e, change = %change.describe(), "change not encoded into the bundle");
                    }
                }
            }
            if buf.len() >= DATA_CHUNK {
                let full = std::mem::replace(&mut buf, BytesMut::with_capacity(DATA_CHUNK + 512));
                self.send(full).await?;
            }
        }
        let bundle = match bundle {
            Some(mut b) => {
                b.commit_xid = self.xid();
                bundle::encode_bundle_ctrl(&mut buf, b.commit_xid, b.id, BundleCtrl::CommitRequest, BUNDLE_FLAGS);
                Some(b)
            }
            None => None,
        };
        let barrier_xid = self.xid();
        if self.version == ofp::OFP10 {
            ofp::v10::encode_barrier_request(&mut buf, barrier_xid);
        } else {
            ofp::encode_barrier_request(&mut buf, barrier_xid);
        }
        self.send(buf).await?;
        if !plan.changes.is_empty() {
            debug!(
                adds = plan.adds(),
                deletes = plan.deletes(),
                kept = plan.kept,
                version = snap.version,
                "changes sent"
            );
        }
        self.round = Some(Round::Apply(Applying {
            kind,
            barrier_xid,
            deadline: Instant::now() + self.shared.cfg.request_timeout,
            snapshot: snap,
            plan,
            complete,
            flows_after,
            first_xid,
            errors: Vec::new(),
            refused: Vec::new(),
            started,
            bundle,
            drift,
        }));
        Ok(())
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<(), SessionEnd> {
        if frame.version != self.version {
            // A message in another version than negotiated would be read
            // with that version's meanings (1.0 type 19 is a barrier reply,
            // 1.3 type 19 a multipart reply): skip it.
            if let Some(suppressed) = self.noisy.allow() {
                warn!(
                    version = frame.version,
                    negotiated = self.version,
                    msg_type = frame.msg_type,
                    suppressed,
                    "message in another OpenFlow version skipped"
                );
            }
            return Ok(());
        }
        let msg = match ofp::decode_message(&frame) {
            Ok(m) => m,
            Err(e) => {
                // One malformed message: if it was our read-back, the
                // read-back is incomplete; otherwise skip it.
                if let Some(suppressed) = self.noisy.allow() {
                    warn!(error = %e, msg_type = frame.msg_type, xid = frame.xid, suppressed, "malformed message skipped");
                }
                if let Some(Round::ReadBack { xid, truncated, .. }) = &mut self.round {
                    if *xid == frame.xid {
                        *truncated = true;
                        return self.finish_readback().await;
                    }
                }
                return Ok(());
            }
        };
        match msg {
            Message::MultipartReply(mp) if self.counters.as_ref().is_some_and(|(x, _)| *x == frame.xid) => {
                self.on_counters(mp);
                Ok(())
            }
            Message::MultipartReply(mp) if self.scan.as_ref().is_some_and(|(x, ..)| *x == frame.xid) => {
                self.on_scan(mp);
                Ok(())
            }
            Message::MultipartReply(mp) => {
                let max = self.shared.cfg.max_readback_flows;
                let cfg = self.shared.cfg.policy;
                let Some(Round::ReadBack { xid, flows, truncated, .. }) = &mut self.round else {
                    debug!(xid = frame.xid, "unexpected multipart reply skipped");
                    return Ok(());
                };
                if *xid != frame.xid {
                    debug!(xid = frame.xid, "multipart reply for another request skipped");
                    return Ok(());
                }
                // Both versions' records in one shape. 1.3 switches filter
                // by cookie; 1.0 cannot, so everything comes back. Either
                // way only flows with our prefix are kept: a foreign flow
                // is never ours to touch. 1.3 reads every table (ours in
                // another table are stale); 1.0 reads and serves table 0.
                let v10 = self.version == ofp::OFP10;
                let records: Vec<Installed> = match mp.body {
                    ofp::MultipartBody::Flow(records) => records
                        .into_iter()
                        .map(|r| Installed {
                            table: r.table_id,
                            priority: r.priority,
                            cookie: r.cookie,
                            matcher: r.matcher,
                            raw_match: Some(r.raw_match),
                            action: r.action,
                        })
                        .collect(),
                    ofp::MultipartBody::Flow10(records) => records
                        .into_iter()
                        .map(|r| Installed {
                            table: r.table_id,
                            priority: r.priority,
                            cookie: r.cookie,
                            matcher: r.matcher,
                            raw_match: Some(r.raw_match),
                            action: r.action,
                        })
                        .collect(),
                    _ => {
                        *truncated = true;
                        Vec::new()
                    }
                };
                for r in records.into_iter().filter(|r| cfg.cookies.owns(r.cookie) && (!v10 || r.table == cfg.table)) {
                    if flows.len() >= max {
                        *truncated = true;
                        break;
                    }
                    flows.push(r);
                }
                if !mp.more || *truncated {
                    return self.finish_readback().await;
                }
                Ok(())
            }
            Message::BarrierReply => {
                let done = matches!(&self.round, Some(Round::Apply(a)) if a.barrier_xid == frame.xid);
                if done {
                    self.finish_apply();
                }
                Ok(())
            }
            Message::Error(e) => self.on_error(frame.xid, e.err_type, e.code, &e.data).await,
            Message::FlowRemoved(fr) => {
                self.on_flow_removed(fr);
                Ok(())
            }
            Message::PortStatus { reason, port_no, name } => {
                debug!(reason, port_no, %name, "port status");
                Ok(())
            }
            Message::EchoReply(_) => Ok(()),
            Message::Experimenter { experimenter, exp_type, data } => {
                if let Some(reply) = bundle::decode_bundle_ctrl(experimenter, exp_type, &data) {
                    if let Some(Round::Apply(Applying { bundle: Some(b), .. })) = &mut self.round {
                        if b.id == reply.bundle_id && reply.ctrl == BundleCtrl::CommitReply {
                            b.committed = true;
                        }
                    }
                    return Ok(());
                }
                debug!(experimenter = format_args!("0x{experimenter:08x}"), exp_type, "experimenter message skipped");
                Ok(())
            }
            Message::Unknown { msg_type, .. } => {
                debug!(msg_type, "unknown message type skipped");
                Ok(())
            }
            Message::Hello(_) | Message::FeaturesReply(_) | Message::EchoRequest(_) => Ok(()),
        }
    }

    async fn on_error(&mut self, xid: u32, err_type: u16, code: u16, data: &[u8]) -> Result<(), SessionEnd> {
        let what = describe_error_for(self.version, err_type, code);
        match &mut self.round {
            Some(Round::Apply(a)) if a.bundle.as_ref().is_some_and(|b| b.open_xid == xid || b.commit_xid == xid) => {
                let Some(b) = a.bundle.as_mut() else { return Ok(()) };
                b.failed = true;
                if b.open_xid == xid && self.bundles != Some(true) {
                    // The switch does not do bundles at all: fall back to
                    // ordered flow-mods with a barrier, and say so.
                    warn!(error = %what, "switch refused a bundle; using ordered flow-mods from now on");
                    self.bundles = Some(false);
                    self.shared.fleet.update(self.id, |s| s.bundles = Some(false));
                } else {
                    error!(error = %what, "switch refused a bundle; nothing in it took effect");
                    self.shared.metrics.error(self.dpid, &what, err_type, code);
                    let first = a.errors.first().map(|e| format!("; first refused change: {e}")).unwrap_or_default();
                    let msg = format!("switch refused a bundle of {} changes ({what}){first}", a.plan.changes.len());
                    a.errors.push(format!("bundle refused: {what}"));
                    // Retry without a bundle: ordered flow-mods put in
                    // everything the switch accepts, drops first, instead
                    // of leaving it with nothing at all.
                    self.plain_next = true;
                    self.note_error(msg);
                }
                return Ok(());
            }
            Some(Round::Apply(a)) => {
                let idx = xid.wrapping_sub(a.first_xid) as usize;
                if xid >= a.first_xid && idx < a.plan.changes.len() {
                    let flow = a.plan.changes[idx].describe();
                    if a.bundle.as_ref().is_some_and(|b| b.failed) && self.bundles == Some(false) {
                        // Adds to a bundle the switch never opened: noise.
                        return Ok(());
                    }
                    if let Some(suppressed) = self.refusals.allow() {
                        error!(error = %what, %flow, suppressed, "switch refused a flow-mod");
                    }
                    self.shared.metrics.error(self.dpid, &what, err_type, code);
                    a.errors.push(format!("{what}: {flow}"));
                    a.refused.push(idx);
                    let msg = format!("switch refused a flow-mod ({what}): {flow}");
                    self.note_error(msg);
                    return Ok(());
                }
            }
            _ if self.scan.as_ref().is_some_and(|(x, ..)| *x == xid) => {
                // The switch will not list its table: no overrides report
                // until the next audit asks again; nothing else changes.
                self.scan = None;
                if let Some(suppressed) = self.noisy.allow() {
                    warn!(error = %what, suppressed, "switch refused the table scan for foreign overrides");
                }
                return Ok(());
            }
            _ if self.counters.as_ref().is_some_and(|(x, _)| *x == xid) => {
                self.counters = None;
                if let Some(suppressed) = self.noisy.allow() {
                    warn!(error = %what, suppressed, "switch refused the drop-counter poll");
                }
                return Ok(());
            }
            Some(Round::ReadBack { xid: rx, truncated, .. }) if *rx == xid => {
                error!(error = %what, "switch refused the flow read-back");
                *truncated = true;
                self.note_error(format!("switch refused the flow read-back ({what})"));
                return self.finish_readback().await;
            }
            _ => {}
        }
        // Not about anything in flight: perhaps a late answer to an earlier
        // round, perhaps firmware noise. Never ignored: it is recorded, and
        // the switch is read back in full to check it holds the policy.
        if let Some(suppressed) = self.noisy.allow() {
            warn!(error = %what, xid, data_len = data.len(), suppressed, "switch reported an error for no pending request; will verify its table");
        }
        self.shared.metrics.error(self.dpid, &what, err_type, code);
        self.note_error(format!("switch reported {what} (xid {xid})"));
        self.synced = None;
        self.pending = true;
        Ok(())
    }

    /// The switch removed a flow that asked to be reported: one of our
    /// base flows (drops, catch-all). Unless this round is deleting it
    /// itself, someone else did (`ovs-ofctl del-flows`, another
    /// controller): the switch may now be more open than the policy, so
    /// it is read back and repaired at once instead of at the next audit.
    fn on_flow_removed(&mut self, fr: ofp::FlowRemoved) {
        let cfg = self.shared.cfg.policy;
        let Some(CookieKind::Base(rule)) = cfg.cookies.parse(fr.cookie) else { return };
        // The report of our own delete can come after the round's barrier
        // reply (OVS sends it when a bundle commits), so the last
        // finished round counts too.
        let key = (fr.table_id, fr.cookie, fr.priority);
        let ours_to_delete = self.own_deletes.remove(&key).is_some()
            || match &self.round {
                Some(Round::Apply(a)) => a
                    .plan
                    .changes
                    .iter()
                    .any(|c| matches!(c, Change::Delete(i) if (i.table, i.cookie, i.priority) == key)),
                _ => false,
            };
        if ours_to_delete {
            return;
        }
        self.drift += 1;
        let name = port25_rules::compile::drop_rule_name(rule).unwrap_or("default forwarding");
        // One warning per drift: a bridge being deleted reports every flow
        // at once; after the first, the repair round is already due.
        let first = self.synced.is_some() || !(self.pending || self.retry_at.is_some());
        if !first {
            debug!(rule = name, "another base flow removed; repair round already due");
        } else if let Some(suppressed) = self.noisy.allow() {
            warn!(
                rule = name,
                cookie = format_args!("0x{:016x}", fr.cookie),
                reason = fr.reason,
                table = fr.table_id,
                suppressed,
                "switch removed one of port25d's base flows; reading it back to restore it"
            );
        }
        self.note_error(format!("the switch removed base flow {name} (cookie 0x{:016x}); restoring it", fr.cookie));
        self.synced = None;
        if !first {
            // The repair of this burst is already due.
            return;
        }
        // Removals that keep coming (another controller deleting what we
        // put back) are repaired with a growing pause, not in a tight loop.
        let now = Instant::now();
        let again = self.last_repair.is_some_and(|t| now.duration_since(t) < Duration::from_secs(10));
        self.last_repair = Some(now);
        if again {
            let cfg = &self.shared.cfg;
            self.repair_backoff = (self.repair_backoff * 2).max(cfg.retry_min).min(cfg.retry_max);
            warn!(
                retry_in_ms = self.repair_backoff.as_millis() as u64,
                "port25d's base flows keep being removed (another controller?); repairing after a pause"
            );
            self.retry_at = Some(now + self.repair_backoff);
        } else {
            self.repair_backoff = Duration::ZERO;
            self.pending = true;
        }
    }

    /// Read every flow of our table, foreign ones included, to find those
    /// that override the port-25 drops from above
    /// ([`port25_rules::compile::drops_overridden_by`]).
    async fn scan_foreign(&mut self) -> Result<(), SessionEnd> {
        let table = self.shared.cfg.policy.table;
        let xid = self.xid();
        let mut b = BytesMut::new();
        ofp::encode_flow_stats_request(&mut b, xid, table, 0, 0);
        self.scan = Some((xid, Vec::new(), 0, 0));
        self.send(b).await
    }

    fn on_scan(&mut self, mp: ofp::MultipartReply) {
        let cfg = self.shared.cfg.policy;
        let max = self.shared.cfg.max_readback_flows;
        let Some((_, found, seen, more)) = self.scan.as_mut() else { return };
        if let ofp::MultipartBody::Flow(records) = mp.body {
            for r in records {
                *seen += 1;
                if cfg.cookies.owns(r.cookie) || r.table_id != cfg.table {
                    continue;
                }
                let drops = port25_rules::compile::drops_overridden_by(&cfg, r.priority, r.matcher.as_ref(), r.action);
                if drops.is_empty() {
                    continue;
                }
                if found.len() >= 32 {
                    *more += 1;
                    continue;
                }
                let m =
                    r.matcher.as_ref().map_or_else(|| "(fields port25d does not model)".to_owned(), |m| m.to_string());
                let a = r.action.map_or_else(|| "(actions port25d does not model)".to_owned(), |a| a.to_string());
                found.push(format!(
                    "cookie=0x{:x},priority={},{m} actions={a} overrides {}",
                    r.cookie,
                    r.priority,
                    drops.join(", ")
                ));
            }
        }
        if mp.more && *seen < max {
            return;
        }
        let Some((_, mut found, _, more)) = self.scan.take() else { return };
        if more > 0 {
            found.push(format!("... and {more} more"));
        }
        let mut changed = false;
        self.shared.fleet.update(self.id, |s| {
            changed = s.overridden_by != found;
            s.overridden_by = found.clone();
        });
        if changed && !found.is_empty() {
            warn!(
                flows = found.len(),
                first = %found[0],
                "foreign flows above port25d's drops let port-25 traffic through on this switch; port25d does not touch them"
            );
        } else if changed {
            info!("no foreign flow overrides port25d's drops any more");
        }
    }

    /// Ask the switch for the counters of our base flows.
    async fn poll_counters(&mut self) -> Result<(), SessionEnd> {
        self.counters_at = self.shared.cfg.counters_interval.map(|every| Instant::now() + every);
        if self.counters.is_some() {
            // The last poll was never answered in full: give up on it.
            self.counters = None;
        }
        let cfg = self.shared.cfg.policy;
        let xid = self.xid();
        let mut b = BytesMut::new();
        if self.version == ofp::OFP10 {
            ofp::v10::encode_flow_stats_request(&mut b, xid, cfg.table);
        } else {
            // Prefix and kind: our base flows only.
            let value = cfg.cookies.base(0);
            ofp::encode_flow_stats_request(&mut b, xid, cfg.table, value, 0xffff_ff00_0000_0000);
        }
        self.counters = Some((xid, Vec::new()));
        self.send(b).await
    }

    fn on_counters(&mut self, mp: ofp::MultipartReply) {
        let cookies = self.shared.cfg.policy.cookies;
        let Some((_, acc)) = self.counters.as_mut() else { return };
        let mut add = |cookie: u64, packets: u64, bytes: u64| {
            if let Some(port25_rules::CookieKind::Base(rule)) = cookies.parse(cookie) {
                if let Some(name) = port25_rules::compile::drop_rule_name(rule) {
                    acc.push(BlockedCounter { rule: name, packets, bytes });
                }
            }
        };
        match mp.body {
            ofp::MultipartBody::Flow(records) => {
                for r in records {
                    add(r.cookie, r.packet_count, r.byte_count);
                }
            }
            ofp::MultipartBody::Flow10(records) => {
                for r in records {
                    add(r.cookie, r.packet_count, r.byte_count);
                }
            }
            _ => {}
        }
        if !mp.more {
            if let Some((_, mut acc)) = self.counters.take() {
                acc.sort_by_key(|c| c.rule);
                let now = OffsetDateTime::now_utc();
                self.shared.fleet.update(self.id, |s| {
                    s.blocked = acc;
                    s.blocked_at = Some(now);
                });
            }
        }
    }

    fn note_error(&self, msg: String) {
        self.shared.fleet.update(self.id, |s| {
            s.last_error = Some(msg);
            s.last_error_at = Some(OffsetDateTime::now_utc());
            s.state = SwitchState::Degraded;
            s.in_sync = false;
        });
    }

    async fn finish_readback(&mut self) -> Result<(), SessionEnd> {
        let Some(Round::ReadBack { flows, truncated, drift, .. }) = self.round.take() else { return Ok(()) };
        debug!(flows = flows.len(), complete = !truncated, "read back our flows");
        self.converge_from(flows, !truncated, drift).await
    }

    async fn on_round_timeout(&mut self) -> Result<(), SessionEnd> {
        match &mut self.round {
            Some(Round::ReadBack { truncated, flows, .. }) => {
                warn!(received = flows.len(), "flow read-back timed out; converging without deletions");
                *truncated = true;
                self.note_error("flow read-back timed out".into());
                self.finish_readback().await
            }
            Some(Round::Apply(_)) => Err(SessionEnd::BarrierTimeout(self.shared.cfg.request_timeout)),
            None => Ok(()),
        }
    }

    /// The barrier reply arrived: every change before it has been processed.
    fn finish_apply(&mut self) {
        let Some(Round::Apply(mut a)) = self.round.take() else { return };
        self.full_permit = None;
        // Our own base-flow deletes, whose removal reports may still come
        // (after the barrier reply, even after the next round): kept for
        // ten seconds, or until their report arrives.
        let now = Instant::now();
        self.own_deletes.retain(|_, at| now.duration_since(*at) < Duration::from_secs(10));
        for c in &a.plan.changes {
            if let Change::Delete(i) = c {
                if matches!(self.shared.cfg.policy.cookies.parse(i.cookie), Some(CookieKind::Base(_))) {
                    self.own_deletes.insert((i.table, i.cookie, i.priority), now);
                }
            }
        }
        if let Some(b) = &a.bundle {
            if !b.committed && !b.failed {
                // A barrier reply after a commit without its reply: the
                // switch ignored the bundle. Treat it as refused.
                a.errors.push("bundle commit not confirmed".into());
            }
            if b.committed {
                self.bundles = Some(true);
                self.shared.fleet.update(self.id, |s| s.bundles = Some(true));
            }
            if b.failed && self.bundles == Some(false) && a.errors.is_empty() {
                // Bundles unsupported: nothing was applied; go again at
                // once with ordered flow-mods, from a fresh read-back.
                self.synced = None;
                self.pending = true;
                return;
            }
        }
        // The switch processed every change before the barrier. In a
        // bundle that was not committed, none took effect; otherwise the
        // refused ones did not (a refused add is a flow less, a refused
        // delete a flow more).
        let applied_nothing = a.bundle.as_ref().is_some_and(|b| !b.committed);
        let mut flows = a.flows_after as i64;
        if applied_nothing {
            flows = self.flow_count as i64;
        } else {
            for &i in &a.refused {
                match a.plan.changes.get(i) {
                    Some(Change::Add(_)) => flows -= 1,
                    Some(Change::Delete(_)) => flows += 1,
                    None => {}
                }
            }
        }
        let flows = usize::try_from(flows).unwrap_or(0);
        self.flow_count = flows;
        if a.drift != self.drift && a.errors.is_empty() {
            // A base flow went away after this round read what it starts
            // from: it may be missing still. Read back and repair at once.
            self.synced = None;
            self.pending = true;
            self.flow_count = flows;
            return;
        }
        let ok = a.errors.is_empty() && a.complete;
        let elapsed_ms = a.started.elapsed().as_millis() as u64;
        let version = a.snapshot.version;
        let summary = RoundSummary {
            policy_version: version,
            added: a.plan.adds(),
            deleted: a.plan.deletes(),
            kept: a.plan.kept,
            refused: a.errors.len(),
            complete: a.complete,
            elapsed_ms,
        };
        self.shared.metrics.round(a.kind, ok, a.started.elapsed().as_secs_f64());
        if ok {
            self.plain_next = false;
            if a.kind == "full" && self.version == ofp::OFP13 {
                // A scan still unanswered from an earlier round is given up.
                self.scan = None;
                // A scan already due is not put off by a later round.
                if self.scan_after.is_none() {
                    self.scan_after = Some(Instant::now() + Duration::from_millis(200 + (self.id % 64) * 250));
                }
            }
            self.synced = Some(a.snapshot);
            if self.counters_at.is_none() && self.counters.is_none() {
                if let Some(every) = self.shared.cfg.counters_interval {
                    // The first poll soon after the first sync, then every interval.
                    self.counters_at = Some(Instant::now() + every.min(Duration::from_secs(1)));
                }
            }
            if self.audit_at.is_none() {
                if let Some(every) = self.shared.cfg.audit_interval {
                    // Up to 10 % jitter, from the session id: deterministic
                    // per switch, spread across switches.
                    let jitter = every.mul_f64((self.id % 101) as f64 / 1000.0);
                    self.audit_at = Some(Instant::now() + every + jitter);
                }
            }
            self.backoff = self.shared.cfg.retry_min;
            if a.kind == "full" {
                info!(
                    version = version,
                    added = a.plan.adds(),
                    deleted = a.plan.deletes(),
                    kept = a.plan.kept,
                    flows,
                    elapsed_ms,
                    "switch in sync"
                );
            } else {
                // One line per switch per grant is too many at a thousand
                // switches; the API and metrics show deltas.
                debug!(version, added = a.plan.adds(), deleted = a.plan.deletes(), flows, elapsed_ms, "switch in sync");
            }
            self.shared.fleet.update(self.id, |s| {
                s.last_round = Some(summary);
                s.state = SwitchState::InSync;
                s.in_sync = true;
                s.policy_version = version;
                s.flow_count = flows;
            });
        } else {
            // Some change was refused or the read-back was partial: we no
            // longer know the table exactly. Read it back after a pause.
            self.synced = None;
            self.retry_at = Some(Instant::now() + self.backoff);
            warn!(
                version = version,
                errors = a.errors.len(),
                complete = a.complete,
                retry_in_ms = self.backoff.as_millis() as u64,
                "round finished degraded; will read back and retry"
            );
            self.backoff = (self.backoff * 2).min(self.shared.cfg.retry_max);
            self.shared.fleet.update(self.id, |s| {
                s.last_round = Some(summary);
                s.state = SwitchState::Degraded;
                s.in_sync = false;
                s.flow_count = flows;
            });
        }
    }

    fn set_state(&self, state: SwitchState, in_sync: bool) {
        self.shared.fleet.update(self.id, |s| {
            if s.state != SwitchState::Degraded || in_sync {
                s.state = state;
            }
            s.in_sync = in_sync;
        });
    }
}

/// How long a session may be silent before a new connection of its
/// switch counts it as gone: one echo interval and a second.
fn cfg_echo_ms(cfg: &SessionConfig) -> u64 {
    u64::try_from(cfg.echo_interval.as_millis()).unwrap_or(u64::MAX).saturating_add(1000)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

/// Encode one planned change as an OpenFlow 1.0 flow-mod. 1.0 has no
/// cookie mask: a strict delete matches match and priority only, so
/// deletes are planned only for flows read back with our cookie.
fn encode_change_v10(buf: &mut BytesMut, xid: u32, change: &Change) {
    use ofp::v10::{FlowMod10, FlowModCommand10, MatchSpec10};
    let res = match change {
        Change::Add(f) => ofp::v10::encode_flow_mod(
            buf,
            xid,
            &FlowMod10 {
                command: FlowModCommand10::Add,
                table_id: f.table,
                priority: f.priority,
                cookie: f.cookie,
                matcher: MatchSpec10::Typed(&f.matcher),
                action: f.action,
            },
        ),
        Change::Delete(i) => {
            let matcher = match (&i.raw_match, &i.matcher) {
                (Some(raw), _) => MatchSpec10::Raw(raw),
                (None, Some(m)) => MatchSpec10::Typed(m),
                (None, None) => return,
            };
            ofp::v10::encode_flow_mod(
                buf,
                xid,
                &FlowMod10 {
                    command: FlowModCommand10::DeleteStrict,
                    table_id: i.table,
                    priority: i.priority,
                    cookie: i.cookie,
                    matcher,
                    action: FlowAction::Drop,
                },
            )
        }
    };
    if let Err(e) = res {
        error!(error = %e, change = %change.describe(), "change not encoded for OpenFlow 1.0");
    }
}

/// Encode one planned change as a flow-mod. Base flows (the drops and
/// the catch-all) ask the switch to report their removal, so one deleted
/// by hand or by another controller is put back at once (see
/// `Session::on_flow_removed`), not only at the next audit.
fn encode_change(buf: &mut BytesMut, xid: u32, change: &Change, cookies: &CookieSpace) {
    match change {
        Change::Add(f) => ofp::encode_flow_mod(
            buf,
            xid,
            &FlowMod {
                command: FlowModCommand::Add,
                table_id: f.table,
                priority: f.priority,
                cookie: f.cookie,
                cookie_mask: 0,
                matcher: MatchSpec::Typed(&f.matcher),
                action: f.action,
                flags: if matches!(cookies.parse(f.cookie), Some(CookieKind::Base(_))) {
                    ofp::OFPFF_SEND_FLOW_REM
                } else {
                    0
                },
            },
        ),
        Change::Delete(i) => {
            // Strict: exact match and priority, and only with our exact
            // cookie (full mask), so a foreign flow with the same match
            // survives.
            let matcher = match (&i.raw_match, &i.matcher) {
                (Some(raw), _) => MatchSpec::Raw(raw),
                (None, Some(m)) => MatchSpec::Typed(m),
                (None, None) => return,
            };
            ofp::encode_flow_mod(
                buf,
                xid,
                &FlowMod {
                    command: FlowModCommand::DeleteStrict,
                    table_id: i.table,
                    priority: i.priority,
                    cookie: i.cookie,
                    cookie_mask: u64::MAX,
                    matcher,
                    action: FlowAction::Drop,
                    flags: 0,
                },
            )
        }
    }
}

fn version_name(v: u8) -> String {
    match v {
        1 => "1.0".into(),
        2 => "1.1".into(),
        3 => "1.2".into(),
        4 => "1.3".into(),
        5 => "1.4".into(),
        6 => "1.5".into(),
        v => format!("wire version {v}"),
    }
}

fn kind(m: &Message) -> &'static str {
    match m {
        Message::Hello(_) => "hello",
        Message::Error(_) => "error",
        Message::EchoRequest(_) => "echo_request",
        Message::EchoReply(_) => "echo_reply",
        Message::Experimenter { .. } => "experimenter",
        Message::FeaturesReply(_) => "features_reply",
        Message::PortStatus { .. } => "port_status",
        Message::MultipartReply(_) => "multipart_reply",
        Message::BarrierReply => "barrier_reply",
        Message::FlowRemoved(_) => "flow_removed",
        Message::Unknown { .. } => "unknown",
    }
}

/// An error's type and code as text, in the terms of the session's version.
pub fn describe_error_for(version: u8, err_type: u16, code: u16) -> String {
    if version != ofp::OFP10 {
        return describe_error(err_type, code);
    }
    let ty = match err_type {
        0 => "OFPET_HELLO_FAILED",
        1 => "OFPET_BAD_REQUEST",
        2 => "OFPET_BAD_ACTION",
        3 => "OFPET_FLOW_MOD_FAILED",
        4 => "OFPET_PORT_MOD_FAILED",
        5 => "OFPET_QUEUE_OP_FAILED",
        _ => "unknown error type",
    };
    let c = match (err_type, code) {
        (3, 0) => Some("OFPFMFC_ALL_TABLES_FULL"),
        (3, 1) => Some("OFPFMFC_OVERLAP"),
        (3, 2) => Some("OFPFMFC_EPERM"),
        (3, 3) => Some("OFPFMFC_BAD_EMERG_TIMEOUT"),
        (3, 4) => Some("OFPFMFC_BAD_COMMAND"),
        (3, 5) => Some("OFPFMFC_UNSUPPORTED"),
        _ => None,
    };
    match c {
        Some(c) => format!("{ty}/{c} (OpenFlow 1.0 type {err_type}, code {code})"),
        None => format!("{ty} (OpenFlow 1.0 type {err_type}, code {code})"),
    }
}

/// OpenFlow 1.3 error type and code as text, e.g.
/// `OFPET_FLOW_MOD_FAILED/OFPFMFC_TABLE_FULL (type 5, code 1)`.
pub fn describe_error(err_type: u16, code: u16) -> String {
    let ty = match err_type {
        0 => "OFPET_HELLO_FAILED",
        1 => "OFPET_BAD_REQUEST",
        2 => "OFPET_BAD_ACTION",
        3 => "OFPET_BAD_INSTRUCTION",
        4 => "OFPET_BAD_MATCH",
        5 => "OFPET_FLOW_MOD_FAILED",
        6 => "OFPET_GROUP_MOD_FAILED",
        7 => "OFPET_PORT_MOD_FAILED",
        8 => "OFPET_TABLE_MOD_FAILED",
        9 => "OFPET_QUEUE_OP_FAILED",
        10 => "OFPET_SWITCH_CONFIG_FAILED",
        11 => "OFPET_ROLE_REQUEST_FAILED",
        12 => "OFPET_METER_MOD_FAILED",
        13 => "OFPET_TABLE_FEATURES_FAILED",
        0xffff => "OFPET_EXPERIMENTER",
        _ => "unknown error type",
    };
    // OFPET_EXPERIMENTER carries the ONF bundle errors (EXT-230) in `code`.
    let onf_bundle = [
        "OFPBFC_UNKNOWN",
        "OFPBFC_EPERM",
        "OFPBFC_BAD_ID",
        "OFPBFC_BUNDLE_EXIST",
        "OFPBFC_BUNDLE_CLOSED",
        "OFPBFC_OUT_OF_BUNDLES",
        "OFPBFC_BAD_TYPE",
        "OFPBFC_BAD_FLAGS",
        "OFPBFC_MSG_BAD_LEN",
        "OFPBFC_MSG_BAD_XID",
        "OFPBFC_MSG_UNSUP",
        "OFPBFC_MSG_CONFLICT",
        "OFPBFC_MSG_TOO_MANY",
        "OFPBFC_MSG_FAILED",
        "OFPBFC_TIMEOUT",
        "OFPBFC_BUNDLE_IN_PROGRESS",
    ];
    if err_type == 0xffff {
        if let Some(name) = code.checked_sub(2300).and_then(|i| onf_bundle.get(usize::from(i))) {
            return format!("{ty}/{name} (type {err_type}, code {code})");
        }
    }
    let c: Option<&str> = match (err_type, code) {
        (1, 1) => Some("OFPBRC_BAD_TYPE"),
        (1, 2) => Some("OFPBRC_BAD_MULTIPART"),
        (1, 3) => Some("OFPBRC_BAD_EXPERIMENTER"),
        (1, 5) => Some("OFPBRC_EPERM"),
        (1, 6) => Some("OFPBRC_BAD_LEN"),
        (1, 11) => Some("OFPBRC_IS_SLAVE"),
        (3, 0) => Some("OFPBIC_UNKNOWN_INST"),
        (3, 2) => Some("OFPBIC_BAD_TABLE_ID"),
        (4, 3) => Some("OFPBMC_BAD_FIELD"),
        (4, 9) => Some("OFPBMC_BAD_PREREQ"),
        (5, 0) => Some("OFPFMFC_UNKNOWN"),
        (5, 1) => Some("OFPFMFC_TABLE_FULL"),
        (5, 2) => Some("OFPFMFC_BAD_TABLE_ID"),
        (5, 3) => Some("OFPFMFC_OVERLAP"),
        (5, 4) => Some("OFPFMFC_EPERM"),
        (5, 5) => Some("OFPFMFC_BAD_TIMEOUT"),
        (5, 6) => Some("OFPFMFC_BAD_COMMAND"),
        (5, 7) => Some("OFPFMFC_BAD_FLAGS"),
        _ => None,
    };
    match c {
        Some(c) => format!("{ty}/{c} (type {err_type}, code {code})"),
        None => format!("{ty} (type {err_type}, code {code})"),
    }
}

/// Count of sessions by state, for logs.
pub fn state_counts(fleet: &Fleet) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for s in fleet.snapshot() {
        *m.entry(format!("{:?}", s.state)).or_insert(0) += 1;
    }
    m
}
