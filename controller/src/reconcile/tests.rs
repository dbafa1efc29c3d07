use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use port25_rules::table::lookup;
use port25_rules::{compile, Dpid, Exemption, ExemptionId, Fragment, Packet, PolicyConfig, Prefix, Scope, Verdict};
use proptest::prelude::*;
use time::OffsetDateTime;

use super::*;

const DPID: Dpid = Dpid(1);

fn ex(id: u64, p: &str) -> Exemption {
    Exemption {
        id: ExemptionId(id),
        subscriber: p.parse().unwrap(),
        note: None,
        created_at: OffsetDateTime::UNIX_EPOCH,
        switches: Scope::All,
        expires_at: None,
        external_id: None,
    }
}

fn installed(flows: &[FlowSpec]) -> Vec<Installed> {
    flows.iter().map(Installed::from_spec).collect()
}

/// The table a switch holds after the first `n` changes of a plan.
fn after(current: &[Installed], plan: &Plan, n: usize) -> Vec<FlowSpec> {
    let partial = Plan { changes: plan.changes[..n].to_vec(), ..Plan::default() };
    apply(current, &partial)
        .into_iter()
        .map(|i| FlowSpec {
            table: i.table,
            priority: i.priority,
            matcher: i.matcher.expect("test flows are modelled"),
            cookie: i.cookie,
            action: i.action.expect("test flows are modelled"),
        })
        .collect()
}

#[test]
fn fresh_switch_gets_drops_before_any_forwarding() {
    let cfg = PolicyConfig::default();
    let desired = compile(&cfg, &[ex(1, "198.51.100.1/32")], DPID);
    let p = plan(&[], &desired, true);
    assert_eq!(p.adds(), desired.len());
    let first_allow =
        p.changes.iter().position(|c| matches!(c, Change::Add(f) if f.action != FlowAction::Drop)).unwrap();
    let last_drop =
        p.changes.iter().rposition(|c| matches!(c, Change::Add(f) if f.action == FlowAction::Drop)).unwrap();
    assert!(last_drop < first_allow, "{:#?}", p.changes);
}

#[test]
fn in_sync_switch_gets_no_changes() {
    let cfg = PolicyConfig::default();
    let desired = compile(&cfg, &[ex(1, "198.51.100.1/32"), ex(2, "2001:db8::/64")], DPID);
    let p = plan(&installed(&desired), &desired, true);
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    assert_eq!(p.kept, desired.len());
}

#[test]
fn revoke_deletes_strictly_and_keeps_drops() {
    let cfg = PolicyConfig::default();
    let old = compile(&cfg, &[ex(1, "198.51.100.1/32")], DPID);
    let new = compile(&cfg, &[], DPID);
    let p = plan(&installed(&old), &new, true);
    assert_eq!(p.adds(), 0);
    assert_eq!(p.deletes(), 2);
}

#[test]
fn incomplete_read_back_deletes_nothing() {
    let cfg = PolicyConfig::default();
    let old = compile(&cfg, &[ex(1, "198.51.100.1/32")], DPID);
    let new = compile(&cfg, &[ex(2, "198.51.100.2/32")], DPID);
    let p = plan(&installed(&old), &new, false);
    assert_eq!(p.deletes(), 0);
    assert_eq!(p.deletions_withheld, 2);
    assert_eq!(p.adds(), 2);
}

#[test]
fn wrong_cookie_is_overwritten_not_deleted() {
    let cfg = PolicyConfig::default();
    let desired = compile(&cfg, &[], DPID);
    let mut cur = installed(&desired);
    cur[0].cookie ^= 0xff;
    let p = plan(&cur, &desired, true);
    assert_eq!(p.deletes(), 0);
    assert_eq!(p.adds(), 1);
    let after = apply(&cur, &p);
    assert_eq!(after.len(), desired.len());
}

#[test]
fn unmodelled_stale_flow_is_deleted_last() {
    let cfg = PolicyConfig::default();
    let desired = compile(&cfg, &[ex(1, "198.51.100.1/32")], DPID);
    let stranger = Installed {
        table: 0,
        priority: 30000,
        cookie: cfg.cookies.base(99),
        matcher: None,
        raw_match: Some(Bytes::from_static(&[0x80, 0x00, 0x0a, 0x02, 0x08, 0x00])),
        action: None,
    };
    let p = plan(&[stranger], &desired, true);
    assert!(matches!(p.changes.last(), Some(Change::Delete(_))));
    assert_eq!(p.deletes(), 1);
}

fn prefix_pool() -> Vec<Prefix> {
    ["198.51.100.1/32", "198.51.100.0/24", "198.51.100.2/32", "2001:db8::1/128", "2001:db8::/64", "203.0.113.0/25"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn addr_pool() -> Vec<IpAddr> {
    vec![
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)),
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)),
    ]
}

fn packets() -> Vec<Packet> {
    let addrs = addr_pool();
    let mut out = Vec::new();
    for &src in &addrs {
        for &dst in &addrs {
            if Family::of(src) != Family::of(dst) {
                continue;
            }
            for (sport, dport) in [(40000, 25), (25, 40000), (40000, 587), (40000, 80)] {
                for fragment in [Fragment::None, Fragment::First, Fragment::Later] {
                    out.push(Packet {
                        vlan: None,
                        headers: port25_rules::Headers::Readable,
                        src,
                        dst,
                        ip_proto: 6,
                        src_port: sport,
                        dst_port: dport,
                        fragment,
                    });
                }
            }
        }
    }
    out
}

use port25_rules::Family;

fn set_strategy() -> impl Strategy<Value = Vec<Exemption>> {
    proptest::collection::btree_set(0usize..6, 0..4).prop_map(|idx| {
        let pool = prefix_pool();
        idx.into_iter().map(|i| ex(i as u64 + 1, &pool[i].to_string())).collect()
    })
}

proptest! {
    /// At every step of a round, a packet that both the old and the new
    /// policy forward is forwarded (no gap for exempted traffic), and a
    /// packet that both drop is dropped (no gap in the block).
    #[test]
    fn every_intermediate_state_is_within_old_and_new(old in set_strategy(), new in set_strategy()) {
        let cfg = PolicyConfig::default();
        let old_flows = compile(&cfg, &old, DPID);
        let new_flows = compile(&cfg, &new, DPID);
        let cur = installed(&old_flows);
        let p = plan(&cur, &new_flows, true);
        let pkts = packets();
        for n in 0..=p.changes.len() {
            let table = after(&cur, &p, n);
            for pkt in &pkts {
                let o = lookup(&old_flows, 0, pkt).unwrap();
                let w = lookup(&new_flows, 0, pkt).unwrap();
                let m = lookup(&table, 0, pkt).unwrap();
                if o == Verdict::Forward && w == Verdict::Forward {
                    prop_assert_eq!(m, Verdict::Forward, "gap for {:?} after {} changes", pkt, n);
                }
                if o == Verdict::Drop && w == Verdict::Drop {
                    prop_assert_eq!(m, Verdict::Drop, "leak for {:?} after {} changes", pkt, n);
                }
            }
        }
        // And the end state is exactly the new policy.
        let mut end = after(&cur, &p, p.changes.len());
        end.sort();
        prop_assert_eq!(end, new_flows);
    }
}

/// Batches of (add?, pool index, scope kind).
type Batches = Vec<Vec<(bool, usize, u8)>>;

fn snapshot_strategy() -> impl Strategy<Value = (Vec<Exemption>, Batches)> {
    // A starting set, then batches of (add?, pool index, scope kind).
    (
        set_strategy(),
        proptest::collection::vec(proptest::collection::vec((any::<bool>(), 0usize..6, 0u8..3), 1..4), 1..6),
    )
}

fn scoped(id: u64, p: &Prefix, kind: u8) -> Exemption {
    let mut e = ex(id, &p.to_string());
    e.switches = match kind {
        0 => Scope::All,
        1 => Scope::from_list(Some(vec![DPID])),
        _ => Scope::from_list(Some(vec![Dpid(99)])),
    };
    e
}

proptest! {
    /// Moving a switch by deltas lands on exactly the flows a full compile
    /// of the new policy gives, and every intermediate table keeps the
    /// fail-closed property. Same prefix under several ids and scopes is
    /// the case that matters: flows of one identity have one owner.
    #[test]
    fn deltas_land_on_the_full_compile(start in snapshot_strategy()) {
        use port25_rules::Snapshot;
        let (initial, batches) = start;
        let cfg = PolicyConfig::default();
        let pool = prefix_pool();
        let mut snap = Snapshot::from_list(initial);
        let mut next_id = 100u64;
        for batch in batches {
            let old = snap.clone();
            let mut added = Vec::new();
            let mut removed = Vec::new();
            for (add, idx, kind) in batch {
                if add {
                    next_id += 1;
                    added.push(scoped(next_id, &pool[idx], kind));
                } else if let Some(e) = snap.exemptions.values().find(|e| e.subscriber == pool[idx]) {
                    removed.push(e.id);
                }
            }
            snap = snap.apply(added, &removed);
            let changes = snap.changes_since(old.version).unwrap();
            let (p, delta) = plan_delta(&cfg, &old, &snap, &changes, DPID, |_| true);
            let old_flows = compile(&cfg, old.exemptions.values(), DPID);
            let new_flows = compile(&cfg, snap.exemptions.values(), DPID);
            let cur = installed(&old_flows);
            let pkts = packets();
            for n in 0..=p.changes.len() {
                let table = after(&cur, &p, n);
                for pkt in &pkts {
                    let o = lookup(&old_flows, 0, pkt).unwrap();
                    let w = lookup(&new_flows, 0, pkt).unwrap();
                    let m = lookup(&table, 0, pkt).unwrap();
                    if o == w {
                        prop_assert_eq!(m, o, "{:?} after {} of {:?}", pkt, n, p.changes);
                    }
                }
            }
            let mut end = after(&cur, &p, p.changes.len());
            end.sort();
            prop_assert_eq!(&end, &new_flows);
            prop_assert_eq!(old_flows.len() as i64 + delta, new_flows.len() as i64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// policy.table moved from 0 to 1: while our flows leave table 0, that
    /// table never forwards a packet it dropped before (in plain rounds,
    /// without a bundle, every intermediate table is seen by traffic).
    #[test]
    fn emptying_an_old_table_never_opens_it(old in set_strategy(), new in set_strategy()) {
        let before = PolicyConfig::default();
        let moved = PolicyConfig { table: 1, forward: port25_rules::Forward::GotoTable(2), ..PolicyConfig::default() };
        let old_flows = compile(&before, &old, DPID);
        let cur = installed(&old_flows);
        let p = plan(&cur, &compile(&moved, &new, DPID), true);
        let pkts = packets();
        for n in 0..=p.changes.len() {
            let table = after(&cur, &p, n);
            for pkt in &pkts {
                if lookup(&old_flows, 0, pkt).unwrap() == Verdict::Drop {
                    prop_assert_eq!(lookup(&table, 0, pkt).unwrap(), Verdict::Drop, "table 0 leaks {:?} after {} changes", pkt, n);
                }
            }
        }
        prop_assert!(after(&cur, &p, p.changes.len()).iter().all(|f| f.table == 1));
    }
}
