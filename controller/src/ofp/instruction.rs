//! Instructions ↔ [`FlowAction`].
//!
//! ```text
//! Instruction header (every instruction is a multiple of 8 bytes):
//!  +-----------+------------+----------------------------------------+
//!  | type u16  | length u16 | ...                                    |
//!  +-----------+------------+----------------------------------------+
//!   GOTO_TABLE (1), length 8:    table_id u8, pad 3
//!   APPLY_ACTIONS (4), length 8+: pad 4, then actions
//!
//! Action header:
//!  +-----------+------------+----------------------------------------+
//!  | type u16  | length u16 | ...                                    |
//!  +-----------+------------+----------------------------------------+
//!   OUTPUT (0), length 16: port u32, max_len u16, pad 6
//! ```
//!
//! Mapping: no instructions → `Drop`; exactly one APPLY_ACTIONS holding
//! exactly one OUTPUT to `OFPP_NORMAL` (any max_len) → `Normal`; exactly one
//! GOTO_TABLE → `GotoTable`; anything else is not a [`FlowAction`].

use bytes::{Buf, BufMut, Bytes, BytesMut};
use port25_rules::FlowAction;

use super::error::need;
use super::DecodeError;

pub const OFPIT_GOTO_TABLE: u16 = 1;
pub const OFPIT_APPLY_ACTIONS: u16 = 4;
pub const OFPIT_CLEAR_ACTIONS: u16 = 5;
pub const OFPAT_OUTPUT: u16 = 0;
/// `OFPP_NORMAL`: the switch's own forwarding.
pub const OFPP_NORMAL: u32 = 0xffff_fffa;
/// `OFPCML_NO_BUFFER`: send the whole packet (max_len of an output action).
pub const OFPCML_NO_BUFFER: u16 = 0xffff;

/// Append the instructions for `action` (nothing for `Drop`).
pub fn encode_instructions(buf: &mut BytesMut, action: FlowAction) {
    match action {
        FlowAction::Drop => {}
        FlowAction::Normal => {
            buf.put_u16(OFPIT_APPLY_ACTIONS);
            buf.put_u16(24);
            buf.put_u32(0);
            buf.put_u16(OFPAT_OUTPUT);
            buf.put_u16(16);
            buf.put_u32(OFPP_NORMAL);
            buf.put_u16(OFPCML_NO_BUFFER);
            buf.put_bytes(0, 6);
        }
        FlowAction::GotoTable(t) => {
            buf.put_u16(OFPIT_GOTO_TABLE);
            buf.put_u16(8);
            buf.put_u8(t);
            buf.put_bytes(0, 3);
        }
    }
}

/// Split a list of `type u16 | length u16 | ...` elements, checking every length.
fn split_tlvs(mut buf: Bytes, what: &'static str) -> Result<Vec<(u16, Bytes)>, DecodeError> {
    // Each element takes at least 4 bytes, so this allocation is bounded by the input.
    let mut out = Vec::with_capacity(buf.remaining() / 8);
    while buf.has_remaining() {
        need(&buf, 4, what)?;
        let ty = buf.get_u16();
        let len = usize::from(buf.get_u16());
        let rest = len.checked_sub(4).ok_or(DecodeError::BadTlvLength { what, len })?;
        need(&buf, rest, what)?;
        out.push((ty, buf.split_to(rest)));
    }
    Ok(out)
}

/// Decode an instruction list. `Ok(None)` when it is well-formed but not a
/// [`FlowAction`] (other instructions or actions, experimenter ones included).
///
/// # Errors
/// An instruction or action whose length is below its header or runs past
/// its container, or a GOTO_TABLE / APPLY_ACTIONS / OUTPUT too short for
/// its fixed fields.
pub fn decode_instructions(buf: Bytes) -> Result<Option<FlowAction>, DecodeError> {
    let instructions = split_tlvs(buf, "instruction")?;
    // Decode every instruction first so malformed ones are caught even when
    // the list as a whole is not a FlowAction.
    let mut actions = Vec::with_capacity(instructions.len());
    for (ty, mut body) in instructions {
        let action = match ty {
            OFPIT_GOTO_TABLE => {
                need(&body, 4, "goto_table instruction")?;
                Some(FlowAction::GotoTable(body.get_u8()))
            }
            OFPIT_APPLY_ACTIONS => {
                need(&body, 4, "apply_actions instruction")?;
                body.advance(4);
                decode_apply_actions(body)?
            }
            _ => None,
        };
        actions.push(action);
    }
    Ok(match actions.as_slice() {
        [] => Some(FlowAction::Drop),
        [one] => *one,
        _ => None,
    })
}

/// `Some(Normal)` for exactly one output to NORMAL; `None` otherwise.
fn decode_apply_actions(buf: Bytes) -> Result<Option<FlowAction>, DecodeError> {
    let list = split_tlvs(buf, "action")?;
    let mut normal = Vec::with_capacity(list.len());
    for (ty, mut body) in list {
        normal.push(match ty {
            OFPAT_OUTPUT => {
                need(&body, 6, "output action")?;
                body.get_u32() == OFPP_NORMAL
            }
            _ => false,
        });
    }
    Ok((normal == [true]).then_some(FlowAction::Normal))
}
