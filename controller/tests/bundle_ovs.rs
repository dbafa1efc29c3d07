//! OVS's own decoder (`ovs-ofctl ofp-print`) reads our bundle messages as
//! we meant them.

use std::process::Command;

use bytes::BytesMut;
use port25_controller::ofp::bundle::{
    encode_bundle_add, encode_bundle_ctrl, BundleCtrl, BUNDLE_ATOMIC, BUNDLE_ORDERED,
};
use port25_controller::ofp::{encode_flow_mod, FlowMod, FlowModCommand, MatchSpec};
use port25_rules::{Family, FlowAction, Match};

fn ofp_print(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("ovs-ofctl")
        .args(["ofp-print", &hex])
        .output()
        .expect("ovs-ofctl not found: install openvswitch-switch (scripts/setup-host.sh does)");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn bundle_control_and_add_print_as_intended() {
    let mut b = BytesMut::new();
    encode_bundle_ctrl(&mut b, 5, 77, BundleCtrl::OpenRequest, BUNDLE_ATOMIC | BUNDLE_ORDERED);
    let text = ofp_print(&b);
    assert!(text.contains("OFPT_BUNDLE_CONTROL") || text.contains("BUNDLE_CONTROL"), "{text}");
    assert!(text.contains("bundle_id=0x4d"), "{text}");
    assert!(text.contains("type=OPEN_REQUEST"), "{text}");
    assert!(text.contains("atomic") && text.contains("ordered"), "{text}");

    let mut fm = BytesMut::new();
    let m = Match::tcp(Family::V6).with_tcp_dst(25);
    encode_flow_mod(
        &mut fm,
        9,
        &FlowMod {
            command: FlowModCommand::Add,
            table_id: 0,
            priority: 30000,
            cookie: 0x2525010000000004,
            cookie_mask: 0,
            matcher: MatchSpec::Typed(&m),
            action: FlowAction::Drop,
            flags: 0,
        },
    );
    let mut add = BytesMut::new();
    encode_bundle_add(&mut add, 77, BUNDLE_ATOMIC | BUNDLE_ORDERED, &fm).unwrap();
    let text = ofp_print(&add);
    assert!(text.contains("BUNDLE_ADD_MESSAGE"), "{text}");
    assert!(text.contains("bundle_id=0x4d"), "{text}");
    assert!(text.contains("priority=30000,tcp6,tp_dst=25"), "{text}");
    assert!(!text.contains("error") && !text.contains("bad"), "{text}");

    let mut c = BytesMut::new();
    encode_bundle_ctrl(&mut c, 10, 77, BundleCtrl::CommitRequest, BUNDLE_ATOMIC | BUNDLE_ORDERED);
    let text = ofp_print(&c);
    assert!(text.contains("type=COMMIT_REQUEST"), "{text}");
}
