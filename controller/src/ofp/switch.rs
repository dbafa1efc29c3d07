//! Encoders for the switch's side of the conversation.
//!
//! port25 never sends these; they exist so fake switches in tests, the
//! fuzz seeds and round-trip tests build replies from the same layouts the
//! decoder reads (see [`super::v13`] for the wire diagrams).

use bytes::{BufMut, BytesMut};
use port25_rules::FlowAction;

use super::instruction::{encode_instructions, OFPIT_CLEAR_ACTIONS};
use super::v13::{Features, FlowStats, SwitchDesc, OFPMPF_REPLY_MORE, OFPMP_DESC, OFPMP_FLOW, OFPMT_OXM};
use super::{begin_message, finish_message, msg_type, pad8, EncodeError, MAX_FRAME, OFP13};

/// `OFPT_FEATURES_REPLY`.
pub fn encode_features_reply(buf: &mut BytesMut, xid: u32, f: &Features) {
    let start = begin_message(buf, OFP13, msg_type::FEATURES_REPLY, xid);
    buf.put_u64(f.datapath_id);
    buf.put_u32(f.n_buffers);
    buf.put_u8(f.n_tables);
    buf.put_u8(f.auxiliary_id);
    buf.put_u16(0);
    buf.put_u32(f.capabilities);
    buf.put_u32(0);
    finish_message(buf, start);
}

/// `OFPT_BARRIER_REPLY`.
pub fn encode_barrier_reply(buf: &mut BytesMut, xid: u32) {
    let start = begin_message(buf, OFP13, msg_type::BARRIER_REPLY, xid);
    finish_message(buf, start);
}

/// `OFPT_EXPERIMENTER`. Data beyond what fits is cut off.
pub fn encode_experimenter(buf: &mut BytesMut, xid: u32, experimenter: u32, exp_type: u32, data: &[u8]) {
    let start = begin_message(buf, OFP13, msg_type::EXPERIMENTER, xid);
    buf.put_u32(experimenter);
    buf.put_u32(exp_type);
    buf.put_slice(data.get(..MAX_FRAME - 16).unwrap_or(data));
    finish_message(buf, start);
}

/// Write `s` into a NUL-padded field of `n` bytes (cut to leave one NUL).
fn put_str(buf: &mut BytesMut, s: &str, n: usize) {
    let b = s.as_bytes();
    let b = b.get(..n - 1).unwrap_or(b);
    buf.put_slice(b);
    buf.put_bytes(0, n - b.len());
}

/// `OFPT_PORT_STATUS` for a port with all other fields zero.
pub fn encode_port_status(buf: &mut BytesMut, xid: u32, reason: u8, port_no: u32, name: &str) {
    let start = begin_message(buf, OFP13, msg_type::PORT_STATUS, xid);
    buf.put_u8(reason);
    buf.put_bytes(0, 7);
    buf.put_u32(port_no);
    buf.put_bytes(0, 4 + 6 + 2);
    put_str(buf, name, 16);
    buf.put_bytes(0, 8 * 4);
    finish_message(buf, start);
}

fn begin_multipart_reply(buf: &mut BytesMut, xid: u32, mp_type: u16, more: bool) -> usize {
    let start = begin_message(buf, OFP13, msg_type::MULTIPART_REPLY, xid);
    buf.put_u16(mp_type);
    buf.put_u16(if more { OFPMPF_REPLY_MORE } else { 0 });
    buf.put_u32(0);
    start
}

/// `OFPMP_DESC` reply.
pub fn encode_desc_reply(buf: &mut BytesMut, xid: u32, d: &SwitchDesc) {
    let start = begin_multipart_reply(buf, xid, OFPMP_DESC, false);
    put_str(buf, &d.mfr, 256);
    put_str(buf, &d.hw, 256);
    put_str(buf, &d.sw, 256);
    put_str(buf, &d.serial, 32);
    put_str(buf, &d.dp, 256);
    finish_message(buf, start);
}

/// A multipart reply of any type with a pre-encoded body.
pub fn encode_multipart_reply(buf: &mut BytesMut, xid: u32, mp_type: u16, more: bool, body: &[u8]) {
    let start = begin_multipart_reply(buf, xid, mp_type, more);
    buf.put_slice(body.get(..MAX_FRAME - 16).unwrap_or(body));
    finish_message(buf, start);
}

/// Append one `ofp_flow_stats` record. The match is `raw_match` (the
/// `matcher` field is ignored); the instructions come from `action`, and
/// `None` is written as a CLEAR_ACTIONS instruction, which port25 does not
/// model, so it decodes back to `None`.
pub fn encode_flow_stats_record(buf: &mut BytesMut, f: &FlowStats) -> Result<(), EncodeError> {
    let start = buf.len();
    buf.put_u16(0);
    buf.put_u8(f.table_id);
    buf.put_u8(0);
    buf.put_u32(f.duration_sec);
    buf.put_u32(0);
    buf.put_u16(f.priority);
    buf.put_u16(f.idle_timeout);
    buf.put_u16(f.hard_timeout);
    buf.put_u16(f.flags);
    buf.put_u32(0);
    buf.put_u64(f.cookie);
    buf.put_u64(f.packet_count);
    buf.put_u64(f.byte_count);
    let match_start = buf.len();
    buf.put_u16(OFPMT_OXM);
    buf.put_u16(u16::try_from(4 + f.raw_match.len()).unwrap_or(u16::MAX));
    buf.put_slice(&f.raw_match);
    pad8(buf, match_start);
    match f.action {
        Some(action) => encode_instructions(buf, action),
        None => {
            buf.put_u16(OFPIT_CLEAR_ACTIONS);
            buf.put_u16(8);
            buf.put_u32(0);
        }
    }
    let len = buf.len().saturating_sub(start);
    let Ok(len16) = u16::try_from(len) else {
        buf.truncate(start);
        return Err(EncodeError { what: "flow stats record", len });
    };
    if let Some(field) = buf.get_mut(start..start + 2) {
        field.copy_from_slice(&len16.to_be_bytes());
    }
    Ok(())
}

/// `OFPMP_FLOW` reply holding `flows` (see [`encode_flow_stats_record`]).
///
/// # Errors
/// The reply would exceed 65535 bytes; `buf` is then left unchanged.
/// Split the flows over several replies with `more` set.
pub fn encode_flow_stats_reply(
    buf: &mut BytesMut,
    xid: u32,
    more: bool,
    flows: &[FlowStats],
) -> Result<(), EncodeError> {
    let start = begin_multipart_reply(buf, xid, OFPMP_FLOW, more);
    for f in flows {
        if let Err(e) = encode_flow_stats_record(buf, f) {
            buf.truncate(start);
            return Err(e);
        }
    }
    let len = buf.len().saturating_sub(start);
    if len > MAX_FRAME {
        buf.truncate(start);
        return Err(EncodeError { what: "flow stats reply", len });
    }
    finish_message(buf, start);
    Ok(())
}

/// Instructions for `action` as a standalone byte string (for tests).
pub fn instructions_bytes(action: FlowAction) -> BytesMut {
    let mut b = BytesMut::new();
    encode_instructions(&mut b, action);
    b
}
