//! The OpenAPI document stays true: every route of the one route table is
//! in it with its method, every error a route is seen answering with is
//! documented with the error body, and the mirror schemas have exactly the
//! fields of the real wire types.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{bearer, harness, harness_with_tokens, json_request, Harness, TOKENS};
use port25_api::{routes, Verb};
use serde_json::Value;
use tower::ServiceExt;

async fn document(h: &Harness) -> Value {
    let r = h.get("/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.json["openapi"].as_str().unwrap().starts_with("3."), "{}", r.json["openapi"]);
    r.json
}

fn op<'a>(doc: &'a Value, verb: Verb, path: &str) -> &'a Value {
    let op = &doc["paths"][path][verb.as_str().to_ascii_lowercase()];
    assert!(op.is_object(), "{} {path} is not in the OpenAPI document", verb.as_str());
    op
}

const ERROR_REF: &str = "#/components/schemas/ErrorBody";

fn documents_error(op: &Value, status: u16) -> bool {
    op["responses"][status.to_string()]["content"]["application/json"]["schema"]["$ref"] == ERROR_REF
}

#[tokio::test]
async fn every_route_and_only_those_is_documented() {
    let doc = document(&harness()).await;
    let table: BTreeSet<(String, String)> =
        routes().iter().map(|r| (r.path.to_owned(), r.verb.as_str().to_ascii_lowercase())).collect();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object().unwrap().keys().filter(|k| k.as_str() != "parameters").map(|m| (path.clone(), m.clone()))
        })
        .collect();
    assert_eq!(table, documented, "the route table and the OpenAPI document differ");
    assert_eq!(doc["components"]["schemas"]["ErrorBody"]["required"], serde_json::json!(["error"]));
}

/// What each route must document, from what it does: `400` for unknown
/// query parameters everywhere; authentication on `/v1` and `/metrics`; `403` on writes; body checks on routes with a
/// body; id checks on `{id}`; query checks where a query is parsed;
/// `409` where a single grant can conflict; `500` wherever the store or an
/// encoder is involved.
fn required_errors(verb: Verb, path: &str) -> Vec<u16> {
    // Every route refuses query parameters it does not take.
    let mut v = vec![400];
    if path == "/healthz" {
        return v;
    }
    v.push(401);
    if path != "/v1/openapi.json" {
        v.push(500);
    }
    if verb != Verb::Get {
        v.extend([403, 400]);
    }
    if matches!(verb, Verb::Post | Verb::Put) {
        v.extend([408, 413, 415]);
    }
    if path.contains("{id}") {
        v.extend([400, 404]);
    }
    if matches!(path, "/v1/exemptions" | "/v1/audit" | "/v1/lookup") {
        v.push(400);
    }
    if verb == Verb::Post && path == "/v1/exemptions" {
        v.push(409);
    }
    v
}

#[tokio::test]
async fn every_error_status_is_documented_with_the_error_body() {
    let doc = document(&harness()).await;
    for r in routes() {
        let op = op(&doc, r.verb, r.path);
        for status in required_errors(r.verb, r.path) {
            assert!(documents_error(op, status), "{} {} lacks {status} with ErrorBody", r.verb.as_str(), r.path);
        }
        // And no error response without the error body.
        for (status, resp) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(resp["content"]["application/json"]["schema"]["$ref"], ERROR_REF, "{} {}", r.path, status);
            }
        }
    }
}

/// Provoke errors on every route and check each status seen is documented
/// for that route: the document cannot fall behind a handler.
#[tokio::test]
async fn errors_seen_on_every_route_are_documented() {
    let doc = document(&harness()).await;
    let h = harness_with_tokens();
    let (write, read) = (TOKENS[0].2, TOKENS[1].2);
    // Something to conflict with and to find.
    let r = h.send(bearer(json_request(Method::POST, "/v1/exemptions", r#"{"subscriber":"192.0.2.1"}"#), write)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.json["id"].as_u64().unwrap();
    let huge = format!(r#"{{"note":"{}"}}"#, "x".repeat(port25_api::bulk::BULK_MAX_BODY_BYTES + 1));
    for r in routes() {
        let op = op(&doc, r.verb, r.path);
        let paths =
            [r.path.replace("{id}", &id.to_string()), r.path.replace("{id}", "999999"), r.path.replace("{id}", "x")];
        let mut seen = BTreeSet::new();
        for path in &paths {
            let with = |uri: &str, body: &str, ctype: &str, token: Option<&str>| {
                let mut req = Request::builder().method(r.verb.method()).uri(uri).header(header::CONTENT_TYPE, ctype);
                if let Some(t) = token {
                    req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
                }
                req.body(Body::from(body.to_owned())).unwrap()
            };
            let bodies = [
                r#"{"subscriber":"192.0.2.1"}"#.to_owned(),
                r#"{"exemptions":[]}"#.to_owned(),
                "{".to_owned(),
                r#"{"subscriber":"nope"}"#.to_owned(),
            ];
            let mut reqs = vec![
                with(path, &bodies[0], "application/json", None),
                with(path, &bodies[0], "application/json", Some("wrong")),
                with(path, &bodies[0], "application/json", Some(read)),
                with(path, &bodies[0], "text/plain", Some(write)),
                with(&format!("{path}?zzz=1"), &bodies[1], "application/json", Some(write)),
                with(&format!("{path}?wait=never"), &bodies[1], "application/json", Some(write)),
            ];
            for b in &bodies {
                reqs.push(with(path, b, "application/json", Some(write)));
            }
            if r.verb != Verb::Get {
                reqs.push(with(path, &huge, "application/json", Some(write)));
            }
            for req in reqs {
                // Not `h.send`: `/metrics` answers text, not JSON.
                let res = h.app.clone().oneshot(req).await.unwrap();
                seen.insert(res.status().as_u16());
            }
        }
        for status in seen.iter().filter(|s| **s >= 400) {
            assert!(
                documents_error(op, *status),
                "{} {} answered {status}, which its OpenAPI entry does not document (seen: {seen:?})",
                r.verb.as_str(),
                r.path
            );
        }
    }
}

fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"].as_object().unwrap().keys().cloned().collect()
}

/// The fields serde accepts, from its own "unknown field" message.
async fn accepted_fields(h: &Harness, method: Method, uri: &str, body: &str) -> BTreeSet<String> {
    let r = h.send(json_request(method, uri, body)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    expected_fields(r.json["error"].as_str().unwrap())
}

fn expected_fields(msg: &str) -> BTreeSet<String> {
    let expected = msg.split_once("expected one of ").unwrap_or_else(|| panic!("{msg}")).1;
    // "`a`, `b`, `c` at line 1 column 6": the names between backticks.
    expected.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[tokio::test]
async fn mirror_schemas_have_the_fields_of_the_real_types() {
    let h = harness();
    let doc = document(&h).await;
    let full = r#"{"subscriber":"203.0.113.0/24","note":"n","switches":["1"],"ttl_seconds":60}"#;
    let stored = h.grant(full).await.json;
    let mut sent: BTreeSet<String> = stored.as_object().unwrap().keys().cloned().collect();
    sent.insert("external_id".into()); // only on records from a sync
    assert_eq!(properties(&doc, "Exemption"), sent);

    let grant = accepted_fields(&h, Method::POST, "/v1/exemptions", r#"{"zzz":1}"#).await;
    assert_eq!(properties(&doc, "GrantRequest"), grant);
    // A bulk create rejects an item on its own, in `rejected`.
    let r = h.send(json_request(Method::POST, "/v1/exemptions/bulk", r#"{"exemptions":[{"zzz":1}]}"#)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(expected_fields(r.json["rejected"][0]["error"].as_str().unwrap()), grant);
    let item = accepted_fields(&h, Method::PUT, "/v1/exemptions", r#"{"exemptions":[{"zzz":1}]}"#).await;
    assert_eq!(properties(&doc, "SyncItem"), item);
}
