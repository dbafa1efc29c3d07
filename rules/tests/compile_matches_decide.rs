//! The compiled flows, looked up like a switch would, give exactly the
//! reference verdict of `decide` for every packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use port25_rules::table::lookup;
use port25_rules::{
    compile, decide, Dpid, Exemption, ExemptionId, Forward, Fragment, Headers, Packet, PolicyConfig, Prefix, Scope,
    Verdict,
};
use proptest::prelude::*;
use time::OffsetDateTime;

const DPID: Dpid = Dpid(0xaa);
const OTHER: Dpid = Dpid(0xbb);

/// Addresses drawn from a small universe so that exemptions and packets
/// overlap often: the interesting cases are near prefix edges.
fn v4() -> impl Strategy<Value = Ipv4Addr> {
    (prop_oneof![Just(198u8), Just(203)], 0u8..4, 0u8..=255).prop_map(|(a, c, d)| Ipv4Addr::new(a, 51, c, d))
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    (0u16..3, 0u16..4, 0u16..=0xffff).prop_map(|(b, c, h)| Ipv6Addr::new(0x2001, 0xdb8, b, c, 0, 0, 0, h))
}

fn prefix() -> impl Strategy<Value = Prefix> {
    prop_oneof![
        (v4(), 8u8..=32).prop_map(|(a, l)| {
            let p = ipnetwork::Ipv4Network::new(a, l).unwrap();
            Prefix::new(IpAddr::V4(p.network()), l).unwrap()
        }),
        (v6(), 16u8..=128).prop_map(|(a, l)| {
            let p = ipnetwork::Ipv6Network::new(a, l).unwrap();
            Prefix::new(IpAddr::V6(p.network()), l).unwrap()
        }),
    ]
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        3 => Just(Scope::All),
        1 => Just(Scope::from_list(Some(vec![DPID]))),
        1 => Just(Scope::from_list(Some(vec![OTHER]))),
        1 => Just(Scope::from_list(Some(vec![OTHER, DPID]))),
    ]
}

fn exemptions() -> impl Strategy<Value = Vec<Exemption>> {
    proptest::collection::vec((prefix(), scope()), 0..8).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (subscriber, switches))| Exemption {
                id: ExemptionId(i as u64 + 1),
                subscriber,
                note: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
                switches,
                expires_at: None,
                external_id: None,
            })
            .collect()
    })
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![Just(25u16), Just(587), Just(80), Just(0), Just(2525), any::<u16>()]
}

fn packet() -> impl Strategy<Value = Packet> {
    let addrs = prop_oneof![
        (v4(), v4()).prop_map(|(a, b)| (IpAddr::V4(a), IpAddr::V4(b))),
        (v6(), v6()).prop_map(|(a, b)| (IpAddr::V6(a), IpAddr::V6(b))),
    ];
    (
        addrs,
        prop_oneof![4 => Just(6u8), 1 => Just(17), 1 => Just(1), 1 => Just(58), 1 => any::<u8>()],
        port(),
        port(),
        prop_oneof![4 => Just(Fragment::None), 1 => Just(Fragment::First), 1 => Just(Fragment::Later)],
        proptest::option::of(0u16..4096),
        prop_oneof![
            8 => Just(Headers::Readable),
            1 => prop_oneof![Just(0x8100u16), Just(0x88a8)].prop_map(|tpid| Headers::ExtraVlanTag { tpid }),
            1 => Just(Headers::BrokenIpv6Chain),
        ],
    )
        .prop_map(|((src, dst), ip_proto, src_port, dst_port, fragment, vlan, headers)| Packet {
            // After IPv6 extension headers the protocol is never 0 (that
            // is the hop-by-hop header, which the switch parses past): 59,
            // "no next header", is what such a chain ends in.
            ip_proto: if src.is_ipv6() && ip_proto == 0 { 59 } else { ip_proto },
            // A second tag needs a first.
            vlan: if matches!(headers, Headers::ExtraVlanTag { .. }) { Some(vlan.unwrap_or(1)) } else { vlan },
            headers,
            src,
            dst,
            src_port,
            dst_port,
            fragment,
        })
}

fn check(cfg: &PolicyConfig, ex: &[Exemption], pkts: &[Packet]) -> Result<(), TestCaseError> {
    let flows = compile(cfg, ex, DPID);
    for pkt in pkts {
        let want = decide(ex, DPID, pkt);
        let got = lookup(&flows, cfg.table, pkt).map_err(TestCaseError::fail)?;
        prop_assert_eq!(got, want, "packet {:?} with exemptions {:?}", pkt, ex);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn lookup_of_compiled_flows_equals_decide(ex in exemptions(), pkts in proptest::collection::vec(packet(), 1..32)) {
        check(&PolicyConfig::default(), &ex, &pkts)?;
    }

    #[test]
    fn goto_table_layout_gives_the_same_verdicts(ex in exemptions(), pkts in proptest::collection::vec(packet(), 1..16)) {
        let cfg = PolicyConfig { table: 2, forward: Forward::GotoTable(7), exempt_priority: 900, drop_priority: 800, default_priority: 1, ..PolicyConfig::default() };
        check(&cfg, &ex, &pkts)?;
    }

    /// Packets addressed inside an exemption's prefix, so exempt paths are
    /// exercised on every case, not only when random addresses collide.
    #[test]
    fn exempted_subscribers_pass_and_others_do_not(ex in exemptions(), pkt in packet(), pick in any::<prop::sample::Index>()) {
        prop_assume!(!ex.is_empty());
        let e = &ex[pick.index(ex.len())];
        let mut pkt = pkt;
        if e.subscriber.family() != port25_rules::Family::of(pkt.src) {
            return Ok(());
        }
        pkt.src = e.subscriber.addr();
        pkt.headers = Headers::Readable;
        pkt.ip_proto = 6;
        pkt.dst_port = 25;
        check(&PolicyConfig::default(), &ex, &[pkt])?;
        if e.applies_to(DPID) {
            prop_assert_eq!(decide(&ex, DPID, &pkt), Verdict::Forward);
        }
    }
}

fn pkt4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, fragment: Fragment) -> Packet {
    Packet {
        vlan: None,
        headers: Headers::Readable,
        src: IpAddr::from(src),
        dst: IpAddr::from(dst),
        ip_proto: 6,
        src_port: sport,
        dst_port: dport,
        fragment,
    }
}

#[test]
fn the_policy_in_examples() {
    let ex: Vec<Exemption> = vec![Exemption {
        id: ExemptionId(1),
        subscriber: "198.51.100.7/32".parse().unwrap(),
        note: None,
        created_at: OffsetDateTime::UNIX_EPOCH,
        switches: Scope::All,
        expires_at: None,
        external_id: None,
    }];
    let flows = compile(&PolicyConfig::default(), &ex, DPID);
    let v = |p: &Packet| lookup(&flows, 0, p).unwrap();
    // Unexempted subscriber: 25 blocked both ways, 587 and 80 open.
    assert_eq!(v(&pkt4([198, 51, 100, 8], [192, 0, 2, 1], 40000, 25, Fragment::None)), Verdict::Drop);
    assert_eq!(v(&pkt4([192, 0, 2, 1], [198, 51, 100, 8], 25, 40000, Fragment::None)), Verdict::Drop);
    assert_eq!(v(&pkt4([198, 51, 100, 8], [192, 0, 2, 1], 40000, 587, Fragment::None)), Verdict::Forward);
    assert_eq!(v(&pkt4([198, 51, 100, 8], [192, 0, 2, 1], 40000, 80, Fragment::None)), Verdict::Forward);
    // A fragmented SYN to 25 (ports hidden) is dropped.
    assert_eq!(v(&pkt4([198, 51, 100, 8], [192, 0, 2, 1], 40000, 25, Fragment::First)), Verdict::Drop);
    // Exempted subscriber: open, as client and as server.
    assert_eq!(v(&pkt4([198, 51, 100, 7], [192, 0, 2, 1], 40000, 25, Fragment::None)), Verdict::Forward);
    assert_eq!(v(&pkt4([192, 0, 2, 1], [198, 51, 100, 7], 25, 40000, Fragment::None)), Verdict::Forward);
    assert_eq!(v(&pkt4([192, 0, 2, 1], [198, 51, 100, 7], 40000, 25, Fragment::None)), Verdict::Forward);
    // IPv6 is blocked too.
    let p6 = Packet {
        vlan: Some(10),
        headers: Headers::Readable,
        src: "2001:db8::8".parse().unwrap(),
        dst: "2001:db8:1::1".parse().unwrap(),
        ip_proto: 6,
        src_port: 40000,
        dst_port: 25,
        fragment: Fragment::None,
    };
    assert_eq!(v(&p6), Verdict::Drop);
    // UDP fragments pass.
    let udp = Packet { ip_proto: 17, ..pkt4([198, 51, 100, 8], [192, 0, 2, 1], 53, 40000, Fragment::Later) };
    assert_eq!(v(&udp), Verdict::Forward);
    // A second VLAN tag hides the IP header from the switch: dropped,
    // exempted sender or not, port 80 or 25. One tag is read through.
    for tpid in [0x8100, 0x88a8] {
        for (src, dport) in [([198, 51, 100, 8], 25), ([198, 51, 100, 7], 25), ([198, 51, 100, 8], 80)] {
            let qinq = Packet {
                vlan: Some(10),
                headers: Headers::ExtraVlanTag { tpid },
                ..pkt4(src, [192, 0, 2, 1], 40000, dport, Fragment::None)
            };
            assert_eq!(v(&qinq), Verdict::Drop, "{qinq:?}");
        }
    }
    let tagged = Packet { vlan: Some(10), ..pkt4([198, 51, 100, 8], [192, 0, 2, 1], 40000, 80, Fragment::None) };
    assert_eq!(v(&tagged), Verdict::Forward);
    // An IPv6 header chain the switch cannot parse is dropped; one it can
    // parse is judged by its transport header.
    let broken = Packet { headers: Headers::BrokenIpv6Chain, dst_port: 80, ..p6 };
    assert_eq!(v(&broken), Verdict::Drop);
    assert_eq!(v(&Packet { headers: Headers::Readable, ..broken }), Verdict::Forward);
}
