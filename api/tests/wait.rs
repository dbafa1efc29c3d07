//! `?wait=applied`: the write answers once every switch being brought in
//! sync has confirmed its version, or with `complete: false` after the
//! timeout; the write itself is durable either way. (The same against a
//! real OVS bridge: `tests/wait_applied.rs`.)

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{harness, json_request, post_json};
use port25_controller::{Fleet, SwitchState, SwitchStatus};
use port25_rules::Dpid;
use serde_json::json;

fn switch(session: u64, dpid: u64, state: SwitchState, version: u64) -> SwitchStatus {
    SwitchStatus {
        session,
        dpid: Some(Dpid(dpid)),
        openflow_version: Some("1.3".into()),
        peer: "192.0.2.50:41234".parse().unwrap(),
        connected_since: time::OffsetDateTime::UNIX_EPOCH,
        state,
        flow_count: 7,
        in_sync: state == SwitchState::InSync,
        policy_version: version,
        ipv6_enforced: true,
        fragments_enforced: true,
        last_error: None,
        bundles: None,
        blocked: Vec::new(),
        blocked_at: None,
        last_round: None,
        last_error_at: None,
        overridden_by: Vec::new(),
    }
}

/// Act like a session: once the policy reaches a new version, confirm it
/// on `session` after `delay`.
fn confirm_later(
    fleet: Fleet,
    mut policy: tokio::sync::watch::Receiver<std::sync::Arc<port25_rules::Snapshot>>,
    session: u64,
    delay: Duration,
) {
    // Before spawning: the write may be published before the task runs.
    policy.mark_unchanged();
    tokio::spawn(async move {
        if policy.changed().await.is_err() {
            return;
        }
        let v = policy.borrow().version;
        tokio::time::sleep(delay).await;
        fleet.update(session, |s| {
            s.policy_version = v;
            s.in_sync = true;
            s.state = SwitchState::InSync;
        });
    });
}

#[tokio::test]
async fn waits_until_every_switch_confirmed_the_version() {
    let h = harness();
    let v0 = h.version();
    h.fleet.put(switch(1, 1, SwitchState::InSync, v0));
    h.fleet.put(switch(2, 2, SwitchState::InSync, v0));
    // Not waited for: refused and disconnected switches, and sessions
    // without a dpid yet.
    h.fleet.put(switch(3, 3, SwitchState::Refused, 0));
    h.fleet.put(switch(4, 4, SwitchState::Disconnected, 0));
    h.fleet.put(SwitchStatus { dpid: None, ..switch(5, 5, SwitchState::Handshaking, 0) });
    confirm_later(h.fleet.clone(), h.policy.clone(), 1, Duration::from_millis(50));
    confirm_later(h.fleet.clone(), h.policy.clone(), 2, Duration::from_millis(150));

    let start = Instant::now();
    let mut req = post_json(r#"{"subscriber":"203.0.113.7"}"#);
    *req.uri_mut() = "/v1/exemptions?wait=applied".parse().unwrap();
    let r = h.send(req).await;
    let took = start.elapsed();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["subscriber"], "203.0.113.7/32", "the usual body is still there");
    assert!(r.headers.get("location").is_some());
    let applied = &r.json["applied"];
    assert_eq!(applied["policy_version"], v0 + 1);
    assert_eq!(applied["complete"], true, "{}", r.json);
    assert_eq!(
        applied["switches"],
        json!([
            {"dpid": "0000000000000001", "applied": true, "state": "in_sync", "policy_version": v0 + 1},
            {"dpid": "0000000000000002", "applied": true, "state": "in_sync", "policy_version": v0 + 1},
        ])
    );
    assert!(took >= Duration::from_millis(150), "answered before the slower switch confirmed: {took:?}");
}

#[tokio::test]
async fn times_out_with_complete_false_and_the_write_stands() {
    let h = harness();
    h.fleet.put(switch(1, 1, SwitchState::InSync, h.version()));
    h.fleet.put(switch(2, 9, SwitchState::Degraded, 0));
    confirm_later(h.fleet.clone(), h.policy.clone(), 1, Duration::from_millis(10));
    let start = Instant::now();
    let r = h
        .send(json_request(
            Method::POST,
            "/v1/exemptions?wait=applied&wait_timeout_ms=300",
            r#"{"subscriber":"203.0.113.7"}"#,
        ))
        .await;
    let took = start.elapsed();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["applied"]["complete"], false);
    assert_eq!(r.json["applied"]["switches"][0]["applied"], true);
    assert_eq!(r.json["applied"]["switches"][1]["applied"], false);
    assert_eq!(r.json["applied"]["switches"][1]["state"], "degraded");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(h.stored().len(), 1, "the grant is stored whatever the switches do");
}

#[tokio::test]
async fn without_switches_the_wait_is_complete_at_once() {
    let h = harness();
    let r = h.send(json_request(Method::POST, "/v1/exemptions?wait=applied", r#"{"subscriber":"203.0.113.7"}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json["applied"], json!({"policy_version": h.version(), "complete": true, "switches": []}));
    // Without wait, no "applied" at all.
    let r = h.grant(r#"{"subscriber":"203.0.113.8"}"#).await;
    assert!(r.json.get("applied").is_none(), "{}", r.json);
}

#[tokio::test]
async fn delete_with_wait_answers_200_with_the_record() {
    let h = harness();
    let id = h.grant(r#"{"subscriber":"203.0.113.7"}"#).await.json["id"].as_u64().unwrap();
    h.fleet.put(switch(1, 1, SwitchState::InSync, h.version()));
    confirm_later(h.fleet.clone(), h.policy.clone(), 1, Duration::from_millis(20));
    let r = h.send(Request::delete(format!("/v1/exemptions/{id}?wait=applied")).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["id"], id);
    assert_eq!(r.json["applied"]["complete"], true);
    assert_eq!(r.json["applied"]["policy_version"], h.version());
    assert!(h.stored().is_empty());
}

#[tokio::test]
async fn sync_and_bulk_wait_too() {
    let h = harness();
    let r = h
        .send(json_request(
            Method::PUT,
            "/v1/exemptions?wait=applied",
            r#"{"exemptions":[{"subscriber":"203.0.113.7"}]}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["applied"]["complete"], true);
    assert_eq!(r.json["applied"]["policy_version"], r.json["policy_version"]);
    let r = h
        .send(json_request(
            Method::POST,
            "/v1/exemptions/bulk?wait=applied",
            r#"{"exemptions":[{"subscriber":"203.0.113.8"}]}"#,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["applied"]["policy_version"], h.version());
}

#[tokio::test]
async fn bad_wait_parameters_are_refused_before_anything_is_written() {
    let h = harness();
    let grant = r#"{"subscriber":"203.0.113.7"}"#;
    for (uri, field) in [
        ("/v1/exemptions?wait=yes", "wait"),
        ("/v1/exemptions?wait=applied&wait_timeout_ms=60001", "wait_timeout_ms"),
        ("/v1/exemptions?wait=applied&wait_timeout_ms=-1", "wait_timeout_ms"),
        ("/v1/exemptions?wait=applied&wait_timeout_ms=1.5", "wait_timeout_ms"),
        ("/v1/exemptions?wait_timeout_ms=100", "wait_timeout_ms"),
        ("/v1/exemptions?wiat=applied", "wiat"),
    ] {
        h.refused(json_request(Method::POST, uri, grant), StatusCode::BAD_REQUEST, Some(field)).await;
    }
    let id = h.grant(grant).await.json["id"].as_u64().unwrap();
    h.refused(
        Request::delete(format!("/v1/exemptions/{id}?wait=later")).body(Body::empty()).unwrap(),
        StatusCode::BAD_REQUEST,
        Some("wait"),
    )
    .await;
    h.refused(
        json_request(Method::PUT, "/v1/exemptions?dry_run=true&wait=applied", r#"{"exemptions":[]}"#),
        StatusCode::BAD_REQUEST,
        Some("wait"),
    )
    .await;
}
