//! What can be wrong with bytes from a switch.
//!
//! Every malformed input maps to one of these; the decoder never panics.
//! A `DecodeError` from [`super::OfpCodec`] means the stream is corrupt and
//! the connection must be closed; one from [`super::decode_message`] means
//! one message was malformed.

/// A malformed frame or message. The fields name what was being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The header's length field is below the 8-byte header itself.
    #[error("header length {len} is below the 8-byte header")]
    LengthBelowHeader { len: u16 },
    /// The header's length field exceeds the configured maximum frame.
    #[error("frame length {len} exceeds the maximum {max}")]
    FrameTooLong { len: usize, max: usize },
    /// A structure needs more bytes than its container holds.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated { what: &'static str, need: usize, have: usize },
    /// A TLV-like element (hello element, flow-stats record, instruction,
    /// action, OXM field) has a length that is impossible.
    #[error("bad {what} length {len}")]
    BadTlvLength { what: &'static str, len: usize },
    /// An `ofp_match` whose type is not `OFPMT_OXM`.
    #[error("match type {match_type} is not OFPMT_OXM (1)")]
    BadMatchType { match_type: u16 },
    /// The underlying transport failed (required by `tokio_util::codec`).
    #[error("i/o: {0}")]
    Io(String),
}

impl From<std::io::Error> for DecodeError {
    fn from(e: std::io::Error) -> DecodeError {
        DecodeError::Io(e.to_string())
    }
}

/// Why a message could not be encoded: it would not fit the 16-bit length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encoded {what} would be {len} bytes, over the 65535-byte OpenFlow limit")]
pub struct EncodeError {
    pub what: &'static str,
    pub len: usize,
}

/// Fail with [`DecodeError::Truncated`] unless `buf` holds `need` bytes.
pub(crate) fn need(buf: &impl bytes::Buf, need: usize, what: &'static str) -> Result<(), DecodeError> {
    let have = buf.remaining();
    if have < need {
        return Err(DecodeError::Truncated { what, need, have });
    }
    Ok(())
}
