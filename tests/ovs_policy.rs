//! port25d against a real Open vSwitch bridge (userspace datapath).

mod support;

use std::time::Duration;

use support::{wait_for, Bridge, Daemon};

const BASE: [&str; 11] = [
    "cookie=0x2525010000000001, send_flow_rem priority=30000,tcp,tp_dst=25 actions=drop",
    "cookie=0x2525010000000002, send_flow_rem priority=30000,tcp,tp_src=25 actions=drop",
    "cookie=0x2525010000000003, send_flow_rem priority=30000,tcp,nw_frag=yes actions=drop",
    "cookie=0x2525010000000004, send_flow_rem priority=30000,tcp6,tp_dst=25 actions=drop",
    "cookie=0x2525010000000005, send_flow_rem priority=30000,tcp6,tp_src=25 actions=drop",
    "cookie=0x2525010000000006, send_flow_rem priority=30000,tcp6,nw_frag=yes actions=drop",
    "cookie=0x2525010000000007, send_flow_rem priority=0 actions=NORMAL",
    "cookie=0x2525010000000008, send_flow_rem priority=30000,dl_type=0x8100 actions=drop",
    "cookie=0x2525010000000009, send_flow_rem priority=30000,dl_type=0x88a8 actions=drop",
    "cookie=0x252501000000000a, send_flow_rem priority=30000,ipv6,nw_proto=0 actions=drop",
    "cookie=0x252501000000000b, send_flow_rem priority=30000,ipv6,nw_proto=59,nw_frag=first actions=drop",
];

fn ours(br: &Bridge) -> Vec<String> {
    br.flows().into_iter().filter(|l| l.starts_with("cookie=0x2525")).collect()
}

fn expected(extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = BASE.iter().map(|s| s.to_string()).collect();
    v.extend(extra.iter().cloned());
    v.sort();
    v
}

fn exempt_flows(id: u64, v6: bool, prefix: &str) -> Vec<String> {
    let (proto, src, dst) = if v6 { ("tcp6", "ipv6_src", "ipv6_dst") } else { ("tcp", "nw_src", "nw_dst") };
    vec![
        format!("cookie=0x25250200000000{id:02x}, priority=40000,{proto},{src}={prefix} actions=NORMAL"),
        format!("cookie=0x25250200000000{id:02x}, priority=40000,{proto},{dst}={prefix} actions=NORMAL"),
    ]
}

const DROP: &str = "Datapath actions: drop";

#[test]
fn fresh_bridge_gets_the_block_for_ipv4_and_ipv6_and_trace_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let st = d.wait_in_sync(&br.dpid_hex());
    assert_eq!(st["openflow_version"], "1.3");
    assert_eq!(st["ipv6_enforced"], true);
    assert_eq!(st["bundles"], true, "the first round should go as an atomic bundle: {st}");
    assert_eq!(ours(&br), expected(&[]));

    let a = br.port_a();
    let sub = "dl_dst=ff:ff:ff:ff:ff:ff";
    // The switch's own verdicts: port 25 blocked both ways, v4 and v6.
    assert_eq!(
        br.trace(&format!("in_port={a},{sub},tcp,nw_src=198.51.100.1,nw_dst=192.0.2.1,tp_src=40000,tp_dst=25")),
        DROP
    );
    assert_eq!(
        br.trace(&format!("in_port={a},{sub},tcp,nw_src=192.0.2.1,nw_dst=198.51.100.1,tp_src=25,tp_dst=40000")),
        DROP
    );
    assert_eq!(
        br.trace(&format!("in_port={a},{sub},tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8:1::1,tp_src=40000,tp_dst=25")),
        DROP
    );
    assert_eq!(
        br.trace(&format!("in_port={a},{sub},tcp6,ipv6_src=2001:db8:1::1,ipv6_dst=2001:db8::1,tp_src=25,tp_dst=40000")),
        DROP
    );
    assert_eq!(br.trace(&format!("in_port={a},{sub},tcp,nw_src=198.51.100.1,nw_dst=192.0.2.1,nw_frag=first")), DROP);
    // Controls: 587 and 80 forward.
    assert_ne!(
        br.trace(&format!("in_port={a},{sub},tcp,nw_src=198.51.100.1,nw_dst=192.0.2.1,tp_src=40000,tp_dst=587")),
        DROP
    );
    assert_ne!(
        br.trace(&format!("in_port={a},{sub},tcp6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8:1::1,tp_src=40000,tp_dst=80")),
        DROP
    );
    assert_ne!(br.trace(&format!("in_port={a},{sub},udp,nw_src=198.51.100.1,nw_dst=192.0.2.1,nw_frag=later")), DROP);
    d.stop();
}

#[test]
fn grant_and_revoke_reach_the_switch_and_trace_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    d.wait_in_sync(&dpid);
    let a = br.port_a();
    let sub = "dl_dst=ff:ff:ff:ff:ff:ff";
    let out4 = format!("in_port={a},{sub},tcp,nw_src=198.51.100.7,nw_dst=192.0.2.1,tp_src=40000,tp_dst=25");
    let in4 = format!("in_port={a},{sub},tcp,nw_src=192.0.2.1,nw_dst=198.51.100.7,tp_src=25,tp_dst=40000");
    let out6 = format!("in_port={a},{sub},tcp6,ipv6_src=2001:db8::7,ipv6_dst=2001:db8:1::1,tp_src=40000,tp_dst=25");
    let other4 = format!("in_port={a},{sub},tcp,nw_src=198.51.100.8,nw_dst=192.0.2.1,tp_src=40000,tp_dst=25");
    assert_eq!(br.trace(&out4), DROP);

    let id4 = d.grant("198.51.100.7/32");
    let id6 = d.grant("2001:db8::/64");
    let st = d.wait_in_sync(&dpid);
    let mut extra = exempt_flows(id4, false, "198.51.100.7");
    extra.extend(exempt_flows(id6, true, "2001:db8::/64"));
    assert_eq!(ours(&br), expected(&extra));
    assert_eq!(st["flow_count"], 15);
    assert_ne!(br.trace(&out4), DROP, "exempted subscriber still blocked");
    assert_ne!(br.trace(&in4), DROP, "replies from port 25 to the exempted subscriber dropped");
    assert_ne!(br.trace(&out6), DROP, "exempted IPv6 subscriber still blocked");
    assert_eq!(br.trace(&other4), DROP, "a neighbour got the exemption too");

    d.revoke(id4);
    let st = d.wait_in_sync(&dpid);
    assert_eq!(ours(&br), expected(&exempt_flows(id6, true, "2001:db8::/64")));
    assert_eq!(st["last_round"]["deleted"], 2);
    assert_eq!(st["last_round"]["added"], 0);
    assert_eq!(br.trace(&out4), DROP, "revoked subscriber still open");
    d.stop();
}

#[test]
fn restart_and_reconnect_send_no_changes_and_keep_counters() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    d.wait_in_sync(&dpid);
    let id = d.grant("203.0.113.0/24");
    d.wait_in_sync(&dpid);
    let before = ours(&br);
    d.stop();
    // With fail_mode=secure the switch keeps enforcing while we are away.
    assert_eq!(ours(&br), before);

    let d2 = Daemon::start(dir.path());
    br.attach(d2.bound.openflow);
    let st = d2.wait_in_sync(&dpid);
    assert_eq!(ours(&br), before);
    assert_eq!(st["last_round"]["added"], 0, "{st}");
    assert_eq!(st["last_round"]["deleted"], 0, "{st}");
    assert_eq!(st["last_round"]["kept"], 13, "{st}");
    assert_eq!(st["last_round"]["complete"], true, "{st}");
    assert!(ours(&br).iter().any(|l| l.contains(&format!("0x25250200000000{id:02x}"))));
    d2.stop();
}

#[test]
fn revocation_while_disconnected_is_applied_on_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    d.wait_in_sync(&dpid);
    let keep = d.grant("198.51.100.1/32");
    let gone = d.grant("198.51.100.2/32");
    d.wait_in_sync(&dpid);
    // The switch goes away; the revocation happens meanwhile.
    br.detach();
    wait_for(Duration::from_secs(10), || d.switch(&dpid).is_none().then_some(())).expect("session ended");
    d.revoke(gone);
    assert_eq!(ours(&br).len(), 15, "flows changed while disconnected");
    br.attach(d.bound.openflow);
    let st = d.wait_in_sync(&dpid);
    assert_eq!(ours(&br), expected(&exempt_flows(keep, false, "198.51.100.1")));
    assert_eq!(st["last_round"]["deleted"], 2, "{st}");
    assert_eq!(st["last_round"]["added"], 0, "{st}");
    d.stop();
}

#[test]
fn foreign_flows_are_never_touched_and_our_stale_flows_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let br = Bridge::new("OpenFlow13");
    // Another application's flows, including one with our exact match at
    // another priority and one in our cookie's low bits without our prefix.
    let foreign = [
        "cookie=0x1234, priority=100,udp,tp_dst=9999 actions=drop",
        "cookie=0x99, priority=29999,tcp,tp_dst=25 actions=NORMAL",
        "cookie=0x10000000000002, priority=41000,tcp,nw_src=192.0.2.66 actions=drop",
    ];
    for f in foreign {
        br.add_flow(f);
    }
    // Our leftovers from an older policy: a revoked exemption, a base rule
    // we no longer install (unmodelled match), and one with a wrong action.
    br.add_flow("cookie=0x2525020000000063, priority=40000,tcp,nw_src=192.0.2.99 actions=NORMAL");
    br.add_flow("cookie=0x2525010000000063, priority=30000,udp,tp_dst=9 actions=drop");
    br.add_flow("cookie=0x2525010000000001, priority=30000,tcp,tp_dst=25 actions=NORMAL");
    let d = Daemon::start(dir.path());
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    let st = d.wait_in_sync(&dpid);
    assert_eq!(ours(&br), expected(&[]), "{st}");
    let id = d.grant("198.51.100.9/32");
    d.wait_in_sync(&dpid);
    d.revoke(id);
    d.wait_in_sync(&dpid);
    let all = br.flows();
    for f in foreign {
        assert!(all.iter().any(|l| l == f), "foreign flow {f} was touched: {all:#?}");
    }
    assert_eq!(ours(&br), expected(&[]));
    d.stop();
}

#[test]
fn a_refused_flow_mod_is_reported_for_that_switch_and_the_block_stays() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    // A table that holds 10 flows and refuses more: the 11th (the NORMAL
    // catch-all) is refused with OFPFMFC_TABLE_FULL.
    br.set(&[
        "--",
        "--id=@ft",
        "create",
        "Flow_Table",
        "flow_limit=10",
        "overflow_policy=refuse",
        "--",
        "set",
        "bridge",
        &br.name,
        "flow_tables=0=@ft",
    ]);
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    // The first round goes as one atomic bundle, which the switch refuses
    // as a whole (nothing applied: with fail_mode=secure it drops all).
    // The retry goes as ordered flow-mods: every drop, then the refusal.
    let st = wait_for(Duration::from_secs(15), || {
        let s = d.switch(&dpid)?;
        let settled = s["state"] == "degraded"
            && s["last_error"].is_string()
            && s["flow_count"] == 10
            && s["last_round"]["refused"] == 1
            && ours(&br).len() == 10;
        settled.then_some(s)
    })
    .unwrap_or_else(|| panic!("switch never reported degraded with the drops in place: {:?}", d.switch(&dpid)));
    let err = st["last_error"].as_str().unwrap();
    assert!(err.contains("TABLE_FULL"), "{err}");
    assert!(err.contains("priority=0"), "error does not name the flow: {err}");
    assert_eq!(st["in_sync"], false);
    assert_eq!(st["flow_count"], 10, "{st}");
    assert_eq!(st["last_round"]["refused"], 1, "{st}");
    // Fail closed: every drop went in before the forwarding flow.
    let flows = ours(&br);
    assert_eq!(flows.len(), 10, "{flows:#?}");
    assert!(flows.iter().all(|l| l.ends_with("actions=drop")), "{flows:#?}");
    d.stop();
}

#[test]
fn an_openflow10_only_switch_is_refused_when_openflow10_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let session = port25_controller::session::SessionConfig { allow_openflow10: false, ..Default::default() };
    let d = Daemon::start_with(dir.path(), session);
    let br = Bridge::new("OpenFlow10");
    br.attach(d.bound.openflow);
    let st = wait_for(Duration::from_secs(15), || {
        let (_, v) = d.http("GET", "/v1/switches", None);
        v["switches"].as_array()?.iter().find(|s| s["state"] == "refused").cloned()
    })
    .expect("no refused switch shown");
    let why = st["last_error"].as_str().unwrap();
    assert!(why.contains("1.0") && why.contains("1.3"), "{why}");
    assert!(ours(&br).is_empty());
    d.stop();
}

#[test]
fn an_openflow10_switch_enforces_ipv4_and_says_ipv6_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow10");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    let st = d.wait_in_sync(&dpid);
    assert_eq!(st["openflow_version"], "1.0", "{st}");
    assert_eq!(st["ipv6_enforced"], false, "{st}");
    assert_eq!(st["fragments_enforced"], false, "{st}");
    assert_eq!(st["bundles"], false, "{st}");
    // IPv4 drops, the stacked-VLAN drops and the catch-all; IPv6 and
    // fragment flows cannot be expressed in 1.0. Every port match carries dl_type and nw_proto (the
    // 1.0 errata), so these are tcp flows, not "all IP".
    assert_eq!(
        ours(&br),
        vec![
            "cookie=0x2525010000000001, priority=30000,tcp,tp_dst=25 actions=drop".to_string(),
            "cookie=0x2525010000000002, priority=30000,tcp,tp_src=25 actions=drop".to_string(),
            "cookie=0x2525010000000007, priority=0 actions=NORMAL".to_string(),
            "cookie=0x2525010000000008, priority=30000,dl_type=0x8100 actions=drop".to_string(),
            "cookie=0x2525010000000009, priority=30000,dl_type=0x88a8 actions=drop".to_string(),
        ]
    );
    let a = br.port_a();
    let sub = "dl_dst=ff:ff:ff:ff:ff:ff";
    let out25 = format!("in_port={a},{sub},tcp,nw_src=198.51.100.7,nw_dst=192.0.2.1,tp_src=40000,tp_dst=25");
    assert_eq!(br.trace(&out25), DROP);
    assert_eq!(
        br.trace(&format!("in_port={a},{sub},tcp,nw_src=192.0.2.1,nw_dst=198.51.100.7,tp_src=25,tp_dst=40000")),
        DROP
    );
    // Port 80 and 587 still flow: a careless 1.0 port match would drop all IP.
    assert_ne!(
        br.trace(&format!("in_port={a},{sub},tcp,nw_src=198.51.100.7,nw_dst=192.0.2.1,tp_src=40000,tp_dst=80")),
        DROP
    );
    assert_ne!(
        br.trace(&format!("in_port={a},{sub},tcp,nw_src=198.51.100.7,nw_dst=192.0.2.1,tp_src=40000,tp_dst=587")),
        DROP
    );
    assert_ne!(
        br.trace(&format!("in_port={a},{sub},udp,nw_src=198.51.100.7,nw_dst=192.0.2.1,udp_src=40000,udp_dst=25")),
        DROP
    );

    // Exemptions work (IPv4); an IPv6 one is stored but has no flow here.
    let id4 = d.grant("198.51.100.7/32");
    let _id6 = d.grant("2001:db8::7/128");
    let st = d.wait_in_sync(&dpid);
    assert_eq!(st["flow_count"], 7, "{st}");
    assert_eq!(ours(&br).len(), 7);
    assert_ne!(br.trace(&out25), DROP, "exempted subscriber blocked on the 1.0 switch");
    d.revoke(id4);
    d.wait_in_sync(&dpid);
    assert_eq!(br.trace(&out25), DROP);
    assert_eq!(ours(&br).len(), 5);
    // A restart converges by read-back (1.0 cannot filter by cookie) and
    // changes nothing.
    d.stop();
    let d2 = Daemon::start(dir.path());
    br.attach(d2.bound.openflow);
    let st = d2.wait_in_sync(&dpid);
    assert_eq!(st["last_round"]["added"], 0, "{st}");
    assert_eq!(st["last_round"]["deleted"], 0, "{st}");
    assert_eq!(ours(&br).len(), 5);
    d2.stop();
}

#[test]
fn a_large_table_is_read_back_across_many_multipart_replies() {
    use port25_rules::{AuditContext, ExemptionStore, NewExemption, Prefix, SledStore};
    let dir = tempfile::tempdir().unwrap();
    {
        // 3,000 exemptions (6,007 flows): the read-back is several hundred
        // KiB, split by OVS over many replies flagged REPLY_MORE.
        let store = SledStore::open(dir.path()).unwrap();
        for i in 0..3000u32 {
            let addr = std::net::Ipv4Addr::from(0xc633_6400u32 + i); // 198.51.100.0 + i
            let p = Prefix::host(addr.into());
            store.insert(NewExemption::new(p), &AuditContext::port25d(), time::OffsetDateTime::now_utc()).unwrap();
        }
    }
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    let st = d.wait_in_sync(&dpid);
    assert_eq!(st["flow_count"], 6011, "{st}");
    assert_eq!(ours(&br).len(), 6011);
    d.stop();
    let d2 = Daemon::start(dir.path());
    br.attach(d2.bound.openflow);
    let st = d2.wait_in_sync(&dpid);
    assert_eq!(st["last_round"]["kept"], 6011, "{st}");
    assert_eq!(st["last_round"]["added"], 0, "{st}");
    assert_eq!(st["last_round"]["deleted"], 0, "{st}");
    assert_eq!(st["last_round"]["complete"], true, "{st}");
    d2.stop();
}

#[test]
fn the_periodic_audit_repairs_flows_deleted_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let session = port25_controller::session::SessionConfig {
        audit_interval: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let d = Daemon::start_with(dir.path(), session);
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    d.wait_in_sync(&dpid);
    let id = d.grant("198.51.100.5/32");
    d.wait_in_sync(&dpid);
    let want = ours(&br);
    // An operator deletes an exemption's allow by hand (a deleted drop
    // comes back sooner, through the switch's flow-removed report: see
    // a_drop_deleted_by_hand_is_restored_at_once_not_at_the_next_audit).
    br.del_flow_strict("priority=40000,tcp,nw_src=198.51.100.5");
    assert_eq!(ours(&br).len(), want.len() - 1);
    wait_for(Duration::from_secs(10), || (ours(&br) == want).then_some(()))
        .unwrap_or_else(|| panic!("drift not repaired: {:#?}", ours(&br)));
    let st = d.switch(&dpid).unwrap();
    assert_eq!(st["in_sync"], true, "{st}");
    let _ = id;
    d.stop();
}

/// An Ethernet/IPv4/TCP SYN as hex, for `ovs-ofctl packet-out`.
fn syn_hex(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> String {
    eth(&[], 0x0800, &ipv4_tcp(src, dst, sport, dport))
}

/// Bytes as hex.
fn hex(p: &[u8]) -> String {
    p.iter().map(|b| format!("{b:02x}")).collect()
}

/// A TCP SYN (no checksums: the switch does not check them).
fn tcp_syn(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

/// Ethernet with VLAN tags (TPID, VID) in front of `ether_type`.
fn eth(tags: &[(u16, u16)], ether_type: u16, payload: &[u8]) -> String {
    let mut p: Vec<u8> = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1];
    for (tpid, vid) in tags {
        p.extend_from_slice(&tpid.to_be_bytes());
        p.extend_from_slice(&vid.to_be_bytes());
    }
    p.extend_from_slice(&ether_type.to_be_bytes());
    p.extend_from_slice(payload);
    hex(&p)
}

fn ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend(tcp_syn(sport, dport));
    p
}

fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&"2001:db8::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&"2001:db8:1::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(rest);
    p
}

#[test]
fn frames_the_switch_cannot_read_into_are_dropped_and_readable_ones_judged() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    d.grant("198.51.100.7");
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    d.wait_in_sync(&br.dpid_hex());
    let a = br.port_a();
    let (sub, exempt, mx) = ([198, 51, 100, 1], [198, 51, 100, 7], [192, 0, 2, 1]);
    // Two tags: OVS (vlan-limit 1) sees the inner tag's type and no IP
    // header, so a SYN to 25 inside would pass any port match.
    for outer in [0x88a8, 0x8100] {
        for (src, dport) in [(sub, 25), (exempt, 25), (sub, 80)] {
            let frame = eth(&[(outer, 10), (0x8100, 20)], 0x0800, &ipv4_tcp(src, mx, 40000, dport));
            assert_eq!(br.trace_packet(&a, &frame), DROP, "two tags {outer:#x}, {src:?} -> :{dport}");
        }
    }
    // Controls: one tag is read through, and judged by its TCP header.
    assert_ne!(br.trace_packet(&a, &eth(&[(0x8100, 10)], 0x0800, &ipv4_tcp(sub, mx, 40000, 80))), DROP);
    assert_ne!(br.trace_packet(&a, &eth(&[(0x88a8, 10)], 0x0800, &ipv4_tcp(exempt, mx, 40000, 25))), DROP);
    assert_eq!(br.trace_packet(&a, &eth(&[(0x8100, 10)], 0x0800, &ipv4_tcp(sub, mx, 40000, 25))), DROP);

    // An IPv6 first fragment whose destination-options header runs on
    // into the next fragment: OVS cannot parse to the transport header
    // (ipv6,nw_proto=0), the TCP SYN behind it would pass the port match.
    let mut dstopts = vec![6u8, 10];
    dstopts.resize(88, 0);
    let mut frag = vec![60u8, 0, 0, 1, 0, 0, 0x12, 0x34];
    frag.extend_from_slice(&dstopts[..64]);
    assert_eq!(br.trace_packet(&a, &eth(&[], 0x86dd, &ipv6(44, &frag))), DROP, "cut-off header chain");
    // How a kernel datapath keys such a chain cut at a header boundary:
    // a first fragment with "no next header". Never valid; dropped.
    let nothing = [59u8, 0, 0, 1, 0, 0, 0x12, 0x35];
    assert_eq!(br.trace_packet(&a, &eth(&[], 0x86dd, &ipv6(44, &nothing))), DROP, "first fragment, no next header");
    // Controls: a hop-by-hop header OVS parses past; TCP 80 behind it
    // flows, TCP 25 behind it is dropped by the port match.
    let hbh = |dport| {
        let mut h = vec![6u8, 0, 1, 4, 0, 0, 0, 0];
        h.extend(tcp_syn(40000, dport));
        h
    };
    assert_ne!(br.trace_packet(&a, &eth(&[], 0x86dd, &ipv6(0, &hbh(80)))), DROP);
    assert_eq!(br.trace_packet(&a, &eth(&[], 0x86dd, &ipv6(0, &hbh(25)))), DROP);
    d.stop();
}

#[test]
fn blocked_attempts_are_counted_per_switch_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let session = port25_controller::session::SessionConfig {
        counters_interval: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let d = Daemon::start_with(dir.path(), session);
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    d.wait_in_sync(&dpid);
    // Three SYNs to port 25 and one to 587 through the real pipeline.
    let port = br.port_a();
    for dport in [25, 25, 25, 587] {
        let out = std::process::Command::new("ovs-ofctl")
            .args([
                "-O",
                "OpenFlow13",
                "packet-out",
                &br.name,
                &format!(
                    "in_port={port} packet={} actions=table",
                    syn_hex([198, 51, 100, 9], [192, 0, 2, 1], 40000, dport)
                ),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let st = wait_for(Duration::from_secs(10), || {
        let s = d.switch(&dpid)?;
        let c = s["blocked"].as_array()?.iter().find(|c| c["rule"] == "tcp_dst_25_ipv4")?.clone();
        (c["packets"] == 3).then_some(s)
    })
    .unwrap_or_else(|| panic!("blocked counter never reached 3: {:?}", d.switch(&dpid)));
    let rules: Vec<&str> = st["blocked"].as_array().unwrap().iter().map(|c| c["rule"].as_str().unwrap()).collect();
    assert_eq!(rules.len(), 10, "{st}");
    let src = st["blocked"].as_array().unwrap().iter().find(|c| c["rule"] == "tcp_src_25_ipv4").unwrap();
    assert_eq!(src["packets"], 0, "{st}");
    assert!(st["blocked_at"].is_string());
    d.stop();
}

#[test]
fn a_drop_deleted_by_hand_is_restored_at_once_not_at_the_next_audit() {
    let dir = tempfile::tempdir().unwrap();
    // The default audit interval (300 s): only the switch's flow-removed
    // message can bring the drop back within the test's few seconds.
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    d.wait_in_sync(&dpid);
    let a = br.port_a();
    let syn25 = format!("in_port={a},dl_dst=ff:ff:ff:ff:ff:ff,tcp,nw_src=198.51.100.1,nw_dst=192.0.2.1,tp_dst=25");
    assert_eq!(br.trace(&syn25), DROP);
    br.del_flow_strict("priority=30000,tcp,tp_dst=25");
    let back = wait_for(Duration::from_secs(10), || (ours(&br) == expected(&[])).then_some(()));
    assert!(back.is_some(), "the drop was not restored: {:#?}", ours(&br));
    assert_eq!(br.trace(&syn25), DROP);
    let st = d.wait_in_sync(&dpid);
    assert!(st["last_error"].as_str().unwrap_or("").contains("tcp_dst_25_ipv4"), "not reported: {st}");
    // Deleted again at once (as another controller would): repaired after
    // a pause instead of in a tight loop, but repaired.
    br.del_flow_strict("priority=30000,tcp,tp_dst=25");
    let back = wait_for(Duration::from_secs(10), || (ours(&br) == expected(&[])).then_some(()));
    assert!(back.is_some(), "the drop was not restored the second time: {:#?}", ours(&br));
    // Our own deletions (a revoke) raise no alarm and no extra round.
    let id = d.grant("198.51.100.7");
    d.wait_in_sync(&dpid);
    d.revoke(id);
    let st = d.wait_in_sync(&dpid);
    assert_eq!(st["state"], "in_sync", "{st}");
    d.stop();
}

#[test]
fn moving_to_another_table_removes_every_flow_of_ours_from_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    let id = d.grant("198.51.100.7");
    d.wait_in_sync(&dpid);
    d.stop();
    // Restart with our flows in table 1 and allowed traffic going on to
    // table 2; then revoke. Nothing of ours may stay in table 0, or the
    // old allow would keep the revoked subscriber open there.
    let policy =
        port25_rules::PolicyConfig { table: 1, forward: port25_rules::Forward::GotoTable(2), ..Default::default() };
    let d = Daemon::start_with(dir.path(), port25_controller::session::SessionConfig { policy, ..Default::default() });
    br.attach(d.bound.openflow);
    let st = d.wait_in_sync(&dpid);
    d.revoke(id);
    d.wait_in_sync(&dpid);
    let flows = ours(&br);
    assert!(flows.iter().all(|l| l.contains("table=1,")), "ours outside table 1: {flows:#?}");
    assert_eq!(flows.len(), 11, "{flows:#?}");
    let _ = st;
    d.stop();
}

#[test]
fn a_foreign_flow_that_overrides_the_drops_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let session = port25_controller::session::SessionConfig {
        audit_interval: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let d = Daemon::start_with(dir.path(), session);
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    let st = d.wait_in_sync(&dpid);
    assert_eq!(st["overridden_by"], serde_json::json!([]), "{st}");
    // Another application's flows: one above the drops forwarding SMTP,
    // one above them for ARP only, one below them.
    let smtp = "cookie=0x1234, priority=50000,tcp,tp_dst=25 actions=NORMAL";
    br.add_flow(smtp);
    br.add_flow("cookie=0x1235, priority=50000,arp actions=NORMAL");
    br.add_flow("cookie=0x1236, priority=100,tcp,tp_dst=25 actions=NORMAL");
    let st = wait_for(Duration::from_secs(10), || {
        let s = d.switch(&dpid)?;
        (!s["overridden_by"].as_array()?.is_empty()).then_some(s)
    })
    .unwrap_or_else(|| panic!("override never reported: {:?}", d.switch(&dpid)));
    let over: Vec<&str> = st["overridden_by"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(over.len(), 1, "{st}");
    assert!(over[0].contains("cookie=0x1234") && over[0].contains("tcp_dst_25_ipv4"), "{st}");
    assert!(br.flows().iter().any(|l| l == smtp), "the foreign flow was touched");
    // Gone: the report clears at the next scan.
    br.del_flow_strict("priority=50000,tcp,tp_dst=25");
    wait_for(Duration::from_secs(10), || d.switch(&dpid)?["overridden_by"].as_array()?.is_empty().then_some(()))
        .unwrap_or_else(|| panic!("override report never cleared: {:?}", d.switch(&dpid)));
    d.stop();
}
