//! A fake flow table with OpenFlow lookup semantics, for tests: the
//! highest-priority matching flow wins; a miss is a drop (an OVS bridge in
//! `fail_mode=secure` with no matching flow drops).
//!
//! It models what an OVS switch in the default ("normal") fragment mode
//! sees: every fragment shows TCP ports 0.

use crate::decide::{Packet, Verdict};
use crate::flow::{FlowAction, FlowSpec, Fragment, Match};
use crate::model::Family;

/// Whether a flow's match accepts a packet, as the switch sees it.
pub fn matches(m: &Match, pkt: &Packet) -> bool {
    let family = Family::of(pkt.src);
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
