//! Grant, list, show and revoke through the router, and what each does to
//! the store and the published policy.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use common::{harness, harness_with, post_json};
use port25_rules::{
    AuditContext, AuditEntry, AuditQuery, Change, Committed, Dpid, Exemption, ExemptionId, ExemptionStore, MemStore,
    Scope, Snapshot, StoreError,
};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::watch;

#[tokio::test]
async fn grant_returns_201_with_record_and_location_and_publishes() {
    let h = harness();
    let mut rx = h.policy.clone();
    rx.mark_unchanged();
    let reply =
        h.grant(r#"{"subscriber":"203.0.113.7/32","note":"ticket 4411","switches":["0000000000000001"]}"#).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let id = reply.json["id"].as_u64().expect("numeric id");
    assert_eq!(reply.headers[header::LOCATION], format!("/v1/exemptions/{id}").as_str());
    assert_eq!(reply.json["subscriber"], "203.0.113.7/32");
    assert_eq!(reply.json["note"], "ticket 4411");
    assert_eq!(reply.json["switches"], json!(["0000000000000001"]));
    let created = reply.json["created_at"].as_str().expect("created_at");
    OffsetDateTime::parse(created, &Rfc3339).expect("RFC 3339");

    // Stored...
    let stored = h.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, ExemptionId(id));
    // ...and published, one version later, with the same record.
    assert!(rx.has_changed().unwrap(), "no snapshot was published");
    let snap = rx.borrow_and_update().clone();
    assert_eq!(snap.version, 2);
    assert_eq!(snap.exemptions.get(&ExemptionId(id)), Some(&stored[0]));
}

#[tokio::test]
async fn grant_accepts_bare_address_and_defaults_to_all_switches() {
    let h = harness();
    let reply = h.grant(r#"{"subscriber":"203.0.113.7"}"#).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(reply.json["subscriber"], "203.0.113.7/32");
    assert_eq!(reply.json["switches"], Value::Null);
    assert!(reply.json.get("note").is_none(), "{}", reply.json);
    assert_eq!(h.stored()[0].switches, Scope::All);

    let reply = h.grant(r#"{"subscriber":"2001:DB8::1","switches":null,"note":null}"#).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(reply.json["subscriber"], "2001:db8::1/128");
}

#[tokio::test]
async fn grant_deduplicates_switches() {
    let h = harness();
    let reply = h
        .grant(r#"{"subscriber":"203.0.113.7/32","switches":["2","0000000000000001","00:00:00:00:00:00:00:02"]}"#)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    assert_eq!(reply.json["switches"], json!(["0000000000000001", "0000000000000002"]));
    assert_eq!(h.stored()[0].switches, Scope::Only(vec![Dpid(1), Dpid(2)]));
}

#[tokio::test]
async fn duplicate_grant_is_409_with_existing_id_and_writes_nothing() {
    let h = harness();
    let first = h.grant(r#"{"subscriber":"203.0.113.0/24","switches":["1","2"]}"#).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Same prefix and the same switch set, written differently.
    let req = post_json(r#"{"subscriber":"203.0.113.0/24","switches":["2","1","1"],"note":"again"}"#);
    h.refused(req, StatusCode::CONFLICT, Some("subscriber")).await;
    let reply = h.grant(r#"{"subscriber":"203.0.113.0/24","switches":["1","2"]}"#).await;
    assert_eq!(reply.json["existing_id"], first.json["id"]);
    // A different scope is a different exemption.
    let other = h.grant(r#"{"subscriber":"203.0.113.0/24"}"#).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.json);
}

#[tokio::test]
async fn list_is_ordered_by_id() {
    let h = harness();
    for s in ["198.51.100.7", "203.0.113.0/24", "2001:db8::/48"] {
        assert_eq!(h.grant(&format!(r#"{{"subscriber":"{s}"}}"#)).await.status, StatusCode::CREATED);
    }
    let reply = h.get("/v1/exemptions").await;
    assert_eq!(reply.status, StatusCode::OK);
    let list = reply.json["exemptions"].as_array().expect("exemptions array");
    let ids: Vec<u64> = list.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let subs: Vec<&str> = list.iter().map(|e| e["subscriber"].as_str().unwrap()).collect();
    assert_eq!(subs, vec!["198.51.100.7/32", "203.0.113.0/24", "2001:db8::/48"]);
    // Round-trips into the domain type.
    let parsed: Vec<Exemption> = serde_json::from_value(reply.json["exemptions"].clone()).unwrap();
    assert_eq!(parsed, h.stored());
}

#[tokio::test]
async fn list_filters_by_covering_address_or_prefix() {
    let h = harness();
    for s in ["198.51.100.7", "203.0.113.0/24", "2001:db8::/48"] {
        assert_eq!(h.grant(&format!(r#"{{"subscriber":"{s}"}}"#)).await.status, StatusCode::CREATED);
    }
    let subs = |reply: common::Reply| -> Vec<String> {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
        reply.json["exemptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subscriber"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(subs(h.get("/v1/exemptions?subscriber=203.0.113.9").await), ["203.0.113.0/24"]);
    assert_eq!(subs(h.get("/v1/exemptions?subscriber=203.0.113.0/24").await), ["203.0.113.0/24"]);
    assert_eq!(subs(h.get("/v1/exemptions?subscriber=203.0.113.128/25").await), ["203.0.113.0/24"]);
    assert_eq!(subs(h.get("/v1/exemptions?subscriber=203.0.0.0/16").await), Vec::<String>::new());
    assert_eq!(subs(h.get("/v1/exemptions?subscriber=198.51.100.7").await), ["198.51.100.7/32"]);
    assert_eq!(subs(h.get("/v1/exemptions?subscriber=198.51.100.8").await), Vec::<String>::new());
    assert_eq!(subs(h.get("/v1/exemptions?subscriber=2001:db8::25").await), ["2001:db8::/48"]);
    // Percent-encoded slash, as a careful client sends it.
    assert_eq!(subs(h.get("/v1/exemptions?subscriber=203.0.113.0%2F24").await), ["203.0.113.0/24"]);
}

#[tokio::test]
async fn list_filter_rejects_bad_input_naming_the_field() {
    let h = harness();
    let r = h.get("/v1/exemptions?subscriber=192.0.2.10/24").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["field"], "subscriber");
    assert!(r.json["error"].as_str().unwrap().contains("192.0.2.0/24"), "{}", r.json);
    let r = h.get("/v1/exemptions?subscribr=192.0.2.1").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["field"], "subscribr", "{}", r.json);
}

#[tokio::test]
async fn show_returns_record_or_404_or_400() {
    let h = harness();
    let created = h.grant(r#"{"subscriber":"203.0.113.7/32","note":"n"}"#).await.json;
    let id = created["id"].as_u64().unwrap();
    let reply = h.get(&format!("/v1/exemptions/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, created);

    let reply = h.get("/v1/exemptions/999").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.json["error"].as_str().unwrap().contains("999"), "{}", reply.json);

    for bad in ["abc", "-1", "+1", "1.5", "99999999999999999999999"] {
        let reply = h.get(&format!("/v1/exemptions/{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.json["field"], "id", "{bad}");
    }
}

#[tokio::test]
async fn revoke_returns_204_removes_and_publishes_once() {
    let h = harness();
    let id = h.grant(r#"{"subscriber":"203.0.113.7/32"}"#).await.json["id"].as_u64().unwrap();
    let keep = h.grant(r#"{"subscriber":"198.51.100.7/32"}"#).await.json["id"].as_u64().unwrap();
    assert_eq!(h.version(), 3);

    let reply = h.delete(&format!("/v1/exemptions/{id}")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.json, Value::Null, "204 has no body");
    let snap = h.policy.borrow().clone();
    assert_eq!(snap.version, 4);
    assert!(!snap.exemptions.contains_key(&ExemptionId(id)));
    assert!(snap.exemptions.contains_key(&ExemptionId(keep)));
    assert_eq!(h.stored().iter().map(|e| e.id.0).collect::<Vec<_>>(), vec![keep]);
    assert_eq!(h.get(&format!("/v1/exemptions/{id}")).await.status, StatusCode::NOT_FOUND);

    // Unknown (here: already revoked) id: 404, nothing published.
    let req = axum::http::Request::delete(format!("/v1/exemptions/{id}")).body(axum::body::Body::empty()).unwrap();
    h.refused(req, StatusCode::NOT_FOUND, None).await;
    let req = axum::http::Request::delete("/v1/exemptions/seven").body(axum::body::Body::empty()).unwrap();
    h.refused(req, StatusCode::BAD_REQUEST, Some("id")).await;
}

/// A store whose disk has failed.
struct BrokenStore;

impl ExemptionStore for BrokenStore {
    fn list(&self) -> Result<Vec<Exemption>, StoreError> {
        Ok(Vec::new())
    }
    fn get(&self, _: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        Err(StoreError::Io("read /var/lib/port25/db/snap.0000: EIO".into()))
    }
    fn commit(&self, _: Change, _: &AuditContext, _: OffsetDateTime) -> Result<Committed, StoreError> {
        Err(StoreError::Io("fsync /var/lib/port25/db/conf: EIO".into()))
    }
    fn audit(&self, _: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        Err(StoreError::Io("read /var/lib/port25/db/snap.0000: EIO".into()))
    }
    fn last_audit_seq(&self) -> Result<u64, StoreError> {
        Err(StoreError::Io("read /var/lib/port25/db/snap.0000: EIO".into()))
    }
}

#[tokio::test]
async fn store_failure_is_a_generic_500_and_publishes_nothing() {
    let h = harness_with(Arc::new(BrokenStore));
    for req in [
        post_json(r#"{"subscriber":"203.0.113.7/32"}"#),
        axum::http::Request::delete("/v1/exemptions/1").body(axum::body::Body::empty()).unwrap(),
        axum::http::Request::get("/v1/exemptions/1").body(axum::body::Body::empty()).unwrap(),
    ] {
        let reply = h.send(req).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(reply.json, json!({"error": "internal error"}), "internals leaked");
        assert_eq!(h.version(), 1);
    }
}

#[tokio::test]
async fn grant_abandoned_by_client_is_still_published() {
    let h = harness_with(Arc::new(common::SlowStore(MemStore::new())));
    let mut rx = h.policy.clone();
    rx.mark_unchanged();
    // The client gives up while the store is still writing: axum drops
    // the handler future. The record must not end up stored but unpublished.
    let sent = tokio::time::timeout(Duration::from_millis(50), h.grant(r#"{"subscriber":"203.0.113.7/32"}"#)).await;
    assert!(sent.is_err(), "the store should still have been busy");
    tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.expect("never published").unwrap();
    let snap = rx.borrow().clone();
    assert_eq!(snap.version, 2);
    let stored = h.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(snap.exemptions.values().cloned().collect::<Vec<_>>(), stored);
}

/// A store that checks, as each write starts, that the published policy
/// already reflects every earlier write; that holds only if writes and
/// their publication are serialised.
struct OrderCheckingStore {
    inner: MemStore,
    policy: std::sync::OnceLock<watch::Receiver<Arc<Snapshot>>>,
    violations: AtomicUsize,
}

impl OrderCheckingStore {
    fn check(&self) {
        let published = self.policy.get().expect("receiver set").borrow().exemptions.len();
        if published != self.inner.list().unwrap().len() {
            self.violations.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl ExemptionStore for OrderCheckingStore {
    fn list(&self) -> Result<Vec<Exemption>, StoreError> {
        self.inner.list()
    }
    fn get(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        self.inner.get(id)
    }
    fn commit(&self, change: Change, ctx: &AuditContext, at: OffsetDateTime) -> Result<Committed, StoreError> {
        self.check();
        let r = self.inner.commit(change, ctx, at);
        // Widen the window between store and publish.
        std::thread::sleep(Duration::from_millis(2));
        r
    }
    fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.inner.audit(q)
    }
    fn last_audit_seq(&self) -> Result<u64, StoreError> {
        self.inner.last_audit_seq()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_publish_in_store_order() {
    let store = Arc::new(OrderCheckingStore {
        inner: MemStore::new(),
        policy: std::sync::OnceLock::new(),
        violations: AtomicUsize::new(0),
    });
    let h = harness_with(store.clone());
    store.policy.set(h.policy.clone()).unwrap();
    let h = Arc::new(h);

    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let h = Arc::clone(&h);
        tasks.push(tokio::spawn(async move {
            let reply = h.grant(&format!(r#"{{"subscriber":"10.0.{i}.0/24"}}"#)).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
            if i % 3 == 0 {
                let id = reply.json["id"].as_u64().unwrap();
                assert_eq!(h.delete(&format!("/v1/exemptions/{id}")).await.status, StatusCode::NO_CONTENT);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.violations.load(Ordering::SeqCst), 0, "a write started before the previous one was published");
    let snap = h.policy.borrow().clone();
    assert_eq!(snap.version, 1 + 24 + 8);
    assert_eq!(snap.exemptions.values().cloned().collect::<Vec<_>>(), h.stored());
    assert_eq!(h.stored().len(), 16);
}
