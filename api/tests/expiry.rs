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
