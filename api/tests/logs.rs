//! Every committed change is logged exactly once, with its request id
//! and actor, also when the client went away before the answer.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::http::{header, Method, StatusCode};
use common::{harness_with, json_request};
use port25_rules::{AuditContext, MemStore};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One logged event: its message and fields, as text.
#[derive(Debug, Clone, Default)]
struct Logged {
    level: String,
    fields: BTreeMap<String, String>,
}

impl Logged {
    fn get(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

impl Visit for Logged {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().to_owned(), value.to_owned());
    }
}

/// A global subscriber keeping every event (the writer logs from the
/// blocking pool, so a thread-local one would miss them).
struct Capture(Arc<Mutex<Vec<Logged>>>);

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut logged = Logged { level: event.metadata().level().to_string(), ..Logged::default() };
        event.record(&mut logged);
        self.0.lock().unwrap().push(logged);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn events() -> &'static Arc<Mutex<Vec<Logged>>> {
    static EVENTS: OnceLock<Arc<Mutex<Vec<Logged>>>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::set_global_default(Capture(Arc::clone(&events))).expect("the only subscriber");
        events
    })
}

/// The info events with this message and request id.
fn logged(message: &str, request_id: &str) -> Vec<Logged> {
    let all = events().lock().unwrap();
    all.iter()
        .filter(|e| e.level == "INFO" && e.get("message") == message && e.get("request_id") == request_id)
        .cloned()
        .collect()
}

fn with_id(method: Method, uri: &str, body: &str, id: &str) -> axum::http::Request<axum::body::Body> {
    let mut req = json_request(method, uri, body);
    req.headers_mut().insert("x-request-id", id.parse().unwrap());
    req.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    req
}

/// The client gives up while the store writes: the change is committed
/// anyway (by design), and so it must be logged anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_abandoned_by_the_client_are_logged_once() {
    events();
    let h = harness_with(Arc::new(common::SlowStore(MemStore::new())));
    let mut rx = h.policy.clone();

    for (req, message, id) in [
        (
            with_id(Method::POST, "/v1/exemptions", r#"{"subscriber":"203.0.113.7"}"#, "gone-grant"),
            "exemption granted",
            "gone-grant",
        ),
        (with_id(Method::DELETE, "/v1/exemptions/1", "", "gone-revoke"), "exemption revoked", "gone-revoke"),
        (
            with_id(
                Method::POST,
                "/v1/exemptions/bulk",
                r#"{"exemptions":[{"subscriber":"198.51.100.1"},{"subscriber":"198.51.100.2"}]}"#,
                "gone-bulk",
            ),
            "exemptions granted in bulk",
            "gone-bulk",
        ),
        (
            with_id(Method::PUT, "/v1/exemptions", r#"{"exemptions":[{"subscriber":"198.51.100.1"}]}"#, "gone-sync"),
            "exemptions synced",
            "gone-sync",
        ),
    ] {
        rx.mark_unchanged();
        let sent = tokio::time::timeout(Duration::from_millis(50), h.send(req)).await;
        assert!(sent.is_err(), "the store should still have been busy");
        tokio::time::timeout(Duration::from_secs(5), rx.changed()).await.expect("never published").unwrap();
        let lines = logged(message, id);
        assert_eq!(lines.len(), 1, "{message} for {id}: {lines:?}");
        assert_eq!(lines[0].get("actor"), "anonymous", "{lines:?}");
    }
    let grant = &logged("exemption granted", "gone-grant")[0];
    assert_eq!((grant.get("id"), grant.get("subscriber")), ("1", "203.0.113.7/32"), "{grant:?}");
    let bulk = &logged("exemptions granted in bulk", "gone-bulk")[0];
    assert_eq!((bulk.get("created"), bulk.get("first_id"), bulk.get("last_id")), ("2", "2", "3"), "{bulk:?}");
    let sync = &logged("exemptions synced", "gone-sync")[0];
    assert_eq!((sync.get("created"), sync.get("deleted"), sync.get("kept")), ("0", "1", "1"), "{sync:?}");
}

/// A client that waits for the answer gets the same single line, not one
/// from the writer and another from the handler.
#[tokio::test]
async fn answered_writes_are_logged_once() {
    events();
    let h = harness_with(Arc::new(MemStore::new()));
    let r = h.send(with_id(Method::POST, "/v1/exemptions", r#"{"subscriber":"192.0.2.7"}"#, "kept-grant")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json["id"].as_u64().unwrap();
    let r = h.send(with_id(Method::DELETE, &format!("/v1/exemptions/{id}"), "", "kept-revoke")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = h.send(with_id(Method::PUT, "/v1/exemptions", r#"{"exemptions":[]}"#, "kept-sync")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(logged("exemption granted", "kept-grant").len(), 1);
    assert_eq!(logged("exemption revoked", "kept-revoke").len(), 1);
    // A sync that changes nothing is still a sync, logged once.
    assert_eq!(logged("exemptions synced", "kept-sync").len(), 1);

    // The expiry task's revocations too, by port25d.
    let r =
        h.send(with_id(Method::POST, "/v1/exemptions", r#"{"subscriber":"192.0.2.8","ttl_seconds":1}"#, "ttl")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.writer.expire_due(AuditContext::port25d()).await.unwrap().len(), 1);
    let all = events().lock().unwrap().clone();
    let expired: Vec<_> = all
        .iter()
        .filter(|e| e.get("message") == "exemption expired" && e.get("subscriber") == "192.0.2.8/32")
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].get("actor"), "port25d");
}
