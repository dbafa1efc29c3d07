//! The reference semantics: what should happen to a packet, written as
//! plainly as possible and independent of flows. Property tests check that
//! looking a packet up in the compiled flows gives the same verdict.

use std::net::IpAddr;

use crate::compile::SMTP;
use crate::flow::Fragment;
use crate::model::{Dpid, Exemption};

/// A packet as the policy sees it: the real header values, before any
/// switch hides ports of fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Outer VLAN id, if tagged. The policy ignores it (the switch matches
    /// the inner eth_type).
    pub vlan: Option<u16>,
    /// Source and destination address (same family).
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol (6 = TCP, 17 = UDP, ...).
    pub ip_proto: u8,
    /// Transport ports (0 when the protocol has none).
    pub src_port: u16,
    pub dst_port: u16,
    /// Fragment state.
    pub fragment: Fragment,
}

/// What happens to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forwarded onwards (NORMAL or the next table).
    Forward,
    /// Dropped by port25.
    Drop,
}

/// The port-25 policy for one switch:
/// - anything that is not TCP is forwarded;
/// - TCP from or to an exempted subscriber (an exemption that applies on
///   this switch) is forwarded;
/// - any other TCP fragment is dropped (a switch cannot see its ports);
/// - any other TCP with source or destination port 25 is dropped;
/// - everything else is forwarded (port 587 included).
pub fn decide<'a, I>(exemptions: I, dpid: Dpid, pkt: &Packet) -> Verdict
where
    I: IntoIterator<Item = &'a Exemption>,
{
    if pkt.ip_proto != 6 {
        return Verdict::Forward;
    }
    let exempt = exemptions
        .into_iter()
        .any(|e| e.applies_to(dpid) && (e.subscriber.contains(pkt.src) || e.subscriber.contains(pkt.dst)));
    if exempt {
        return Verdict::Forward;
    }
    if pkt.fragment != Fragment::None {
        return Verdict::Drop;
    }
    if pkt.dst_port == SMTP || pkt.src_port == SMTP {
        return Verdict::Drop;
    }
    Verdict::Forward
}
