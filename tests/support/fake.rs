//! A scripted fake OpenFlow 1.3 switch for hostile-switch tests.
//!
//! It connects to port25d's OpenFlow port over 127.0.0.1 like a switch
//! would, plays (or perturbs) the handshake, answers flow-stats requests,
//! barriers and echoes as the test scripts, and records every frame the
//! controller sends. One thread per fake, blocking sockets: the daemon
//! under test runs on its own runtime, so the fake stays out of its way.
//!
//! ```text
//!   FakeSwitch::builder().dpid(..).flow_stats(|xid| bytes).barriers(false).connect(addr)
//!        │
//!        ├── hello ─────────────────────────────► port25d
//!        │◄──────────────────── hello, features request
//!        ├── features reply (dpid) ─────────────►
//!        ├── after_handshake bytes (scripted) ──►
//!        │◄──────────────────── flow stats request
//!        ├── flow_stats(xid) bytes ─────────────►          (then maybe stop reading)
//!        │◄──────────────────── flow mods, barrier
//!        └── barrier reply (if scripted) ───────►
//! ```
//!
//! Also here: per-peer log counting (one global tracing layer) and the
//! process's RSS and CPU time, so tests can check "one log line",
//! "memory bounded" and "CPU back to idle".

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use port25_controller::ofp::instruction::OFPIT_APPLY_ACTIONS;
use port25_controller::ofp::switch::{
    encode_barrier_reply, encode_features_reply, encode_multipart_reply, instructions_bytes,
};
use port25_controller::ofp::v13::{OFPMP_FLOW, OFPMT_OXM};
use port25_controller::ofp::{encode_echo_reply, encode_hello, encode_match, msg_type, Features, Frame, OfpCodec};
use port25_rules::{FlowSpec, PolicyConfig};
use tokio_util::codec::Decoder;

static NEXT_DPID: AtomicU32 = AtomicU32::new(1);

/// A fresh datapath id no bridge uses (bridges use 0x2500_....).
pub fn fresh_dpid() -> u64 {
    0xfa4e_0000_0000
        | (u64::from(std::process::id() % 0xffff) << 12)
        | u64::from(NEXT_DPID.fetch_add(1, Ordering::Relaxed))
}

/// What the fake says first.
#[derive(Clone)]
pub enum HelloMode {
    /// A Hello offering OpenFlow 1.3 (version bitmap).
    Normal,
    /// These bytes instead (a broken Hello, or anything else).
    Raw(Vec<u8>),
    /// Nothing at all.
    Silent,
}

type Script = Arc<dyn Fn(u32) -> Vec<u8> + Send + Sync>;

/// Builder for a [`FakeSwitch`].
pub struct FakeBuilder {
    dpid: u64,
    hello: HelloMode,
    features: bool,
    barriers: bool,
    echoes: bool,
    flow_stats: Option<Script>,
    after_handshake: Vec<u8>,
    stop_reading_after_readback: bool,
    keepalive: Option<Duration>,
}

impl FakeBuilder {
    /// While not reading, still send an echo request this often, so only a
    /// write timeout (not the idle timeout) can tell the controller.
    pub fn keepalive(mut self, every: Duration) -> Self {
        self.keepalive = Some(every);
        self
    }
    pub fn dpid(mut self, dpid: u64) -> Self {
        self.dpid = dpid;
        self
    }
    pub fn hello(mut self, hello: HelloMode) -> Self {
        self.hello = hello;
        self
    }
    /// Answer the features request (default true).
    pub fn features(mut self, on: bool) -> Self {
        self.features = on;
        self
    }
    /// Answer barrier requests (default true).
    pub fn barriers(mut self, on: bool) -> Self {
        self.barriers = on;
        self
    }
    /// Answer echo requests (default true).
    pub fn echoes(mut self, on: bool) -> Self {
        self.echoes = on;
        self
    }
    /// Answer each flow-stats request with `f(xid)` (default: one empty reply).
    pub fn flow_stats(mut self, f: impl Fn(u32) -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.flow_stats = Some(Arc::new(f));
        self
    }
    /// Bytes sent right after the features reply.
    pub fn after_handshake(mut self, bytes: Vec<u8>) -> Self {
        self.after_handshake = bytes;
        self
    }
    /// After answering the first flow-stats request, never read the socket again.
    pub fn stop_reading_after_readback(mut self) -> Self {
        self.stop_reading_after_readback = true;
        self
    }

    /// Connect to `of` and start playing the script.
    pub fn connect(self, of: SocketAddr) -> FakeSwitch {
        // A small receive buffer, fixed before connect (so the kernel does
        // not autotune it to many MiB): a fake that stops reading then
        // pushes back on the controller within a few hundred KiB, as a real
        // switch's would.
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        sock.set_recv_buffer_size(256 * 1024).expect("SO_RCVBUF");
        sock.connect_timeout(&of.into(), Duration::from_secs(5)).expect("fake switch connect");
        let stream: TcpStream = sock.into();
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let local = stream.local_addr().unwrap();
        // Ports are reused across tests: forget lines logged for an earlier peer with this address.
        logs().lock().unwrap_or_else(|e| e.into_inner()).remove(&local.to_string());
        let writer = Arc::new(Mutex::new(stream.try_clone().unwrap()));
        let state = Arc::new(State::default());
        match &self.hello {
            HelloMode::Normal => {
                let mut b = BytesMut::new();
                encode_hello(&mut b, 1, &[4]);
                write(&writer, &b);
            }
            HelloMode::Raw(raw) => write(&writer, raw),
            HelloMode::Silent => {}
        }
        let dpid = self.dpid;
        let thread = {
            let (writer, state) = (writer.clone(), state.clone());
            std::thread::spawn(move || play(stream, writer, state, self))
        };
        FakeSwitch { dpid, local, writer, state, thread: Some(thread) }
    }
}

#[derive(Default)]
struct State {
    /// Every frame the controller sent, in order.
    frames: Mutex<Vec<Frame>>,
    /// The controller closed the connection (EOF or reset).
    closed: AtomicBool,
    /// The controller's stream lost framing (should never happen).
    corrupt: AtomicBool,
    /// Features reply sent.
    handshaken: AtomicBool,
    /// Flow-stats requests answered.
    readbacks: AtomicU32,
    /// The test is over: the thread exits.
    stop: AtomicBool,
}

fn write(w: &Mutex<TcpStream>, bytes: &[u8]) {
    let mut s = w.lock().unwrap_or_else(|e| e.into_inner());
    // The controller may already have closed: that is for the test to judge.
    let _ = s.write_all(bytes);
}

fn play(mut stream: TcpStream, writer: Arc<Mutex<TcpStream>>, st: Arc<State>, script: FakeBuilder) {
    let mut codec = OfpCodec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    while !st.stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => {
                st.closed.store(true, Ordering::Relaxed);
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue
            }
            Err(_) => {
                st.closed.store(true, Ordering::Relaxed);
                return;
            }
        }
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => {
                    st.corrupt.store(true, Ordering::Relaxed);
                    return;
                }
            };
            st.frames.lock().unwrap_or_else(|e| e.into_inner()).push(frame.clone());
            let mut out = BytesMut::new();
            let mut stop_reading = false;
            match frame.msg_type {
                msg_type::ECHO_REQUEST if script.echoes => encode_echo_reply(&mut out, 4, frame.xid, &frame.body),
                msg_type::FEATURES_REQUEST if script.features => {
                    let f = Features {
                        datapath_id: script.dpid,
                        n_buffers: 0,
                        n_tables: 254,
                        auxiliary_id: 0,
                        capabilities: 0,
                    };
                    encode_features_reply(&mut out, frame.xid, &f);
                    out.extend_from_slice(&script.after_handshake);
                    st.handshaken.store(true, Ordering::Relaxed);
                }
                msg_type::MULTIPART_REQUEST if frame.body.get(..2) == Some(&OFPMP_FLOW.to_be_bytes()[..]) => {
                    match &script.flow_stats {
                        Some(f) => out.extend_from_slice(&f(frame.xid)),
                        None => encode_multipart_reply(&mut out, frame.xid, OFPMP_FLOW, false, &[]),
                    }
                    st.readbacks.fetch_add(1, Ordering::Relaxed);
                    stop_reading = script.stop_reading_after_readback;
                }
                msg_type::BARRIER_REQUEST if script.barriers => encode_barrier_reply(&mut out, frame.xid),
                msg_type::EXPERIMENTER => bundle(&st, &frame, &mut out),
                _ => {}
            }
            if !out.is_empty() {
                write(&writer, &out);
            }
            if stop_reading {
                // Keep the socket open but never read it again.
                let mut next = Instant::now();
                while !st.stop.load(Ordering::Relaxed) {
                    if let Some(every) = script.keepalive.filter(|_| Instant::now() >= next) {
                        let mut b = BytesMut::new();
                        port25_controller::ofp::encode_echo_request(&mut b, 4, 0x4b41, b"keepalive");
                        write(&writer, &b);
                        next = Instant::now() + every;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
        }
    }
}

/// ONF bundles (EXT-230), as OVS does them: control requests get their
/// reply, and a bundle add's inner message is recorded as if sent plainly,
/// so [`FakeSwitch::flow_mods`] sees flow-mods either way.
fn bundle(st: &State, frame: &Frame, out: &mut BytesMut) {
    use port25_controller::ofp::bundle::{
        decode_bundle_ctrl, encode_bundle_ctrl, BundleCtrl, ONF_ET_BUNDLE_ADD_MESSAGE, ONF_EXPERIMENTER,
    };
    let b = &frame.body;
    let (Some(exp), Some(ty)) = (b.get(0..4), b.get(4..8)) else { return };
    let (exp, ty) = (u32::from_be_bytes(exp.try_into().unwrap()), u32::from_be_bytes(ty.try_into().unwrap()));
    if exp != ONF_EXPERIMENTER {
        return;
    }
    if ty == ONF_ET_BUNDLE_ADD_MESSAGE {
        if let Some(&[version, msg_type, l0, l1, x0, x1, x2, x3]) = b.get(16..24) {
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            if len >= 8 && b.len() >= 16 + len {
                let inner =
                    Frame { version, msg_type, xid: u32::from_be_bytes([x0, x1, x2, x3]), body: b.slice(24..16 + len) };
                st.frames.lock().unwrap_or_else(|e| e.into_inner()).push(inner);
            }
        }
        return;
    }
    let Some(req) = decode_bundle_ctrl(exp, ty, &b.slice(8..)) else { return };
    let reply = match req.ctrl {
        BundleCtrl::OpenRequest => BundleCtrl::OpenReply,
        BundleCtrl::CloseRequest => BundleCtrl::CloseReply,
        BundleCtrl::CommitRequest => BundleCtrl::CommitReply,
        BundleCtrl::DiscardRequest => BundleCtrl::DiscardReply,
        _ => return,
    };
    encode_bundle_ctrl(out, frame.xid, req.bundle_id, reply, req.flags);
}

/// A connected fake switch; the connection is closed when it drops.
pub struct FakeSwitch {
    pub dpid: u64,
    /// The fake's own address: the `peer` port25d sees and logs.
    pub local: SocketAddr,
    writer: Arc<Mutex<TcpStream>>,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSwitch {
    pub fn builder() -> FakeBuilder {
        FakeBuilder {
            dpid: fresh_dpid(),
            hello: HelloMode::Normal,
            features: true,
            barriers: true,
            echoes: true,
            flow_stats: None,
            after_handshake: Vec::new(),
            stop_reading_after_readback: false,
            keepalive: None,
        }
    }

    pub fn dpid_hex(&self) -> String {
        format!("{:016x}", self.dpid)
    }

    /// Send raw bytes to the controller.
    pub fn send(&self, bytes: &[u8]) {
        write(&self.writer, bytes);
    }

    pub fn is_closed(&self) -> bool {
        self.state.closed.load(Ordering::Relaxed)
    }

    /// Wait until the controller closes the connection.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        super::wait_for(timeout, || self.is_closed().then_some(())).is_some()
    }

    pub fn handshaken(&self) -> bool {
        self.state.handshaken.load(Ordering::Relaxed)
    }

    pub fn readbacks(&self) -> u32 {
        self.state.readbacks.load(Ordering::Relaxed)
    }

    pub fn corrupt(&self) -> bool {
        self.state.corrupt.load(Ordering::Relaxed)
    }

    /// Frames received so far.
    pub fn frames(&self) -> Vec<Frame> {
        self.state.frames.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn count(&self, ty: u8) -> usize {
        self.frames().iter().filter(|f| f.msg_type == ty).count()
    }

    /// Wait until at least `n` frames of type `ty` arrived.
    pub fn wait_count(&self, ty: u8, n: usize, timeout: Duration) -> bool {
        super::wait_for(timeout, || (self.count(ty) >= n).then_some(())).is_some()
    }

    /// The flow-mods received: (command byte, cookie).
    ///
    /// OpenFlow 1.3 FLOW_MOD body: cookie u64 | cookie_mask u64 | table_id u8 | command u8 ...
    pub fn flow_mods(&self) -> Vec<(u8, u64)> {
        self.frames()
            .iter()
            .filter(|f| f.msg_type == msg_type::FLOW_MOD)
            .filter_map(|f| {
                let cookie = u64::from_be_bytes(f.body.get(..8)?.try_into().ok()?);
                Some((*f.body.get(17)?, cookie))
            })
            .collect()
    }
}

impl Drop for FakeSwitch {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        if let Ok(s) = self.writer.lock() {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// FLOW_MOD command bytes (OpenFlow 1.3).
pub const OFPFC_ADD: u8 = 0;
pub const OFPFC_DELETE: u8 = 3;
pub const OFPFC_DELETE_STRICT: u8 = 4;

// ---------------------------------------------------------------------------
// Building flow-stats replies byte by byte, so tests can break them.

/// One `ofp_flow_stats` record with the given OXM fields and instruction bytes.
/// The record's length field is correct; tests patch `rec[0..2]` to break it.
pub fn flow_record(priority: u16, cookie: u64, oxm: &[u8], instructions: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u16(0); // length, patched below
    b.put_u8(0); // table 0
    b.put_u8(0);
    b.put_u32(1); // duration_sec
    b.put_u32(0);
    b.put_u16(priority);
    b.put_u16(0);
    b.put_u16(0);
    b.put_u16(0);
    b.put_u32(0);
    b.put_u64(cookie);
    b.put_u64(0);
    b.put_u64(0);
    let m = b.len();
    b.put_u16(OFPMT_OXM);
    b.put_u16(u16::try_from(4 + oxm.len()).unwrap());
    b.put_slice(oxm);
    b.put_bytes(0, (8 - (b.len() - m) % 8) % 8);
    b.put_slice(instructions);
    let len = u16::try_from(b.len()).unwrap();
    b[0..2].copy_from_slice(&len.to_be_bytes());
    b.to_vec()
}

/// The record for one of our flows, as OVS would report it.
pub fn record_for(f: &FlowSpec) -> Vec<u8> {
    let mut oxm = BytesMut::new();
    encode_match(&mut oxm, &f.matcher);
    flow_record(f.priority, f.cookie, &oxm, &instructions_bytes(f.action))
}

/// Records for the base policy (what a switch in sync with no exemptions holds).
pub fn base_records() -> Vec<Vec<u8>> {
    port25_rules::compile(&PolicyConfig::default(), [], port25_rules::Dpid(0)).iter().map(record_for).collect()
}

/// A flow-stats reply holding `records` (concatenated as given, so broken
/// records stay broken).
pub fn flow_stats_reply(xid: u32, more: bool, records: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = records.concat();
    let mut b = BytesMut::new();
    encode_multipart_reply(&mut b, xid, OFPMP_FLOW, more, &body);
    assert_eq!(b.len(), 16 + body.len(), "flow stats reply over 64 KiB: split it");
    b.to_vec()
}

/// An APPLY_ACTIONS instruction holding `actions` (raw action bytes).
pub fn apply_actions(actions: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u16(OFPIT_APPLY_ACTIONS);
    b.put_u16(u16::try_from(8 + actions.len()).unwrap());
    b.put_u32(0);
    b.put_slice(actions);
    b.to_vec()
}

// ---------------------------------------------------------------------------
// Logs per peer, memory, CPU.

/// Log events at INFO or above, by the `peer` field of the enclosing span.
static LOGS: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();

fn logs() -> &'static Mutex<HashMap<String, Vec<String>>> {
    LOGS.get_or_init(|| Mutex::new(HashMap::new()))
}

mod layer {
    use std::fmt::Debug;

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::layer::Context;
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::Layer;

    pub struct Peer(pub String);

    struct PeerVisitor(Option<String>);
    impl Visit for PeerVisitor {
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            if field.name() == "peer" {
                self.0 = Some(format!("{value:?}"));
            }
        }
    }

    struct Text(String);
    impl Visit for Text {
        fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }

    pub struct Counter;

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Counter {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let mut v = PeerVisitor(None);
            attrs.record(&mut v);
            if let (Some(p), Some(span)) = (v.0, ctx.span(id)) {
                span.extensions_mut().insert(Peer(p));
            }
        }

        fn on_event(&self, ev: &Event<'_>, ctx: Context<'_, S>) {
            if *ev.metadata().level() > Level::INFO {
                return;
            }
            let Some(scope) = ctx.event_scope(ev) else { return };
            let peer = scope.from_root().find_map(|s| s.extensions().get::<Peer>().map(|p| p.0.clone()));
            let Some(peer) = peer else { return };
            let mut t = Text(format!("{}", ev.metadata().level()));
            ev.record(&mut t);
            let mut m = super::logs().lock().unwrap_or_else(|e| e.into_inner());
            m.entry(peer).or_default().push(t.0);
        }
    }
}

/// Install the counting layer (once per test binary). `RUST_LOG` also
/// prints events to stderr, for debugging a test.
pub fn init_logs() {
    use tracing_subscriber::layer::SubscriberExt;
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let fmt = std::env::var("RUST_LOG").ok().map(|f| {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new(f))
        });
        use tracing_subscriber::Layer as _;
        let sub = tracing_subscriber::registry().with(layer::Counter).with(fmt);
        let _ = tracing::subscriber::set_global_default(sub);
    });
}

/// Log lines (INFO and above) port25d wrote in the session of `peer`.
pub fn log_lines(peer: SocketAddr) -> Vec<String> {
    logs().lock().unwrap_or_else(|e| e.into_inner()).get(&peer.to_string()).cloned().unwrap_or_default()
}

/// Resident set size of this process (daemon, fakes and test), in KiB.
pub fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// CPU time (user + system) this process used, from /proc/self/stat.
pub fn cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are 14 and 15 (1-based).
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// CPU time used over `window`, as a fraction of one core.
pub fn cpu_load(window: Duration) -> f64 {
    let (t0, c0) = (Instant::now(), cpu_time());
    std::thread::sleep(window);
    (cpu_time() - c0).as_secs_f64() / t0.elapsed().as_secs_f64()
}
