//! `?wait=applied` against real OVS bridges: when the answer arrives, the
//! exemption's flows are already in every bridge (checked with
//! `ovs-ofctl dump-flows` right after, without any waiting), and after a
//! revoke with wait they are already gone.

mod support;

use support::{Bridge, Daemon};

fn allows(br: &Bridge, addr: &str) -> usize {
    br.flows().iter().filter(|f| f.contains(addr)).count()
}

#[test]
fn grant_and_revoke_with_wait_answer_after_the_bridges_have_the_flows() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let bridges = [Bridge::new("OpenFlow13"), Bridge::new("OpenFlow13")];
    for br in &bridges {
        br.attach(d.bound.openflow);
    }
    for br in &bridges {
        d.wait_in_sync(&br.dpid_hex());
    }

    let (st, v) = d.http(
        "POST",
        "/v1/exemptions?wait=applied&wait_timeout_ms=10000",
        Some(r#"{"subscriber":"198.51.100.77/32","note":"wait test"}"#),
    );
    assert_eq!(st, 201, "{v}");
    // Immediately: no polling between the answer and the check.
    for br in &bridges {
        assert_eq!(allows(br, "198.51.100.77"), 2, "bridge {} lacks the allow flows: {:?}", br.name, br.flows());
    }
    let applied = &v["applied"];
    assert_eq!(applied["complete"], true, "{v}");
    let version = applied["policy_version"].as_u64().unwrap();
    let listed = applied["switches"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{v}");
    for br in &bridges {
        let s = listed.iter().find(|s| s["dpid"] == br.dpid_hex().as_str()).expect("each bridge listed");
        assert_eq!(s["applied"], true);
        assert_eq!(s["state"], "in_sync");
        assert!(s["policy_version"].as_u64().unwrap() >= version);
    }

    let id = v["id"].as_u64().unwrap();
    let (st, v) = d.http("DELETE", &format!("/v1/exemptions/{id}?wait=applied"), None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["applied"]["complete"], true, "{v}");
    for br in &bridges {
        assert_eq!(allows(br, "198.51.100.77"), 0, "bridge {} still allows: {:?}", br.name, br.flows());
    }

    // Bulk with wait: all the records' flows are there on answer.
    let (st, v) = d.http(
        "POST",
        "/v1/exemptions/bulk?wait=applied",
        Some(r#"{"exemptions":[{"subscriber":"198.51.100.80"},{"subscriber":"198.51.100.81"},{"subscriber":"bad"}]}"#),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["applied"]["complete"], true, "{v}");
    assert_eq!(v["rejected"][0]["index"], 2);
    for br in &bridges {
        assert_eq!(allows(br, "198.51.100.80") + allows(br, "198.51.100.81"), 4, "{:?}", br.flows());
    }
    d.stop();
}

#[test]
fn a_disconnected_switch_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    d.wait_in_sync(&br.dpid_hex());
    // Cut it off: once the session is gone (disconnected or removed), the
    // wait does not list it.
    br.detach();
    support::wait_for(std::time::Duration::from_secs(15), || {
        let s = d.switch(&br.dpid_hex());
        (s.is_none() || s.as_ref().is_some_and(|s| s["state"] == "disconnected")).then_some(())
    })
    .expect("session ended");
    let (st, v) =
        d.http("POST", "/v1/exemptions?wait=applied&wait_timeout_ms=2000", Some(r#"{"subscriber":"198.51.100.90"}"#));
    assert_eq!(st, 201, "{v}");
    assert!(
        v["applied"]["switches"].as_array().unwrap().iter().all(|s| s["state"] != "disconnected"),
        "a disconnected switch is not waited for: {v}"
    );
    d.stop();
}
