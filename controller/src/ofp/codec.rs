//! Framing: a byte stream → [`Frame`]s, and pre-encoded bytes → the stream.
//!
//! ```text
//!  0        1        2                 4                 8           length
//! +--------+--------+-----------------+-----------------+--------------+
//! | version| type   | length (u16)    | xid (u32)       | body ...     |
//! +--------+--------+-----------------+-----------------+--------------+
//! ```
//!
//! This is `tokio_util`'s length-delimited framing with the header kept,
//! written out by hand because the stock codec turns a length of 0 into an
//! empty frame that consumes nothing, forever. Here a length below 8 is an
//! error. The version is not checked: the session negotiates it.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{DecodeError, Frame, HEADER_LEN, MAX_FRAME};

/// `tokio_util::codec` framing for OpenFlow (any version).
#[derive(Debug, Clone)]
pub struct OfpCodec {
    max_frame: usize,
}

impl OfpCodec {
    /// A codec accepting frames up to [`MAX_FRAME`] bytes.
    pub fn new() -> OfpCodec {
        OfpCodec { max_frame: MAX_FRAME }
    }

    /// A codec refusing frames longer than `max_frame` bytes (header included).
    pub fn with_max_frame(max_frame: usize) -> OfpCodec {
        OfpCodec { max_frame }
    }

    /// The largest frame this codec accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for OfpCodec {
    fn default() -> OfpCodec {
        OfpCodec::new()
    }
}

impl Decoder for OfpCodec {
    type Item = Frame;
    type Error = DecodeError;

    /// # Errors
    /// [`DecodeError::LengthBelowHeader`] for a length field below 8,
    /// [`DecodeError::FrameTooLong`] above the configured maximum. Either
    /// means the stream has lost its framing: close the connection.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(&[version, msg_type, l0, l1, x0, x1, x2, x3]) = src.get(..HEADER_LEN) else {
            // Not even a header yet; not an error, just wait.
            src.reserve(HEADER_LEN.saturating_sub(src.len()));
            return Ok(None);
        };
        let len16 = u16::from_be_bytes([l0, l1]);
        let len = usize::from(len16);
        if len < HEADER_LEN {
            return Err(DecodeError::LengthBelowHeader { len: len16 });
        }
        if len > self.max_frame {
            return Err(DecodeError::FrameTooLong { len, max: self.max_frame });
        }
        if src.len() < len {
            // At most 64 KiB: the length is a u16.
            src.reserve(len - src.len());
            return Ok(None);
        }
        let mut frame = src.split_to(len);
        frame.advance(HEADER_LEN);
        Ok(Some(Frame { version, msg_type, xid: u32::from_be_bytes([x0, x1, x2, x3]), body: frame.freeze() }))
    }
}

impl Encoder<Bytes> for OfpCodec {
    type Error = DecodeError;

    /// Writes pre-encoded messages (one or a batch) as they are.
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), DecodeError> {
        dst.extend_from_slice(&item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(xid: u32, data: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        crate::ofp::encode_echo_request(&mut b, 4, xid, data);
        b
    }

    #[test]
    fn empty_buffer_needs_more() {
        let mut src = BytesMut::new();
        assert_eq!(OfpCodec::new().decode(&mut src), Ok(None));
        assert!(src.capacity() >= HEADER_LEN);
    }

    #[test]
    fn message_split_byte_by_byte() {
        let wire = echo(7, b"hello");
        let mut codec = OfpCodec::new();
        let mut src = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            src.extend_from_slice(&[*b]);
            let got = codec.decode(&mut src).unwrap();
            if i + 1 < wire.len() {
                assert_eq!(got, None, "frame after {} of {} bytes", i + 1, wire.len());
            } else {
                let f = got.expect("complete frame");
                assert_eq!((f.version, f.msg_type, f.xid, &f.body[..]), (4, 2, 7, &b"hello"[..]));
            }
        }
        assert!(src.is_empty());
    }

    #[test]
    fn two_messages_in_one_buffer() {
        let mut src = echo(1, b"a");
        src.extend_from_slice(&echo(2, b"bc"));
        let mut codec = OfpCodec::new();
        let a = codec.decode(&mut src).unwrap().unwrap();
        let b = codec.decode(&mut src).unwrap().unwrap();
        assert_eq!((a.xid, &a.body[..]), (1, &b"a"[..]));
        assert_eq!((b.xid, &b.body[..]), (2, &b"bc"[..]));
        assert_eq!(codec.decode(&mut src).unwrap(), None);
    }

    #[test]
    fn rejects_length_below_header() {
        for len in 0u16..8 {
            let mut src = BytesMut::from(&[4, 2, 0, 0, 0, 0, 0, 1, 9, 9][..]);
            src[2..4].copy_from_slice(&len.to_be_bytes());
            assert_eq!(OfpCodec::new().decode(&mut src), Err(DecodeError::LengthBelowHeader { len }));
        }
    }

    #[test]
    fn rejects_frame_over_max() {
        let mut src = echo(1, &[0; 100]);
        let err = OfpCodec::with_max_frame(64).decode(&mut src).unwrap_err();
        assert_eq!(err, DecodeError::FrameTooLong { len: 108, max: 64 });
    }

    #[test]
    fn max_length_trickle_reserves_at_most_one_frame() {
        let mut src = BytesMut::from(&[4, 2, 0xff, 0xff, 0, 0, 0, 1][..]);
        let mut codec = OfpCodec::new();
        for _ in 0..1000 {
            assert_eq!(codec.decode(&mut src).unwrap(), None);
            assert!(src.capacity() <= 2 * MAX_FRAME, "capacity {}", src.capacity());
            src.extend_from_slice(&[0xab; 7]);
        }
        src.resize(MAX_FRAME, 0xab);
        let f = codec.decode(&mut src).unwrap().unwrap();
        assert_eq!(f.body.len(), MAX_FRAME - HEADER_LEN);
    }

    #[test]
    fn encoder_writes_bytes_verbatim() {
        let mut dst = BytesMut::new();
        OfpCodec::new().encode(Bytes::from_static(b"\x04\x14\x00\x08\x00\x00\x00\x05"), &mut dst).unwrap();
        assert_eq!(&dst[..], b"\x04\x14\x00\x08\x00\x00\x00\x05");
    }
}
