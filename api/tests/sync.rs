//! `PUT /v1/exemptions`: a provisioning system's full list, its dry run,
//! one transaction and one policy version per sync, and its refusals.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{harness, harness_with, json_request, Harness};
use port25_rules::{AuditAction, AuditQuery, ExemptionStore, SledStore};
use serde_json::{json, Value};

async fn sync(h: &Harness, uri: &str, body: &Value) -> common::Reply {
    h.send(json_request(Method::PUT, uri, &body.to_string())).await
}

fn items(v: Value) -> Value {
    json!({ "exemptions": v })
}

fn subscribers(list: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        list.as_array().unwrap().iter().map(|e| e["subscriber"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn dry_run_shows_the_difference_and_writes_nothing() {
    let h = harness();
    h.grant(r#"{"subscriber":"198.51.100.7"}"#).await;
    h.grant(r#"{"subscriber":"192.0.2.0/24","note":"relay"}"#).await;
    let body = items(json!([
        {"subscriber": "192.0.2.0/24", "note": "relay"},
        {"subscriber": "203.0.113.7", "external_id": "crm-1", "ttl_seconds": 3600}
    ]));
    let before = h.before();
    let trail = h.store.audit(&AuditQuery::default()).unwrap().len();
    let r = sync(&h, "/v1/exemptions?dry_run=true", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["dry_run"], true);
    assert_eq!(subscribers(&r.json["create"]), ["203.0.113.7/32"]);
    assert_eq!(r.json["create"][0]["external_id"], "crm-1");
    assert!(r.json["create"][0]["expires_at"].is_string());
    assert_eq!(subscribers(&r.json["delete"]), ["198.51.100.7/32"]);
    assert_eq!(subscribers(&r.json["keep"]), ["192.0.2.0/24"]);
    assert_eq!(r.json["counts"], json!({"create": 1, "update": 0, "delete": 1, "keep": 1}));
    assert_eq!(r.json["policy_version"], before.1);
    assert_eq!(h.before(), before, "a dry run wrote");
    assert_eq!(h.store.audit(&AuditQuery::default()).unwrap().len(), trail);
}

#[tokio::test]
async fn apply_is_one_version_and_audits_each_changed_record() {
    let h = harness();
    let gone = h.grant(r#"{"subscriber":"198.51.100.7"}"#).await.json;
    let kept = h.grant(r#"{"subscriber":"192.0.2.0/24"}"#).await.json;
    let v0 = h.version();
    let mut rx = h.policy.clone();
    rx.mark_unchanged();
    let body = items(json!([
        {"subscriber": "192.0.2.0/24"},
        {"subscriber": "203.0.113.7", "external_id": "crm-1"},
        {"subscriber": "2001:db8::/48", "switches": ["1"], "note": "n"}
    ]));
    let r = sync(&h, "/v1/exemptions", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["dry_run"], false);
    assert_eq!(r.json["counts"], json!({"create": 2, "update": 0, "delete": 1, "keep": 1}));
    assert_eq!(h.version(), v0 + 1, "one policy version for the whole sync");
    assert_eq!(r.json["policy_version"], v0 + 1);
    assert!(r.json["create"].as_array().unwrap().iter().all(|e| e["id"].is_u64()), "{}", r.json);
    assert_eq!(r.json["delete"][0], gone);
    assert_eq!(r.json["keep"][0], kept);
    assert_eq!(subscribers(&json!(h.stored())), ["192.0.2.0/24", "2001:db8::/48", "203.0.113.7/32"]);
    // The published snapshot is the store.
    let snap = rx.borrow_and_update().clone();
    assert_eq!(snap.exemptions.values().cloned().collect::<Vec<_>>(), h.stored());

    let trail = h.store.audit(&AuditQuery { action: Some(AuditAction::Sync), ..AuditQuery::default() }).unwrap();
    assert_eq!(trail.len(), 3, "kept records are not audited");
    assert_eq!(trail.iter().filter(|e| e.before.is_none()).count(), 2);
    assert_eq!(trail.iter().filter(|e| e.after.is_none()).count(), 1);

    // The same list again: everything kept, nothing written or published.
    let trail_len = h.store.audit(&AuditQuery::default()).unwrap().len();
    let r = sync(&h, "/v1/exemptions", &body).await;
    assert_eq!(r.json["counts"], json!({"create": 0, "update": 0, "delete": 0, "keep": 3}));
    assert_eq!(h.version(), v0 + 1);
    assert_eq!(h.store.audit(&AuditQuery::default()).unwrap().len(), trail_len);
}

#[tokio::test]
async fn a_changed_note_updates_in_place_and_a_moved_external_id_replaces() {
    let h = harness();
    let first = items(json!([
        {"subscriber": "203.0.113.7", "external_id": "crm-1", "note": "old"},
        {"subscriber": "198.51.100.7", "external_id": "crm-2"}
    ]));
    let r = sync(&h, "/v1/exemptions", &first).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let ids: Vec<u64> = h.stored().iter().map(|e| e.id.0).collect();
    let created_at = h.stored()[0].created_at;

    let second = items(json!([
        {"subscriber": "203.0.113.7", "external_id": "crm-1", "note": "new"},
        {"subscriber": "198.51.100.8", "external_id": "crm-2"}
    ]));
    let r = sync(&h, "/v1/exemptions", &second).await;
    assert_eq!(r.json["counts"], json!({"create": 1, "update": 1, "delete": 1, "keep": 0}), "{}", r.json);
    assert_eq!(r.json["update"][0]["before"]["note"], "old");
    assert_eq!(r.json["update"][0]["after"]["note"], "new");
    let stored = h.stored();
    assert_eq!(stored[0].id.0, ids[0], "an update keeps the id");
    assert_eq!(stored[0].created_at, created_at, "and created_at");
    assert_eq!(stored[0].note.as_deref(), Some("new"));
    assert!(stored[1].id.0 > ids[1], "a new subscriber is a new record");
    assert_eq!(stored[1].external_id.as_deref(), Some("crm-2"));
    let upd = &h.store.audit(&AuditQuery::default()).unwrap();
    let update = upd.iter().find(|e| e.before.is_some() && e.after.is_some()).expect("an update entry");
    assert_eq!(update.before.as_ref().unwrap().note.as_deref(), Some("old"));

    // An empty list removes everything, including records granted by POST.
    h.grant(r#"{"subscriber":"192.0.2.1"}"#).await;
    let r = sync(&h, "/v1/exemptions", &items(json!([]))).await;
    assert_eq!(r.json["counts"]["delete"], 3, "{}", r.json);
    assert!(h.stored().is_empty());
}

#[tokio::test]
async fn any_bad_item_refuses_the_whole_sync_naming_it() {
    let h = harness();
    h.grant(r#"{"subscriber":"198.51.100.7"}"#).await;
    let ok = json!({"subscriber": "203.0.113.7"});
    let cases: Vec<(Value, &str)> = vec![
        (json!([ok, {"subscriber": "10.0.0.300"}]), "exemptions[1].subscriber"),
        (json!([ok, {"note": "no subscriber"}]), "exemptions[1].subscriber"),
        (json!([{"subscriber": "192.0.2.1", "bogus": 1}]), "exemptions[0].bogus"),
        (json!([ok, ["203.0.113.8"]]), "exemptions[1]"),
        (json!([ok, {"subscriber": "192.0.2.1", "switches": ["zz"]}]), "exemptions[1].switches[0]"),
        (
            json!([{"subscriber": "192.0.2.1", "external_id": "a"}, ok, {"subscriber": "192.0.2.2", "external_id": "a"}]),
            "exemptions[2].external_id",
        ),
        (json!([ok, {"subscriber": "203.0.113.7/32"}]), "exemptions[1].subscriber"),
        (
            json!([{"subscriber": "192.0.2.1", "ttl_seconds": 60, "expires_at": "2099-01-01T00:00:00Z"}]),
            "exemptions[0].ttl_seconds",
        ),
        (json!([{"subscriber": "192.0.2.1", "ttl_seconds": 0}]), "exemptions[0].ttl_seconds"),
        (json!([{"subscriber": "192.0.2.1", "expires_at": "2001-01-01T00:00:00Z"}]), "exemptions[0].expires_at"),
        (json!([{"subscriber": "192.0.2.1", "external_id": ""}]), "exemptions[0].external_id"),
        (json!([{"subscriber": "192.0.2.1", "external_id": 7}]), "exemptions[0].external_id"),
        (json!({"subscriber": "192.0.2.1"}), "exemptions"),
    ];
    for (list, field) in cases {
        let req = json_request(Method::PUT, "/v1/exemptions", &items(list.clone()).to_string());
        h.refused(req, StatusCode::BAD_REQUEST, Some(field)).await;
    }
    let req = json_request(Method::PUT, "/v1/exemptions", r#"{"exemption":[]}"#);
    h.refused(req, StatusCode::BAD_REQUEST, Some("exemption")).await;
    let req = json_request(Method::PUT, "/v1/exemptions", r#"{}"#);
    h.refused(req, StatusCode::BAD_REQUEST, Some("exemptions")).await;
    let req = json_request(Method::PUT, "/v1/exemptions?dry_run=maybe", r#"{"exemptions":[]}"#);
    h.refused(req, StatusCode::BAD_REQUEST, Some("dry_run")).await;
    let oversize = format!(r#"{{"exemptions":[],"pad":"{}"}}"#, "x".repeat(port25_api::SYNC_MAX_BODY_BYTES));
    let req = json_request(Method::PUT, "/v1/exemptions", &oversize);
    h.refused(req, StatusCode::PAYLOAD_TOO_LARGE, None).await;
}

fn big_list(n: u32, note: &str) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000u32 + i); // 10.0.0.0 + i
            json!({"subscriber": addr.to_string(), "external_id": format!("crm-{i}"), "note": note})
        })
        .collect();
    items(Value::Array(list))
}

async fn timed(h: &Harness, body: &Value) -> (Duration, common::Reply) {
    let start = Instant::now();
    let r = sync(h, "/v1/exemptions", body).await;
    (start.elapsed(), r)
}

/// 5,000 records in one call, in memory and on sled: well over the
/// default body limit, one version, and linear (a quadratic plan or store
/// would take 25 times as long for 5 times the records, not 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_records_sync_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn ExemptionStore> = Arc::new(SledStore::open(dir.path()).unwrap());
    for (name, h) in [("memory", harness()), ("sled", harness_with(sled))] {
        let small = big_list(1000, "a");
        let (t1000, r) = timed(&h, &small).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        let body = big_list(5000, "a");
        assert!(body.to_string().len() > port25_api::MAX_BODY_BYTES * 4);
        let v = h.version();
        // 4,000 new and 1,000 kept.
        let (t5000, r) = timed(&h, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["counts"], json!({"create": 4000, "update": 0, "delete": 0, "keep": 1000}));
        assert_eq!(h.version(), v + 1);
        // The same again: all kept.
        let (t_keep, r) = timed(&h, &body).await;
        assert_eq!(r.json["counts"]["keep"], 5000);
        // Every note changed: 5,000 updates in place.
        let (t_update, r) = timed(&h, &big_list(5000, "b")).await;
        assert_eq!(r.json["counts"]["update"], 5000);
        // And all gone again.
        let (t_delete, r) = timed(&h, &items(json!([]))).await;
        assert_eq!(r.json["counts"]["delete"], 5000);
        eprintln!(
            "sync on {name}: 1,000 new {t1000:?}; 4,000 new + 1,000 kept {t5000:?}; 5,000 kept {t_keep:?}; \
             5,000 updated {t_update:?}; 5,000 deleted {t_delete:?}"
        );
        assert!(t5000 < t1000 * 15 + Duration::from_millis(500), "{name}: {t1000:?} then {t5000:?}: not linear");
        assert_eq!(h.store.audit(&AuditQuery { limit: 1000, ..AuditQuery::default() }).unwrap().len(), 1000);
    }
}

#[tokio::test]
async fn an_item_that_is_not_an_object_or_not_json_is_worded_about_the_item() {
    let h = harness();
    let m = h
        .refused(
            json_request(Method::PUT, "/v1/exemptions", r#"{"exemptions":[{"subscriber":"198.51.100.1"},42]}"#),
            StatusCode::BAD_REQUEST,
            Some("exemptions[1]"),
        )
        .await;
    assert_eq!(m, "exemptions[1] must be a JSON object, not a number");
    let m = h
        .refused(
            json_request(
                Method::PUT,
                "/v1/exemptions",
                r#"{"exemptions":[{"subscriber":"198.51.100.1","note":"\ud800"}]}"#,
            ),
            StatusCode::BAD_REQUEST,
            Some("exemptions[0].note"),
        )
        .await;
    assert!(m.starts_with("exemptions[0] is not valid JSON"), "{m}");
}

#[tokio::test]
async fn external_id_must_be_plain_text_like_a_note() {
    let h = harness();
    let m = h
        .refused(
            json_request(
                Method::PUT,
                "/v1/exemptions",
                r#"{"exemptions":[{"subscriber":"198.51.100.1","external_id":"crm-\u202e1"}]}"#,
            ),
            StatusCode::BAD_REQUEST,
            Some("exemptions[0].external_id"),
        )
        .await;
    assert!(m.contains("U+202E"), "{m}");
}
