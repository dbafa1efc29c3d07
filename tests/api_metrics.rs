//! `GET /metrics` through port25d itself: the daemon's registry (the
//! OpenFlow side, with a real OVS bridge connected) and the API's metrics
//! in one scrape, over real HTTP.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{Bridge, Daemon};

/// GET a path; returns the status, the content type and the body text.
fn get_text(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim()))
        .unwrap_or_default()
        .to_owned();
    (status, ctype, body.to_owned())
}

#[test]
fn one_scrape_shows_the_api_and_the_switches() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    d.wait_in_sync(&br.dpid_hex());

    d.grant("198.51.100.9/32");
    let (st, v) = d.http("POST", "/v1/exemptions", Some(r#"{"subscriber":"198.51.100.9/33"}"#));
    assert_eq!(st, 400, "{v}");
    d.wait_in_sync(&br.dpid_hex());

    let (st, ctype, body) = get_text(d.bound.api, "/metrics");
    assert_eq!(st, 200, "{body}");
    assert_eq!(ctype, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let dpid = br.dpid_hex();
    for line in [
        r#"port25_api_requests_total{route="/v1/exemptions",method="POST",status="201"} 1"#.to_owned(),
        r#"port25_api_requests_total{route="/v1/exemptions",method="POST",status="400"} 1"#.to_owned(),
        "port25_exemptions 1".to_owned(),
        r#"port25_switches{state="in_sync"} 1"#.to_owned(),
        format!(r#"port25_switch_in_sync{{dpid="{dpid}"}} 1"#),
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in:\n{body}");
    }
    // Rounds ran, and the drop flows' counters are exported per rule.
    assert!(body.lines().any(|l| l.starts_with("port25_reconcile_rounds_total{")), "{body}");
    assert!(body.contains("# TYPE port25_blocked_packets counter"), "{body}");
    d.stop();
}
