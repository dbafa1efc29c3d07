//! OpenFlow 1.3 messages beyond Hello/Error/Echo.
//!
//! ```text
//! FEATURES_REPLY body (24):
//!   datapath_id u64 | n_buffers u32 | n_tables u8 | auxiliary_id u8 | pad 2
//!   | capabilities u32 | reserved u32
//!
//! PORT_STATUS body (72):
//!   reason u8 | pad 7 | ofp_port (64):
//!     port_no u32 | pad 4 | hw_addr 6 | pad 2 | name 16 (NUL-padded)
//!     | config, state, curr, advertised, supported, peer, curr_speed, max_speed: u32
//!
//! EXPERIMENTER body: experimenter u32 | exp_type u32 | data
//!
//! MULTIPART_REQUEST / MULTIPART_REPLY body:
//!   type u16 | flags u16 (reply: 1 = OFPMPF_REPLY_MORE) | pad 4 | body
//!   DESC (0) reply: mfr 256 | hw 256 | sw 256 | serial 32 | dp 256 (NUL-padded)
//!   FLOW (1) request: table_id u8 | pad 3 | out_port u32 | out_group u32 | pad 4
//!                     | cookie u64 | cookie_mask u64 | ofp_match
//!   FLOW (1) reply: a sequence of ofp_flow_stats:
//!     length u16 | table_id u8 | pad 1 | duration_sec u32 | duration_nsec u32
//!     | priority u16 | idle_timeout u16 | hard_timeout u16 | flags u16 | pad 4
//!     | cookie u64 | packet_count u64 | byte_count u64          (48 bytes)
//!     | ofp_match | instructions (to `length`)
//!
//! ofp_match: type u16 (1 = OFPMT_OXM) | length u16 (4 + OXM bytes) | OXM TLVs
//!            | zero pad to a multiple of 8 (not counted in length)
//!
//! FLOW_MOD body:
//!   cookie u64 | cookie_mask u64 | table_id u8 | command u8 | idle_timeout u16
//!   | hard_timeout u16 | priority u16 | buffer_id u32 | out_port u32
//!   | out_group u32 | flags u16 | pad 2                         (40 bytes)
//!   | ofp_match | instructions
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use port25_rules::{FlowAction, Match};

use super::error::need;
use super::instruction::{decode_instructions, encode_instructions};
use super::message::Message;
use super::oxm::{decode_match, encode_match};
use super::{begin_message, finish_message, msg_type, nul_trimmed, pad8, DecodeError, EncodeError, MAX_FRAME, OFP13};

pub const OFPMP_DESC: u16 = 0;
pub const OFPMP_FLOW: u16 = 1;
pub const OFPMPF_REPLY_MORE: u16 = 1;
pub const OFPMT_OXM: u16 = 1;
pub const OFPP_ANY: u32 = 0xffff_ffff;
pub const OFPG_ANY: u32 = 0xffff_ffff;
pub const OFP_NO_BUFFER: u32 = 0xffff_ffff;
/// `OFPTT_ALL`: every table (for flow stats requests and deletes).
pub const OFPTT_ALL: u8 = 0xff;

const FEATURES_LEN: usize = 24;
const PORT_STATUS_LEN: usize = 72;
const DESC_LEN: usize = 256 * 4 + 32;
/// `ofp_flow_stats` up to its match.
const FLOW_STATS_FIXED: usize = 48;
/// The smallest record: the fixed part plus an empty, padded match.
const FLOW_STATS_MIN: usize = FLOW_STATS_FIXED + 8;
const FLOW_MOD_FIXED: usize = 40;

/// `OFPT_FEATURES_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
}

/// `OFPT_MULTIPART_REPLY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartReply {
    pub mp_type: u16,
    /// `OFPMPF_REPLY_MORE`: more replies with this xid follow.
    pub more: bool,
    pub body: MultipartBody,
}

/// The body of a multipart reply, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartBody {
    Flow(Vec<FlowStats>),
    Desc(SwitchDesc),
    /// An OpenFlow 1.0 flow stats reply (`OFPST_FLOW`): 1.0 records carry
    /// a 40-byte `ofp_match` and an action list, not OXM and instructions.
    Flow10(Vec<super::v10::FlowStats10>),
    /// Any type port25 does not decode.
    Other(Bytes),
}

/// `OFPMP_DESC` reply; every string NUL-trimmed, lossy UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchDesc {
    pub mfr: String,
    pub hw: String,
    pub sw: String,
    pub serial: String,
    pub dp: String,
}

/// One `ofp_flow_stats` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowStats {
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    /// The OXM fields exactly as received (without the ofp_match type/length header and without padding),
    /// so a stale foreign-shaped flow can be deleted strictly with its own match bytes.
    pub raw_match: Bytes,
    /// The match in port25's terms, or None when it has fields port25 does not model (unknown OXM class/field,
    /// experimenter OXM, masks we don't express, or prerequisites violated). Never an error for the whole message.
    pub matcher: Option<Match>,
    /// The instructions in port25's terms, or None when they are anything else.
    pub action: Option<FlowAction>,
}

/// Decode an OpenFlow 1.3 message other than Hello/Error/Echo.
pub(crate) fn decode(ty: u8, mut body: Bytes) -> Result<Message, DecodeError> {
    Ok(match ty {
        msg_type::EXPERIMENTER => {
            need(&body, 8, "experimenter")?;
            let experimenter = body.get_u32();
            let exp_type = body.get_u32();
            Message::Experimenter { experimenter, exp_type, data: body }
        }
        msg_type::FEATURES_REPLY => {
            need(&body, FEATURES_LEN, "features reply")?;
            let datapath_id = body.get_u64();
            let n_buffers = body.get_u32();
            let n_tables = body.get_u8();
            let auxiliary_id = body.get_u8();
            body.advance(2);
            let capabilities = body.get_u32();
            Message::FeaturesReply(Features { datapath_id, n_buffers, n_tables, auxiliary_id, capabilities })
        }
        msg_type::PORT_STATUS => {
            need(&body, PORT_STATUS_LEN, "port status")?;
            let reason = body.get_u8();
            body.advance(7);
            let port_no = body.get_u32();
            body.advance(4 + 6 + 2);
            let name = nul_trimmed(&body.split_to(16));
            Message::PortStatus { reason, port_no, name }
        }
        msg_type::MULTIPART_REPLY => Message::MultipartReply(decode_multipart_reply(body)?),
        msg_type::BARRIER_REPLY => Message::BarrierReply,
        msg_type::FLOW_REMOVED => {
            // cookie, priority, reason, table; 28 bytes of durations,
            // timeouts and counters; a match of at least 8 bytes (not
            // needed here).
            need(&body, 12 + 36, "flow removed")?;
            let cookie = body.get_u64();
            let priority = body.get_u16();
            let reason = body.get_u8();
            let table_id = body.get_u8();
            Message::FlowRemoved(super::message::FlowRemoved { cookie, priority, reason, table_id })
        }
        ty => Message::Unknown { msg_type: ty, body },
    })
}

fn decode_multipart_reply(mut body: Bytes) -> Result<MultipartReply, DecodeError> {
    need(&body, 8, "multipart reply")?;
    let mp_type = body.get_u16();
    let more = body.get_u16() & OFPMPF_REPLY_MORE != 0;
    body.advance(4);
    let body = match mp_type {
        OFPMP_FLOW => MultipartBody::Flow(decode_flow_stats(body)?),
        OFPMP_DESC => {
            need(&body, DESC_LEN, "desc reply")?;
            let mut field = |n: usize| nul_trimmed(&body.split_to(n));
            MultipartBody::Desc(SwitchDesc {
                mfr: field(256),
                hw: field(256),
                sw: field(256),
                serial: field(32),
                dp: field(256),
            })
        }
        _ => MultipartBody::Other(body),
    };
    Ok(MultipartReply { mp_type, more, body })
}

/// Decode a flow stats reply body: a sequence of records.
///
/// # Errors
/// A record shorter than its fixed part (length 0 included) or running
/// past the body, a match that is not OXM or does not fit its record,
/// malformed OXM TLVs or instructions.
pub fn decode_flow_stats(mut body: Bytes) -> Result<Vec<FlowStats>, DecodeError> {
    // Bounded by the input: each record takes at least FLOW_STATS_MIN bytes.
    let mut flows = Vec::with_capacity(body.remaining() / FLOW_STATS_MIN);
    while body.has_remaining() {
        let Some(&[l0, l1]) = body.get(..2) else {
            return Err(DecodeError::Truncated { what: "flow stats length", need: 2, have: body.len() });
        };
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len < FLOW_STATS_MIN {
            return Err(DecodeError::BadTlvLength { what: "flow stats record", len });
        }
        need(&body, len, "flow stats record")?;
        flows.push(decode_flow_stats_record(body.split_to(len))?);
    }
    Ok(flows)
}

/// One record, whose length has been checked to be at least FLOW_STATS_MIN.
fn decode_flow_stats_record(mut rec: Bytes) -> Result<FlowStats, DecodeError> {
    need(&rec, FLOW_STATS_MIN, "flow stats record")?;
    rec.advance(2);
    let table_id = rec.get_u8();
    rec.advance(1);
    let duration_sec = rec.get_u32();
    rec.advance(4);
    let priority = rec.get_u16();
    let idle_timeout = rec.get_u16();
    let hard_timeout = rec.get_u16();
    let flags = rec.get_u16();
    rec.advance(4);
    let cookie = rec.get_u64();
    let packet_count = rec.get_u64();
    let byte_count = rec.get_u64();
    let raw_match = split_ofp_match(&mut rec)?;
    let matcher = decode_match(&raw_match)?;
    let action = decode_instructions(rec)?;
    Ok(FlowStats {
        table_id,
        priority,
        cookie,
        packet_count,
        byte_count,
        duration_sec,
        idle_timeout,
        hard_timeout,
        flags,
        raw_match,
        matcher,
        action,
    })
}

/// Take an `ofp_match` (with its padding) off the front of `buf`; return its OXM bytes.
fn split_ofp_match(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    need(buf, 4, "match header")?;
    let match_type = buf.get_u16();
    let len = usize::from(buf.get_u16());
    if match_type != OFPMT_OXM {
        return Err(DecodeError::BadMatchType { match_type });
    }
    let oxm_len = len.checked_sub(4).ok_or(DecodeError::BadTlvLength { what: "match", len })?;
    // len <= 65535, so neither sum overflows.
    let pad = (8 - len % 8) % 8;
    need(buf, oxm_len + pad, "match")?;
    let oxm = buf.split_to(oxm_len);
    buf.advance(pad);
    Ok(oxm)
}

/// `OFPT_FEATURES_REQUEST`.
pub fn encode_features_request(buf: &mut BytesMut, xid: u32) {
    let start = begin_message(buf, OFP13, msg_type::FEATURES_REQUEST, xid);
    finish_message(buf, start);
}

/// `OFPT_BARRIER_REQUEST`.
pub fn encode_barrier_request(buf: &mut BytesMut, xid: u32) {
    let start = begin_message(buf, OFP13, msg_type::BARRIER_REQUEST, xid);
    finish_message(buf, start);
}

fn begin_multipart_request(buf: &mut BytesMut, xid: u32, mp_type: u16) -> usize {
    let start = begin_message(buf, OFP13, msg_type::MULTIPART_REQUEST, xid);
    buf.put_u16(mp_type);
    buf.put_u16(0);
    buf.put_u32(0);
    start
}

/// `OFPMP_DESC` request.
pub fn encode_desc_request(buf: &mut BytesMut, xid: u32) {
    let start = begin_multipart_request(buf, xid, OFPMP_DESC);
    finish_message(buf, start);
}

/// `OFPMP_FLOW` request for flows in `table_id` (or [`OFPTT_ALL`]) whose
/// cookie matches `cookie` under `cookie_mask`; any out port and group,
/// empty match.
pub fn encode_flow_stats_request(buf: &mut BytesMut, xid: u32, table_id: u8, cookie: u64, cookie_mask: u64) {
    let start = begin_multipart_request(buf, xid, OFPMP_FLOW);
    buf.put_u8(table_id);
    buf.put_bytes(0, 3);
    buf.put_u32(OFPP_ANY);
    buf.put_u32(OFPG_ANY);
    buf.put_u32(0);
    buf.put_u64(cookie);
    buf.put_u64(cookie_mask);
    put_ofp_match(buf, &MatchSpec::Typed(&Match::any()));
    finish_message(buf, start);
}

/// Flow mod commands port25 uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowModCommand {
    Add,
    DeleteStrict,
    Delete,
}

impl FlowModCommand {
    fn wire(self) -> u8 {
        match self {
            FlowModCommand::Add => 0,
            FlowModCommand::Delete => 3,
            FlowModCommand::DeleteStrict => 4,
        }
    }
}

/// The match of a flow mod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchSpec<'a> {
    /// Encoded canonically by [`encode_match`].
    Typed(&'a Match),
    /// OXM TLV bytes as received in [`FlowStats::raw_match`], sent back verbatim.
    Raw(&'a [u8]),
}

/// An `OFPT_FLOW_MOD`. Buffer is `OFP_NO_BUFFER`, out_port/out_group ANY,
/// idle/hard timeouts 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMod<'a> {
    pub command: FlowModCommand,
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub matcher: MatchSpec<'a>,
    /// Encoded for `Add` only; deletes carry no instructions.
    pub action: FlowAction,
    pub flags: u16,
}

/// Append an `ofp_match` (header, OXM fields, padding).
fn put_ofp_match(buf: &mut BytesMut, spec: &MatchSpec<'_>) {
    let start = buf.len();
    buf.put_u16(OFPMT_OXM);
    buf.put_u16(0);
    match spec {
        MatchSpec::Typed(m) => encode_match(buf, m),
        MatchSpec::Raw(raw) => buf.put_slice(raw),
    }
    let len = u16::try_from(buf.len().saturating_sub(start)).unwrap_or(u16::MAX);
    if let Some(field) = buf.get_mut(start + 2..start + 4) {
        field.copy_from_slice(&len.to_be_bytes());
    }
    pad8(buf, start);
}

/// Append an `OFPT_FLOW_MOD`.
///
/// # Errors
/// The message would exceed 65535 bytes (only possible with a
/// [`MatchSpec::Raw`] of more than ~65 KB); `buf` is then left unchanged.
pub fn try_encode_flow_mod(buf: &mut BytesMut, xid: u32, fm: &FlowMod<'_>) -> Result<(), EncodeError> {
    let start = begin_message(buf, OFP13, msg_type::FLOW_MOD, xid);
    buf.put_u64(fm.cookie);
    buf.put_u64(fm.cookie_mask);
    buf.put_u8(fm.table_id);
    buf.put_u8(fm.command.wire());
    buf.put_u16(0);
    buf.put_u16(0);
    buf.put_u16(fm.priority);
    buf.put_u32(OFP_NO_BUFFER);
    buf.put_u32(OFPP_ANY);
    buf.put_u32(OFPG_ANY);
    buf.put_u16(fm.flags);
    buf.put_u16(0);
    debug_assert_eq!(buf.len() - start, 8 + FLOW_MOD_FIXED);
    put_ofp_match(buf, &fm.matcher);
    if fm.command == FlowModCommand::Add {
        encode_instructions(buf, fm.action);
    }
    let len = buf.len().saturating_sub(start);
    if len > MAX_FRAME {
        buf.truncate(start);
        return Err(EncodeError { what: "flow mod", len });
    }
    finish_message(buf, start);
    Ok(())
}

/// Append an `OFPT_FLOW_MOD`. A flow mod that cannot fit 65535 bytes (see
/// [`try_encode_flow_mod`]) is not written; it is logged as an error.
/// Deletes with a [`MatchSpec::Raw`] taken from a decoded flow always fit.
pub fn encode_flow_mod(buf: &mut BytesMut, xid: u32, fm: &FlowMod<'_>) {
    if let Err(err) = try_encode_flow_mod(buf, xid, fm) {
        tracing::error!(%err, xid, "flow mod not encoded");
    }
}
