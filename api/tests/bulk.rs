//! `POST /v1/exemptions/bulk`: one group commit for the valid items, each
//! invalid or duplicate item rejected on its own, and the whole request
//! refused only for a malformed body.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{harness, harness_with, json_request, Harness};
use port25_rules::{AuditAction, AuditQuery, ExemptionStore, SledStore};
use serde_json::{json, Value};

const BULK: &str = "/v1/exemptions/bulk";

async fn bulk(h: &Harness, body: &Value) -> common::Reply {
    h.send(json_request(Method::POST, BULK, &body.to_string())).await
}

fn grants(h: &Harness) -> usize {
    h.store.audit(&AuditQuery { action: Some(AuditAction::Grant), limit: 1000, ..AuditQuery::default() }).unwrap().len()
}

#[tokio::test]
async fn stores_the_valid_items_as_one_version_and_rejects_the_rest_one_by_one() {
    let h = harness();
    let stored = h.grant(r#"{"subscriber":"192.0.2.0/24"}"#).await.json;
    let v0 = h.version();
    let audited = grants(&h);
    let body = json!({"exemptions": [
        {"subscriber": "203.0.113.7", "note": "a"},                 // 0 ok
        {"subscriber": "203.0.113.300"},                            // 1 bad address
        {"subscriber": "192.0.2.0/24"},                             // 2 duplicates the stored one
        {"subscriber": "2001:db8::/48", "switches": ["1"]},         // 3 ok
        {"subscriber": "203.0.113.7/32", "note": "again"},          // 4 duplicates item 0
        {"subscriber": "198.51.100.1", "colour": "red"},            // 5 unknown field
        "198.51.100.2",                                             // 6 not an object
        {"subscriber": "198.51.100.3", "ttl_seconds": 0},           // 7 bad ttl
        {"subscriber": "198.51.100.4", "switches": ["1", "x"]},     // 8 bad dpid
        {"subscriber": "198.51.100.5", "ttl_seconds": 60}           // 9 ok
    ]});
    let r = bulk(&h, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    let created = r.json["created"].as_array().unwrap();
    let subs: Vec<&str> = created.iter().map(|e| e["subscriber"].as_str().unwrap()).collect();
    assert_eq!(subs, ["203.0.113.7/32", "2001:db8::/48", "198.51.100.5/32"], "{}", r.json);
    assert!(created.iter().all(|e| e["id"].is_u64()));
    assert!(created[2]["expires_at"].is_string());
    let first_id = created[0]["id"].clone();

    let rejected = r.json["rejected"].as_array().unwrap();
    let by_index: Vec<(u64, Option<&str>)> =
        rejected.iter().map(|x| (x["index"].as_u64().unwrap(), x["field"].as_str())).collect();
    assert_eq!(
        by_index,
        [
            (1, Some("exemptions[1].subscriber")),
            (2, Some("exemptions[2].subscriber")),
            (4, Some("exemptions[4].subscriber")),
            (5, Some("exemptions[5].colour")),
            (6, Some("exemptions[6]")),
            (7, Some("exemptions[7].ttl_seconds")),
            (8, Some("exemptions[8].switches[1]")),
        ],
        "{}",
        r.json
    );
    assert!(rejected.iter().all(|x| !x["error"].as_str().unwrap().is_empty()));
    assert_eq!(rejected[1]["existing_id"], stored["id"], "conflict with the store names the stored id");
    assert_eq!(rejected[2]["existing_id"], first_id, "conflict within the request names the created id");
    assert!(rejected[0].get("existing_id").is_none());

    // One store transaction and one published version; each record audited.
    assert_eq!(h.version(), v0 + 1);
    assert_eq!(r.json["policy_version"], v0 + 1);
    assert_eq!(h.stored().len(), 4);
    assert_eq!(grants(&h), audited + 3);
    let snap = h.policy.borrow().clone();
    assert_eq!(snap.exemptions.values().cloned().collect::<Vec<_>>(), h.stored(), "published == stored");
}

#[tokio::test]
async fn a_malformed_body_refuses_the_request_and_writes_nothing() {
    let h = harness();
    for (body, field) in [
        ("not json", None),
        ("[]", None),
        (r#"{"exemptions": {"subscriber": "203.0.113.7"}}"#, Some("exemptions")),
        (r#"{}"#, Some("exemptions")),
        (r#"{"exemptions": [], "extra": 1}"#, Some("extra")),
    ] {
        h.refused(json_request(Method::POST, BULK, body), StatusCode::BAD_REQUEST, field).await;
    }
    h.refused(
        json_request(Method::POST, "/v1/exemptions/bulk?wait=soon", r#"{"exemptions":[{"subscriber":"203.0.113.7"}]}"#),
        StatusCode::BAD_REQUEST,
        Some("wait"),
    )
    .await;
}

#[tokio::test]
async fn nothing_valid_publishes_nothing() {
    let h = harness();
    let v0 = h.version();
    let r = bulk(&h, &json!({"exemptions": [{"subscriber": "nope"}, {}]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["created"], json!([]));
    assert_eq!(r.json["rejected"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["rejected"][1]["field"], "exemptions[1].subscriber");
    assert_eq!(h.version(), v0);
    assert!(h.stored().is_empty());
    let r = bulk(&h, &json!({"exemptions": []})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(h.version(), v0);
}

#[tokio::test]
async fn too_many_items_refuse_the_request() {
    let h = harness();
    let list = vec![json!({}); port25_api::bulk::BULK_MAX_ITEMS + 1];
    h.refused(
        json_request(Method::POST, BULK, &json!({ "exemptions": list }).to_string()),
        StatusCode::BAD_REQUEST,
        Some("exemptions"),
    )
    .await;
}

fn big_list(n: u32) -> Value {
    let list: Vec<Value> = (0..n)
        .map(|i| json!({"subscriber": std::net::Ipv4Addr::from(0x0a00_0000u32 + i).to_string(), "note": "bulk"}))
        .collect();
    json!({ "exemptions": list })
}

/// 20,000 records in one request on sled: far over the single-request
/// body limit, one version, all durable. Prints the rate (run it with
/// `--release --nocapture` to measure).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_records_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let sled: Arc<dyn ExemptionStore> = Arc::new(SledStore::open(dir.path()).unwrap());
    let h = harness_with(Arc::clone(&sled));
    let body = big_list(20_000);
    assert!(body.to_string().len() > port25_api::MAX_BODY_BYTES * 10);
    let v0 = h.version();
    let start = Instant::now();
    let r = bulk(&h, &body).await;
    let took = start.elapsed();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["created"].as_array().unwrap().len(), 20_000);
    assert_eq!(r.json["rejected"], json!([]));
    assert_eq!(h.version(), v0 + 1);
    eprintln!("bulk: 20,000 records on sled in {took:?} ({:.0}/s)", 20_000.0 / took.as_secs_f64());
    // The same again: every item a conflict, nothing written.
    let start = Instant::now();
    let r = bulk(&h, &body).await;
    eprintln!("bulk: 20,000 conflicts in {:?}", start.elapsed());
    assert_eq!(r.json["rejected"].as_array().unwrap().len(), 20_000);
    assert_eq!(h.version(), v0 + 1);
    drop(h);
    // Durable: a fresh open of the same directory sees them all.
    drop(sled);
    let reopened = SledStore::open(dir.path()).unwrap();
    assert_eq!(reopened.list().unwrap().len(), 20_000);
    assert!(took < Duration::from_secs(60));
}

#[tokio::test]
async fn an_item_that_is_not_an_object_or_not_json_is_worded_about_the_item() {
    let h = harness();
    let text = r#"{"exemptions":[{"subscriber":"198.51.100.1"},"198.51.100.2",{"subscriber":"198.51.100.3","note":"\ud800"},{"subscriber":"198.51.100.4","ttl_seconds":1e400}]}"#;
    let r = h.send(json_request(Method::POST, BULK, text)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let rejected = r.json["rejected"].as_array().unwrap();
    assert_eq!(rejected[0]["field"], "exemptions[1]");
    assert_eq!(rejected[0]["error"], "exemptions[1] must be a JSON object, not a string");
    assert_eq!(rejected[1]["field"], "exemptions[2].note", "{}", r.json);
    assert!(rejected[1]["error"].as_str().unwrap().starts_with("exemptions[2] is not valid JSON"), "{}", r.json);
    assert_eq!(rejected[2]["field"], "exemptions[3].ttl_seconds", "{}", r.json);
    assert_eq!(h.stored().len(), 1);

    // Invalid UTF-8 inside an item refuses the whole body (it is not
    // JSON text), naming the item's field.
    let mut bytes =
        br#"{"exemptions":[{"subscriber":"198.51.100.5"},{"subscriber":"198.51.100.6","note":"caf"#.to_vec();
    bytes.extend_from_slice(&[0xe9]);
    bytes.extend_from_slice(br#""}]}"#);
    let req = axum::http::Request::post(BULK)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(bytes))
        .unwrap();
    let m = h.refused(req, StatusCode::BAD_REQUEST, Some("exemptions[1].note")).await;
    assert!(m.contains("UTF-8"), "{m}");
}
