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
    encode_flow_mod, encode_flow_stats_request, encode_hello, FlowMod, FlowModCommand, MatchSpec, OFP10, OFP13,
    OFPET_HELLO_FAILED, OFPHFC_INCOMPATIBLE,
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
    assert_has(
        &t,
        &[
            "OFPT_FLOW_MOD (OF1.3)",
            "ADD",
            "priority=30000",
            "tcp,",
            "tp_dst=25",
            "cookie:0x2525010000000001",
            "actions=drop",
        ],
    );
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

// ---------------------------------------------------------------------------
// A real switch: our flow mods go into an OVS bridge, and its flow stats
// reply comes back through our decoder.

mod live {
    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::process::Command;
    use std::time::{Duration, Instant};

    use bytes::BytesMut;
    use port25_controller::ofp::*;
    use port25_rules::{Family, FlowAction, FragMatch, Match, Prefix};
    use tokio_util::codec::Decoder;

    fn run(cmd: &str, args: &[&str]) -> String {
        let out = Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd} ({e}): install openvswitch-switch (scripts/test.sh does)"));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
        text
    }

    fn ensure_ovs_running() {
        let ok = Command::new("ovs-vsctl").args(["--timeout=5", "show"]).output().is_ok_and(|o| o.status.success());
        if !ok {
            run("/usr/share/openvswitch/scripts/ovs-ctl", &["start"]);
        }
    }

    /// Deletes the bridge when the test ends, pass or fail.
    struct Bridge(String);

    impl Drop for Bridge {
        fn drop(&mut self) {
            let _ = Command::new("ovs-vsctl").args(["--if-exists", "del-br", &self.0]).status();
        }
    }

    struct Conn {
        stream: TcpStream,
        codec: OfpCodec,
        buf: BytesMut,
        xid: u32,
    }

    impl Conn {
        fn send(&mut self, f: impl FnOnce(&mut BytesMut, u32)) -> u32 {
            self.xid += 1;
            let mut out = BytesMut::new();
            f(&mut out, self.xid);
            self.stream.write_all(&out).unwrap();
            self.xid
        }

        /// The next message other than echo requests (answered) and port status.
        fn recv(&mut self) -> (u32, Message) {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(frame) = self.codec.decode(&mut self.buf).unwrap() {
                    let msg = decode_message(&frame).unwrap_or_else(|e| panic!("{e} in {frame:?}"));
                    match msg {
                        Message::EchoRequest(data) => {
                            let mut out = BytesMut::new();
                            encode_echo_reply(&mut out, OFP13, frame.xid, &data);
                            self.stream.write_all(&out).unwrap();
                        }
                        Message::PortStatus { .. } => {}
                        Message::Error(e) => panic!("switch error {e:?}"),
                        m => return (frame.xid, m),
                    }
                    continue;
                }
                assert!(Instant::now() < deadline, "no message from OVS within 10 s");
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).unwrap();
                assert!(n > 0, "OVS closed the connection");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        fn flows(&mut self) -> Vec<FlowStats> {
            let xid = self.send(|b, x| encode_flow_stats_request(b, x, 0xff, 0, 0));
            let mut flows = Vec::new();
            loop {
                let (rxid, msg) = self.recv();
                let Message::MultipartReply(r) = msg else { continue };
                assert_eq!(rxid, xid);
                let MultipartBody::Flow(f) = r.body else { panic!("{:?}", r.body) };
                flows.extend(f);
                if !r.more {
                    return flows;
                }
            }
        }

        fn barrier(&mut self) {
            let xid = self.send(encode_barrier_request);
            while self.recv() != (xid, Message::BarrierReply) {}
        }
    }

    fn connect(bridge: &str) -> Conn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        run("ovs-vsctl", &["set-controller", bridge, &format!("tcp:127.0.0.1:{port}")]);
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("OVS did not connect: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = Conn { stream, codec: OfpCodec::new(), buf: BytesMut::new(), xid: 0 };
        conn.send(|b, x| encode_hello(b, x, &[OFP13]));
        let (_, hello) = conn.recv();
        let Message::Hello(h) = hello else { panic!("expected hello, got {hello:?}") };
        assert_ne!(h.versions.unwrap_or(0) & (1 << OFP13), 0, "OVS offers 1.3: {h:?}");
        conn
    }

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    /// Cookies of the flows this test installs with its own flow mods.
    const OURS: u64 = 0x2525_0100_0000_0100;

    #[test]
    fn ovs_holds_our_flows_and_its_reply_decodes_to_them() {
        ensure_ovs_running();
        let name = format!("p25c{}", std::process::id());
        run(
            "ovs-vsctl",
            &[
                "add-br",
                &name,
                "--",
                "set",
                "bridge",
                &name,
                "datapath_type=netdev",
                "protocols=OpenFlow13",
                "fail_mode=secure",
                "other-config:disable-in-band=true",
            ],
        );
        let bridge = Bridge(name);
        let ofctl_flows = [
            "cookie=0x2525010000000009,priority=30010,tcp,tp_dst=25,actions=drop",
            "priority=30011,tcp6,ipv6_src=2001:db8:1::/48,actions=NORMAL",
            "priority=30012,tcp,nw_frag=yes,actions=drop",
            "priority=30013,tcp,nw_src=203.0.113.7,actions=goto_table:3",
            "priority=5,in_port=1,actions=drop",
            "priority=6,tcp,tp_dst=25,actions=output:1",
            "priority=7,udp,tp_dst=25,actions=drop",
        ];
        let v4 = Match::tcp(Family::V4);
        let ours: Vec<(u16, Match, FlowAction)> = vec![
            (30000, v4.clone().with_tcp_dst(25), FlowAction::Drop),
            (30000, Match::tcp(Family::V6).with_tcp_dst(25), FlowAction::Drop),
            (30001, v4.clone().with_ip_frag(FragMatch::Any), FlowAction::Drop),
            (40000, Match::tcp_from(p("203.0.113.0/24")), FlowAction::Normal),
            (40000, Match::tcp_from(p("2001:db8::/64")), FlowAction::Normal),
            (40001, Match::tcp_from(p("198.51.100.7/32")), FlowAction::GotoTable(3)),
            (40002, Match::tcp(Family::V6).with_ip_frag(FragMatch::First).with_tcp_src(25), FlowAction::Drop),
        ];
        // OVS flushes a bridge's flows when its first controller is set,
        // so the ovs-ofctl flows go in only after we are connected.
        let mut conn = connect(&bridge.0);
        for f in ofctl_flows {
            run("ovs-ofctl", &["-O", "OpenFlow13", "add-flow", &bridge.0, f]);
        }

        for (i, (prio, m, action)) in ours.iter().enumerate() {
            let fm = FlowMod {
                command: FlowModCommand::Add,
                table_id: 0,
                priority: *prio,
                cookie: OURS + i as u64,
                cookie_mask: 0,
                matcher: MatchSpec::Typed(m),
                action: *action,
                flags: 0,
            };
            conn.send(|b, x| encode_flow_mod(b, x, &fm));
        }
        conn.barrier();

        let ours_cookies = OURS..OURS + ours.len() as u64;
        let flows = conn.flows();
        let by_cookie: BTreeMap<u64, &FlowStats> = flows.iter().map(|f| (f.cookie, f)).collect();
        for (i, (prio, m, action)) in ours.iter().enumerate() {
            let f = by_cookie.get(&(OURS + i as u64)).unwrap_or_else(|| panic!("flow {m} missing"));
            assert_eq!((f.priority, f.matcher.as_ref(), f.action), (*prio, Some(m), Some(*action)), "{m}");
        }
        let by_prio: BTreeMap<u16, &FlowStats> =
            flows.iter().filter(|f| !ours_cookies.contains(&f.cookie)).map(|f| (f.priority, f)).collect();
        let got = |prio: u16| {
            let f = by_prio.get(&prio).unwrap_or_else(|| panic!("no flow at priority {prio} in {flows:#?}"));
            (f.matcher.clone(), f.action)
        };
        assert_eq!(got(30010), (Some(v4.clone().with_tcp_dst(25)), Some(FlowAction::Drop)));
        assert_eq!(got(30011), (Some(Match::tcp_from(p("2001:db8:1::/48"))), Some(FlowAction::Normal)));
        assert_eq!(got(30012), (Some(v4.clone().with_ip_frag(FragMatch::Any)), Some(FlowAction::Drop)));
        assert_eq!(got(30013), (Some(Match::tcp_from(p("203.0.113.7/32"))), Some(FlowAction::GotoTable(3))));
        assert_eq!(got(5), (None, Some(FlowAction::Drop)), "in_port is not modelled");
        assert_eq!(got(6), (Some(v4.with_tcp_dst(25)), None), "output:1 is not a FlowAction");
        assert_eq!(got(7).0, None, "udp_dst is not modelled");

        // A foreign-shaped flow goes away when deleted strictly with its own match bytes.
        let foreign = by_prio[&5];
        let fm = FlowMod {
            command: FlowModCommand::DeleteStrict,
            table_id: foreign.table_id,
            priority: foreign.priority,
            cookie: foreign.cookie,
            cookie_mask: u64::MAX,
            matcher: MatchSpec::Raw(&foreign.raw_match),
            action: FlowAction::Drop,
            flags: 0,
        };
        conn.send(|b, x| encode_flow_mod(b, x, &fm));
        conn.barrier();
        let after = conn.flows();
        assert_eq!(after.len(), flows.len() - 1);
        assert!(after.iter().all(|f| f.priority != 5));

        let text = run("ovs-ofctl", &["-O", "OpenFlow13", "dump-flows", &bridge.0]);
        println!("{text}");
        for piece in [
            "cookie=0x2525010000000100,",
            "priority=30000,tcp,tp_dst=25 actions=drop",
            "priority=30000,tcp6,tp_dst=25 actions=drop",
            "priority=30001,tcp,nw_frag=yes actions=drop",
            "priority=40000,tcp,nw_src=203.0.113.0/24 actions=NORMAL",
            "priority=40000,tcp6,ipv6_src=2001:db8::/64 actions=NORMAL",
            "priority=40001,tcp,nw_src=198.51.100.7 actions=goto_table:3",
            "priority=40002,tcp6,nw_frag=first,tp_src=25 actions=drop",
        ] {
            assert!(text.contains(piece), "missing {piece:?} in:\n{text}");
        }
    }
}
