//! Test helpers: port25d in-process on free loopback ports, a way to run
//! the real `port25ctl` binary, and a canned HTTP server for replies a real
//! port25d cannot be made to give on demand (5xx, a hung server).
//!
//! The daemon start mirrors the root crate's `tests/support/mod.rs`; a test
//! support module cannot be shared across crates.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use port25::daemon::{self, Bound, Settings};
use port25_controller::session::SessionConfig;

/// port25d running in-process; stopped (gracefully) on drop.
pub struct Daemon {
    pub bound: Bound,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// port25d without API tokens.
    pub fn start() -> Daemon {
        Daemon::start_with_config("")
    }

    /// port25d with the `[api]` tokens of a config file's text, read by
    /// port25d's own config parser (listen addresses and the data directory
    /// are the test's).
    pub fn start_with_config(toml: &str) -> Daemon {
        let config = port25::config::Config::parse(toml).unwrap_or_else(|e| panic!("config refused: {e}\n{toml}"));
        let tokens = config.api_tokens().unwrap_or_else(|e| panic!("tokens refused: {e}\n{toml}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Settings {
            openflow_listen: Some("127.0.0.1:0".parse().unwrap()),
            openflow_tls: None,
            api_listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            session: SessionConfig::default(),
            max_switches: 8,
        };
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
            Err(_) => panic!("port25d did not start: {:?}", thread.join()),
        };
        Daemon { bound, stop: Some(stop_tx), thread: Some(thread), _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.bound.api)
    }

    /// Run port25ctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Run {
        ctl_at(&self.url(), args)
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

/// What one port25ctl run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().expect("port25ctl was killed by a signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// Panic with the whole run unless it exited with `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "exit code; stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }
}

/// A port25ctl command with the environment cleared of our variables, so a
/// developer's PORT25_URL or PORT25_TOKEN cannot leak into a test.
pub fn ctl_command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_port25ctl"));
    c.env_remove("PORT25_URL").env_remove("PORT25_TOKEN").stdin(Stdio::null());
    c
}

/// Run port25ctl with `--url URL ARGS...`.
pub fn ctl_at(url: &str, args: &[&str]) -> Run {
    let out = ctl_command().arg("--url").arg(url).args(args).output().expect("run port25ctl");
    Run::from(out)
}

/// Run a prepared command (extra env, stdin) to the end.
pub fn run(mut c: Command) -> Run {
    Run::from(c.output().expect("run port25ctl"))
}

/// Run port25ctl with `stdin` piped in.
pub fn ctl_with_stdin(url: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = ctl_command()
        .arg("--url")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn port25ctl");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    Run::from(child.wait_with_output().unwrap())
}

/// A 127.0.0.1 port with nothing listening: bound, then closed.
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A one-shot HTTP server that answers the first request with `reply`
/// (raw bytes, headers included) and hands back the request it received.
/// `reply = None` accepts and never answers (a hung server).
pub fn canned(reply: Option<&str>) -> (SocketAddr, JoinHandle<String>) {
    let reply = reply.map(str::to_owned);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        match reply {
            Some(r) => {
                let _ = s.write_all(r.as_bytes());
            }
            // Hold the connection open past the client's timeout.
            None => std::thread::sleep(Duration::from_secs(3)),
        }
        String::from_utf8_lossy(&req).into_owned()
    });
    (addr, t)
}

/// Write `text` to a file in `dir` and return its path as a string.
pub fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_owned()
}
