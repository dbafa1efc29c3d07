//! port25's REST API: provisioning systems grant and revoke per-subscriber
//! port-25 exemptions; operators look at the switches.
//!
//! # Layout
//! - [`AppState`] and [`app`] (this file): shared handles and the router,
//!   with the body limit, JSON fallbacks and a per-request tracing span.
//! - [`error`]: [`ApiError`], the only place a failure becomes an HTTP
//!   response. Every error body is `{"error": "...", "field": "..."}`.
//! - `extract`: [`ApiJson`], the JSON body extractor whose rejections use
//!   the same error body as everything else.
//! - `exemptions`: the `/v1/exemptions` handlers, raw-body validation and
//!   the write path (persist, then publish).
//! - `switches`: `/v1/switches` and `/healthz`, read-only views.
//!
//! # Status codes
//! Every kind of bad input (malformed JSON, unknown field, wrong type,
//! invalid prefix, bad dpid, ...) is `400 Bad Request`; one status for bad
//! input keeps clients simple, and the body's `field` says what to fix.
//! Other client errors: `404` unknown id or route, `405` wrong method,
//! `409` the same exemption exists (`existing_id` in the body), `413` body
//! over [`MAX_BODY_BYTES`], `415` body not declared as JSON. A `5xx` is only
//! ever a server-side failure; its body is generic and the cause is logged.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod error;
mod exemptions;
mod extract;
mod switches;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use port25_controller::Fleet;
use port25_rules::{ExemptionStore, Snapshot};
use tokio::sync::{watch, Mutex};
use tracing::{info, info_span, Instrument};

pub use error::ApiError;
pub use extract::ApiJson;

/// Largest request body accepted; bigger ones get `413`. An exemption is a
/// few hundred bytes, so this leaves room for long switch lists only.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler shares. Cheap to clone (all handles).
#[derive(Clone)]
pub struct AppState {
    /// Where exemptions are persisted; the source of truth.
    pub store: Arc<dyn ExemptionStore>,
    /// The published policy. Switch sessions hold receivers and converge to
    /// whatever is sent here; the API never talks to sessions directly.
    pub policy: Arc<watch::Sender<Arc<Snapshot>>>,
    /// Read-only view of the switch sessions.
    pub fleet: Fleet,
    /// Serialises writes so that publish order equals store order: without
    /// it, two grants could be stored as 1, 2 but published as 2, 1, and the
    /// snapshot versions would not describe the store's history. A tokio
    /// mutex because the guard is held across the `spawn_blocking` await;
    /// the guard is an owned one so it can move into the blocking task.
    write: Arc<Mutex<()>>,
}

impl AppState {
    /// Bundle the handles. `policy` should already hold a snapshot of what
    /// `store` contains (the daemon builds it with `Snapshot::from_list`).
    pub fn new(store: Arc<dyn ExemptionStore>, policy: Arc<watch::Sender<Arc<Snapshot>>>, fleet: Fleet) -> AppState {
        AppState { store, policy, fleet, write: Arc::new(Mutex::new(())) }
    }
}

/// Every route, the body limit, JSON `404`/`405` fallbacks and a tracing
/// span per request.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/exemptions", get(exemptions::list).post(exemptions::create))
        .route("/v1/exemptions/{id}", get(exemptions::show).delete(exemptions::revoke))
        .route("/v1/switches", get(switches::list))
        .route("/healthz", get(switches::health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(trace))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// One span per request (method and path), and one line when it is
/// answered. Handlers log their domain events inside this span.
async fn trace(req: Request, next: Next) -> Response {
    let span = info_span!("request", method = %req.method(), path = %req.uri().path());
    async move {
        let start = Instant::now();
        let res = next.run(req).await;
        info!(status = res.status().as_u16(), elapsed_ms = start.elapsed().as_millis() as u64, "answered");
        res
    }
    .instrument(span)
    .await
}
