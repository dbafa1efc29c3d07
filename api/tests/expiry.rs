//! Expiring exemptions: `expires_at` / `ttl_seconds` on a grant, their
//! refusals, and the expiry task revoking through the write path.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{harness, post_json};
use port25_api::expiry;
use port25_rules::{AuditAction, AuditQuery};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[tokio::test]
async fn grant_takes_expires_at_or_ttl_seconds() {
    let h = harness();
    let at = (OffsetDateTime::now_utc() + time::Duration::days(30)).replace_nanosecond(0).unwrap();
    let r =
        h.grant(&format!(r#"{{"subscriber":"203.0.113.7","expires_at":"{}"}}"#, at.format(&Rfc3339).unwrap())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let got = OffsetDateTime::parse(r.json["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(got, at);
    assert_eq!(h.stored()[0].expires_at, Some(at));

    // Any offset is accepted and stored as UTC.
    let year = OffsetDateTime::now_utc().year() + 1;
    let r = h.grant(&format!(r#"{{"subscriber":"203.0.113.8","expires_at":"{year}-06-01T12:00:00+02:00"}}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["expires_at"], format!("{year}-06-01T10:00:00Z"));

    let before = OffsetDateTime::now_utc();
    let r = h.grant(r#"{"subscriber":"203.0.113.9","ttl_seconds":3600}"#).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let exp = OffsetDateTime::parse(r.json["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    let ttl = exp - before;
    assert!(ttl >= time::Duration::seconds(3599) && ttl <= time::Duration::seconds(3601), "{ttl}");

    // Without either, never.
    let r = h.grant(r#"{"subscriber":"203.0.113.10"}"#).await;
    assert!(r.json.get("expires_at").is_none(), "{}", r.json);
}

#[tokio::test]
async fn bad_expiry_is_refused_naming_the_field() {
    let h = harness();
    for (body, field) in [
        (r#"{"subscriber":"203.0.113.7","expires_at":"2099-01-01T00:00:00Z","ttl_seconds":60}"#, "ttl_seconds"),
        (r#"{"subscriber":"203.0.113.7","expires_at":"2001-01-01T00:00:00Z"}"#, "expires_at"),
        (r#"{"subscriber":"203.0.113.7","expires_at":"tomorrow"}"#, "expires_at"),
        (r#"{"subscriber":"203.0.113.7","expires_at":"2099-01-01"}"#, "expires_at"),
        (r#"{"subscriber":"203.0.113.7","expires_at":1}"#, "expires_at"),
        (r#"{"subscriber":"203.0.113.7","expires_at":"3000-01-01T00:00:00Z"}"#, "expires_at"),
        (r#"{"subscriber":"203.0.113.7","ttl_seconds":0}"#, "ttl_seconds"),
        (r#"{"subscriber":"203.0.113.7","ttl_seconds":-5}"#, "ttl_seconds"),
        (r#"{"subscriber":"203.0.113.7","ttl_seconds":1.5}"#, "ttl_seconds"),
        (r#"{"subscriber":"203.0.113.7","ttl_seconds":"60"}"#, "ttl_seconds"),
        (r#"{"subscriber":"203.0.113.7","ttl_seconds":315576001}"#, "ttl_seconds"),
        (r#"{"subscriber":"203.0.113.7","external_id":"x"}"#, "external_id"),
    ] {
        h.refused(post_json(body), StatusCode::BAD_REQUEST, Some(field)).await;
    }
    let r = h.grant(r#"{"subscriber":"203.0.113.7","ttl_seconds":315576000}"#).await;
    assert_eq!(r.status, StatusCode::CREATED, "ten years is allowed: {}", r.json);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_task_revokes_audits_and_publishes() {
    let h = harness();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(expiry::run(h.writer.clone(), async move {
        let _ = stop_rx.await;
    }));
    let keep = h.grant(r#"{"subscriber":"198.51.100.7","ttl_seconds":3600}"#).await.json;
    // Granted after the task started: the new policy wakes it.
    let short = h.grant(r#"{"subscriber":"203.0.113.7","ttl_seconds":1}"#).await.json;
    let id = short["id"].as_u64().unwrap();
    let v = h.version();
    assert_eq!(h.get(&format!("/v1/exemptions/{id}")).await.status, StatusCode::OK);

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while h.get(&format!("/v1/exemptions/{id}")).await.status != StatusCode::NOT_FOUND {
        assert!(std::time::Instant::now() < deadline, "not expired after 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = h.get("/v1/exemptions").await.json;
    assert_eq!(list["exemptions"].as_array().unwrap().len(), 1);
    assert_eq!(list["exemptions"][0], keep);
    assert_eq!(h.version(), v + 1, "the expiry is one published change");
    assert!(!h.policy.borrow().exemptions.keys().any(|k| k.0 == id));

    let audit = h.get("/v1/audit?action=expire").await.json;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["actor"], "port25d");
    assert_eq!(entries[0]["exemption_id"], id);
    assert_eq!(entries[0]["before"], short);
    assert_eq!(entries[0]["after"], serde_json::Value::Null);
    let trail = h.store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(trail[0].action, AuditAction::Expire);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), task).await.expect("the task stops when told").unwrap();
}

#[tokio::test]
async fn expire_due_removes_only_what_has_expired() {
    let h = harness();
    h.grant(r#"{"subscriber":"198.51.100.7","ttl_seconds":3600}"#).await;
    assert!(h.writer.expire_due(port25_rules::AuditContext::port25d()).await.unwrap().is_empty());
    let v = h.version();
    // Nothing due: nothing published, nothing audited.
    assert_eq!(h.version(), v);
    assert_eq!(h.store.audit(&AuditQuery::default()).unwrap().len(), 1);
}

/// A store whose first commit takes `pause` (a big bulk holding the write
/// lock); the others are immediate.
struct SlowFirstCommit {
    inner: port25_rules::MemStore,
    first: std::sync::atomic::AtomicBool,
    pause: Duration,
}

impl port25_rules::ExemptionStore for SlowFirstCommit {
    fn list(&self) -> Result<Vec<port25_rules::Exemption>, port25_rules::StoreError> {
        self.inner.list()
    }
    fn get(&self, id: port25_rules::ExemptionId) -> Result<Option<port25_rules::Exemption>, port25_rules::StoreError> {
        self.inner.get(id)
    }
    fn commit(
        &self,
        change: port25_rules::Change,
        ctx: &port25_rules::AuditContext,
        at: OffsetDateTime,
    ) -> Result<port25_rules::Committed, port25_rules::StoreError> {
        if self.first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(self.pause);
        }
        self.inner.commit(change, ctx, at)
    }
    fn audit(&self, q: &AuditQuery) -> Result<Vec<port25_rules::AuditEntry>, port25_rules::StoreError> {
        self.inner.audit(q)
    }
    fn last_audit_seq(&self) -> Result<u64, port25_rules::StoreError> {
        self.inner.last_audit_seq()
    }
}

fn time_of(v: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")), &Rfc3339).unwrap()
}

/// Requests that wait for the write lock behind a slow commit: their
/// expiry counts from, and is checked against, the clock of their own
/// commit, not the time they arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_is_computed_and_checked_when_the_write_commits() {
    use axum::http::Method;
    use common::json_request;
    let pause = Duration::from_millis(1500);
    let store =
        std::sync::Arc::new(SlowFirstCommit { inner: port25_rules::MemStore::new(), first: true.into(), pause });
    let h = std::sync::Arc::new(common::harness_with(store));
    let blocker = {
        let h = std::sync::Arc::clone(&h);
        tokio::spawn(async move { h.grant(r#"{"subscriber":"192.0.2.1"}"#).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await; // the blocker holds the lock now

    // Valid when sent, one second away: past by the time it can be stored.
    let soon = (OffsetDateTime::now_utc() + time::Duration::seconds(1)).format(&Rfc3339).unwrap();
    let at_body = format!(r#"{{"subscriber":"203.0.113.8","expires_at":"{soon}"}}"#);
    let (ttl, at, bulk, sync) = tokio::join!(
        h.grant(r#"{"subscriber":"203.0.113.7","ttl_seconds":1}"#),
        h.grant(&at_body),
        h.send(json_request(
            Method::POST,
            "/v1/exemptions/bulk",
            &format!(
                r#"{{"exemptions":[{{"subscriber":"198.51.100.1","ttl_seconds":1}},{{"subscriber":"198.51.100.2","expires_at":"{soon}"}}]}}"#
            )
        )),
        h.send(json_request(
            Method::PUT,
            "/v1/exemptions?dry_run=false",
            &format!(r#"{{"exemptions":[{{"subscriber":"198.51.100.3","expires_at":"{soon}"}}]}}"#)
        )),
    );
    assert_eq!(blocker.await.unwrap().status, StatusCode::CREATED);

    // ttl_seconds counts from the stored record's created_at.
    assert_eq!(ttl.status, StatusCode::CREATED, "{}", ttl.json);
    let lived = time_of(&ttl.json["expires_at"]) - time_of(&ttl.json["created_at"]);
    assert_eq!(lived, time::Duration::seconds(1), "{}", ttl.json);
    // An expires_at that passed while the request waited is refused.
    assert_eq!(at.status, StatusCode::BAD_REQUEST, "{}", at.json);
    assert_eq!(at.json["field"], "expires_at");
    assert!(at.json["error"].as_str().unwrap().contains("not in the future"), "{}", at.json);
    // The same per bulk item...
    assert_eq!(bulk.status, StatusCode::OK, "{}", bulk.json);
    let created = &bulk.json["created"][0];
    assert_eq!(time_of(&created["expires_at"]) - time_of(&created["created_at"]), time::Duration::seconds(1));
    assert_eq!(bulk.json["rejected"][0]["field"], "exemptions[1].expires_at", "{}", bulk.json);
    assert_eq!(bulk.json["created"].as_array().unwrap().len(), 1);
    // ...and for a sync, which is then refused whole.
    assert_eq!(sync.status, StatusCode::BAD_REQUEST, "{}", sync.json);
    assert_eq!(sync.json["field"], "exemptions[0].expires_at");

    let mut stored: Vec<String> = h.stored().iter().map(|e| e.subscriber.to_string()).collect();
    stored.sort();
    assert_eq!(stored, ["192.0.2.1/32", "198.51.100.1/32", "203.0.113.7/32"]);
    for e in h.stored().iter().filter(|e| e.expires_at.is_some()) {
        assert!(e.expires_at.unwrap() > e.created_at, "{e:?} expired before it was created");
    }
}
