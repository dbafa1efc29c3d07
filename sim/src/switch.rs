//! One simulated switch: connects to a controller and speaks OpenFlow 1.3.
//!
//! ```text
//!   controller ──► read ──► frames ──► handle (flow table, bundles) ──► replies ──► write
//! ```
//!
//! One task per connection, no locks held across an `.await`: read what
//! the socket has, handle every whole frame in order (each no earlier than
//! its arrival plus the configured latency), then write the replies in one
//! go. The flow table outlives the connection, as a switch's does in
//! `fail_mode=secure`; bundles do not (closing the connection discards
//! them, as in OVS).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use port25_controller::ofp::bundle::{
    self, BundleCtrl, ONF_ET_BUNDLE_ADD_MESSAGE, ONF_ET_BUNDLE_CONTROL, ONF_EXPERIMENTER,
};
use port25_controller::ofp::switch::{encode_barrier_reply, encode_desc_reply, encode_features_reply};
use port25_controller::ofp::{
    encode_echo_reply, encode_error, encode_hello, msg_type, Features, Frame, OfpCodec, SwitchDesc, OFP13,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::intern::Interner;
use crate::table::{self, FlowTable, Op, SimFlow, OFPBRC_BAD_LEN, OFPET_BAD_REQUEST};

/// How a simulated switch behaves.
#[derive(Debug, Clone)]
pub struct SwitchConfig {
    /// Datapath id in the features reply.
    pub dpid: u64,
    /// Each message is handled no earlier than this long after it arrived
    /// (a pipeline delay, not a throughput cap).
    pub latency: Duration,
    /// Flow-stats replies are split so no reply body exceeds this many
    /// bytes; earlier parts carry `OFPMPF_REPLY_MORE`. OVS fills ~64 KiB.
    pub multipart_max: usize,
    /// Accept ONF bundles. When false, a bundle open is refused with
    /// `OFPET_BAD_REQUEST/OFPBRC_BAD_EXPERIMENTER`, as a switch without
    /// the extension would.
    pub bundles: bool,
    /// Versions offered in the Hello.
    pub versions: Vec<u8>,
    pub n_tables: u8,
}

impl SwitchConfig {
    pub fn new(dpid: u64) -> SwitchConfig {
        SwitchConfig {
            dpid,
            latency: Duration::ZERO,
            multipart_max: 65535 - 16,
            bundles: true,
            versions: vec![OFP13],
            n_tables: 254,
        }
    }
}

/// Records, across a fleet, when each switch confirmed (with a barrier
/// reply) an add whose cookie matches `value` under `mask`. The grant
/// latency benchmark arms it, posts a grant, and waits for every switch.
#[derive(Debug, Default)]
pub struct Probe {
    armed: AtomicBool,
    generation: AtomicU64,
    value: AtomicU64,
    mask: AtomicU64,
    hits: Mutex<Vec<ProbeHit>>,
}

/// One switch confirming the probed add.
#[derive(Debug, Clone, Copy)]
pub struct ProbeHit {
    pub dpid: u64,
    /// When the barrier reply was queued for writing.
    pub at: Instant,
}

impl Probe {
    /// Start watching for adds with `cookie & mask == value`; forgets earlier hits.
    pub fn arm(&self, value: u64, mask: u64) {
        let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.clear();
        self.value.store(value, Ordering::SeqCst);
        self.mask.store(mask, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    pub fn hits(&self) -> Vec<ProbeHit> {
        self.hits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn check(&self, cookie: u64) -> Option<u64> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        let (v, m) = (self.value.load(Ordering::Relaxed), self.mask.load(Ordering::Relaxed));
        (cookie & m == v).then(|| self.generation.load(Ordering::SeqCst))
    }

    fn hit(&self, generation: u64, dpid: u64) {
        if self.generation.load(Ordering::SeqCst) == generation {
            let mut hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
            hits.push(ProbeHit { dpid, at: Instant::now() });
        }
    }
}

/// What every switch in one process shares: the blob interner and the probe.
#[derive(Debug, Default)]
pub struct Fabric {
    pub interner: Interner,
    pub probe: Probe,
}

impl Fabric {
    pub fn new() -> Arc<Fabric> {
        Arc::new(Fabric::default())
    }
}

/// Messages received, by kind.
#[derive(Debug, Default)]
pub struct Counters {
    by_type: [AtomicU64; 32],
    flow_mods: [AtomicU64; 5],
    bundle_ctrl: [AtomicU64; 8],
    bundle_adds: AtomicU64,
    errors_sent: AtomicU64,
    connections: AtomicU64,
}

/// A copy of [`Counters`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Messages received by OpenFlow 1.3 type (index = `ofp_type`).
    pub by_type: [u64; 32],
    /// Flow-mods applied or bundled, by command (ADD, MODIFY, MODIFY_STRICT, DELETE, DELETE_STRICT).
    pub flow_mods: [u64; 5],
    /// Bundle control requests by type (OPEN, -, CLOSE, -, COMMIT, -, DISCARD, -).
    pub bundle_ctrl: [u64; 8],
    pub bundle_adds: u64,
    pub errors_sent: u64,
    pub connections: u64,
}

impl CounterSnapshot {
    pub fn flow_mod_total(&self) -> u64 {
        self.flow_mods.iter().sum()
    }
    pub fn barriers(&self) -> u64 {
        self.by_type[usize::from(msg_type::BARRIER_REQUEST)]
    }
    pub fn flow_stats_requests(&self) -> u64 {
        self.by_type[usize::from(msg_type::MULTIPART_REQUEST)]
    }
}

impl Counters {
    fn bump(a: &AtomicU64) {
        a.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            by_type: std::array::from_fn(|i| l(&self.by_type[i])),
            flow_mods: std::array::from_fn(|i| l(&self.flow_mods[i])),
            bundle_ctrl: std::array::from_fn(|i| l(&self.bundle_ctrl[i])),
            bundle_adds: l(&self.bundle_adds),
            errors_sent: l(&self.errors_sent),
            connections: l(&self.connections),
        }
    }
}

/// A simulated switch. Cheap to clone (handles).
#[derive(Clone)]
pub struct Switch {
    cfg: Arc<SwitchConfig>,
    fabric: Arc<Fabric>,
    table: Arc<Mutex<FlowTable>>,
    counters: Arc<Counters>,
}

impl Switch {
    pub fn new(cfg: SwitchConfig, fabric: Arc<Fabric>) -> Switch {
        Switch {
            cfg: Arc::new(cfg),
            fabric,
            table: Arc::new(Mutex::new(FlowTable::new())),
            counters: Arc::new(Counters::default()),
        }
    }

    pub fn dpid(&self) -> u64 {
        self.cfg.dpid
    }

    fn table(&self) -> MutexGuard<'_, FlowTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every flow the switch holds, decoded and sorted.
    pub fn flows(&self) -> Vec<SimFlow> {
        let t = self.table().clone();
        t.flows(&self.fabric.interner)
    }

    pub fn flow_count(&self) -> usize {
        self.table().len()
    }

    /// Bytes of this switch's own table (the blobs are shared, see [`Fabric`]).
    pub fn table_bytes(&self) -> usize {
        self.table().heap_bytes()
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// Connect to `controller` and serve the connection until the
    /// controller closes it, an I/O error, or `stop` resolves.
    ///
    /// # Errors
    /// Connecting failed, or the connection failed other than by an
    /// orderly close.
    pub async fn run(&self, controller: SocketAddr, stop: impl std::future::Future<Output = ()>) -> io::Result<()> {
        let stream = TcpStream::connect(controller).await?;
        stream.set_nodelay(true)?;
        Counters::bump(&self.counters.connections);
        let mut conn = Conn { sw: self, bundles: HashMap::new(), scratch: Vec::with_capacity(256), probe: None };
        conn.serve(stream, stop).await
    }
}

/// A bundle being filled.
struct Bundle {
    flags: u16,
    closed: bool,
    ops: Vec<Op>,
}

struct Conn<'a> {
    sw: &'a Switch,
    bundles: HashMap<u32, Bundle>,
    scratch: Vec<u8>,
    /// Probe generation of an add seen since the last barrier.
    probe: Option<u64>,
}

const OFPET_EXPERIMENTER: u16 = 0xffff;
const OFPBRC_BAD_TYPE: u16 = 1;
const OFPBRC_BAD_MULTIPART: u16 = 2;
const OFPBRC_BAD_EXPERIMENTER: u16 = 3;
// ONF bundle error codes (EXT-230), sent as experimenter errors.
const OFPBFC_BAD_ID: u16 = 2302;
const OFPBFC_BUNDLE_EXIST: u16 = 2303;
const OFPBFC_BUNDLE_CLOSED: u16 = 2304;
const OFPBFC_BAD_TYPE: u16 = 2306;
const OFPBFC_BAD_FLAGS: u16 = 2307;
const OFPBFC_MSG_BAD_XID: u16 = 2309;
const OFPBFC_MSG_UNSUP: u16 = 2310;
const OFPMP_DESC: u16 = 0;
const OFPMP_FLOW: u16 = 1;

impl Conn<'_> {
    async fn serve(&mut self, stream: TcpStream, stop: impl std::future::Future<Output = ()>) -> io::Result<()> {
        let (mut rd, mut wr) = stream.into_split();
        let mut out = BytesMut::with_capacity(4096);
        encode_hello(&mut out, 1, &self.sw.cfg.versions);
        wr.write_all(&out).await?;
        out.clear();
        let mut codec = OfpCodec::new();
        let mut inbuf = BytesMut::with_capacity(16 * 1024);
        tokio::pin!(stop);
        loop {
            if inbuf.capacity() - inbuf.len() < 4096 {
                inbuf.reserve(16 * 1024);
            }
            let n = tokio::select! {
                _ = &mut stop => return Ok(()),
                n = rd.read_buf(&mut inbuf) => n?,
            };
            if n == 0 {
                return Ok(());
            }
            let arrived = Instant::now();
            loop {
                let frame = match codec.decode(&mut inbuf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
                };
                let due = arrived + self.sw.cfg.latency;
                if Instant::now() < due {
                    // Send what is ready before sleeping, as a switch would.
                    if !out.is_empty() {
                        wr.write_all(&out).await?;
                        out.clear();
                    }
                    tokio::time::sleep_until(due).await;
                }
                self.handle(&frame, &mut out);
                if out.len() >= 256 * 1024 {
                    wr.write_all(&out).await?;
                    out.clear();
                }
            }
            if !out.is_empty() {
                wr.write_all(&out).await?;
                out.clear();
            }
            if inbuf.is_empty() && inbuf.capacity() > 256 * 1024 {
                // A large read-back or bundle grew the buffer; give it back.
                inbuf = BytesMut::with_capacity(16 * 1024);
            }
        }
    }

    fn error(&self, out: &mut BytesMut, frame: &Frame, (ty, code): (u16, u16)) {
        Counters::bump(&self.sw.counters.errors_sent);
        // The data is the start of the offending request (at least 64 bytes, as the spec asks).
        let mut data = Vec::with_capacity(72);
        if ty == OFPET_EXPERIMENTER {
            data.extend_from_slice(&ONF_EXPERIMENTER.to_be_bytes());
        }
        let mut req = BytesMut::with_capacity(8 + frame.body.len().min(64));
        req.put_u8(frame.version);
        req.put_u8(frame.msg_type);
        req.put_u16(u16::try_from(8 + frame.body.len()).unwrap_or(u16::MAX));
        req.put_u32(frame.xid);
        req.put_slice(&frame.body[..frame.body.len().min(64)]);
        data.extend_from_slice(&req);
        encode_error(out, OFP13, frame.xid, ty, code, &data);
    }

    fn handle(&mut self, frame: &Frame, out: &mut BytesMut) {
        let c = &self.sw.counters;
        if let Some(a) = c.by_type.get(usize::from(frame.msg_type)) {
            Counters::bump(a);
        }
        match frame.msg_type {
            msg_type::HELLO | msg_type::ECHO_REPLY => {}
            msg_type::ERROR => {}
            msg_type::ECHO_REQUEST => encode_echo_reply(out, OFP13, frame.xid, &frame.body),
            msg_type::FEATURES_REQUEST => encode_features_reply(
                out,
                frame.xid,
                &Features {
                    datapath_id: self.sw.cfg.dpid,
                    n_buffers: 0,
                    n_tables: self.sw.cfg.n_tables,
                    auxiliary_id: 0,
                    capabilities: 0x4f,
                },
            ),
            msg_type::FLOW_MOD => match table::parse_flow_mod(&frame.body) {
                Ok(fm) => {
                    Counters::bump(&c.flow_mods[fm.command as usize]);
                    let op = table::to_op(&self.sw.fabric.interner, &mut self.scratch, &fm);
                    self.apply(&[op]);
                }
                Err(e) => self.error(out, frame, e),
            },
            msg_type::MULTIPART_REQUEST => self.multipart(frame, out),
            msg_type::BARRIER_REQUEST => {
                if let Some(g) = self.probe.take() {
                    self.sw.fabric.probe.hit(g, self.sw.cfg.dpid);
                }
                encode_barrier_reply(out, frame.xid);
            }
            msg_type::EXPERIMENTER => self.experimenter(frame, out),
            _ => self.error(out, frame, (OFPET_BAD_REQUEST, OFPBRC_BAD_TYPE)),
        }
    }

    fn apply(&mut self, ops: &[Op]) {
        let fabric = &self.sw.fabric;
        for op in ops {
            if let Op::Add { cookie, .. } = op {
                if let Some(g) = fabric.probe.check(*cookie) {
                    self.probe = Some(g);
                }
            }
        }
        let mut t = self.sw.table();
        for op in ops {
            t.apply(&fabric.interner, op);
        }
    }

    fn multipart(&mut self, frame: &Frame, out: &mut BytesMut) {
        let b = &frame.body[..];
        if b.len() < 8 {
            return self.error(out, frame, (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN));
        }
        let mp_type = u16::from_be_bytes([b[0], b[1]]);
        match mp_type {
            OFPMP_DESC => encode_desc_reply(
                out,
                frame.xid,
                &SwitchDesc {
                    mfr: "port25".into(),
                    hw: "port25-sim".into(),
                    sw: env!("CARGO_PKG_VERSION").into(),
                    serial: "None".into(),
                    dp: format!("sim {:016x}", self.sw.cfg.dpid),
                },
            ),
            OFPMP_FLOW => {
                let r = &b[8..];
                if r.len() < 32 {
                    return self.error(out, frame, (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN));
                }
                let table_id = r[0];
                let cookie = u64::from_be_bytes(r[16..24].try_into().unwrap_or_default());
                let mask = u64::from_be_bytes(r[24..32].try_into().unwrap_or_default());
                let filter = match table::split_match(&r[32..]) {
                    Ok((m, _)) => m.into_owned(),
                    Err(e) => return self.error(out, frame, e),
                };
                self.flow_stats(frame.xid, table_id, cookie, mask, &filter, out);
            }
            _ => self.error(out, frame, (OFPET_BAD_REQUEST, OFPBRC_BAD_MULTIPART)),
        }
    }

    /// Flow stats reply, split over several messages at `multipart_max`.
    fn flow_stats(&self, xid: u32, table_id: u8, cookie: u64, mask: u64, filter: &[u8], out: &mut BytesMut) {
        let max = self.sw.cfg.multipart_max.clamp(256, 65535 - 16);
        let t = self.sw.table().clone();
        let mut start = begin_flow_reply(out, xid);
        t.select(&self.sw.fabric.interner, table_id, cookie, mask, filter, |ident, content| {
            let oxm = &ident[3..];
            let match_len = 4 + oxm.len();
            let rec_len = 48 + match_len.div_ceil(8) * 8 + (content.len() - 8);
            if out.len() - start - 16 + rec_len > max && out.len() - start > 16 {
                finish_reply(out, start, true);
                start = begin_flow_reply(out, xid);
            }
            out.put_u16(rec_len as u16);
            out.put_u8(ident[0]);
            out.put_u8(0);
            out.put_u32(0); // duration_sec
            out.put_u32(0); // duration_nsec
            out.put_slice(&ident[1..3]); // priority
            out.put_u16(0); // idle
            out.put_u16(0); // hard
            out.put_u16(0); // flags
            out.put_u32(0);
            out.put_slice(&content[..8]); // cookie
            out.put_u64(0); // packets
            out.put_u64(0); // bytes
            out.put_u16(1);
            out.put_u16(match_len as u16);
            out.put_slice(oxm);
            out.put_bytes(0, match_len.div_ceil(8) * 8 - match_len);
            out.put_slice(&content[8..]);
        });
        finish_reply(out, start, false);
    }

    fn experimenter(&mut self, frame: &Frame, out: &mut BytesMut) {
        let b = &frame.body[..];
        if b.len() < 8 {
            return self.error(out, frame, (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN));
        }
        let experimenter = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let exp_type = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        if experimenter != ONF_EXPERIMENTER
            || !self.sw.cfg.bundles
            || (exp_type != ONF_ET_BUNDLE_CONTROL && exp_type != ONF_ET_BUNDLE_ADD_MESSAGE)
        {
            return self.error(out, frame, (OFPET_BAD_REQUEST, OFPBRC_BAD_EXPERIMENTER));
        }
        if b.len() < 16 {
            return self.error(out, frame, (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN));
        }
        let id = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        let flags = u16::from_be_bytes([b[14], b[15]]);
        if exp_type == ONF_ET_BUNDLE_ADD_MESSAGE {
            return self.bundle_add(frame, id, flags, &b[16..], out);
        }
        let ctrl = u16::from_be_bytes([b[12], b[13]]);
        if let Some(a) = self.sw.counters.bundle_ctrl.get(usize::from(ctrl)) {
            Counters::bump(a);
        }
        let exp_err = |code| (OFPET_EXPERIMENTER, code);
        let reply = match ctrl {
            0 => {
                if self.bundles.contains_key(&id) {
                    return self.error(out, frame, exp_err(OFPBFC_BUNDLE_EXIST));
                }
                if flags & !(bundle::BUNDLE_ATOMIC | bundle::BUNDLE_ORDERED) != 0 {
                    return self.error(out, frame, exp_err(OFPBFC_BAD_FLAGS));
                }
                self.bundles.insert(id, Bundle { flags, closed: false, ops: Vec::new() });
                BundleCtrl::OpenReply
            }
            2 => match self.bundles.get_mut(&id) {
                None => return self.error(out, frame, exp_err(OFPBFC_BAD_ID)),
                Some(b) if b.closed => return self.error(out, frame, exp_err(OFPBFC_BUNDLE_CLOSED)),
                Some(b) => {
                    b.closed = true;
                    BundleCtrl::CloseReply
                }
            },
            4 => match self.bundles.remove(&id) {
                None => return self.error(out, frame, exp_err(OFPBFC_BAD_ID)),
                Some(b) if b.flags != flags => {
                    // OVS discards the bundle on a commit with other flags.
                    return self.error(out, frame, exp_err(OFPBFC_BAD_FLAGS));
                }
                Some(b) => {
                    // Every op was checked when it was added, so the commit
                    // cannot fail half-way: apply all of them under one
                    // lock, which is the atomic step.
                    self.apply(&b.ops);
                    BundleCtrl::CommitReply
                }
            },
            6 => match self.bundles.remove(&id) {
                None => return self.error(out, frame, exp_err(OFPBFC_BAD_ID)),
                Some(_) => BundleCtrl::DiscardReply,
            },
            _ => return self.error(out, frame, exp_err(OFPBFC_BAD_TYPE)),
        };
        bundle::encode_bundle_ctrl(out, frame.xid, id, reply, flags);
    }

    fn bundle_add(&mut self, frame: &Frame, id: u32, flags: u16, inner: &[u8], out: &mut BytesMut) {
        Counters::bump(&self.sw.counters.bundle_adds);
        let exp_err = |code| (OFPET_EXPERIMENTER, code);
        if inner.len() < 8 || usize::from(u16::from_be_bytes([inner[2], inner[3]])) != inner.len() {
            return self.error(out, frame, (OFPET_BAD_REQUEST, OFPBRC_BAD_LEN));
        }
        if u32::from_be_bytes([inner[4], inner[5], inner[6], inner[7]]) != frame.xid {
            return self.error(out, frame, exp_err(OFPBFC_MSG_BAD_XID));
        }
        if inner[1] != msg_type::FLOW_MOD {
            return self.error(out, frame, exp_err(OFPBFC_MSG_UNSUP));
        }
        let fm = match table::parse_flow_mod(&inner[8..]) {
            Ok(fm) => fm,
            Err(e) => return self.error(out, frame, e),
        };
        Counters::bump(&self.sw.counters.flow_mods[fm.command as usize]);
        let op = table::to_op(&self.sw.fabric.interner, &mut self.scratch, &fm);
        // OVS opens a bundle implicitly on its first add.
        let b = self.bundles.entry(id).or_insert_with(|| Bundle { flags, closed: false, ops: Vec::new() });
        if b.closed {
            return self.error(out, frame, exp_err(OFPBFC_BUNDLE_CLOSED));
        }
        if b.flags != flags {
            return self.error(out, frame, exp_err(OFPBFC_BAD_FLAGS));
        }
        b.ops.push(op);
    }
}

fn begin_flow_reply(out: &mut BytesMut, xid: u32) -> usize {
    let start = out.len();
    out.put_u8(OFP13);
    out.put_u8(msg_type::MULTIPART_REPLY);
    out.put_u16(0);
    out.put_u32(xid);
    out.put_u16(OFPMP_FLOW);
    out.put_u16(0);
    out.put_u32(0);
    start
}

fn finish_reply(out: &mut BytesMut, start: usize, more: bool) {
    let len = (out.len() - start) as u16;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    if more {
        out[start + 10..start + 12].copy_from_slice(&1u16.to_be_bytes());
    }
}
