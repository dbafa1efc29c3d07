//! The API's HTTP server (port25::http) over real loopback sockets: slow
//! and idle clients are cut off by the header timeout, the connection cap
//! holds, requests carry the peer address, and shutdown drains.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use port25::http::{serve, HttpLimits};
use tokio_util::sync::CancellationToken;

fn app() -> Router {
    Router::new().route("/peer", get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }))
}

/// Serve `app()` on a runtime of its own; returns the address and the token.
fn start(limits: HttpLimits) -> (SocketAddr, CancellationToken, std::thread::JoinHandle<()>) {
    let token = CancellationToken::new();
    let t = token.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            serve(l, app(), t, limits).await;
        });
    });
    (rx.recv().unwrap(), token, h)
}

/// Read until the peer closes (or `limit` passes); the bytes and when.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Duration>) {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (got, Some(start.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (got, Some(start.elapsed())),
        }
    }
    (got, None)
}

const FAST: HttpLimits =
    HttpLimits { header_timeout: Duration::from_millis(400), max_connections: 4, grace: Duration::from_secs(2) };

#[test]
fn a_trickled_request_head_and_an_idle_keepalive_are_closed_by_the_header_timeout() {
    let (addr, token, h) = start(FAST);
    // Half a request head, then nothing.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n").unwrap();
    let (_, closed) = read_to_close(&mut slow, Duration::from_secs(5));
    assert!(closed.is_some(), "a half-sent request head was held open");
    // A whole request is answered with the peer's address, then the idle
    // keep-alive connection is closed too.
    let mut ok = TcpStream::connect(addr).unwrap();
    let me = ok.local_addr().unwrap();
    ok.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (got, closed) = read_to_close(&mut ok, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with(&me.to_string()), "no peer address in the request: {text}");
    assert!(closed.is_some(), "an idle keep-alive connection was held open");
    token.cancel();
    h.join().unwrap();
}

#[test]
fn connections_over_the_cap_are_closed_and_the_others_still_served() {
    let limits = HttpLimits { header_timeout: Duration::from_secs(30), ..FAST };
    let (addr, token, h) = start(limits);
    let held: Vec<TcpStream> = (0..limits.max_connections).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(addr).unwrap();
    let _ = extra.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n");
    let (got, closed) = read_to_close(&mut extra, Duration::from_secs(3));
    assert!(closed.is_some() && got.is_empty(), "a connection over the cap was served");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = TcpStream::connect(addr).unwrap();
    again.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let (got, _) = read_to_close(&mut again, Duration::from_secs(3));
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "slots were not given back");
    token.cancel();
    h.join().unwrap();
}

#[test]
fn shutdown_stops_accepting_and_returns() {
    let (addr, token, h) = start(FAST);
    let idle = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    token.cancel();
    h.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown waited past the grace period");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(), "still accepting");
    drop(idle);
}
