//! The reference semantics: what should happen to a packet, written as
//! plainly as possible and independent of flows. Property tests check that
//! looking a packet up in the compiled flows gives the same verdict.

use std::net::IpAddr;

use crate::compile::SMTP;
use crate::flow::Fragment;
use crate::model::{Dpid, Exemption};

/// Headers in front of the transport header that a switch may not get
/// past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    /// Nothing the switch cannot parse: it sees the IP and TCP headers.
    Readable,
    /// One more VLAN tag than the switch parses (OVS parses one by
    /// default): the switch sees this tag's type and nothing behind it.
    ExtraVlanTag {
        /// The Ethernet type of the tag, 0x8100 or 0x88a8.
        tpid: u16,
    },
    /// An IPv6 extension header chain the switch cannot parse to its end,
    /// e.g. one cut off by fragmentation (ignored for IPv4 packets).
    BrokenIpv6Chain,
}

/// A packet as the policy sees it: the real header values, before any
/// switch hides ports of fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Outer VLAN id, if tagged. The policy ignores it (the switch matches
    /// the inner eth_type).
    pub vlan: Option<u16>,
    /// Whether the switch can read the packet's IP and TCP headers.
    pub headers: Headers,
    /// Source and destination address (same family).
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IP protocol (6 = TCP, 17 = UDP, ...); for IPv6 the one after any
    /// extension headers, so never 0 (the hop-by-hop header).
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
/// - an IPv6 first fragment with no next header (59) is dropped;
/// - a frame the switch cannot read into (more VLAN tags than it parses,
///   an IPv6 header chain it cannot parse) is dropped, whoever sent it:
///   nothing tells whether it carries TCP to port 25;
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
    // What a kernel datapath makes of a cut-off IPv6 header chain, and
    // never a valid packet: a first fragment with "no next header".
    if pkt.dst.is_ipv6() && pkt.fragment == Fragment::First && pkt.ip_proto == 59 {
        return Verdict::Drop;
    }
    match pkt.headers {
        Headers::ExtraVlanTag { .. } => return Verdict::Drop,
        Headers::BrokenIpv6Chain if pkt.dst.is_ipv6() => return Verdict::Drop,
        Headers::BrokenIpv6Chain | Headers::Readable => {}
    }
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
