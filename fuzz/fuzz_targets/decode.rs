//! Arbitrary bytes through the framing and `decode_message`: must never
//! panic, hang or allocate beyond the input; frames must match their
//! header lengths.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use port25_controller::ofp::{decode_message, OfpCodec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = OfpCodec::new();
    let mut src = BytesMut::from(data);
    let mut consumed = 0usize;
    while let Ok(Some(frame)) = codec.decode(&mut src) {
        consumed += 8 + frame.body.len();
        assert!(consumed <= data.len());
        assert_eq!(consumed + src.len(), data.len());
        let _ = decode_message(&frame);
    }
});
