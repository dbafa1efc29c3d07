//! Exit codes for what a real port25d cannot be made to do on demand: not
//! listening, hanging, failing with 5xx, answering 401/403 (also covered
//! against a real port25d in `auth.rs` when tokens are configured), and
//! usage errors that never reach a server.

mod support;

use std::time::{Duration, Instant};

use support::{canned, closed_port, ctl_at};

#[test]
fn connection_refused_exits_5() {
    let addr = closed_port();
    let r = ctl_at(&format!("http://{addr}"), &["exemptions", "list"]).expect_code(5);
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
}

#[test]
fn no_reply_within_timeout_exits_5() {
    let (addr, server) = canned(None);
    let start = Instant::now();
    let r = ctl_at(&format!("http://{addr}"), &["--timeout", "1", "switches"]).expect_code(5);
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    assert!(r.stderr.contains("no answer within 1 s"), "{}", r.stderr);
    server.join().unwrap();
}

#[test]
fn server_error_exits_6_with_message_and_request_id() {
    let (addr, server) = canned(Some(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\nx-request-id: req-77\r\n\
         content-length: 26\r\nconnection: close\r\n\r\n{\"error\":\"internal error\"}",
    ));
    let r = ctl_at(&format!("http://{addr}"), &["exemptions", "show", "1"]).expect_code(6);
    assert!(r.stderr.contains("500 Internal Server Error: internal error"), "{}", r.stderr);
    assert!(r.stderr.contains("[request id: req-77]"), "{}", r.stderr);
    assert!(server.join().unwrap().starts_with("GET /v1/exemptions/1 HTTP/1.1\r\n"));
}

#[test]
fn a_reply_that_is_not_http_exits_6() {
    let (addr, server) = canned(Some("SSH-2.0-OpenSSH_9.2\r\n\r\n"));
    let r = ctl_at(&format!("http://{addr}"), &["switches"]).expect_code(6);
    assert!(r.stderr.contains("not an HTTP reply"), "{}", r.stderr);
    server.join().unwrap();
}

#[test]
fn unauthorized_exits_3_and_the_token_is_sent_as_bearer() {
    let (addr, server) = canned(Some(
        "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 28\r\n\r\n\
         {\"error\":\"unknown token xx\"}",
    ));
    let mut c = support::ctl_command();
    c.env("PORT25_TOKEN", "s3cret-from-env").args(["--url", &format!("http://{addr}"), "switches"]);
    let r = support::run(c).expect_code(3);
    assert!(r.stderr.contains("401 Unauthorized: unknown token xx"), "{}", r.stderr);
    let request = server.join().unwrap();
    assert!(request.contains("\r\nAuthorization: Bearer s3cret-from-env\r\n"), "{request}");
}

#[test]
fn forbidden_exits_3_and_the_flag_beats_the_environment() {
    let (addr, server) = canned(Some(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 34\r\n\r\n\
         {\"error\":\"token 'ro' is read-only\"}",
    ));
    let mut c = support::ctl_command();
    c.env("PORT25_TOKEN", "from-env").args([
        "--url",
        &format!("http://{addr}"),
        "--token",
        "from-flag",
        "exemptions",
        "rm",
        "3",
    ]);
    let r = support::run(c).expect_code(3);
    assert!(r.stderr.contains("403 Forbidden"), "{}", r.stderr);
    let request = server.join().unwrap();
    assert!(request.starts_with("DELETE /v1/exemptions/3 "), "{request}");
    assert!(request.contains("Authorization: Bearer from-flag\r\n"), "{request}");
}

#[test]
fn request_id_is_sent_and_newlines_in_headers_are_refused() {
    let (addr, server) = canned(Some("HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"switches\":[]}"));
    let url = format!("http://{addr}");
    ctl_at(&url, &["--request-id", "crm-42", "switches"]).expect_code(0);
    let request = server.join().unwrap();
    assert!(request.contains("\r\nX-Request-Id: crm-42\r\n"), "{request}");
    // Would reach a (closed) server only if the check were missing: exit 5.
    let closed = format!("http://{}", closed_port());
    ctl_at(&closed, &["--token", "a\r\nX-Evil: 1", "switches"]).expect_code(1);
    ctl_at(&closed, &["--request-id", "a\nb", "switches"]).expect_code(1);
}

#[test]
fn usage_errors_exit_1_without_contacting_a_server() {
    // Every one of these would exit 5 if it tried the (closed) URL.
    let url = format!("http://{}", closed_port());
    for args in [
        &["exemptions", "show", "seven"][..],
        &["exemptions", "add", "192.0.2.1/32", "--ttl", "60", "--expires", "2030-01-01T00:00:00Z"],
        &["exemptions", "frobnicate"],
        &["token", "new", "x", "--role", "admin"],
        &["--timeout", "0", "switches"],
    ] {
        let r = ctl_at(&url, args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
    }
    let r = ctl_at("https://127.0.0.1:8443", &["switches"]).expect_code(1);
    assert!(r.stderr.contains("plain http://"), "{}", r.stderr);
}

#[test]
fn help_documents_the_exit_codes() {
    let r = ctl_at("http://127.0.0.1:1", &["--help"]).expect_code(0);
    for line in [
        "0  done",
        "2  not found (404)",
        "3  not allowed (401/403)",
        "4  conflict (409)",
        "5  port25d unreachable",
        "6  port25d failed (5xx)",
    ] {
        assert!(r.stdout.contains(line), "--help lacks {line:?}:\n{}", r.stdout);
    }
    let r = ctl_at("http://127.0.0.1:1", &["exemptions", "add", "--help"]).expect_code(0);
    assert!(r.stdout.contains("--ttl <SECS>") && r.stdout.contains("--expires <RFC3339>"), "{}", r.stdout);
}
