use super::{encode, parse_reply, query, Endpoint, HttpError};

#[test]
fn parses_http_urls_with_and_without_port_and_prefix() {
    let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
    assert_eq!((e.host.as_str(), e.port, e.base.as_str()), ("127.0.0.1", 8080, ""));
    let e = Endpoint::parse("http://ctl.example/port25/").unwrap();
    assert_eq!((e.host.as_str(), e.port, e.base.as_str()), ("ctl.example", 80, "/port25"));
    let e = Endpoint::parse("http://[::1]:9000").unwrap();
    assert_eq!((e.host.as_str(), e.port), ("[::1]", 9000));
    let e = Endpoint::parse("127.0.0.1:8080").unwrap();
    assert_eq!(e.port, 8080);
}

#[test]
fn refuses_https_and_malformed_urls() {
    for url in ["https://127.0.0.1:8080", "http://", "http://:80", "http://h:notaport", "http://u:p@h", "http://h/?x"] {
        assert!(matches!(Endpoint::parse(url), Err(HttpError::BadUrl(_))), "{url} accepted");
    }
}

#[test]
fn reads_content_length_body_and_lowercases_headers() {
    let raw = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nX-Request-Id: abc\r\n\
                Content-Length: 13\r\n\r\n{\"error\":\"x\"}";
    let r = parse_reply(raw).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.reason, "Not Found");
    assert_eq!(r.header("x-request-id"), Some("abc"));
    assert_eq!(r.body, b"{\"error\":\"x\"}");
}

#[test]
fn decodes_chunked_bodies() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\n\r\n";
    assert_eq!(parse_reply(raw).unwrap().body, b"{\"a\":1}");
}

#[test]
fn refuses_truncated_and_non_http_replies() {
    let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}";
    assert!(matches!(parse_reply(cut), Err(HttpError::Protocol(_))));
    let cut_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc";
    assert!(matches!(parse_reply(cut_chunk), Err(HttpError::Protocol(_))));
    assert!(matches!(parse_reply(b"SSH-2.0-OpenSSH\r\n\r\n"), Err(HttpError::Protocol(_))));
    assert!(matches!(parse_reply(b"HTTP/1.1 200 OK\r\n"), Err(HttpError::Protocol(_))));
}

#[test]
fn encodes_query_values() {
    assert_eq!(encode("203.0.113.0/24"), "203.0.113.0%2F24");
    assert_eq!(encode("2001:db8::1"), "2001%3Adb8%3A%3A1");
    assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
    assert_eq!(query(&[("a", None), ("b", Some("1".into())), ("c", Some("x/y".into()))]), "?b=1&c=x%2Fy");
    assert_eq!(query(&[("a", None)]), "");
}
