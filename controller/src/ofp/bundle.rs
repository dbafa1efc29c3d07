//! OpenFlow bundles for OpenFlow 1.3, through the ONF extension (EXT-230)
//! that Open vSwitch implements: a set of flow-mods the switch applies in
//! one atomic step.
//!
//! Both messages are experimenter messages (`OFPT_EXPERIMENTER`, 1.3 type
//! 4) with the ONF experimenter id:
//!
//! ```text
//! bundle control (exp_type 2300 ONF_ET_BUNDLE_CONTROL)
//!  0               8                  12                 16          20      22      24
//! +---------------+------------------+------------------+-----------+-------+-------+
//! | ofp_header    | experimenter     | exp_type = 2300  | bundle_id | type  | flags |
//! |               | 0x4F4E4600       |                  | u32       | u16   | u16   |
//! +---------------+------------------+------------------+-----------+-------+-------+
//!   type: 0 OPEN_REQUEST 1 OPEN_REPLY 2 CLOSE_REQUEST 3 CLOSE_REPLY
//!         4 COMMIT_REQUEST 5 COMMIT_REPLY 6 DISCARD_REQUEST 7 DISCARD_REPLY
//!   flags: 1 ATOMIC, 2 ORDERED
//!
//! bundle add (exp_type 2301 ONF_ET_BUNDLE_ADD_MESSAGE)
//!  0               8                  12                 16          20      22      24
//! +---------------+------------------+------------------+-----------+-------+-------+----------------+
//! | ofp_header    | experimenter     | exp_type = 2301  | bundle_id | pad   | flags | inner message  |
//! +---------------+------------------+------------------+-----------+-------+-------+----------------+
//!   the inner message is a whole OpenFlow message (header included) whose
//!   xid must equal the outer xid; no properties, no padding after it.
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{begin_message, finish_message, msg_type, EncodeError, MAX_FRAME, OFP13};

/// The ONF experimenter id.
pub const ONF_EXPERIMENTER: u32 = 0x4F4E_4600;
/// `ONF_ET_BUNDLE_CONTROL`.
pub const ONF_ET_BUNDLE_CONTROL: u32 = 2300;
/// `ONF_ET_BUNDLE_ADD_MESSAGE`.
pub const ONF_ET_BUNDLE_ADD_MESSAGE: u32 = 2301;
/// Apply all or nothing.
pub const BUNDLE_ATOMIC: u16 = 1;
/// Apply in the order added.
pub const BUNDLE_ORDERED: u16 = 2;

/// Bundle control message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleCtrl {
    OpenRequest,
    OpenReply,
    CloseRequest,
    CloseReply,
    CommitRequest,
    CommitReply,
    DiscardRequest,
    DiscardReply,
}

impl BundleCtrl {
    fn wire(self) -> u16 {
        match self {
            BundleCtrl::OpenRequest => 0,
            BundleCtrl::OpenReply => 1,
            BundleCtrl::CloseRequest => 2,
            BundleCtrl::CloseReply => 3,
            BundleCtrl::CommitRequest => 4,
            BundleCtrl::CommitReply => 5,
            BundleCtrl::DiscardRequest => 6,
            BundleCtrl::DiscardReply => 7,
        }
    }

    fn from_wire(v: u16) -> Option<BundleCtrl> {
        Some(match v {
            0 => BundleCtrl::OpenRequest,
            1 => BundleCtrl::OpenReply,
            2 => BundleCtrl::CloseRequest,
            3 => BundleCtrl::CloseReply,
            4 => BundleCtrl::CommitRequest,
            5 => BundleCtrl::CommitReply,
            6 => BundleCtrl::DiscardRequest,
            7 => BundleCtrl::DiscardReply,
            _ => return None,
        })
    }
}

/// Append a bundle control message.
pub fn encode_bundle_ctrl(buf: &mut BytesMut, xid: u32, bundle_id: u32, ctrl: BundleCtrl, flags: u16) {
    let start = begin_message(buf, OFP13, msg_type::EXPERIMENTER, xid);
    buf.put_u32(ONF_EXPERIMENTER);
    buf.put_u32(ONF_ET_BUNDLE_CONTROL);
    buf.put_u32(bundle_id);
    buf.put_u16(ctrl.wire());
    buf.put_u16(flags);
    finish_message(buf, start);
}

/// Append a bundle add wrapping `inner`, one whole encoded message whose
/// xid is used as the outer xid too.
///
/// # Errors
/// `inner` is not a whole message, or the result would exceed 65535 bytes;
/// `buf` is then unchanged.
pub fn encode_bundle_add(buf: &mut BytesMut, bundle_id: u32, flags: u16, inner: &[u8]) -> Result<(), EncodeError> {
    if inner.len() < 8 {
        return Err(EncodeError { what: "bundle add (inner message shorter than a header)", len: inner.len() });
    }
    let len = 24 + inner.len();
    if len > MAX_FRAME {
        return Err(EncodeError { what: "bundle add", len });
    }
    let xid = u32::from_be_bytes([inner[4], inner[5], inner[6], inner[7]]);
    let start = begin_message(buf, OFP13, msg_type::EXPERIMENTER, xid);
    buf.put_u32(ONF_EXPERIMENTER);
    buf.put_u32(ONF_ET_BUNDLE_ADD_MESSAGE);
    buf.put_u32(bundle_id);
    buf.put_u16(0);
    buf.put_u16(flags);
    buf.put_slice(inner);
    finish_message(buf, start);
    Ok(())
}

/// A decoded bundle control reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleReply {
    pub bundle_id: u32,
    pub ctrl: BundleCtrl,
    pub flags: u16,
}

/// Read a bundle control message from an experimenter message's fields
/// (`experimenter`, `exp_type` and the data after them). `None` when it is
/// not one, or is malformed.
pub fn decode_bundle_ctrl(experimenter: u32, exp_type: u32, data: &Bytes) -> Option<BundleReply> {
    if experimenter != ONF_EXPERIMENTER || exp_type != ONF_ET_BUNDLE_CONTROL || data.len() < 8 {
        return None;
    }
    let mut d = data.clone();
    let bundle_id = d.get_u32();
    let ctrl = BundleCtrl::from_wire(d.get_u16())?;
    let flags = d.get_u16();
    Some(BundleReply { bundle_id, ctrl, flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_round_trips() {
        let mut b = BytesMut::new();
        encode_bundle_ctrl(&mut b, 7, 42, BundleCtrl::CommitRequest, BUNDLE_ATOMIC | BUNDLE_ORDERED);
        assert_eq!(b.len(), 24);
        assert_eq!(&b[2..4], &24u16.to_be_bytes());
        let data = Bytes::copy_from_slice(&b[16..]);
        let r = decode_bundle_ctrl(ONF_EXPERIMENTER, ONF_ET_BUNDLE_CONTROL, &data).unwrap();
        assert_eq!(r, BundleReply { bundle_id: 42, ctrl: BundleCtrl::CommitRequest, flags: 3 });
        assert!(decode_bundle_ctrl(ONF_EXPERIMENTER, ONF_ET_BUNDLE_CONTROL, &Bytes::from_static(&[0; 7])).is_none());
        assert!(decode_bundle_ctrl(ONF_EXPERIMENTER, 1, &data).is_none());
    }

    #[test]
    fn add_takes_the_inner_xid_and_refuses_fragments() {
        let mut inner = BytesMut::new();
        crate::ofp::encode_barrier_request(&mut inner, 0x01020304);
        let mut b = BytesMut::new();
        encode_bundle_add(&mut b, 9, BUNDLE_ATOMIC, &inner).unwrap();
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(b.len(), 24 + inner.len());
        let mut b2 = BytesMut::new();
        assert!(encode_bundle_add(&mut b2, 9, 0, &[0; 4]).is_err());
        assert!(b2.is_empty());
    }
}
