//! `GET /v1/audit` (filters, paging, refusals) and `GET /v1/lookup`
//! (verdicts per switch, flows in place, refusals).

mod common;

use axum::http::StatusCode;
use common::harness;
use port25_controller::{SwitchState, SwitchStatus};
use port25_rules::Dpid;
use serde_json::{json, Value};
use time::macros::datetime;

fn seqs(reply: &Value) -> Vec<u64> {
    reply["entries"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn audit_lists_newest_first_with_filters_and_pages() {
    let h = harness();
    let a = h.grant(r#"{"subscriber":"203.0.113.0/24","note":"n"}"#).await.json;
    h.grant(r#"{"subscriber":"2001:db8::/48"}"#).await;
    let id = a["id"].as_u64().unwrap();
    assert_eq!(h.delete(&format!("/v1/exemptions/{id}")).await.status, StatusCode::NO_CONTENT);

    let all = h.get("/v1/audit").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.json);
    assert_eq!(seqs(&all.json), [3, 2, 1]);
    assert!(all.json.get("next_before").is_none(), "{}", all.json);
    let revoke = &all.json["entries"][0];
    assert_eq!(revoke["action"], "revoke");
    assert_eq!(revoke["actor"], "anonymous");
    assert_eq!(revoke["before"], a);
    assert_eq!(revoke["after"], Value::Null);
    assert!(revoke["request_id"].is_string());
    assert_eq!(all.json["entries"][2]["after"], a);

    assert_eq!(seqs(&h.get("/v1/audit?subscriber=203.0.113.9").await.json), [3, 1]);
    assert_eq!(seqs(&h.get("/v1/audit?subscriber=2001:db8::1").await.json), [2]);
    assert_eq!(seqs(&h.get("/v1/audit?action=grant").await.json), [2, 1]);
    assert_eq!(seqs(&h.get("/v1/audit?since=2000-01-01T00:00:00Z").await.json), [3, 2, 1]);
    assert_eq!(seqs(&h.get("/v1/audit?since=2999-01-01T00:00:00Z").await.json), Vec::<u64>::new());
    let page = h.get("/v1/audit?limit=2").await.json;
    assert_eq!(seqs(&page), [3, 2]);
    assert_eq!(page["next_before"], 2);
    assert_eq!(seqs(&h.get("/v1/audit?limit=2&before=2").await.json), [1]);
}

#[tokio::test]
async fn audit_refuses_bad_filters_naming_them() {
    let h = harness();
    for (q, field) in [
        ("since=yesterday", "since"),
        ("action=delete", "action"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("before=-1", "before"),
        ("subscriber=192.0.2.10/24", "subscriber"),
        ("subscribr=192.0.2.1", "subscribr"),
    ] {
        let r = h.get(&format!("/v1/audit?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.json);
        assert_eq!(r.json["field"], field, "{q}: {}", r.json);
    }
    assert_eq!(h.get("/v1/audit?limit=1000").await.status, StatusCode::OK);
}

fn switch(session: u64, dpid: u64, in_sync: bool, version: u64) -> SwitchStatus {
    SwitchStatus {
        session,
        dpid: Some(Dpid(dpid)),
        openflow_version: Some("1.3".into()),
        peer: "192.0.2.50:41234".parse().unwrap(),
        connected_since: datetime!(2026-01-02 03:04:05 UTC),
        state: if in_sync { SwitchState::InSync } else { SwitchState::Syncing },
        flow_count: 7,
        in_sync,
        policy_version: version,
        ipv6_enforced: true,
        fragments_enforced: true,
        bundles: None,
        blocked: Vec::new(),
        blocked_at: None,
        last_error: None,
        last_round: None,
        last_error_at: None,
        overridden_by: Vec::new(),
    }
}

#[tokio::test]
async fn lookup_gives_verdicts_per_switch_from_decide() {
    let h = harness();
    let everywhere = h.grant(r#"{"subscriber":"203.0.113.0/24"}"#).await.json;
    let on_two = h.grant(r#"{"subscriber":"198.51.100.7","switches":["2"]}"#).await.json;
    let v = h.version();
    h.fleet.put(switch(1, 1, true, v));
    h.fleet.put(switch(2, 2, true, v - 1)); // behind the current policy
    h.fleet.put(switch(3, 3, false, v));

    let r = h.get("/v1/lookup?ip=203.0.113.7").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["ip"], "203.0.113.7");
    assert_eq!(r.json["policy_version"], v);
    assert_eq!((&r.json["outbound"], &r.json["inbound"]), (&json!("exempt"), &json!("exempt")));
    assert_eq!(r.json["exemptions"], json!([everywhere]));
    let sw = r.json["switches"].as_array().unwrap();
    assert_eq!(sw.len(), 3);
    assert!(sw.iter().all(|s| s["outbound"] == "exempt" && s["inbound"] == "exempt"), "{}", r.json);
    let in_place: Vec<bool> = sw.iter().map(|s| s["flows_in_place"].as_bool().unwrap()).collect();
    assert_eq!(in_place, [true, false, false]);
    assert_eq!(sw[0]["exempted_by"], json!([everywhere["id"]]));

    // Scoped to switch 2: blocked by default and on 1 and 3, exempt on 2.
    let r = h.get("/v1/lookup?ip=198.51.100.7").await.json;
    assert_eq!((&r["outbound"], &r["inbound"]), (&json!("blocked"), &json!("blocked")));
    assert_eq!(r["exemptions"], json!([on_two]));
    let verdicts: Vec<(&str, &str)> = r["switches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["dpid"].as_str().unwrap(), s["outbound"].as_str().unwrap()))
        .collect();
    assert_eq!(
        verdicts,
        [("0000000000000001", "blocked"), ("0000000000000002", "exempt"), ("0000000000000003", "blocked")]
    );
    assert_eq!(r["switches"][1]["exempted_by"], json!([on_two["id"]]));
    assert_eq!(r["switches"][0]["exempted_by"], json!([]));

    // Not covered anywhere, IPv6 too.
    let r = h.get("/v1/lookup?ip=2001:db8::1").await.json;
    assert_eq!((&r["outbound"], &r["inbound"]), (&json!("blocked"), &json!("blocked")));
    assert_eq!(r["exemptions"], json!([]));
}

#[tokio::test]
async fn lookup_refuses_anything_but_one_address() {
    let h = harness();
    for q in ["ip=203.0.113.0/24", "ip=10.0.0.300", "ip=", "ip=host.example", ""] {
        let r = h.get(&format!("/v1/lookup?{q}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.json);
        assert_eq!(r.json["field"], "ip", "{q}: {}", r.json);
    }
    let r = h.get("/v1/lookup?ip=192.0.2.1&verbose=1").await;
    assert_eq!(r.json["field"], "verbose", "{}", r.json);
}
