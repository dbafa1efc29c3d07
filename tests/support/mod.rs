//! Test helpers: a real Open vSwitch bridge per test, port25d in-process,
//! and a tiny blocking HTTP client.
//!
//! Every bridge a test creates has a unique name and is deleted when the
//! guard drops, so tests can run in parallel and beside other runs that
//! share the same OVS. Nothing here touches a bridge it did not create.

#![allow(dead_code)]

pub mod private_ovs;

pub mod fake;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use port25::daemon::{self, Bound, Settings};
use port25_api::Tokens;
use port25_controller::session::SessionConfig;
use serde_json::Value;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e} (install openvswitch-switch: scripts/setup-host.sh does)"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Panics with instructions unless OVS answers.
pub fn ensure_ovs() {
    if let Err(e) = run("ovs-vsctl", &["--timeout=5", "show"]) {
        panic!("Open vSwitch is not running ({e}); run `bash scripts/setup-host.sh` (the README's test command does)");
    }
}

/// A userspace-datapath bridge owned by one test, with two internal ports
/// so `ofproto/trace` has somewhere to forward to.
pub struct Bridge {
    pub name: String,
    pub dpid: u64,
    protocols: String,
}

impl Bridge {
    /// Create a bridge speaking `protocols` (e.g. "OpenFlow13"), fail_mode=secure.
    pub fn new(protocols: &str) -> Bridge {
        ensure_ovs();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id() % 100_000;
        let name = format!("p25t{pid}x{n}");
        let dpid = 0x2500_0000_0000 | (u64::from(pid) << 8) | u64::from(n);
        let dpid_s = format!("{dpid:016x}");
        let pa = format!("{name}a");
        let pb = format!("{name}b");
        run(
            "ovs-vsctl",
            &[
                "--timeout=10",
                "add-br",
                &name,
                "--",
                "set",
                "bridge",
                &name,
                "datapath_type=netdev",
                &format!("protocols={protocols}"),
                "fail_mode=secure",
                &format!("other-config:datapath-id={dpid_s}"),
                // No in-band control: its hidden flows would sit in table 0.
                "other-config:disable-in-band=true",
                // A controller from the start, pointing nowhere: OVS flushes
                // a bridge's flows when it goes from no controller to one,
                // so tests that pre-load flows need one configured already.
                "--",
                "set-controller",
                &name,
                "tcp:127.0.0.1:1",
                "--",
                "add-port",
                &name,
                &pa,
                "--",
                "set",
                "interface",
                &pa,
                "type=internal",
                "--",
                "add-port",
                &name,
                &pb,
                "--",
                "set",
                "interface",
                &pb,
                "type=internal",
            ],
        )
        .unwrap();
        Bridge { name, dpid, protocols: protocols.to_owned() }
    }

    pub fn dpid_hex(&self) -> String {
        format!("{:016x}", self.dpid)
    }

    /// Point the bridge at a controller.
    pub fn attach(&self, of: SocketAddr) {
        run("ovs-vsctl", &["--timeout=10", "set-controller", &self.name, &format!("tcp:{of}")]).unwrap();
        // Reconnect quickly in tests (default max_backoff is 8 s); no
        // in-band control (it adds hidden flows to table 0).
        run(
            "ovs-vsctl",
            &["--timeout=10", "set", "controller", &self.name, "max_backoff=1000", "connection-mode=out-of-band"],
        )
        .unwrap();
    }

    /// Cut the switch off from its controller (as a network outage would).
    /// The controller entry stays, pointing nowhere: deleting it would make
    /// OVS flush the bridge's flows.
    pub fn detach(&self) {
        run("ovs-vsctl", &["--timeout=10", "set-controller", &self.name, "tcp:127.0.0.1:1"]).unwrap();
    }

    /// `-O` value for ovs-ofctl.
    pub fn protocols(&self) -> &str {
        &self.protocols
    }

    /// Our-format flow lines without statistics, sorted.
    pub fn flows(&self) -> Vec<String> {
        let out = run("ovs-ofctl", &["-O", &self.protocols, "--no-stats", "dump-flows", &self.name]).unwrap();
        let mut v: Vec<String> =
            out.lines().map(|l| l.trim().to_owned()).filter(|l| !l.is_empty() && !l.starts_with("OFPST")).collect();
        v.sort();
        v
    }

    /// Flow lines with statistics (durations, counters).
    pub fn flows_with_stats(&self) -> Vec<String> {
        let out = run("ovs-ofctl", &["-O", &self.protocols, "dump-flows", &self.name]).unwrap();
        out.lines().map(|l| l.trim().to_owned()).filter(|l| l.starts_with("cookie=")).collect()
    }

    pub fn add_flow(&self, flow: &str) {
        run("ovs-ofctl", &["-O", &self.protocols, "add-flow", &self.name, flow]).unwrap();
    }

    /// `ovs-ofctl del-flows --strict`: exactly the flow with this match and priority.
    pub fn del_flow_strict(&self, flow: &str) {
        run("ovs-ofctl", &["-O", &self.protocols, "del-flows", "--strict", &self.name, flow]).unwrap();
    }

    /// The switch's own verdict: the "Datapath actions:" line of ofproto/trace.
    pub fn trace(&self, flow: &str) -> String {
        let out = run("ovs-appctl", &["ofproto/trace", &self.name, flow]).unwrap();
        out.lines().find(|l| l.starts_with("Datapath actions:")).unwrap_or("no verdict").to_owned()
    }

    /// The switch's verdict for a whole frame (hex), entering on `in_port`.
    pub fn trace_packet(&self, in_port: &str, hex: &str) -> String {
        let out = run("ovs-appctl", &["ofproto/trace", &self.name, &format!("in_port={in_port}"), hex]).unwrap();
        out.lines().find(|l| l.starts_with("Datapath actions:")).unwrap_or("no verdict").to_owned()
    }

    pub fn port_a(&self) -> String {
        format!("{}a", self.name)
    }

    pub fn set(&self, args: &[&str]) {
        let mut all = vec!["--timeout=10"];
        all.extend_from_slice(args);
        run("ovs-vsctl", &all).unwrap();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = run("ovs-vsctl", &["--timeout=10", "--if-exists", "del-br", &self.name]);
    }
}

/// port25d running in-process on loopback with free ports.
pub struct Daemon {
    pub bound: Bound,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Daemon {
    pub fn start(data_dir: &Path) -> Daemon {
        Daemon::start_with(data_dir, SessionConfig::default())
    }

    pub fn start_with(data_dir: &Path, session: SessionConfig) -> Daemon {
        Daemon::start_full(data_dir, session, Tokens::default())
    }

    /// port25d requiring these API tokens on every `/v1` route.
    pub fn start_with_tokens(data_dir: &Path, tokens: Tokens) -> Daemon {
        Daemon::start_full(data_dir, SessionConfig::default(), tokens)
    }

    pub fn start_full(data_dir: &Path, session: SessionConfig, tokens: Tokens) -> Daemon {
        Daemon::start_settings_tokens(
            Settings {
                openflow_listen: Some("127.0.0.1:0".parse().unwrap()),
                openflow_tls: None,
                api_listen: "127.0.0.1:0".parse().unwrap(),
                data_dir: data_dir.to_owned(),
                session,
                max_switches: 64,
            },
            tokens,
        )
    }

    /// port25d with full settings (TLS listeners and the like), no API tokens.
    pub fn start_settings(settings: Settings) -> Daemon {
        Daemon::start_settings_tokens(settings, Tokens::default())
    }

    pub fn start_settings_tokens(settings: Settings, tokens: Tokens) -> Daemon {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            rt.block_on(daemon::run_with(
                settings,
                tokens,
                async move {
                    let _ = stop_rx.await;
                },
                move |b| {
                    let _ = ready_tx.send(b);
                },
            ))
        });
        let bound = match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(b) => b,
            Err(_) => {
                let r = thread.join();
                panic!("port25d did not start: {r:?}");
            }
        };
        Daemon { bound, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// Graceful stop (as on SIGTERM); returns once the daemon is gone.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("daemon thread panicked").expect("daemon returned an error");
        }
    }

    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        http(self.bound.api, method, path, body)
    }

    /// The `/v1/switches` entry for a dpid, if connected.
    pub fn switch(&self, dpid: &str) -> Option<Value> {
        let (_, v) = self.http("GET", "/v1/switches", None);
        v["switches"].as_array()?.iter().find(|s| s["dpid"] == dpid).cloned()
    }

    /// The current policy version.
    pub fn policy_version(&self) -> u64 {
        let (_, v) = self.http("GET", "/healthz", None);
        v["policy_version"].as_u64().expect("healthz has policy_version")
    }

    /// Wait until the switch has confirmed the current policy.
    pub fn wait_in_sync(&self, dpid: &str) -> Value {
        let want = self.policy_version();
        wait_for(Duration::from_secs(15), || {
            let s = self.switch(dpid)?;
            (s["in_sync"] == true && s["policy_version"].as_u64()? >= want).then_some(s)
        })
        .unwrap_or_else(|| panic!("switch {dpid} not in sync with version {want}: {:?}", self.switch(dpid)))
    }

    pub fn grant(&self, subscriber: &str) -> u64 {
        let (st, v) = self.http(
            "POST",
            "/v1/exemptions",
            Some(&format!("{{\"subscriber\":\"{subscriber}\",\"note\":\"test\"}}")),
        );
        assert_eq!(st, 201, "{v}");
        v["id"].as_u64().unwrap()
    }

    pub fn revoke(&self, id: u64) {
        let (st, v) = self.http("DELETE", &format!("/v1/exemptions/{id}"), None);
        assert_eq!(st, 204, "{v}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Poll `f` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One blocking HTTP/1.1 request with extra headers; returns the status,
/// the response headers (names lower-cased) and the JSON body (Null when
/// empty).
pub fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to API");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status line");
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let json = if body.trim().is_empty() { Value::Null } else { serde_json::from_str(body).expect("JSON body") };
    (status, headers, json)
}

/// One blocking HTTP/1.1 request; returns status and JSON body (Null when empty).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to API");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status line");
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json = if body.trim().is_empty() { Value::Null } else { serde_json::from_str(body).expect("JSON body") };
    (status, json)
}
