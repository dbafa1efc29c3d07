//! The OpenFlow wire codec: framing, typed messages, encoders. No I/O.
//!
//! # Layout
//! - [`bundle`]: ONF bundle messages (atomic flow-mod sets) for OpenFlow 1.3.
//! - [`codec`]: [`OfpCodec`], the `tokio_util::codec` framing (bytes → [`Frame`]).
//! - [`message`]: [`Message`] and [`decode_message`] (a [`Frame`] → typed message),
//!   plus the version-independent messages (Hello, Error, Echo).
//! - [`v13`]: OpenFlow 1.3 messages: features, port status, multipart
//!   (flow stats, desc), flow mods and the other requests port25 sends.
//! - [`v10`]: OpenFlow 1.0: the total decoder for what a 1.0 switch sends,
//!   the project's own encoders for what port25 sends (not rust_ofp, see
//!   the module's notes), and what 1.0 cannot express (IPv6, fragments,
//!   cookie masks).
//! - [`oxm`]: OXM match fields ↔ [`port25_rules::Match`].
//! - [`instruction`]: instructions ↔ [`port25_rules::FlowAction`].
//! - [`switch`]: encoders for the switch side of the conversation, for fake
//!   switches in tests and for fuzz seeds.
//! - [`error`]: [`DecodeError`] and [`EncodeError`].
//!
//! Decoding is total: every byte sequence gives a value or a [`DecodeError`],
//! never a panic or an allocation larger than the input. Encoders append to a
//! `BytesMut` so a batch of messages goes out in one write.
//!
//! [`decode_message`] dispatches on the header's version (1.3 to [`v13`],
//! 1.0 to [`v10`]) after the version-independent types.
//!
//! Every message starts with this header (all integers big-endian):
//!
//! ```text
//!  0        1        2                 4                                 8
//! +--------+--------+-----------------+---------------------------------+
//! | version| type   | length (u16)    | xid (u32)                       |
//! +--------+--------+-----------------+---------------------------------+
//!   length counts the whole message, header included (so >= 8)
//! ```

use bytes::{BufMut, Bytes, BytesMut};

pub mod bundle;
pub mod codec;
pub mod error;
pub mod instruction;
pub mod message;
pub mod oxm;
pub mod switch;
pub mod v10;
pub mod v13;

pub use codec::OfpCodec;
pub use error::{DecodeError, EncodeError};
pub use message::{
    decode_message, encode_echo_reply, encode_echo_request, encode_error, encode_hello, ErrorMsg, FlowRemoved, Hello,
    Message,
};
pub use oxm::{decode_match, encode_match};
pub use v13::{
    encode_barrier_request, encode_desc_request, encode_features_request, encode_flow_mod, encode_flow_stats_request,
    try_encode_flow_mod, Features, FlowMod, FlowModCommand, FlowStats, MatchSpec, MultipartBody, MultipartReply,
    SwitchDesc,
};

/// OpenFlow 1.3 wire version.
pub const OFP13: u8 = 0x04;
/// OpenFlow 1.0 wire version.
pub const OFP10: u8 = 0x01;
/// The largest frame a 16-bit length can describe.
pub const MAX_FRAME: usize = 65535;
/// Size of the common header.
pub const HEADER_LEN: usize = 8;

/// Message types used by port25. 0..=3 mean the same in every version;
/// the rest are OpenFlow 1.3 numbers.
pub mod msg_type {
    pub const HELLO: u8 = 0;
    pub const ERROR: u8 = 1;
    pub const ECHO_REQUEST: u8 = 2;
    pub const ECHO_REPLY: u8 = 3;
    pub const EXPERIMENTER: u8 = 4;
    pub const FEATURES_REQUEST: u8 = 5;
    pub const FEATURES_REPLY: u8 = 6;
    pub const FLOW_REMOVED: u8 = 11;
    pub const PORT_STATUS: u8 = 12;
    pub const FLOW_MOD: u8 = 14;
    pub const MULTIPART_REQUEST: u8 = 18;
    pub const MULTIPART_REPLY: u8 = 19;
    pub const BARRIER_REQUEST: u8 = 20;
    pub const BARRIER_REPLY: u8 = 21;
}

/// `OFPET_HELLO_FAILED`, with code `OFPHFC_INCOMPATIBLE`.
pub const OFPET_HELLO_FAILED: u16 = 0;
/// `OFPHFC_INCOMPATIBLE`: no common version.
pub const OFPHFC_INCOMPATIBLE: u16 = 0;
/// `OFPET_EXPERIMENTER`: the code field carries exp_type, then a u32 experimenter id.
pub const OFPET_EXPERIMENTER: u16 = 0xffff;
/// `OFPFF_SEND_FLOW_REM`: tell the controller when the flow is removed.
pub const OFPFF_SEND_FLOW_REM: u16 = 1;

/// One framed message: the 8-byte header split out, body = bytes after the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Wire version from the header (not validated by the framing).
    pub version: u8,
    /// Message type from the header.
    pub msg_type: u8,
    /// Transaction id.
    pub xid: u32,
    /// Everything after the header; `body.len() == length - 8`.
    pub body: Bytes,
}

/// Start a message: write its header with a placeholder length. Returns
/// where the message starts, for [`finish_message`].
pub(crate) fn begin_message(buf: &mut BytesMut, version: u8, msg_type: u8, xid: u32) -> usize {
    let start = buf.len();
    buf.put_u8(version);
    buf.put_u8(msg_type);
    buf.put_u16(0);
    buf.put_u32(xid);
    start
}

/// Patch the length of the message started at `start`. Callers bound every
/// variable part so the length fits; a violation is a bug in this module.
pub(crate) fn finish_message(buf: &mut BytesMut, start: usize) {
    let len = buf.len().saturating_sub(start);
    debug_assert!(len <= MAX_FRAME, "encoded message of {len} bytes");
    let len16 = u16::try_from(len).unwrap_or(u16::MAX);
    if let Some(field) = buf.get_mut(start + 2..start + 4) {
        field.copy_from_slice(&len16.to_be_bytes());
    }
}

/// Append zero bytes until `len` (counted from `start`) is a multiple of 8.
pub(crate) fn pad8(buf: &mut BytesMut, start: usize) {
    let len = buf.len().saturating_sub(start);
    buf.put_bytes(0, (8 - len % 8) % 8);
}

/// The bytes up to the first NUL, as lossy UTF-8.
pub(crate) fn nul_trimmed(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned()
}
