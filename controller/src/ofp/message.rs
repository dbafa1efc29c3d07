//! Typed messages, and the ones whose layout is the same in every version.
//!
//! ```text
//! Hello body: a sequence of elements, each padded to a multiple of 8
//!  +-----------+------------+------------------------------+---------+
//!  | type u16  | length u16 | payload (length - 4 bytes)   | pad     |
//!  +-----------+------------+------------------------------+---------+
//!   type 1 = OFPHET_VERSIONBITMAP: payload = u32 bitmaps, bit n = version n
//!
//! Error body:
//!  +-----------+-----------+--------------------------------------------+
//!  | type u16  | code u16  | data (normally the start of the bad request)|
//!  +-----------+-----------+--------------------------------------------+
//!   type 0xffff (OFPET_EXPERIMENTER): code = exp_type, data starts with
//!   the u32 experimenter id (kept inside `data`)
//!
//! Echo request / reply body: arbitrary data, echoed back verbatim.
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::need;
use super::{
    begin_message, finish_message, msg_type, v10, v13, DecodeError, Frame, HEADER_LEN, MAX_FRAME, OFP10, OFP13,
};

/// A decoded message. Types beyond the version-independent Hello/Error/Echo
/// are decoded from 1.3 and 1.0 frames (1.0 messages with a 1.3
/// counterpart share its variant, see [`v10`]); everything else is
/// [`Message::Unknown`], which is a value, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Error(ErrorMsg),
    EchoRequest(Bytes),
    EchoReply(Bytes),
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Bytes,
    },
    FeaturesReply(v13::Features),
    /// `name` is NUL-trimmed, lossy UTF-8.
    PortStatus {
        reason: u8,
        port_no: u32,
        name: String,
    },
    MultipartReply(v13::MultipartReply),
    BarrierReply,
    /// `OFPT_FLOW_REMOVED`: the switch removed a flow that asked for it
    /// (`OFPFF_SEND_FLOW_REM`). Only the fields port25 acts on.
    FlowRemoved(FlowRemoved),
    /// Any other type, or a type from a version we do not decode.
    Unknown {
        msg_type: u8,
        body: Bytes,
    },
}

/// The fixed part of `OFPT_FLOW_REMOVED` that both versions have.
///
/// ```text
/// 1.3: cookie u64 | priority u16 | reason u8 | table_id u8 | durations,
///      timeouts, counters (36 bytes) | ofp_match (variable)
/// 1.0: ofp_match (40 bytes) | cookie u64 | priority u16 | reason u8 | pad | ...
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    /// `OFPRR_IDLE_TIMEOUT` 0, `OFPRR_HARD_TIMEOUT` 1, `OFPRR_DELETE` 2,
    /// `OFPRR_GROUP_DELETE` 3 (1.3).
    pub reason: u8,
    /// The table (1.3); 0 for 1.0, which has one table in this message.
    pub table_id: u8,
}

/// `OFPT_HELLO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The first u32 of the first version bitmap element (bit n = wire
    /// version n), or `None` when the hello has no bitmap (then the
    /// header's version is the peer's highest).
    pub versions: Option<u32>,
}

/// `OFPT_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    pub err_type: u16,
    /// For `OFPET_EXPERIMENTER`, the exp_type.
    pub code: u16,
    /// The rest of the body (for experimenter errors, starting with the experimenter id).
    pub data: Bytes,
}

const OFPHET_VERSIONBITMAP: u16 = 1;

/// Decode a framed message into a [`Message`].
///
/// # Errors
/// A body too short for its message's fixed part, or an inner length
/// (hello element, flow-stats record, match, instruction, action, OXM TLV)
/// that is below its minimum or runs past its container.
pub fn decode_message(frame: &Frame) -> Result<Message, DecodeError> {
    let body = frame.body.clone();
    match frame.msg_type {
        msg_type::HELLO => decode_hello(body).map(Message::Hello),
        msg_type::ERROR => decode_error(body).map(Message::Error),
        msg_type::ECHO_REQUEST => Ok(Message::EchoRequest(body)),
        msg_type::ECHO_REPLY => Ok(Message::EchoReply(body)),
        ty if frame.version == OFP13 => v13::decode(ty, body),
        ty if frame.version == OFP10 => v10::decode(ty, body),
        ty => Ok(Message::Unknown { msg_type: ty, body }),
    }
}

fn decode_hello(mut body: Bytes) -> Result<Hello, DecodeError> {
    let mut versions = None;
    while body.has_remaining() {
        need(&body, 4, "hello element header")?;
        let ty = body.get_u16();
        let len = usize::from(body.get_u16());
        // `len` counts the 4-byte element header; a length below that
        // would never advance.
        let payload_len = len.checked_sub(4).ok_or(DecodeError::BadTlvLength { what: "hello element", len })?;
        need(&body, payload_len, "hello element")?;
        let mut payload = body.split_to(payload_len);
        // Padding to 8; tolerate it missing after the last element.
        let pad = (8 - len % 8) % 8;
        body.advance(pad.min(body.remaining()));
        if ty == OFPHET_VERSIONBITMAP && versions.is_none() {
            if payload_len % 4 != 0 {
                return Err(DecodeError::BadTlvLength { what: "hello version bitmap", len });
            }
            versions = Some(if payload.remaining() >= 4 { payload.get_u32() } else { 0 });
        }
    }
    // Every element is checked, not just up to the bitmap, so a malformed
    // hello is refused whatever order its elements come in.
    Ok(Hello { versions })
}

fn decode_error(mut body: Bytes) -> Result<ErrorMsg, DecodeError> {
    need(&body, 4, "error")?;
    let err_type = body.get_u16();
    let code = body.get_u16();
    Ok(ErrorMsg { err_type, code, data: body })
}

/// `OFPT_HELLO` offering `versions`; the header carries the highest of them
/// (OpenFlow 1.3 if the list is empty). Versions above 31 are left out of
/// the bitmap.
pub fn encode_hello(buf: &mut BytesMut, xid: u32, versions: &[u8]) {
    let highest = versions.iter().copied().max().unwrap_or(OFP13);
    let bitmap = versions.iter().filter(|&&v| v < 32).fold(0u32, |acc, &v| acc | (1 << v));
    let start = begin_message(buf, highest, msg_type::HELLO, xid);
    buf.put_u16(OFPHET_VERSIONBITMAP);
    buf.put_u16(8);
    buf.put_u32(bitmap);
    finish_message(buf, start);
}

/// The most data that fits in a message with a `fixed`-byte body prefix.
fn fit(data: &[u8], fixed: usize) -> &[u8] {
    let room = MAX_FRAME - HEADER_LEN - fixed;
    data.get(..room).unwrap_or(data)
}

/// `OFPT_ECHO_REQUEST`. Data beyond what fits in one message is cut off.
pub fn encode_echo_request(buf: &mut BytesMut, version: u8, xid: u32, data: &[u8]) {
    let start = begin_message(buf, version, msg_type::ECHO_REQUEST, xid);
    buf.put_slice(fit(data, 0));
    finish_message(buf, start);
}

/// `OFPT_ECHO_REPLY`. The data of any echo request fits whole.
pub fn encode_echo_reply(buf: &mut BytesMut, version: u8, xid: u32, data: &[u8]) {
    let start = begin_message(buf, version, msg_type::ECHO_REPLY, xid);
    buf.put_slice(fit(data, 0));
    finish_message(buf, start);
}

/// `OFPT_ERROR`, e.g. `OFPET_HELLO_FAILED`/`OFPHFC_INCOMPATIBLE` with an
/// ASCII reason. Data beyond what fits is cut off (the spec asks for at
/// least 64 bytes of a failed request, not all of it).
pub fn encode_error(buf: &mut BytesMut, version: u8, xid: u32, err_type: u16, code: u16, data: &[u8]) {
    let start = begin_message(buf, version, msg_type::ERROR, xid);
    buf.put_u16(err_type);
    buf.put_u16(code);
    buf.put_slice(fit(data, 4));
    finish_message(buf, start);
}
