//! port25's REST API: provisioning systems grant and revoke per-subscriber
//! port-25 exemptions; operators look at the switches.
//!
//! # Layout
//! - [`AppState`] and [`app`] (this file): shared handles and the router,
//!   with the body limit, JSON fallbacks and a per-request tracing span.
//! - [`error`]: [`ApiError`], the only place a failure becomes an HTTP
//!   response. Every error body is `{"error": "...", "field": "..."}`.
//! - `extract`: [`ApiJson`], the JSON body extractor (content type and
//!   encoding, announced length, read timeout, the field of a syntax
//!   error) whose rejections use the same error body as everything else;
//!   `NoQuery` for the routes that take no query parameters.
//! - [`auth`]: bearer tokens (constant-time, by SHA-256 digest), request
//!   ids, and the audit context (`Who`) of a request.
//! - [`Writer`] (`writer`): the one write path: plan from the snapshot,
//!   persist with audit entries, publish, under one lock; it also logs
//!   every committed change (grant, revoke, expire, bulk, sync), once.
//! - `exemptions`: the `/v1/exemptions` handlers and the validation of one
//!   exemption's fields.
//! - `sync`: `PUT /v1/exemptions`, a provisioning system's full list.
//! - [`bulk`]: `POST /v1/exemptions/bulk`, many grants as one group commit,
//!   each item accepted or rejected on its own.
//! - [`wait`]: `?wait=applied` on the writes: wait for the switches to
//!   confirm the new policy version.
//! - `audit`: `GET /v1/audit`.
//! - `lookup`: `GET /v1/lookup`, the verdict for one address per switch.
//! - [`expiry`]: the task that revokes exemptions when they expire.
//! - `switches`: `/v1/switches` and `/healthz`, read-only views.
//! - [`metrics`]: `GET /metrics` (the daemon's Prometheus registry plus
//!   the API's request counters and latency) and its middleware.
//! - [`openapi`]: `GET /v1/openapi.json`, generated from the handlers.
//! - [`routes`]: the one table of every route; the router is built
//!   from it and the OpenAPI test checks the document against it.
//!
//! # Status codes
//! Every kind of bad input (malformed JSON, unknown field, wrong type,
//! invalid prefix, bad dpid, ...) is `400 Bad Request`; one status for bad
//! input keeps clients simple, and the body's `field` says what to fix.
//! Other client errors: `401` no or an unknown bearer token (with
//! `WWW-Authenticate: Bearer`), `403` a read token on a write route, `404`
//! unknown id or route, `405` wrong method, `409` the same exemption exists
//! (`existing_id` in the body), `408` body not received within
//! [`BODY_TIMEOUT`], `413` body over [`MAX_BODY_BYTES`] (or
//! [`SYNC_MAX_BODY_BYTES`] for a sync, [`bulk::BULK_MAX_BODY_BYTES`] for a
//! bulk create; also when `Content-Length` announces more, before reading),
//! `415` body not declared as JSON, or compressed (`Content-Encoding`
//! other than `identity`).
//! Every response carries an `x-request-id` header. A `5xx` is only
//! ever a server-side failure; its body is generic and the cause is logged.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod audit;
pub mod auth;
pub mod bulk;
pub mod error;
mod exemptions;
pub mod expiry;
mod extract;
mod lookup;
pub mod metrics;
pub mod openapi;
mod switches;
mod sync;
pub mod wait;
mod writer;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Extension, Router};
use port25_controller::Fleet;
use port25_rules::{ExemptionStore, Snapshot};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tracing::{debug, field, info, info_span, Instrument};

pub use auth::{ApiToken, Role, Tokens};
pub use error::ApiError;
pub use extract::ApiJson;
pub use writer::{Event, Writer};

/// Largest request body accepted; bigger ones get `413`. An exemption is a
/// few hundred bytes, so this leaves room for long switch lists only.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest body of a sync (`PUT /v1/exemptions`): the full list of a
/// provisioning system, some tens of thousands of records.
pub const SYNC_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long a request body may take to arrive, from the moment the
/// handler starts reading it; then `408` (see [`AppState::with_body_timeout`]). A client that announces a body
/// and sends it slowly, or not at all, would otherwise hold its
/// connection (and a task) for ever. 64 MiB, the largest body (a bulk),
/// needs about 2.2 MB/s to make it.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The shortest subscriber prefix an exemption may have, per family
/// (`[api] min_prefix_len_v4` and `min_prefix_len_v6`). Without a floor,
/// `0.0.0.0/1` and `128.0.0.0/1` together would exempt everyone; only
/// `/0` is refused by the model itself. Filters are not limited by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinPrefixLen {
    /// 1 to 32; default 8.
    pub v4: u8,
    /// 1 to 128; default 32.
    pub v6: u8,
}

impl Default for MinPrefixLen {
    fn default() -> MinPrefixLen {
        MinPrefixLen { v4: 8, v6: 32 }
    }
}

/// What the daemon's configuration sets in the API. `From<Tokens>` keeps
/// callers that only configure tokens short.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// API tokens; empty = authentication off.
    pub tokens: Tokens,
    /// The shortest subscriber prefix a grant, bulk item or sync item may name.
    pub min_prefix_len: MinPrefixLen,
}

impl From<Tokens> for ApiOptions {
    fn from(tokens: Tokens) -> ApiOptions {
        ApiOptions { tokens, ..ApiOptions::default() }
    }
}

/// What every handler shares. Cheap to clone (all handles).
#[derive(Clone)]
pub struct AppState {
    /// Where exemptions are persisted; the source of truth. Read through
    /// it freely; write only through `writer`.
    pub store: Arc<dyn ExemptionStore>,
    /// The published policy. Switch sessions hold receivers and converge to
    /// whatever is sent here; the API never talks to sessions directly.
    pub policy: Arc<watch::Sender<Arc<Snapshot>>>,
    /// Read-only view of the switch sessions.
    pub fleet: Fleet,
    /// The one write path (persist with audit, then publish, serialised).
    pub writer: Writer,
    /// API tokens; empty = authentication off.
    tokens: Arc<Tokens>,
    /// The shortest subscriber prefix per family.
    min_prefix_len: MinPrefixLen,
    /// How long a request body may take to arrive.
    body_timeout: std::time::Duration,
    /// What `GET /metrics` serves: the daemon's metrics plus the API's.
    registry: Arc<Registry>,
    /// The API's request metrics (registered in `registry`).
    metrics: Arc<metrics::ApiMetrics>,
}

impl AppState {
    /// Bundle the handles, without authentication. `policy` should already
    /// hold a snapshot of what `store` contains (the daemon builds it with
    /// `Snapshot::from_list`).
    pub fn new(store: Arc<dyn ExemptionStore>, policy: Arc<watch::Sender<Arc<Snapshot>>>, fleet: Fleet) -> AppState {
        let writer = Writer::new(Arc::clone(&store), Arc::clone(&policy));
        AppState::with_writer(writer, store, fleet)
    }

    /// Bundle the handles around an existing writer (the daemon shares it
    /// with the expiry task).
    pub fn with_writer(writer: Writer, store: Arc<dyn ExemptionStore>, fleet: Fleet) -> AppState {
        let policy = writer.sender();
        let mut registry = Registry::default();
        let metrics = metrics::ApiMetrics::register(&mut registry, Arc::clone(&policy));
        AppState {
            store,
            policy,
            fleet,
            writer,
            tokens: Arc::new(Tokens::default()),
            min_prefix_len: MinPrefixLen::default(),
            body_timeout: BODY_TIMEOUT,
            registry: Arc::new(registry),
            metrics,
        }
    }

    /// Serve `registry` (the daemon's, with the OpenFlow side's metrics) on
    /// `GET /metrics`, with the API's own metrics added to it.
    pub fn with_registry(mut self, mut registry: Registry) -> AppState {
        self.metrics = metrics::ApiMetrics::register(&mut registry, Arc::clone(&self.policy));
        self.registry = Arc::new(registry);
        self
    }

    /// Require these tokens on every `/v1` route (none: authentication off).
    pub fn with_tokens(mut self, tokens: Tokens) -> AppState {
        self.tokens = Arc::new(tokens);
        self
    }

    /// Refuse subscriber prefixes shorter than these in grants, bulk and
    /// sync items.
    pub fn with_min_prefix_len(mut self, min: MinPrefixLen) -> AppState {
        self.min_prefix_len = min;
        self
    }

    /// Answer `408` when a request body takes longer than this to arrive
    /// (default [`BODY_TIMEOUT`]; tests shorten it).
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> AppState {
        self.body_timeout = timeout;
        self
    }

    /// Everything the configuration sets: tokens and prefix limits.
    pub fn with_options(self, options: impl Into<ApiOptions>) -> AppState {
        let options = options.into();
        self.with_tokens(options.tokens).with_min_prefix_len(options.min_prefix_len)
    }
}

/// A method a route answers (`GET` also answers `HEAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    /// The method's name, as in HTTP.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Delete => "DELETE",
        }
    }

    /// The method, as in HTTP.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Delete => Method::DELETE,
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One method on one path, with its handler.
pub struct Route {
    pub verb: Verb,
    /// The path template, as axum and OpenAPI write it (`/v1/exemptions/{id}`).
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(verb: Verb, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Route { verb, path, handler: on(verb.filter(), handler) }
}

/// Every route the API serves: the one list. [`app`] builds the router from
/// it, and the OpenAPI test checks that the document describes each one.
pub fn routes() -> Vec<Route> {
    // Only the sync and the bulk create take big bodies: the route's own
    // limit replaces the router-wide one for them.
    let big = |mut r: Route, limit: usize| {
        r.handler = r
            .handler
            .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(limit))
            .layer(Extension(extract::BodyLimit(limit)));
        r
    };
    vec![
        route(Verb::Get, "/v1/exemptions", exemptions::list),
        route(Verb::Post, "/v1/exemptions", exemptions::create),
        big(route(Verb::Put, "/v1/exemptions", sync::apply), SYNC_MAX_BODY_BYTES),
        big(route(Verb::Post, "/v1/exemptions/bulk", bulk::create), bulk::BULK_MAX_BODY_BYTES),
        route(Verb::Get, "/v1/exemptions/{id}", exemptions::show),
        route(Verb::Delete, "/v1/exemptions/{id}", exemptions::revoke),
        route(Verb::Get, "/v1/audit", audit::list),
        route(Verb::Get, "/v1/lookup", lookup::lookup),
        route(Verb::Get, "/v1/switches", switches::list),
        route(Verb::Get, "/v1/openapi.json", openapi::document),
        route(Verb::Get, "/healthz", switches::health),
        route(Verb::Get, "/metrics", metrics::scrape),
    ]
}

/// Every route, the body limits, JSON `404`/`405` fallbacks, request ids,
/// authentication, request metrics and a tracing span per request.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for r in routes() {
        // A second method on a path merges into the first's method router.
        router = router.route(r.path, r.handler);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(extract::BodyTimeout(state.body_timeout)))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(auth::request_id))
        .layer(middleware::from_fn(trace))
        // Outermost: counts refusals by the layers above too. `Router::layer`
        // wraps each route, so the matched path is known here.
        .layer(middleware::from_fn_with_state(Arc::clone(&state.metrics), metrics::record))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// One span per request (method, path, request id, caller), and one line
/// when it is answered: at info for writes, at debug for reads (`GET` and
/// `HEAD`; monitoring polls `/v1/switches` and `/healthz` all day).
/// The domain events are logged by the [`Writer`], with the request id
/// and caller as fields, since the handler may be gone by then.
async fn trace(req: Request, next: Next) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let span = info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = field::Empty,
        caller = field::Empty
    );
    async move {
        let start = Instant::now();
        let res = next.run(req).await;
        let (status, elapsed_ms) = (res.status().as_u16(), start.elapsed().as_millis() as u64);
        if read {
            debug!(status, elapsed_ms, "answered");
        } else {
            info!(status, elapsed_ms, "answered");
        }
        res
    }
    .instrument(span)
    .await
}
