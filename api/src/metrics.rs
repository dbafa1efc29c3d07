//! `GET /metrics`: the daemon's Prometheus registry (the OpenFlow side's
//! metrics, registered by the daemon) plus the API's own:
//! - `port25_api_requests_total{route,method,status}`: requests answered,
//!   by matched route template (never the raw path, so ids and probes of
//!   unknown paths cannot grow the label set: those are `route="unmatched"`);
//! - `port25_api_request_seconds{route,method}`: latency histogram;
//! - `port25_exemptions` and `port25_policy_version`: read from the
//!   published snapshot at scrape time.
//!
//! The body is the OpenMetrics text format that prometheus-client writes
//! (it ends in `# EOF`); Prometheus reads it when it is declared as such,
//! so that is the content type: [`CONTENT_TYPE`].

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use port25_rules::Snapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::AppState;

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

/// The API's request metrics. Updates are lock-free.
#[derive(Debug)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    seconds: Family<RouteLabels, Histogram>,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. 30 s: a read answers in well under a millisecond, a bulk
    // write or a `?wait=applied` can take seconds.
    Histogram::new([0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

impl ApiMetrics {
    /// New metrics, registered in `registry`, with a collector reading
    /// the exemption count and policy version from `policy`.
    pub fn register(registry: &mut Registry, policy: Arc<watch::Sender<Arc<Snapshot>>>) -> Arc<ApiMetrics> {
        let m = Arc::new(ApiMetrics {
            requests: Family::default(),
            seconds: Family::new_with_constructor(latency_histogram),
        });
        registry.register(
            "port25_api_requests",
            "REST API requests answered, by route template, method and status",
            m.requests.clone(),
        );
        registry.register(
            "port25_api_request_seconds",
            "REST API latency, from the request arriving to the response headers",
            m.seconds.clone(),
        );
        registry.register_collector(Box::new(PolicyCollector { policy }));
        m
    }
}

/// The method as a label value: one of a fixed set, so a client cannot
/// grow the label set with made-up methods.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware (outermost, so it also counts refusals by the auth and body
/// limit layers): count and time every request by its matched route.
pub(crate) async fn record(State(metrics): State<Arc<ApiMetrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str).to_owned();
    let method = method_label(req.method());
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    metrics.seconds.get_or_create(&RouteLabels { route: route.clone(), method }).observe(start.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&RequestLabels { route, method, status }).inc();
    res
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operators",
    responses(
        (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 400, description = "A query parameter (this route takes none); `field` names it", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn scrape(State(state): State<AppState>, _: crate::extract::NoQuery) -> Result<Response, ApiError> {
    let mut body = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut body, &state.registry)
        .map_err(|e| ApiError::Internal(format!("cannot encode metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

/// Gauges read from the published snapshot on each scrape.
#[derive(Debug)]
struct PolicyCollector {
    policy: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl Collector for PolicyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (version, count) = {
            let snap = self.policy.borrow();
            (snap.version, snap.exemptions.len())
        };
        let g = ConstGauge::new(i64::try_from(count).unwrap_or(i64::MAX));
        let m = encoder.encode_descriptor(
            "port25_exemptions",
            "Exemptions in the published policy",
            None,
            g.metric_type(),
        )?;
        g.encode(m)?;
        let g = ConstGauge::new(i64::try_from(version).unwrap_or(i64::MAX));
        let m = encoder.encode_descriptor(
            "port25_policy_version",
            "Version of the published policy (switches report the version they confirmed)",
            None,
            g.metric_type(),
        )?;
        g.encode(m)
    }
}
