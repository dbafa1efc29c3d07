//! A fake flow table with OpenFlow lookup semantics, for tests: the
//! highest-priority matching flow wins; a miss is a drop (an OVS bridge in
//! `fail_mode=secure` with no matching flow drops).
//!
//! It models what an OVS switch in the default ("normal") fragment mode
//! sees: every fragment shows TCP ports 0. It parses one VLAN tag (OVS's
//! default `vlan-limit`): behind a second tag it sees only that tag's
//! type. An IPv6 packet whose header chain it cannot parse shows
//! `nw_proto=0`, no ports and no fragment (what OVS reports).

use crate::decide::{Headers, Packet, Verdict};
use crate::flow::{FlowAction, FlowSpec, Fragment, Match};
use crate::model::Family;

/// Whether a flow's match accepts a packet, as the switch sees it.
pub fn matches(m: &Match, pkt: &Packet) -> bool {
    let family = Family::of(pkt.src);
    if let Headers::ExtraVlanTag { tpid } = pkt.headers {
        // Only the tag's type is visible: any other field's prerequisite
        // (an IP eth_type) fails.
        let only_type = m.ip_proto().is_none()
            && m.ip_src().is_none()
            && m.ip_dst().is_none()
            && m.tcp_src().is_none()
            && m.tcp_dst().is_none()
            && m.ip_frag().is_none();
        return only_type && m.eth_type().unwrap_or(tpid) == tpid;
    }
    let broken = pkt.headers == Headers::BrokenIpv6Chain && family == Family::V6;
    if broken {
        // Addresses are visible; protocol 0, no ports, not a fragment.
        let seen = Packet {
            ip_proto: 0,
            src_port: 0,
            dst_port: 0,
            fragment: Fragment::None,
            headers: Headers::Readable,
            ..*pkt
        };
        return matches(m, &seen);
    }
    if let Some(et) = m.eth_type() {
        if et != family.eth_type() {
            return false;
        }
    }
    if let Some(p) = m.ip_proto() {
        if p != pkt.ip_proto {
            return false;
        }
    }
    if let Some(p) = m.ip_src() {
        if !p.contains(pkt.src) {
            return false;
        }
    }
    if let Some(p) = m.ip_dst() {
        if !p.contains(pkt.dst) {
            return false;
        }
    }
    // OVS "normal" frag mode: fragments carry no visible L4 ports.
    let (sport, dport) = match pkt.fragment {
        Fragment::None => (pkt.src_port, pkt.dst_port),
        Fragment::First | Fragment::Later => (0, 0),
    };
    if let Some(p) = m.tcp_src() {
        if pkt.ip_proto != 6 || p != sport {
            return false;
        }
    }
    if let Some(p) = m.tcp_dst() {
        if pkt.ip_proto != 6 || p != dport {
            return false;
        }
    }
    if let Some(f) = m.ip_frag() {
        if !f.matches(pkt.fragment) {
            return false;
        }
    }
    true
}

/// Look a packet up in one table: the verdict of the highest-priority
/// matching flow. Two matching flows of equal priority are ambiguous in
/// OpenFlow; this returns `Err` so tests catch a layout that relies on it.
pub fn lookup(flows: &[FlowSpec], table: u8, pkt: &Packet) -> Result<Verdict, String> {
    let mut best: Option<&FlowSpec> = None;
    for f in flows.iter().filter(|f| f.table == table && matches(&f.matcher, pkt)) {
        match best {
            Some(b) if b.priority > f.priority => {}
            Some(b) if b.priority == f.priority && b.action != f.action => {
                return Err(format!("ambiguous: {b} and {f} both match {pkt:?}"));
            }
            _ => best = Some(f),
        }
    }
    Ok(match best.map(|f| f.action) {
        None | Some(FlowAction::Drop) => Verdict::Drop,
        Some(FlowAction::Normal) | Some(FlowAction::GotoTable(_)) => Verdict::Forward,
    })
}
