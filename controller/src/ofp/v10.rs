//! OpenFlow 1.0 (wire version 0x01): decoding what a 1.0 switch sends, and
//! encoding what port25d sends to one.
//!
//! Decoding is the project's own and total, like [`super::v13`]. So are
//! the encoders. The design named rust_ofp's `openflow0x01` types for
//! them, but rust_ofp 0.2.1 writes `ofp_match` wrong: `Pattern::marshal`
//! puts `nw_tos, pad[2], nw_proto` where OpenFlow 1.0 has `nw_tos,
//! nw_proto, pad[2]`, so `tcp,tp_dst=25` goes out as `ip,nw_proto=0` and
//! OVS then drops the `tp_dst` (ofp-print: "normalization changed
//! ofp_match ... post: ip,nw_proto=0"). A port-25 block sent through it
//! blocks nothing. Its parsers panic on unknown types and `transmute` wire
//! values, so they were never an option for switch bytes.
//!
//! ```text
//! 1.0 message types that differ from 1.3:
//!   VENDOR 4 | FEATURES_REQUEST 5 / REPLY 6 | PORT_STATUS 12 | FLOW_MOD 14
//!   STATS_REQUEST 16 / REPLY 17 | BARRIER_REQUEST 18 / REPLY 19
//!
//! FEATURES_REPLY body (24 + 48 per port):
//!   datapath_id u64 | n_buffers u32 | n_tables u8 | pad 3 | capabilities u32
//!   | actions u32 | ofp_phy_port[]
//!
//! PORT_STATUS body (56): reason u8 | pad 7 | ofp_phy_port (48):
//!   port_no u16 | hw_addr 6 | name 16 | config, state, curr, advertised,
//!   supported, peer: u32
//!
//! VENDOR body: vendor u32 | data
//!
//! ofp_match (40):
//!   wildcards u32 | in_port u16 | dl_src 6 | dl_dst 6 | dl_vlan u16
//!   | dl_vlan_pcp u8 | pad 1 | dl_type u16 | nw_tos u8 | nw_proto u8 | pad 2
//!   | nw_src u32 | nw_dst u32 | tp_src u16 | tp_dst u16
//!   wildcards: bit 0 in_port, 1 dl_vlan, 2 dl_src, 3 dl_dst, 4 dl_type,
//!   5 nw_proto, 6 tp_src, 7 tp_dst, 8..13 nw_src wildcarded low bits (>= 32:
//!   all), 14..19 nw_dst likewise, 20 dl_vlan_pcp, 21 nw_tos
//!
//! STATS_REQUEST / STATS_REPLY body: type u16 | flags u16 (reply: 1 = MORE) | body
//!   FLOW (1) request: ofp_match | table_id u8 | pad 1 | out_port u16
//!   FLOW (1) reply: a sequence of ofp_flow_stats:
//!     length u16 | table_id u8 | pad 1 | ofp_match (40) | duration_sec u32
//!     | duration_nsec u32 | priority u16 | idle_timeout u16 | hard_timeout u16
//!     | pad 6 | cookie u64 | packet_count u64 | byte_count u64   (88 bytes)
//!     | actions (to `length`): type u16 | len u16 (multiple of 8) | ...
//!       OUTPUT (0), len 8: port u16 | max_len u16
//!
//! FLOW_MOD body: ofp_match (40) | cookie u64 | command u16 | idle u16
//!   | hard u16 | priority u16 | buffer_id u32 | out_port u16 | flags u16 | actions
//! ```
//!
//! # What 1.0 cannot say
//! - **IPv6.** A 1.0 match has no IPv6 fields: [`match_to_v10`] refuses
//!   IPv6 matches ([`Unrepresentable::Ipv6`]); a session skips those flows
//!   and reports `ipv6_enforced: false` for the switch.
//! - **Fragments.** There is no `nw_frag` field ([`Unrepresentable::Fragment`]).
//!   What a 1.0 switch does with fragments is the switch's `frag handling`
//!   (`OFPC_FRAG_*` via set-config; OVS: `ovs-ofctl set-frags`). In OVS's
//!   default `normal` mode every IPv4 fragment, first included, shows
//!   tp_src=tp_dst=0, so a `tp_dst=25` drop does not see a fragmented SYN:
//!   it is forwarded. Only `drop` mode (drop all IP fragments) closes that
//!   hole on a 1.0 switch; it also drops fragmented UDP (large DNS answers).
//! - **Tables.** A 1.0 flow-mod has no table id: it goes to the switch's
//!   table 0. Only `table = 0` is representable.
//! - **goto_table.** No instructions in 1.0: only `Drop` and `Normal`.
//! - **Transport ports without prerequisites.** 1.0 switches ignore
//!   tp_src/tp_dst unless dl_type=0x0800 and nw_proto=6 are matched too (the
//!   1.0 errata): a careless `tp_dst=25` drop would drop all IP. Every port
//!   match here carries both, and [`match_to_v10`] refuses one that does not.
//! - **cookie_mask.** 1.0 has none: a strict delete selects by match and
//!   priority only, and ignores the cookie. A *foreign* flow with exactly our
//!   match and priority is deleted by our strict delete. The session must
//!   therefore read back before deleting and delete only flows it saw with
//!   its own cookie at that match and priority; even then a foreign flow
//!   could have replaced ours (same match and priority replace in place)
//!   between read-back and delete, which 1.0 cannot rule out.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use port25_rules::{FlowAction, Match, Prefix};

use super::error::need;
use super::message::Message;
use super::v13::{Features, MultipartBody, MultipartReply};
use super::{begin_message, finish_message, nul_trimmed, DecodeError, EncodeError, MAX_FRAME, OFP10};

/// `OFP_NO_BUFFER` (buffer_id of a flow mod that applies to no packet).
const OFP_NO_BUFFER: u32 = 0xffff_ffff;

/// OpenFlow 1.0 message types.
pub mod msg_type {
    pub const VENDOR: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const PORT_STATUS: u8 = 12;
    pub const FLOW_MOD: u8 = 14;
    pub const STATS_REQUEST: u8 = 16;
    pub const STATS_REPLY: u8 = 17;
    pub const BARRIER_REQUEST: u8 = 18;
    pub const BARRIER_REPLY: u8 = 19;
}

pub const OFPST_FLOW: u16 = 1;
pub const OFPSF_REPLY_MORE: u16 = 1;
/// `OFPP_NONE`: no out-port filter.
pub const OFPP_NONE: u16 = 0xffff;
/// `OFPP_NORMAL` in 1.0's 16-bit port space.
pub const OFPP_NORMAL: u16 = 0xfffa;
pub const OFPAT_OUTPUT: u16 = 0;
/// All 22 wildcard bits set: matches everything.
pub const OFPFW_ALL: u32 = (1 << 22) - 1;
const OFPFW_IN_PORT: u32 = 1 << 0;
const OFPFW_DL_VLAN: u32 = 1 << 1;
const OFPFW_DL_SRC: u32 = 1 << 2;
const OFPFW_DL_DST: u32 = 1 << 3;
const OFPFW_DL_TYPE: u32 = 1 << 4;
const OFPFW_NW_PROTO: u32 = 1 << 5;
const OFPFW_TP_SRC: u32 = 1 << 6;
const OFPFW_TP_DST: u32 = 1 << 7;
const OFPFW_NW_SRC_SHIFT: u32 = 8;
const OFPFW_NW_DST_SHIFT: u32 = 14;
const OFPFW_DL_VLAN_PCP: u32 = 1 << 20;
const OFPFW_NW_TOS: u32 = 1 << 21;

/// Length of `ofp_match`.
pub const MATCH_LEN: usize = 40;
const FEATURES_LEN: usize = 24;
const PORT_STATUS_LEN: usize = 56;
/// `ofp_flow_stats` without actions.
const FLOW_STATS_FIXED: usize = 88;
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const IP_TCP: u8 = 6;

/// One 1.0 `ofp_flow_stats` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStats10 {
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// The 40-byte `ofp_match` as received, to delete the flow strictly
    /// with its own match.
    pub raw_match: Bytes,
    /// The match in port25's terms; `None` when it matches a field port25
    /// does not model (in_port, MACs, VLAN, ToS) or breaks a prerequisite.
    pub matcher: Option<Match>,
    /// No actions → `Drop`; exactly one OUTPUT to `OFPP_NORMAL` → `Normal`;
    /// `None` for anything else.
    pub action: Option<FlowAction>,
}

/// Decode a 1.0 message other than Hello/Error/Echo (decoded in
/// [`super::message`] for every version).
///
/// 1.0 messages with a 1.3 counterpart become the same [`Message`]
/// variant: features reply ([`Features`] with `auxiliary_id` 0), port
/// status (port number widened), barrier reply. A flow stats reply is a
/// [`Message::MultipartReply`] with [`MultipartBody::Flow10`]; a vendor
/// message is a [`Message::Experimenter`] with `exp_type` 0 (1.0 vendor
/// messages have none; `data` is everything after the vendor id).
pub(crate) fn decode(ty: u8, mut body: Bytes) -> Result<Message, DecodeError> {
    Ok(match ty {
        msg_type::VENDOR => {
            need(&body, 4, "vendor")?;
            let experimenter = body.get_u32();
            Message::Experimenter { experimenter, exp_type: 0, data: body }
        }
        msg_type::FEATURES_REPLY => {
            need(&body, FEATURES_LEN, "1.0 features reply")?;
            let datapath_id = body.get_u64();
            let n_buffers = body.get_u32();
            let n_tables = body.get_u8();
            body.advance(3);
            let capabilities = body.get_u32();
            Message::FeaturesReply(Features { datapath_id, n_buffers, n_tables, auxiliary_id: 0, capabilities })
        }
        super::msg_type::FLOW_REMOVED => {
            // ofp_match (40), cookie, priority, reason, pad, durations,
            // idle timeout, pad, counters: 80 bytes of body in all.
            need(&body, MATCH_LEN + 40, "1.0 flow removed")?;
            body.advance(MATCH_LEN);
            let cookie = body.get_u64();
            let priority = body.get_u16();
            let reason = body.get_u8();
            Message::FlowRemoved(super::message::FlowRemoved { cookie, priority, reason, table_id: 0 })
        }
        msg_type::PORT_STATUS => {
            need(&body, PORT_STATUS_LEN, "1.0 port status")?;
            let reason = body.get_u8();
            body.advance(7);
            let port_no = u32::from(body.get_u16());
            body.advance(6);
            let name = nul_trimmed(&body.split_to(16));
            Message::PortStatus { reason, port_no, name }
        }
        msg_type::STATS_REPLY => {
            need(&body, 4, "1.0 stats reply")?;
            let mp_type = body.get_u16();
            let more = body.get_u16() & OFPSF_REPLY_MORE != 0;
            let body = match mp_type {
                OFPST_FLOW => MultipartBody::Flow10(decode_flow_stats(body)?),
                _ => MultipartBody::Other(body),
            };
            Message::MultipartReply(MultipartReply { mp_type, more, body })
        }
        msg_type::BARRIER_REPLY => Message::BarrierReply,
        ty => Message::Unknown { msg_type: ty, body },
    })
}

/// Decode a 1.0 flow stats reply body.
///
/// # Errors
/// A record shorter than 88 bytes (length 0 included) or running past the
/// body, an action whose length is below 8, not a multiple of 8, or past
/// its record, an OUTPUT action shorter than 8.
pub fn decode_flow_stats(mut body: Bytes) -> Result<Vec<FlowStats10>, DecodeError> {
    let mut flows = Vec::with_capacity(body.remaining() / FLOW_STATS_FIXED);
    while body.has_remaining() {
        let Some(&[l0, l1]) = body.get(..2) else {
            return Err(DecodeError::Truncated { what: "1.0 flow stats length", need: 2, have: body.len() });
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len < FLOW_STATS_FIXED {
            return Err(DecodeError::BadTlvLength { what: "1.0 flow stats record", len });
        }
        need(&body, len, "1.0 flow stats record")?;
        flows.push(decode_flow_stats_record(body.split_to(len))?);
    }
    Ok(flows)
}

fn decode_flow_stats_record(mut rec: Bytes) -> Result<FlowStats10, DecodeError> {
    need(&rec, FLOW_STATS_FIXED, "1.0 flow stats record")?;
    rec.advance(2);
    let table_id = rec.get_u8();
    rec.advance(1);
    let raw_match = rec.split_to(MATCH_LEN);
    let duration_sec = rec.get_u32();
    rec.advance(4);
    let priority = rec.get_u16();
    let idle_timeout = rec.get_u16();
    let hard_timeout = rec.get_u16();
    rec.advance(6);
    let cookie = rec.get_u64();
    let packet_count = rec.get_u64();
    let byte_count = rec.get_u64();
    let action = decode_actions(rec)?;
    let matcher = decode_match(&raw_match);
    Ok(FlowStats10 {
        table_id,
        priority,
        cookie,
        packet_count,
        byte_count,
        duration_sec,
        idle_timeout,
        hard_timeout,
        raw_match,
        matcher,
        action,
    })
}

/// Decode a 1.0 action list. `Ok(None)` when well-formed but not a [`FlowAction`].
fn decode_actions(mut buf: Bytes) -> Result<Option<FlowAction>, DecodeError> {
    let mut normal = Vec::with_capacity(buf.remaining() / 8);
    while buf.has_remaining() {
        need(&buf, 4, "1.0 action")?;
        let ty = buf.get_u16();
        let len = usize::from(buf.get_u16());
        if len < 8 || len % 8 != 0 {
            return Err(DecodeError::BadTlvLength { what: "1.0 action", len });
        }
        need(&buf, len - 4, "1.0 action")?;
        let mut a = buf.split_to(len - 4);
        normal.push(ty == OFPAT_OUTPUT && a.get_u16() == OFPP_NORMAL);
    }
    Ok(match normal.as_slice() {
        [] => Some(FlowAction::Drop),
        [true] => Some(FlowAction::Normal),
        _ => None,
    })
}

/// A 1.0 `ofp_match` (exactly 40 bytes) in port25's terms; `None` if it
/// matches anything a [`Match`] cannot say, or is not 40 bytes.
pub fn decode_match(raw: &[u8]) -> Option<Match> {
    let raw: &[u8; MATCH_LEN] = raw.try_into().ok()?;
    let mut b = &raw[..];
    let w = b.get_u32();
    b.advance(2 + 12 + 2 + 2); // in_port, dl_src, dl_dst, dl_vlan, dl_vlan_pcp + pad
    let dl_type = b.get_u16();
    b.advance(1); // nw_tos
    let nw_proto = b.get_u8();
    b.advance(2);
    let nw_src = b.get_u32();
    let nw_dst = b.get_u32();
    let tp_src = b.get_u16();
    let tp_dst = b.get_u16();
    // Fields port25 never matches must be wildcarded.
    let unmodelled = OFPFW_IN_PORT | OFPFW_DL_VLAN | OFPFW_DL_SRC | OFPFW_DL_DST | OFPFW_DL_VLAN_PCP | OFPFW_NW_TOS;
    if w & unmodelled != unmodelled {
        return None;
    }
    let exact = |bit: u32| w & bit == 0;
    let eth_type = exact(OFPFW_DL_TYPE).then_some(dl_type);
    let ip_proto = exact(OFPFW_NW_PROTO).then_some(nw_proto);
    let prefix = |addr: u32, shift: u32| -> Option<Option<Prefix>> {
        let wild = (w >> shift) & 0x3f;
        if wild >= 32 {
            return Some(None);
        }
        let len = u8::try_from(32 - wild).ok()?;
        let mask = u32::MAX.checked_shl(wild).unwrap_or(0);
        // A switch reports the address masked; anything else is not a prefix we wrote.
        Prefix::new(std::net::Ipv4Addr::from(addr & mask).into(), len).ok().map(Some)
    };
    let ip_src = prefix(nw_src, OFPFW_NW_SRC_SHIFT)?;
    let ip_dst = prefix(nw_dst, OFPFW_NW_DST_SHIFT)?;
    let tcp_src = exact(OFPFW_TP_SRC).then_some(tp_src);
    let tcp_dst = exact(OFPFW_TP_DST).then_some(tp_dst);
    Match::from_parts(eth_type, ip_proto, ip_src, ip_dst, tcp_src, tcp_dst, None).ok()
}

/// Why a [`Match`], action or table cannot go to a 1.0 switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unrepresentable {
    #[error("OpenFlow 1.0 cannot match IPv6")]
    Ipv6,
    #[error("OpenFlow 1.0 cannot match IP fragments (nw_frag)")]
    Fragment,
    #[error("OpenFlow 1.0 ignores TCP ports without dl_type=0x0800 and nw_proto=6")]
    PortWithoutPrerequisites,
    #[error("OpenFlow 1.0 has no goto_table")]
    GotoTable,
    #[error("OpenFlow 1.0 flow-mods have no table id (only table 0)")]
    Table(u8),
}

/// A 1.0 `ofp_match` for the fields port25 uses; everything else wildcarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match10 {
    pub wildcards: u32,
    pub dl_type: u16,
    pub nw_proto: u8,
    pub nw_src: u32,
    pub nw_dst: u32,
    pub tp_src: u16,
    pub tp_dst: u16,
}

impl Match10 {
    /// Append the 40 bytes.
    pub fn put(&self, buf: &mut BytesMut) {
        buf.put_u32(self.wildcards);
        buf.put_u16(0); // in_port
        buf.put_bytes(0, 12); // dl_src, dl_dst
        buf.put_u16(0); // dl_vlan
        buf.put_u8(0); // dl_vlan_pcp
        buf.put_u8(0); // pad
        buf.put_u16(self.dl_type);
        buf.put_u8(0); // nw_tos
        buf.put_u8(self.nw_proto);
        buf.put_u16(0); // pad
        buf.put_u32(self.nw_src);
        buf.put_u32(self.nw_dst);
        buf.put_u16(self.tp_src);
        buf.put_u16(self.tp_dst);
    }
}

/// Translate a [`Match`] to a 1.0 match.
///
/// # Errors
/// IPv6 and fragment matches, and (never produced by [`Match`]'s
/// constructors) a TCP port without dl_type=0x0800 and nw_proto=6.
pub fn match_to_v10(m: &Match) -> Result<Match10, Unrepresentable> {
    if m.ip_frag().is_some() {
        return Err(Unrepresentable::Fragment);
    }
    let v6 = |p: Option<Prefix>| p.is_some_and(|p| p.v4().is_none());
    // Any Ethernet type but IPv6 can be matched (alone, or IPv4 with its
    // fields): the stacked-VLAN drops are `dl_type=0x8100` and 0x88a8.
    if m.eth_type() == Some(ETH_IPV6) || v6(m.ip_src()) || v6(m.ip_dst()) {
        return Err(Unrepresentable::Ipv6);
    }
    let ip_fields = m.ip_proto().is_some() || m.ip_src().is_some() || m.ip_dst().is_some();
    if ip_fields && m.eth_type() != Some(ETH_IPV4) {
        return Err(Unrepresentable::Ipv6);
    }
    let has_port = m.tcp_src().is_some() || m.tcp_dst().is_some();
    if has_port && (m.eth_type() != Some(ETH_IPV4) || m.ip_proto() != Some(IP_TCP)) {
        return Err(Unrepresentable::PortWithoutPrerequisites);
    }
    let mut w = OFPFW_ALL;
    let mut out = Match10 { wildcards: 0, dl_type: 0, nw_proto: 0, nw_src: 0, nw_dst: 0, tp_src: 0, tp_dst: 0 };
    if let Some(e) = m.eth_type() {
        w &= !OFPFW_DL_TYPE;
        out.dl_type = e;
    }
    if let Some(p) = m.ip_proto() {
        w &= !OFPFW_NW_PROTO;
        out.nw_proto = p;
    }
    // The address, and how many low bits are wildcarded (0 = exact).
    let addr =
        |p: Option<Prefix>| p.and_then(|p| p.v4()).map(|(a, mask)| (u32::from(a), 32 - mask.to_bits().count_ones()));
    if let Some((a, wild)) = addr(m.ip_src()) {
        w = (w & !(0x3f << OFPFW_NW_SRC_SHIFT)) | (wild << OFPFW_NW_SRC_SHIFT);
        out.nw_src = a;
    }
    if let Some((a, wild)) = addr(m.ip_dst()) {
        w = (w & !(0x3f << OFPFW_NW_DST_SHIFT)) | (wild << OFPFW_NW_DST_SHIFT);
        out.nw_dst = a;
    }
    if let Some(p) = m.tcp_src() {
        w &= !OFPFW_TP_SRC;
        out.tp_src = p;
    }
    if let Some(p) = m.tcp_dst() {
        w &= !OFPFW_TP_DST;
        out.tp_dst = p;
    }
    out.wildcards = w;
    Ok(out)
}

/// `OFPT_HELLO`, 1.0 style: a bare header (a 1.0 switch ignores a bitmap,
/// and a 1.0-only peer is recognised by the header version).
pub fn encode_hello(buf: &mut BytesMut, xid: u32) {
    let start = begin_message(buf, OFP10, super::msg_type::HELLO, xid);
    finish_message(buf, start);
}

/// `OFPT_FEATURES_REQUEST` (1.0).
pub fn encode_features_request(buf: &mut BytesMut, xid: u32) {
    let start = begin_message(buf, OFP10, msg_type::FEATURES_REQUEST, xid);
    finish_message(buf, start);
}

/// `OFPT_ECHO_REQUEST` (1.0). Data beyond what fits in one message is cut off.
pub fn encode_echo_request(buf: &mut BytesMut, xid: u32, data: &[u8]) {
    super::encode_echo_request(buf, OFP10, xid, data);
}

/// `OFPT_ECHO_REPLY` (1.0).
pub fn encode_echo_reply(buf: &mut BytesMut, xid: u32, data: &[u8]) {
    super::encode_echo_reply(buf, OFP10, xid, data);
}

/// `OFPT_BARRIER_REQUEST` (1.0 type 18).
pub fn encode_barrier_request(buf: &mut BytesMut, xid: u32) {
    let start = begin_message(buf, OFP10, msg_type::BARRIER_REQUEST, xid);
    finish_message(buf, start);
}

/// `OFPST_FLOW` request: every flow in `table_id` (0xff: all tables), any
/// out port, wildcard match. 1.0 cannot filter by cookie: the reply holds
/// foreign flows too, and the session keeps only those with its cookie.
pub fn encode_flow_stats_request(buf: &mut BytesMut, xid: u32, table_id: u8) {
    let start = begin_message(buf, OFP10, msg_type::STATS_REQUEST, xid);
    buf.put_u16(OFPST_FLOW);
    buf.put_u16(0);
    buf.put_u32(OFPFW_ALL);
    buf.put_bytes(0, MATCH_LEN - 4);
    buf.put_u8(table_id);
    buf.put_u8(0);
    buf.put_u16(OFPP_NONE);
    finish_message(buf, start);
}

/// Flow mod commands port25 sends to 1.0 switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowModCommand10 {
    Add,
    /// Match and priority only: 1.0 has no cookie_mask (see the module docs).
    DeleteStrict,
}

impl FlowModCommand10 {
    fn wire(self) -> u16 {
        match self {
            FlowModCommand10::Add => 0,
            FlowModCommand10::DeleteStrict => 4,
        }
    }
}

/// The match of a 1.0 flow mod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchSpec10<'a> {
    /// Translated by [`match_to_v10`].
    Typed(&'a Match),
    /// A 40-byte `ofp_match` as received in [`FlowStats10::raw_match`], sent back verbatim.
    Raw(&'a [u8]),
}

/// A 1.0 `OFPT_FLOW_MOD`: no buffer, out_port NONE, permanent, no flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMod10<'a> {
    pub command: FlowModCommand10,
    /// Must be 0: 1.0 flow-mods go to table 0.
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    pub matcher: MatchSpec10<'a>,
    /// Encoded for `Add` only.
    pub action: FlowAction,
}

/// Why a 1.0 flow mod was not encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowModError10 {
    #[error(transparent)]
    Unrepresentable(#[from] Unrepresentable),
    #[error("a raw 1.0 match must be {MATCH_LEN} bytes, got {0}")]
    BadRawMatch(usize),
}

/// Append a 1.0 `OFPT_FLOW_MOD` (always well under 65535 bytes).
///
/// # Errors
/// The match, action or table cannot be said in 1.0 (the session skips
/// that flow and reports it), or a raw match is not 40 bytes. `buf` is
/// then unchanged.
pub fn encode_flow_mod(buf: &mut BytesMut, xid: u32, fm: &FlowMod10<'_>) -> Result<(), FlowModError10> {
    if fm.table_id != 0 {
        return Err(Unrepresentable::Table(fm.table_id).into());
    }
    let matcher: [u8; MATCH_LEN] = match fm.matcher {
        MatchSpec10::Typed(m) => {
            let mut b = BytesMut::with_capacity(MATCH_LEN);
            match_to_v10(m)?.put(&mut b);
            b[..].try_into().map_err(|_| FlowModError10::BadRawMatch(b.len()))?
        }
        MatchSpec10::Raw(r) => r.try_into().map_err(|_| FlowModError10::BadRawMatch(r.len()))?,
    };
    let output_normal = match (fm.command, fm.action) {
        (FlowModCommand10::DeleteStrict, _) | (FlowModCommand10::Add, FlowAction::Drop) => false,
        (FlowModCommand10::Add, FlowAction::Normal) => true,
        (FlowModCommand10::Add, FlowAction::GotoTable(_)) => return Err(Unrepresentable::GotoTable.into()),
    };
    let start = begin_message(buf, OFP10, msg_type::FLOW_MOD, xid);
    buf.put_slice(&matcher);
    buf.put_u64(fm.cookie);
    buf.put_u16(fm.command.wire());
    buf.put_u16(0); // idle_timeout
    buf.put_u16(0); // hard_timeout
    buf.put_u16(fm.priority);
    buf.put_u32(OFP_NO_BUFFER);
    buf.put_u16(OFPP_NONE);
    buf.put_u16(0); // flags
    if output_normal {
        buf.put_u16(OFPAT_OUTPUT);
        buf.put_u16(8);
        buf.put_u16(OFPP_NORMAL);
        buf.put_u16(0); // max_len: only for output to the controller
    }
    finish_message(buf, start);
    Ok(())
}

// --- the switch's side, for fake switches, fuzz seeds and tests ------------

/// 1.0 `OFPT_FEATURES_REPLY` without ports.
pub fn encode_features_reply(buf: &mut BytesMut, xid: u32, f: &Features) {
    let start = begin_message(buf, OFP10, msg_type::FEATURES_REPLY, xid);
    buf.put_u64(f.datapath_id);
    buf.put_u32(f.n_buffers);
    buf.put_u8(f.n_tables);
    buf.put_bytes(0, 3);
    buf.put_u32(f.capabilities);
    buf.put_u32(0);
    finish_message(buf, start);
}

/// 1.0 `OFPT_BARRIER_REPLY` (type 19).
pub fn encode_barrier_reply(buf: &mut BytesMut, xid: u32) {
    let start = begin_message(buf, OFP10, msg_type::BARRIER_REPLY, xid);
    finish_message(buf, start);
}

/// 1.0 `OFPT_VENDOR`.
pub fn encode_vendor(buf: &mut BytesMut, xid: u32, vendor: u32, data: &[u8]) {
    let start = begin_message(buf, OFP10, msg_type::VENDOR, xid);
    buf.put_u32(vendor);
    buf.put_slice(data.get(..MAX_FRAME - 12).unwrap_or(data));
    finish_message(buf, start);
}

/// 1.0 `OFPT_PORT_STATUS` for a port with all other fields zero.
pub fn encode_port_status(buf: &mut BytesMut, xid: u32, reason: u8, port_no: u16, name: &str) {
    let start = begin_message(buf, OFP10, msg_type::PORT_STATUS, xid);
    buf.put_u8(reason);
    buf.put_bytes(0, 7);
    buf.put_u16(port_no);
    buf.put_bytes(0, 6);
    let n = name.as_bytes();
    let n = n.get(..15).unwrap_or(n);
    buf.put_slice(n);
    buf.put_bytes(0, 16 - n.len());
    buf.put_bytes(0, 6 * 4);
    finish_message(buf, start);
}

/// A 1.0 flow stats reply holding `flows` (their `raw_match` and `action`;
/// `matcher` is ignored, `None` action is written as an OUTPUT to port 1).
///
/// # Errors
/// The reply would exceed 65535 bytes, or a raw match is not 40 bytes;
/// `buf` is then unchanged.
pub fn encode_flow_stats_reply(
    buf: &mut BytesMut,
    xid: u32,
    more: bool,
    flows: &[FlowStats10],
) -> Result<(), EncodeError> {
    let start = begin_message(buf, OFP10, msg_type::STATS_REPLY, xid);
    buf.put_u16(OFPST_FLOW);
    buf.put_u16(if more { OFPSF_REPLY_MORE } else { 0 });
    for f in flows {
        if f.raw_match.len() != MATCH_LEN {
            buf.truncate(start);
            return Err(EncodeError { what: "1.0 flow stats record (match not 40 bytes)", len: f.raw_match.len() });
        }
        let rec = buf.len();
        buf.put_u16(0);
        buf.put_u8(f.table_id);
        buf.put_u8(0);
        buf.put_slice(&f.raw_match);
        buf.put_u32(f.duration_sec);
        buf.put_u32(0);
        buf.put_u16(f.priority);
        buf.put_u16(f.idle_timeout);
        buf.put_u16(f.hard_timeout);
        buf.put_bytes(0, 6);
        buf.put_u64(f.cookie);
        buf.put_u64(f.packet_count);
        buf.put_u64(f.byte_count);
        let port = match f.action {
            Some(FlowAction::Drop) => None,
            Some(FlowAction::Normal) => Some(OFPP_NORMAL),
            _ => Some(1),
        };
        if let Some(port) = port {
            buf.put_u16(OFPAT_OUTPUT);
            buf.put_u16(8);
            buf.put_u16(port);
            buf.put_u16(0);
        }
        let len = u16::try_from(buf.len() - rec).unwrap_or(u16::MAX);
        buf[rec..rec + 2].copy_from_slice(&len.to_be_bytes());
    }
    let len = buf.len().saturating_sub(start);
    if len > MAX_FRAME {
        buf.truncate(start);
        return Err(EncodeError { what: "1.0 flow stats reply", len });
    }
    finish_message(buf, start);
    Ok(())
}

/// The 40-byte 1.0 match for `m`, as a switch would report it (for tests
/// and fakes).
///
/// # Errors
/// As [`match_to_v10`].
pub fn match_bytes(m: &Match) -> Result<Bytes, Unrepresentable> {
    let mut b = BytesMut::with_capacity(MATCH_LEN);
    match_to_v10(m)?.put(&mut b);
    Ok(b.freeze())
}
