//! Nothing acknowledged is lost: port25d (the real binary) is killed with
//! SIGKILL while clients write, and every grant or revoke it acknowledged
//! is still there after a restart.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{http, wait_for};

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn spawn(data: &std::path::Path, api: SocketAddr) -> Child {
    let of = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_port25d"))
        .args([
            "--openflow-listen",
            &of.to_string(),
            "--api-listen",
            &api.to_string(),
            "--data-dir",
            &data.display().to_string(),
            "--log",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start port25d");
    wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect_timeout(&api, Duration::from_millis(100)).ok().map(|_| ())
    })
    .expect("port25d API did not come up");
    child
}

/// One raw request that tolerates the server dying mid-way: `None` when
/// there was no complete answer (then the write may or may not have
/// happened, and the test assumes nothing about it).
fn try_http(api: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Option<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&api, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text.split(' ').nth(1)?.parse().ok()?;
    let (_, b) = text.split_once("\r\n\r\n")?;
    let json = if b.trim().is_empty() { serde_json::Value::Null } else { serde_json::from_str(b).ok()? };
    Some((status, json))
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let api = free_port();
    let mut child = spawn(data.path(), api);

    // Some exemptions to revoke during the run.
    let mut to_revoke = Vec::new();
    for i in 0..20 {
        let (st, v) = http(api, "POST", "/v1/exemptions", Some(&format!("{{\"subscriber\":\"203.0.113.{i}/32\"}}")));
        assert_eq!(st, 201, "{v}");
        to_revoke.push(v["id"].as_u64().unwrap());
    }

    let granted = Arc::new(Mutex::new(Vec::<String>::new()));
    let revoked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4u32 {
        let granted = granted.clone();
        let stop = stop.clone();
        clients.push(std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 2000 {
                let sub = format!("198.51.{}.{}/32", c * 50 + n / 250, n % 250 + 1);
                n += 1;
                if let Some((201, _)) =
                    try_http(api, "POST", "/v1/exemptions", Some(&format!("{{\"subscriber\":\"{sub}\"}}")))
                {
                    granted.lock().unwrap().push(sub);
                }
            }
        }));
    }
    {
        let revoked = revoked.clone();
        let stop = stop.clone();
        clients.push(std::thread::spawn(move || {
            for id in to_revoke {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some((204, _)) = try_http(api, "DELETE", &format!("/v1/exemptions/{id}"), None) {
                    revoked.lock().unwrap().push(id);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    // Let writes flow, then kill -9 in the middle of them.
    wait_for(Duration::from_secs(20), || (granted.lock().unwrap().len() >= 50).then_some(()))
        .expect("no writes acknowledged");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let granted = granted.lock().unwrap().clone();
    let revoked = revoked.lock().unwrap().clone();
    assert!(granted.len() >= 50);

    let mut child = spawn(data.path(), api);
    let (st, v) = http(api, "GET", "/v1/exemptions", None);
    assert_eq!(st, 200);
    let stored: std::collections::BTreeSet<String> =
        v["exemptions"].as_array().unwrap().iter().map(|e| e["subscriber"].as_str().unwrap().to_owned()).collect();
    let ids: std::collections::BTreeSet<u64> =
        v["exemptions"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    let lost: Vec<&String> = granted.iter().filter(|s| !stored.contains(*s)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged grants lost after SIGKILL, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let back: Vec<&u64> = revoked.iter().filter(|id| ids.contains(*id)).collect();
    assert!(back.is_empty(), "acknowledged revocations came back after SIGKILL: {back:?}");
    println!("{} grants and {} revocations acknowledged before SIGKILL; all kept", granted.len(), revoked.len());
    child.kill().unwrap();
    child.wait().unwrap();
}
