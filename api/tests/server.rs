//! Read-only views, fallbacks, durability through a real sled store, and
//! the app behind a real socket.

mod common;

use std::future::IntoFuture;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::{harness, harness_with};
use port25_controller::{SwitchState, SwitchStatus};
use port25_rules::{Dpid, ExemptionId, ExemptionStore, SledStore};
use serde_json::{json, Value};
use time::macros::datetime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn switch(session: u64, dpid: u64) -> SwitchStatus {
    SwitchStatus {
        session,
        dpid: Some(Dpid(dpid)),
        openflow_version: Some("1.3".into()),
        peer: "192.0.2.50:41234".parse().unwrap(),
        connected_since: datetime!(2026-01-02 03:04:05 UTC),
        state: SwitchState::InSync,
        flow_count: 7,
        in_sync: true,
        policy_version: 3,
        ipv6_enforced: true,
        fragments_enforced: true,
        last_error: None,
        bundles: None,
        blocked: Vec::new(),
        blocked_at: None,
        last_round: None,
        last_error_at: None,
        overridden_by: Vec::new(),
    }
}

#[tokio::test]
async fn switches_lists_the_fleet() {
    let h = harness();
    let empty = h.get("/v1/switches").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json, json!({"switches": []}));

    h.fleet.put(switch(9, 2));
    h.fleet.put(switch(4, 1));
    let reply = h.get("/v1/switches").await;
    assert_eq!(reply.status, StatusCode::OK);
    let list = reply.json["switches"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0],
        json!({
            "session": 4,
            "dpid": "0000000000000001",
            "openflow_version": "1.3",
            "peer": "192.0.2.50:41234",
            "connected_since": "2026-01-02T03:04:05Z",
            "state": "in_sync",
            "flow_count": 7,
            "in_sync": true,
            "policy_version": 3,
            "ipv6_enforced": true,
            "fragments_enforced": true,
            "bundles": null,
            "blocked": [],
            "blocked_at": null,
            "last_round": null,
            "last_error": null,
            "last_error_at": null,
            "overridden_by": [],
        })
    );
    assert_eq!(list[1]["dpid"], "0000000000000002");
}

#[tokio::test]
async fn healthz_reports_policy_version_and_counts() {
    let h = harness();
    assert_eq!(
        h.get("/healthz").await.json,
        json!({"status": "ok", "policy_version": 1, "exemptions": 0, "switches": 0})
    );
    h.fleet.put(switch(1, 1));
    assert_eq!(h.grant(r#"{"subscriber":"203.0.113.7/32"}"#).await.status, StatusCode::CREATED);
    let reply = h.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json, json!({"status": "ok", "policy_version": 2, "exemptions": 1, "switches": 1}));
}

#[tokio::test]
async fn unknown_route_is_json_404() {
    let h = harness();
    for uri in ["/", "/v1/exemption", "/v2/exemptions", "/v1/exemptions/1/extra"] {
        let reply = h.get(uri).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(reply.json["error"].is_string(), "{uri}: {}", reply.json);
    }
}

#[tokio::test]
async fn wrong_method_is_json_405() {
    let h = harness();
    for (method, uri) in
        [("PATCH", "/v1/exemptions"), ("DELETE", "/v1/exemptions"), ("POST", "/v1/exemptions/1"), ("POST", "/healthz")]
    {
        let before = h.before();
        let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        let reply = h.send(req).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(reply.json["error"].is_string(), "{method} {uri}: {}", reply.json);
        let allow = reply.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(allow.contains("GET"), "{method} {uri}: Allow {allow:?}");
        assert_eq!(h.before(), before);
    }
}

#[tokio::test]
async fn granted_exemption_survives_reopening_the_sled_store() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store: Arc<dyn ExemptionStore> = Arc::new(SledStore::open(dir.path()).unwrap());
        let h = harness_with(store);
        let reply = h.grant(r#"{"subscriber":"203.0.113.0/24","note":"ticket 4411","switches":["1"]}"#).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        reply.json["id"].as_u64().unwrap()
        // The app and every handle on the store drop here, releasing sled's lock.
    };

    let reopened: Arc<dyn ExemptionStore> = Arc::new(reopen(dir.path()).await);
    let records = reopened.list().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, ExemptionId(id));
    assert_eq!(records[0].subscriber.to_string(), "203.0.113.0/24");
    assert_eq!(records[0].note.as_deref(), Some("ticket 4411"));

    // And the API over the reopened store serves it and publishes it.
    let h = harness_with(reopened);
    assert!(h.policy.borrow().exemptions.contains_key(&ExemptionId(id)));
    let reply = h.get(&format!("/v1/exemptions/{id}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json["switches"], json!(["0000000000000001"]));
    // Revoking is durable too.
    assert_eq!(h.delete(&format!("/v1/exemptions/{id}")).await.status, StatusCode::NO_CONTENT);
    drop(h);
    assert!(reopen(dir.path()).await.list().unwrap().is_empty());
}

/// Open a sled store that was just dropped. sled 0.34 releases its file
/// lock from a background thread after the last `Db` handle drops, so an
/// immediate reopen can fail with "could not acquire lock" for a moment
/// (spacejam/sled#1234, #1289). Retry that one error, briefly.
async fn reopen(dir: &std::path::Path) -> SledStore {
    let mut attempts = 0;
    loop {
        match SledStore::open(dir) {
            Ok(store) => return store,
            Err(e) if attempts < 50 && e.to_string().contains("could not acquire lock") => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen {}: {e}", dir.display()),
        }
    }
}

/// Send one raw HTTP/1.1 request and read the whole answer (the request
/// asks the server to close the connection).
async fn raw_http(addr: std::net::SocketAddr, request: String) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = if body.is_empty() { Value::Null } else { serde_json::from_str(body).expect("JSON body") };
    (status, head.to_owned(), json)
}

#[tokio::test]
async fn serves_real_http_over_loopback() {
    let h = harness();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, h.app.clone()).into_future());

    let body = r#"{"subscriber":"203.0.113.7","note":"ticket 4411"}"#;
    let request = format!(
        "POST /v1/exemptions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, head, json) = raw_http(addr, request).await;
    assert_eq!(status, 201, "{head}\n{json}");
    let id = json["id"].as_u64().unwrap();
    let head_lower = head.to_ascii_lowercase();
    assert!(head_lower.contains(&format!("\r\nlocation: /v1/exemptions/{id}\r\n")), "{head}");
    assert!(head_lower.contains(&format!("\r\n{}: application/json", header::CONTENT_TYPE)), "{head}");
    assert_eq!(json["subscriber"], "203.0.113.7/32");
    assert_eq!(h.version(), 2);

    let (status, _, json) =
        raw_http(addr, format!("GET /v1/exemptions HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")).await;
    assert_eq!(status, 200);
    assert_eq!(json["exemptions"][0]["id"], id);

    // A bad body over the wire gets the JSON error too.
    let body = r#"{"subscriber":"10.0.0.300/32"}"#;
    let request = format!(
        "POST /v1/exemptions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, _, json) = raw_http(addr, request).await;
    assert_eq!(status, 400);
    assert_eq!(json["field"], "subscriber");
    assert_eq!(h.version(), 2);

    server.abort();
}

/// Serve `app` on loopback; the address and the server task.
async fn serve(app: axum::Router) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, server)
}

/// Send `head` and `body`, keep the connection open, and read the answer
/// until the server closes or `within` passes (then `None`).
async fn answer_within(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
    within: std::time::Duration,
) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&buf);
            if let Some((h, b)) = text.split_once("\r\n\r\n") {
                let len = h
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                    .and_then(|n| n.trim().parse::<usize>().ok());
                if len.is_some_and(|n| b.len() >= n) {
                    break;
                }
            }
        }
    })
    .await;
    read.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (h, b) = text.split_once("\r\n\r\n")?;
    Some((h.split(' ').nth(1)?.parse().ok()?, serde_json::from_str(b).unwrap_or(Value::Null)))
}

#[tokio::test]
async fn an_announced_length_over_the_limit_is_refused_at_once() {
    let h = harness();
    let (addr, server) = serve(h.app.clone()).await;
    let body = br#"{"subscriber":"203.0.113.7"}"#;
    let head = format!(
        "POST /v1/exemptions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n"
    );
    let answer = answer_within(addr, &head, body, std::time::Duration::from_secs(5)).await;
    let (status, json) = answer.expect("no answer within 5 s: the server waited for the announced body");
    assert_eq!(status, 413, "{json}");
    assert!(json["error"].is_string(), "{json}");
    assert!(h.stored().is_empty());
    server.abort();
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_a_json_408() {
    let store: Arc<dyn ExemptionStore> = Arc::new(port25_rules::MemStore::new());
    let (tx, _rx) = tokio::sync::watch::channel(Arc::new(port25_rules::Snapshot::from_list(Vec::new())));
    let state = port25_api::AppState::new(Arc::clone(&store), Arc::new(tx), port25_controller::Fleet::new())
        .with_body_timeout(std::time::Duration::from_millis(300));
    let (addr, server) = serve(port25_api::app(state)).await;
    // 100 bytes announced, 15 sent, and then nothing.
    let head = format!(
        "POST /v1/exemptions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    );
    let start = std::time::Instant::now();
    let answer = answer_within(addr, &head, br#"{"subscriber":"#, std::time::Duration::from_secs(5)).await;
    let (status, json) = answer.expect("no answer within 5 s: a slow body holds the connection");
    assert_eq!(status, 408, "{json}");
    assert!(json["error"].as_str().unwrap().contains("did not arrive"), "{json}");
    assert!(start.elapsed() >= std::time::Duration::from_millis(300));
    assert!(store.list().unwrap().is_empty());
    server.abort();
}

#[tokio::test]
async fn every_route_refuses_unknown_query_parameters() {
    let h = harness();
    let id = h.grant(r#"{"subscriber":"203.0.113.7"}"#).await.json["id"].as_u64().unwrap();
    for (uri, field) in [
        (format!("/v1/exemptions/{id}?verbose=1"), "verbose"),
        ("/v1/switches?dpid=0000000000000001".to_owned(), "dpid"),
        ("/healthz?full".to_owned(), "full"),
        ("/v1/openapi.json?format=yaml".to_owned(), "format"),
        ("/metrics?name[]=port25_exemptions".to_owned(), "name[]"),
        ("/v1/exemptions?subscribr=203.0.113.7".to_owned(), "subscribr"),
        ("/v1/lookup?ip=203.0.113.7&verbose=1".to_owned(), "verbose"),
        ("/v1/audit?sinse=2026-01-01T00:00:00Z".to_owned(), "sinse"),
    ] {
        let r = h.get(&uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.json);
        assert_eq!(r.json["field"], field, "{uri}: {}", r.json);
    }
    // Without one, or with an empty query string, they answer as before.
    for uri in
        [format!("/v1/exemptions/{id}"), "/v1/switches?".to_owned(), "/healthz".to_owned(), "/metrics".to_owned()]
    {
        let res =
            tower::ServiceExt::oneshot(h.app.clone(), Request::get(&uri).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
    }
}
