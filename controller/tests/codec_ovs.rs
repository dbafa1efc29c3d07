//! `ovs-ofctl` as the oracle for our encoders: what OVS prints for the
//! bytes we produce must say what we meant.
//!
//! Needs Open vSwitch (`ovs-ofctl`, and a running `ovs-vswitchd` for the
//! bridge test); the project's test script installs and starts it.

use std::net::IpAddr;
use std::process::Command;

use bytes::BytesMut;
use port25_controller::ofp::{
    encode_barrier_request, encode_desc_request, encode_echo_request, encode_error, encode_features_request,
    encode_flow_mod, encode_flow_stats_request, encode_hello, FlowMod, FlowModCommand, MatchSpec, OFPET_HELLO_FAILED,
    OFPHFC_INCOMPATIBLE, OFP10, OFP13,
};
use port25_rules::{Family, FlowAction, FragMatch, Match, Prefix};

const COOKIE: u64 = 0x2525_0100_0000_0001;

fn ofctl(args: &[&str]) -> std::process::Output {
    match Command::new("ovs-ofctl").args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run ovs-ofctl ({e}): install openvswitch-switch (scripts/test.sh does)"),
    }
}

/// `ovs-ofctl ofp-print` of one encoded message; panics if OVS rejects it.
fn ofp_print(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = ofctl(&["ofp-print", &hex]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "ofp-print failed for {hex}:\n{text}");
    for bad in ["***", "decode error", "bad ", "truncated", "OFPBMC_", "OFPBAC_", "OFPBIC_"] {
        assert!(!text.contains(bad), "ofp-print complained ({bad}) about {hex}:\n{text}");
    }
    println!("{text}");
    text
}

fn flow_mod(fm: &FlowMod<'_>) -> String {
    let mut buf = BytesMut::new();
    encode_flow_mod(&mut buf, 0x42, fm);
    ofp_print(&buf)
}

fn add(matcher: &Match, priority: u16, action: FlowAction) -> String {
    flow_mod(&FlowMod {
        command: FlowModCommand::Add,
        table_id: 0,
        priority,
        cookie: COOKIE,
        cookie_mask: 0,
        matcher: MatchSpec::Typed(matcher),
        action,
        flags: 0,
    })
}

fn assert_has(text: &str, pieces: &[&str]) {
    for p in pieces {
        assert!(text.contains(p), "missing {p:?} in:\n{text}");
    }
}

fn prefix(s: &str) -> Prefix {
    s.parse().unwrap()
}

#[test]
fn drop_tcp_dst_25_v4_and_v6() {
    let t = add(&Match::tcp(Family::V4).with_tcp_dst(25), 30000, FlowAction::Drop);
    assert_has(&t, &["OFPT_FLOW_MOD (OF1.3)", "ADD", "priority=30000", "tcp,", "tp_dst=25", "cookie:0x2525010000000001", "actions=drop"]);
    assert!(!t.contains("tcp6"));
    let t = add(&Match::tcp(Family::V6).with_tcp_dst(25), 30000, FlowAction::Drop);
    assert_has(&t, &["tcp6", "tp_dst=25", "actions=drop"]);
}

#[test]
fn nw_frag_yes() {
    let t = add(&Match::tcp(Family::V4).with_ip_frag(FragMatch::Any), 30001, FlowAction::Drop);
    assert_has(&t, &["tcp", "nw_frag=yes", "priority=30001"]);
    let t = add(&Match::tcp(Family::V6).with_ip_frag(FragMatch::First), 30001, FlowAction::Drop);
    assert_has(&t, &["tcp6", "nw_frag=first"]);
}

#[test]
fn allow_from_prefix_normal() {
    let t = add(&Match::tcp_from(prefix("203.0.113.0/24")), 40000, FlowAction::Normal);
    assert_has(&t, &["tcp", "nw_src=203.0.113.0/24", "actions=NORMAL", "priority=40000"]);
    let t = add(&Match::tcp_from(prefix("203.0.113.7/32")), 40000, FlowAction::Normal);
    assert_has(&t, &["nw_src=203.0.113.7 ", "actions=NORMAL"]);
    let t = add(&Match::tcp_to(prefix("2001:db8::/64")), 40000, FlowAction::Normal);
    assert_has(&t, &["tcp6", "ipv6_dst=2001:db8::/64", "actions=NORMAL"]);
}

#[test]
fn goto_table() {
    let t = add(&Match::any(), 0, FlowAction::GotoTable(5));
    assert_has(&t, &["goto_table:5", "priority=0"]);
}

#[test]
fn delete_strict_with_cookie_and_raw_match() {
    let m = Match::tcp_from(prefix("2001:db8:1::/48"));
    let t = flow_mod(&FlowMod {
        command: FlowModCommand::DeleteStrict,
        table_id: 0,
        priority: 40000,
        cookie: COOKIE,
        cookie_mask: u64::MAX,
        matcher: MatchSpec::Typed(&m),
        action: FlowAction::Normal,
        flags: 0,
    });
    assert_has(&t, &["DEL_STRICT", "cookie:0x2525010000000001/0xffffffffffffffff", "tcp6", "ipv6_src=2001:db8:1::/48"]);
    assert!(!t.contains("NORMAL"), "a delete carries no instructions:\n{t}");

    let mut oxm = BytesMut::new();
    port25_controller::ofp::encode_match(&mut oxm, &Match::tcp(Family::V4).with_tcp_dst(25));
    let t = flow_mod(&FlowMod {
        command: FlowModCommand::Delete,
        table_id: 0xff,
        priority: 0,
        cookie: 0x2525_0000_0000_0000,
        cookie_mask: 0xffff_0000_0000_0000,
        matcher: MatchSpec::Raw(&oxm),
        action: FlowAction::Drop,
        flags: 0,
    });
    assert_has(&t, &["DEL", "cookie:0x2525000000000000/0xffff000000000000", "tcp", "tp_dst=25"]);
    assert!(!t.contains("DEL_STRICT"));
}

#[test]
fn requests_and_handshake_messages() {
    let mut b = BytesMut::new();
    encode_hello(&mut b, 1, &[OFP10, OFP13]);
    assert_has(&ofp_print(&b), &["OFPT_HELLO (OF1.3)", "version bitmap: 0x01, 0x04"]);
    b.clear();
    encode_features_request(&mut b, 2);
    assert_has(&ofp_print(&b), &["OFPT_FEATURES_REQUEST (OF1.3)"]);
    b.clear();
    encode_barrier_request(&mut b, 3);
    assert_has(&ofp_print(&b), &["OFPT_BARRIER_REQUEST (OF1.3)"]);
    b.clear();
    encode_desc_request(&mut b, 4);
    assert_has(&ofp_print(&b), &["OFPST_DESC request (OF1.3)"]);
    b.clear();
    encode_flow_stats_request(&mut b, 5, 3, 0x2525_0000_0000_0000, 0xffff_0000_0000_0000);
    // ofp-print shows neither the cookie nor out_port/out_group ANY; it
    // would show a non-ANY out_port and any match field.
    let t = ofp_print(&b);
    assert_has(&t, &["OFPST_FLOW request (OF1.3) (xid=0x5):", "table=3"]);
    assert!(!t.contains("out_port"), "{t}");
    assert_eq!(&b[32..48], &[0x25, 0x25, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0], "cookie, cookie_mask");
    b.clear();
    encode_echo_request(&mut b, OFP13, 6, b"ping");
    assert_has(&ofp_print(&b), &["OFPT_ECHO_REQUEST (OF1.3)", "ping"]);
    b.clear();
    encode_error(&mut b, OFP10, 7, OFPET_HELLO_FAILED, OFPHFC_INCOMPATIBLE, b"we need OpenFlow 1.3");
    assert_has(&ofp_print(&b), &["OFPT_ERROR (xid=0x7)", "OFPHFC_INCOMPATIBLE", "we need OpenFlow 1.3"]);
}

#[test]
fn host_prefix_is_exact_and_v6_host_too() {
    let host: IpAddr = "2001:db8::25".parse().unwrap();
    let t = add(&Match::tcp_from(Prefix::host(host)), 1, FlowAction::Drop);
    assert_has(&t, &["ipv6_src=2001:db8::25 "]);
}
