//! `GET /metrics`: the content type, request counters by route template
//! and status, the exemption gauge, the OpenFlow side's metrics from the
//! daemon's registry, and authentication.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use common::{bearer, harness_with_tokens, json_request, TOKENS};
use http_body_util::BodyExt;
use port25_api::{app, AppState};
use port25_controller::{Fleet, Metrics};
use port25_rules::{MemStore, Snapshot};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tower::ServiceExt;

/// An app whose registry also holds the OpenFlow side's metrics, as the
/// daemon wires it.
fn daemon_like_app() -> Router {
    let (tx, _rx) = watch::channel(Arc::new(Snapshot::from_list(Vec::new())));
    let fleet = Fleet::new();
    let mut registry = Registry::default();
    Metrics::new().register(&mut registry, fleet.clone());
    app(AppState::new(Arc::new(MemStore::new()), Arc::new(tx), fleet).with_registry(registry))
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let ctype = res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, ctype, body)
}

async fn scrape(app: &Router) -> String {
    let (status, ctype, body) = send(app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ctype, port25_api::metrics::CONTENT_TYPE);
    assert_eq!(ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text: {body}");
    body
}

fn has_line(body: &str, line: &str) -> bool {
    body.lines().any(|l| l == line)
}

#[tokio::test]
async fn counts_requests_by_route_template_and_status() {
    let app = daemon_like_app();
    let (st, _, body) =
        send(&app, json_request(Method::POST, "/v1/exemptions", r#"{"subscriber":"203.0.113.7/32"}"#)).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, _, _) = send(&app, json_request(Method::POST, "/v1/exemptions", r#"{"subscriber":"nope"}"#)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, _) = send(&app, Request::get("/v1/exemptions/1").body(Body::empty()).unwrap()).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = send(&app, Request::get("/v1/exemptions/999").body(Body::empty()).unwrap()).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = send(&app, Request::get("/no/such/path/123").body(Body::empty()).unwrap()).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let body = scrape(&app).await;
    for line in [
        r#"port25_api_requests_total{route="/v1/exemptions",method="POST",status="201"} 1"#,
        r#"port25_api_requests_total{route="/v1/exemptions",method="POST",status="400"} 1"#,
        // The template, never the id.
        r#"port25_api_requests_total{route="/v1/exemptions/{id}",method="GET",status="200"} 1"#,
        r#"port25_api_requests_total{route="/v1/exemptions/{id}",method="GET",status="404"} 1"#,
        r#"port25_api_requests_total{route="unmatched",method="GET",status="404"} 1"#,
        r#"port25_api_request_seconds_count{route="/v1/exemptions",method="POST"} 2"#,
        "port25_exemptions 1",
        "port25_policy_version 2",
        // The OpenFlow side, from the daemon's registry.
        r#"port25_switches{state="in_sync"} 0"#,
        "# TYPE port25_switch_flows gauge",
        "# TYPE port25_blocked_packets counter",
    ] {
        assert!(has_line(&body, line), "missing {line:?} in:\n{body}");
    }
    assert!(!body.contains("/v1/exemptions/1\""), "a raw path became a label:\n{body}");
    assert!(!body.contains("/no/such"), "a raw path became a label:\n{body}");

    // The scrape itself is counted by the next one.
    let body = scrape(&app).await;
    assert!(has_line(&body, r#"port25_api_requests_total{route="/metrics",method="GET",status="200"} 1"#), "{body}");
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_label_set() {
    let app = daemon_like_app();
    let req = Request::builder().method("BREW").uri("/v1/exemptions").body(Body::empty()).unwrap();
    let (st, _, _) = send(&app, req).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let body = scrape(&app).await;
    assert!(has_line(&body, r#"port25_api_requests_total{route="/v1/exemptions",method="other",status="405"} 1"#));
    assert!(!body.contains("BREW"));
}

#[tokio::test]
async fn metrics_need_a_token_when_tokens_are_configured() {
    let h = harness_with_tokens();
    let none = h.get("/metrics").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{}", none.json);
    assert!(none.json["error"].is_string());
    let read = TOKENS[1].2;
    let res = h.app.clone().oneshot(bearer(Request::get("/metrics").body(Body::empty()).unwrap(), read)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // /healthz stays open.
    assert_eq!(h.get("/healthz").await.status, StatusCode::OK);
}
