//! Shared test helpers: an app over a given store, a request sender that
//! decodes JSON bodies, and a "nothing was written" check.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use port25_api::auth::{parse_sha256_hex, sha256_hex};
use port25_api::{app, ApiOptions, ApiToken, AppState, Role, Tokens, Writer};
use port25_controller::Fleet;
use port25_rules::{
    AuditContext, AuditEntry, AuditQuery, Change, Committed, Exemption, ExemptionId, ExemptionStore, MemStore,
    Snapshot, StoreError,
};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::watch;
use tower::ServiceExt;

pub struct Harness {
    pub app: Router,
    pub store: Arc<dyn ExemptionStore>,
    pub policy: watch::Receiver<Arc<Snapshot>>,
    pub fleet: Fleet,
    /// The app's write path (for running the expiry task beside it).
    pub writer: Writer,
}

/// An app over an empty [`MemStore`].
pub fn harness() -> Harness {
    harness_with(Arc::new(MemStore::new()))
}

/// An app over `store`, with the policy seeded from it the way the daemon
/// does it (version 1).
pub fn harness_with(store: Arc<dyn ExemptionStore>) -> Harness {
    harness_full(store, Tokens::default())
}

/// The tokens of [`harness_with_tokens`]: `(name, role, secret)`.
pub const TOKENS: [(&str, Role, &str); 2] =
    [("crm", Role::Write, "write-secret-0123456789"), ("desk", Role::Read, "read-secret-0123456789")];

/// An app over an empty [`MemStore`] that requires the [`TOKENS`].
pub fn harness_with_tokens() -> Harness {
    let tokens = TOKENS
        .iter()
        .map(|(name, role, secret)| ApiToken {
            name: (*name).into(),
            role: *role,
            sha256: parse_sha256_hex(&sha256_hex(secret)).unwrap(),
        })
        .collect();
    harness_full(Arc::new(MemStore::new()), Tokens::new(tokens))
}

pub fn harness_full(store: Arc<dyn ExemptionStore>, tokens: Tokens) -> Harness {
    harness_options(store, ApiOptions::from(tokens))
}

/// An app over `store` with everything the configuration can set.
pub fn harness_options(store: Arc<dyn ExemptionStore>, options: ApiOptions) -> Harness {
    let snapshot = Snapshot::from_list(store.list().expect("list"));
    let (tx, rx) = watch::channel(Arc::new(snapshot));
    let fleet = Fleet::new();
    let state = AppState::new(Arc::clone(&store), Arc::new(tx), fleet.clone()).with_options(options);
    let writer = state.writer.clone();
    Harness { app: app(state), store, policy: rx, fleet, writer }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as JSON, `Value::Null` when empty.
    pub json: Value,
}

impl Harness {
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)))
        };
        Reply { status, headers, json }
    }

    /// POST a JSON text to /v1/exemptions.
    pub async fn grant(&self, body: &str) -> Reply {
        self.send(post_json(body)).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    pub async fn delete(&self, uri: &str) -> Reply {
        self.send(Request::delete(uri).body(Body::empty()).unwrap()).await
    }

    pub fn version(&self) -> u64 {
        self.policy.borrow().version
    }

    pub fn stored(&self) -> Vec<Exemption> {
        self.store.list().expect("list")
    }

    /// What the store and the published policy hold right now.
    pub fn before(&self) -> (Vec<Exemption>, u64) {
        (self.stored(), self.version())
    }

    /// Send a request that must be refused with `status`; check the error
    /// body's `field`, that nothing was stored or published, and return
    /// the error message.
    pub async fn refused(&self, req: Request<Body>, status: StatusCode, field: Option<&str>) -> String {
        let before = self.before();
        let reply = self.send(req).await;
        assert_eq!(reply.status, status, "body: {}", reply.json);
        assert_eq!(reply.json["field"].as_str(), field, "body: {}", reply.json);
        let message = reply.json["error"].as_str().unwrap_or_else(|| panic!("no error text: {}", reply.json));
        assert!(!message.is_empty());
        assert_eq!(self.before(), before, "a refused request changed the store or the policy");
        message.to_owned()
    }
}

/// A JSON request with any method and uri.
pub fn json_request(method: Method, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// `req` with `Authorization: Bearer token`.
pub fn bearer(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    req
}

pub fn post_json(body: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/v1/exemptions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// A store that takes its time, like a slow fsync.
pub struct SlowStore(pub MemStore);

impl ExemptionStore for SlowStore {
    fn list(&self) -> Result<Vec<Exemption>, StoreError> {
        self.0.list()
    }
    fn get(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        self.0.get(id)
    }
    fn commit(&self, change: Change, ctx: &AuditContext, at: OffsetDateTime) -> Result<Committed, StoreError> {
        std::thread::sleep(std::time::Duration::from_millis(300));
        self.0.commit(change, ctx, at)
    }
    fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        self.0.audit(q)
    }
    fn last_audit_seq(&self) -> Result<u64, StoreError> {
        self.0.last_audit_seq()
    }
}
