//! The simulator's flow table against Open vSwitch: the same flow-mod
//! sequence (adds, overwrites, strict deletes with the right and the wrong
//! cookie, non-strict deletes, bundles committed and discarded) goes to a
//! real OVS bridge and to a simulated switch, each acting as our
//! controller over a loopback socket; the flow sets read back must be
//! equal.
//!
//! Needs a running Open vSwitch (`scripts/setup-host.sh` starts one). The
//! bridge has a unique name and is deleted at the end, pass or fail.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use port25_controller::ofp::bundle::{self, BundleCtrl};
use port25_controller::ofp::*;
use port25_rules::{Family, FlowAction, FragMatch, Match, Prefix};
use port25_sim::{Fabric, Switch, SwitchConfig};
use tokio_util::codec::Decoder;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd} ({e}): install openvswitch-switch (scripts/setup-host.sh does)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}

/// Deletes the bridge when the test ends.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ovs-vsctl").args(["--timeout=10", "--if-exists", "del-br", &self.0]).status();
    }
}

/// The controller's end of one connection (blocking).
struct Conn {
    stream: TcpStream,
    codec: OfpCodec,
    buf: BytesMut,
    xid: u32,
}

/// One flow as both switches must agree on it.
type Row = (u8, u16, u64, Option<Match>, Option<FlowAction>);

impl Conn {
    fn accept(listener: &TcpListener) -> Conn {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("switch did not connect: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut c = Conn { stream, codec: OfpCodec::new(), buf: BytesMut::new(), xid: 100 };
        c.send(|b, x| encode_hello(b, x, &[OFP13]));
        match c.recv() {
            (_, Message::Hello(_)) => {}
            other => panic!("expected hello, got {other:?}"),
        }
        c
    }

    fn send(&mut self, f: impl FnOnce(&mut BytesMut, u32)) -> u32 {
        self.xid += 1;
        let mut out = BytesMut::new();
        f(&mut out, self.xid);
        self.stream.write_all(&out).unwrap();
        self.xid
    }

    fn recv(&mut self) -> (u32, Message) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf).unwrap() {
                match decode_message(&frame).unwrap() {
                    Message::EchoRequest(d) => {
                        let mut out = BytesMut::new();
                        encode_echo_reply(&mut out, OFP13, frame.xid, &d);
                        self.stream.write_all(&out).unwrap();
                    }
                    Message::PortStatus { .. } => {}
                    Message::Error(e) => panic!("switch error {e:?}"),
                    m => return (frame.xid, m),
                }
                continue;
            }
            assert!(Instant::now() < deadline, "no message within 10 s");
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "switch closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn barrier(&mut self) {
        let xid = self.send(encode_barrier_request);
        loop {
            match self.recv() {
                (x, Message::BarrierReply) if x == xid => return,
                (_, Message::BarrierReply) => {}
                (_, Message::Experimenter { .. }) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Flow stats for (table, cookie/mask); returns rows and the number of replies.
    fn flows(&mut self, table: u8, cookie: u64, mask: u64) -> (Vec<Row>, usize) {
        let xid = self.send(|b, x| encode_flow_stats_request(b, x, table, cookie, mask));
        let mut rows = Vec::new();
        let mut parts = 0;
        loop {
            let (rx, m) = self.recv();
            let Message::MultipartReply(r) = m else { continue };
            assert_eq!(rx, xid);
            parts += 1;
            let MultipartBody::Flow(f) = r.body else { panic!("{:?}", r.body) };
            rows.extend(f.into_iter().map(|f| (f.table_id, f.priority, f.cookie, f.matcher, f.action)));
            if !r.more {
                break;
            }
        }
        rows.sort();
        (rows, parts)
    }

    #[allow(clippy::too_many_arguments)] // mirrors the flow-mod fields one to one
    fn flow_mod(
        &mut self,
        command: FlowModCommand,
        table: u8,
        prio: u16,
        cookie: u64,
        mask: u64,
        m: &Match,
        a: FlowAction,
    ) {
        let fm = FlowMod {
            command,
            table_id: table,
            priority: prio,
            cookie,
            cookie_mask: mask,
            matcher: MatchSpec::Typed(m),
            action: a,
            flags: 0,
        };
        self.send(|b, x| encode_flow_mod(b, x, &fm));
    }

    /// Open a bundle, add `adds` (prio, match, cookie), strictly delete `dels`, then commit or discard.
    fn bundle(&mut self, id: u32, adds: &[(u16, Match, u64)], dels: &[(u16, Match, u64)], commit: bool) {
        let flags = bundle::BUNDLE_ATOMIC | bundle::BUNDLE_ORDERED;
        self.send(|b, x| bundle::encode_bundle_ctrl(b, x, id, BundleCtrl::OpenRequest, flags));
        let mut inner = BytesMut::new();
        let ops = adds
            .iter()
            .map(|a| (FlowModCommand::Add, a, 0u64))
            .chain(dels.iter().map(|d| (FlowModCommand::DeleteStrict, d, u64::MAX)));
        for (command, (prio, m, cookie), mask) in ops {
            let fm = FlowMod {
                command,
                table_id: 0,
                priority: *prio,
                cookie: *cookie,
                cookie_mask: mask,
                matcher: MatchSpec::Typed(m),
                action: FlowAction::Normal,
                flags: 0,
            };
            self.send(|b, x| {
                inner.clear();
                encode_flow_mod(&mut inner, x, &fm);
                bundle::encode_bundle_add(b, id, flags, &inner).unwrap();
            });
        }
        let ctrl = if commit { BundleCtrl::CommitRequest } else { BundleCtrl::DiscardRequest };
        let want = if commit { BundleCtrl::CommitReply } else { BundleCtrl::DiscardReply };
        let xid = self.send(|b, x| bundle::encode_bundle_ctrl(b, x, id, ctrl, flags));
        loop {
            let (rx, m) = self.recv();
            if let Message::Experimenter { experimenter, exp_type, data } = m {
                let r = bundle::decode_bundle_ctrl(experimenter, exp_type, &data).expect("bundle reply");
                if rx == xid {
                    assert_eq!((r.bundle_id, r.ctrl), (id, want));
                    return;
                }
            }
        }
    }
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

const DROP: u64 = 0x2525_0100_0000_0000;
const EXEMPT: u64 = 0x2525_0200_0000_0000;
const FOREIGN: u64 = 0x0000_0000_0000_0abc;

/// The sequence under test; returns what to compare: the whole table,
/// our cookie space only, and one exact cookie.
fn script(c: &mut Conn) -> Vec<(Vec<Row>, usize)> {
    use FlowAction::{Drop, Normal};
    use FlowModCommand::{Add, Delete, DeleteStrict};
    let v4 = Match::tcp(Family::V4);
    let v6 = Match::tcp(Family::V6);
    // Base drops, both families, and a catch-all.
    c.flow_mod(Add, 0, 30000, DROP | 1, 0, &v4.clone().with_tcp_dst(25), Drop);
    c.flow_mod(Add, 0, 30000, DROP | 2, 0, &v4.clone().with_tcp_src(25), Drop);
    c.flow_mod(Add, 0, 30000, DROP | 3, 0, &v4.clone().with_ip_frag(FragMatch::Any), Drop);
    c.flow_mod(Add, 0, 30000, DROP | 4, 0, &v6.clone().with_tcp_dst(25), Drop);
    c.flow_mod(Add, 0, 0, DROP | 7, 0, &Match::any(), Normal);
    // A foreign flow, same match as ours at another priority, and in another table.
    c.flow_mod(Add, 0, 29999, FOREIGN, 0, &v4.clone().with_tcp_dst(25), Normal);
    c.flow_mod(Add, 3, 30000, FOREIGN, 0, &v4.clone().with_tcp_dst(25), Drop);
    // Exemptions, v4 and v6, /32 and wider.
    for i in 1..=40u64 {
        let pre = if i % 4 == 0 { p(&format!("2001:db8:{i:x}::/48")) } else { p(&format!("10.{i}.0.0/16")) };
        c.flow_mod(Add, 0, 40000, EXEMPT | i, 0, &Match::tcp_from(pre), Normal);
        c.flow_mod(Add, 0, 40000, EXEMPT | i, 0, &Match::tcp_to(pre), Normal);
    }
    // Overwrite: same match and priority, new cookie and action.
    c.flow_mod(Add, 0, 40000, EXEMPT | 1001, 0, &Match::tcp_from(p("10.1.0.0/16")), Drop);
    c.flow_mod(Add, 0, 30000, DROP | 11, 0, &v4.clone().with_tcp_src(25), Normal);
    // Strict deletes: wrong cookie (kept), wrong priority (kept), right cookie (gone), mask 0 (gone).
    c.flow_mod(DeleteStrict, 0, 40000, EXEMPT | 999, u64::MAX, &Match::tcp_from(p("10.2.0.0/16")), Drop);
    c.flow_mod(DeleteStrict, 0, 40001, EXEMPT | 2, u64::MAX, &Match::tcp_from(p("10.2.0.0/16")), Drop);
    c.flow_mod(DeleteStrict, 0, 40000, EXEMPT | 3, u64::MAX, &Match::tcp_from(p("10.3.0.0/16")), Drop);
    c.flow_mod(DeleteStrict, 0, 40000, 0, 0, &Match::tcp_to(p("10.3.0.0/16")), Drop);
    // Strict delete of the overwritten flow by its old cookie: kept.
    c.flow_mod(DeleteStrict, 0, 40000, EXEMPT | 1, u64::MAX, &Match::tcp_from(p("10.1.0.0/16")), Drop);
    // Strict delete in all tables: our drop in table 0 and the foreign one in table 3, cookie ignored.
    c.flow_mod(DeleteStrict, 0xff, 30000, 0, 0, &v4.clone().with_tcp_dst(25), Drop);
    // Non-strict: every flow a wider match covers, within a cookie mask.
    c.flow_mod(Delete, 0, 0, EXEMPT | 5, u64::MAX, &Match::tcp(Family::V4), Drop);
    c.flow_mod(Delete, 0, 0, 0, 0, &Match::tcp_to(p("10.6.0.0/15")), Drop);
    c.flow_mod(Delete, 0xff, 0, EXEMPT | 0x10, 0xffff_ffff_ffff_fff0, &Match::tcp(Family::V6), Drop);
    c.barrier();
    let mut out = vec![c.flows(0xff, 0, 0), c.flows(0, DROP, 0xffff_ff00_0000_0000), c.flows(0, EXEMPT | 2, u64::MAX)];
    // Bundles: one committed (adds and a strict delete), one discarded.
    let adds: Vec<(u16, Match, u64)> = (0..300u64)
        .map(|i| {
            (40000, Match::tcp_from(Prefix::host([192, 0, 2, 0].into())).with_tcp_dst(i as u16), EXEMPT | (5000 + i))
        })
        .collect();
    c.bundle(7, &adds, &[(40000, Match::tcp_from(p("10.2.0.0/16")), EXEMPT | 2)], true);
    c.bundle(8, &[(40000, Match::tcp_from(p("10.99.0.0/16")), EXEMPT | 99)], &[(0, Match::any(), DROP | 7)], false);
    c.barrier();
    out.push(c.flows(0xff, 0, 0));
    out
}

#[test]
fn simulator_table_equals_ovs_on_the_same_flow_mods() {
    if Command::new("ovs-vsctl").args(["--timeout=5", "show"]).output().map_or(true, |o| !o.status.success()) {
        panic!("Open vSwitch is not running; run `bash scripts/setup-host.sh`");
    }
    // OVS.
    let name = format!("p25sim{}", std::process::id() % 100_000);
    run(
        "ovs-vsctl",
        &[
            "--timeout=10",
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    run("ovs-vsctl", &["--timeout=10", "set-controller", &bridge.0, &format!("tcp:127.0.0.1:{port}")]);
    let mut ovs = Conn::accept(&listener);
    let from_ovs = script(&mut ovs);

    // The simulator, with small multipart replies so the read-back spans several.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut cfg = SwitchConfig::new(0x42);
    cfg.multipart_max = 1024;
    let sw = Switch::new(cfg, Fabric::new());
    let sw2 = sw.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(sw2.run(addr, async move {
            let _ = stop_rx.await;
        }))
    });
    let mut sim = Conn::accept(&listener);
    let from_sim = script(&mut sim);
    let _ = stop_tx.send(());
    t.join().unwrap().unwrap();

    let names = ["whole table", "our drops (cookie mask)", "one exact cookie", "after bundles"];
    for (i, ((o, _), (s, _))) in from_ovs.iter().zip(&from_sim).enumerate() {
        assert!(!o.is_empty() || i == 2, "{}: OVS returned nothing; the script is wrong", names[i]);
        assert_eq!(s, o, "{}: simulator differs from OVS", names[i]);
    }
    assert!(from_sim[3].1 > 3, "the simulator split its reply ({} parts)", from_sim[3].1);
    let c = sw.counters();
    assert_eq!(c.bundle_ctrl[0], 2, "two opens");
    assert_eq!(c.bundle_ctrl[4], 1, "one commit");
    assert_eq!(c.bundle_ctrl[6], 1, "one discard");
    assert_eq!(c.errors_sent, 0);
    assert_eq!(sw.flow_count(), from_ovs[3].0.len());
}
