//! Bearer tokens, roles, request ids and the audit context, through the
//! router.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use common::{bearer, harness, harness_with_tokens, json_request, post_json, Harness, TOKENS};
use port25_api::{app, AppState};
use port25_controller::Fleet;
use port25_rules::{AuditQuery, ExemptionStore, MemStore, Snapshot};
use tokio::sync::watch;
use tower::ServiceExt;

const WRITE: &str = TOKENS[0].2;
const READ: &str = TOKENS[1].2;

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

async fn unauthorized(h: &Harness, req: Request<Body>) -> String {
    let before = h.before();
    let reply = h.send(req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.json);
    assert!(reply.headers[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"), "{:?}", reply.headers);
    assert!(reply.headers.contains_key("x-request-id"));
    assert_eq!(h.before(), before);
    reply.json["error"].as_str().expect("JSON error").to_owned()
}

#[tokio::test]
async fn every_v1_route_needs_a_token_when_tokens_are_configured() {
    let h = harness_with_tokens();
    for req in [
        get("/v1/exemptions"),
        get("/v1/exemptions/1"),
        get("/v1/switches"),
        get("/v1/audit"),
        get("/v1/lookup?ip=192.0.2.1"),
        get("/v1/nothing-here"),
        post_json(r#"{"subscriber":"203.0.113.7"}"#),
        json_request(Method::PUT, "/v1/exemptions", r#"{"exemptions":[]}"#),
        Request::delete("/v1/exemptions/1").body(Body::empty()).unwrap(),
    ] {
        let m = unauthorized(&h, req).await;
        assert!(m.contains("Bearer"), "{m}");
    }
    assert!(h.stored().is_empty());
}

#[tokio::test]
async fn unknown_or_malformed_tokens_are_401() {
    let h = harness_with_tokens();
    let m = unauthorized(&h, bearer(post_json(r#"{"subscriber":"203.0.113.7"}"#), "guess")).await;
    assert!(m.contains("unknown"), "{m}");
    assert!(!m.contains("guess"), "the token is echoed: {m}");
    // The digest of a token is not the token.
    let digest = port25_api::auth::sha256_hex(WRITE);
    unauthorized(&h, bearer(post_json(r#"{"subscriber":"203.0.113.7"}"#), &digest)).await;
    let mut req = post_json(r#"{"subscriber":"203.0.113.7"}"#);
    req.headers_mut().insert(header::AUTHORIZATION, format!("Basic {WRITE}").parse().unwrap());
    unauthorized(&h, req).await;
    let mut req = get("/v1/exemptions");
    req.headers_mut().insert(header::AUTHORIZATION, WRITE.parse().unwrap());
    unauthorized(&h, req).await;
}

#[tokio::test]
async fn a_read_token_reads_but_cannot_write() {
    let h = harness_with_tokens();
    for uri in ["/v1/exemptions", "/v1/switches", "/v1/audit", "/v1/lookup?ip=192.0.2.1"] {
        let reply = h.send(bearer(get(uri), READ)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.json);
    }
    let id = h.send(bearer(post_json(r#"{"subscriber":"198.51.100.7"}"#), WRITE)).await.json["id"].clone();
    for req in [
        post_json(r#"{"subscriber":"203.0.113.7"}"#),
        json_request(Method::PUT, "/v1/exemptions", r#"{"exemptions":[]}"#),
        Request::delete(format!("/v1/exemptions/{id}")).body(Body::empty()).unwrap(),
    ] {
        let before = h.before();
        let reply = h.send(bearer(req, READ)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.json);
        let m = reply.json["error"].as_str().unwrap();
        assert!(m.contains("desk") && m.contains("write"), "{m}");
        assert_eq!(h.before(), before, "a refused request changed the store or the policy");
    }
    assert_eq!(h.stored().len(), 1);
}

#[tokio::test]
async fn a_write_token_writes_and_is_named_in_the_audit_trail() {
    let h = harness_with_tokens();
    let reply = h.send(bearer(post_json(r#"{"subscriber":"203.0.113.7"}"#), WRITE)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let trail = h.store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].actor, "crm");
    let rid = reply.headers["x-request-id"].to_str().unwrap();
    assert_eq!(trail[0].request_id.as_deref(), Some(rid));
    // Lower-case scheme is fine too.
    let mut req = get("/v1/exemptions");
    req.headers_mut().insert(header::AUTHORIZATION, format!("bearer {WRITE}").parse().unwrap());
    assert_eq!(h.send(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn healthz_stays_open() {
    let h = harness_with_tokens();
    let reply = h.send(get("/healthz")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.json);
}

#[tokio::test]
async fn without_tokens_writes_are_anonymous() {
    let h = harness();
    assert_eq!(h.grant(r#"{"subscriber":"203.0.113.7"}"#).await.status, StatusCode::CREATED);
    let trail = h.store.audit(&AuditQuery::default()).unwrap();
    assert_eq!(trail[0].actor, "anonymous");
    assert_eq!(trail[0].source, None, "no peer address under oneshot");
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_made_otherwise() {
    let h = harness();
    let mut req = post_json(r#"{"subscriber":"203.0.113.7"}"#);
    req.headers_mut().insert("x-request-id", "crm-4411.a_b".parse().unwrap());
    let reply = h.send(req).await;
    assert_eq!(reply.headers["x-request-id"], "crm-4411.a_b");
    assert_eq!(h.store.audit(&AuditQuery::default()).unwrap()[0].request_id.as_deref(), Some("crm-4411.a_b"));

    for bad in ["has space", "semi;colon", &"x".repeat(65)] {
        let mut req = get("/v1/exemptions");
        req.headers_mut().insert("x-request-id", bad.parse().unwrap());
        let reply = h.send(req).await;
        let got = reply.headers["x-request-id"].to_str().unwrap();
        assert_ne!(got, bad);
        assert!(port25_api::auth::sane_request_id(got), "{got}");
    }
    // Errors carry one too, and two requests never share one.
    let a = h.get("/v1/exemptions/999").await.headers["x-request-id"].clone();
    let b = h.get("/v1/exemptions/999").await.headers["x-request-id"].clone();
    assert_ne!(a, b);
}

#[tokio::test]
async fn the_peer_address_is_recorded() {
    let store: Arc<dyn ExemptionStore> = Arc::new(MemStore::new());
    let (tx, _rx) = watch::channel(Arc::new(Snapshot::from_list(Vec::new())));
    let peer: SocketAddr = "192.0.2.44:51000".parse().unwrap();
    let router = app(AppState::new(Arc::clone(&store), Arc::new(tx), Fleet::new())).layer(MockConnectInfo(peer));
    let res = router.oneshot(post_json(r#"{"subscriber":"203.0.113.7"}"#)).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(store.audit(&AuditQuery::default()).unwrap()[0].source, Some(peer));
}
