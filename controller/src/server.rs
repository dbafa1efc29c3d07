//! The OpenFlow listeners: accept switch connections (plain TCP or TLS)
//! and give each its own session task.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::session::{self, Admission, Shared};

/// How connections on a listener are secured.
#[derive(Clone)]
pub enum Transport {
    /// Plain TCP (`tcp:` targets in OVS).
    Plain,
    /// TLS with a required client certificate (`ssl:` targets).
    Tls(TlsAcceptor),
}

/// SO_SNDBUF for switch connections (the kernel doubles it).
pub const SEND_BUFFER: usize = 1024 * 1024;

/// Session ids are unique across all listeners of the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Accept plain-TCP switches on `listener` until `shared.shutdown` fires.
/// See [`serve_with`].
pub async fn serve(listener: TcpListener, shared: Shared, tracker: TaskTracker, max_switches: usize) {
    serve_with(listener, Transport::Plain, shared, tracker, max_switches).await
}

/// Connections in their handshake at once, per listener; more wait in the
/// kernel's accept queue. Each is cut off by the handshake timeout.
pub const HANDSHAKE_SLOTS: usize = 256;

/// Accept switches on `listener` until `shared.shutdown` fires. Each
/// connection runs in its own task, tracked by `tracker` so shutdown can
/// wait for them. Connections in their handshake (TLS, Hello, Features)
/// take one of [`HANDSHAKE_SLOTS`]; a switch that finished its handshake
/// takes one of `max_switches` session slots, or is refused when all are
/// taken. A TLS handshake must finish within the handshake timeout.
pub async fn serve_with(
    listener: TcpListener,
    transport: Transport,
    shared: Shared,
    tracker: TaskTracker,
    max_switches: usize,
) {
    let local = listener.local_addr().ok();
    let kind = match transport {
        Transport::Plain => "tcp",
        Transport::Tls(_) => "tls",
    };
    let listen = local.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    info!(%listen, transport = kind, "OpenFlow listener ready");
    let permits = Arc::new(Semaphore::new(HANDSHAKE_SLOTS));
    let sessions = Arc::new(Semaphore::new(max_switches.max(1)));
    let refusals = Arc::new(RateLimit::new(10));
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                // Flow-mods go out in batches; small control messages
                // (echo replies, barriers) must not wait for Nagle.
                let _ = stream.set_nodelay(true);
                // Bound what the kernel holds for one switch: a switch that
                // stops reading then blocks our writer (and trips the write
                // timeout) after about a MiB instead of the 16 MiB loopback
                // autotuning allows, and a thousand switches do not pin
                // gigabytes of kernel memory.
                let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
                let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let transport = transport.clone();
                let refusals = refusals.clone();
                let admission = Admission::new(permit, sessions.clone(), max_switches);
                tracker.spawn(async move {
                    match transport {
                        Transport::Plain => session::run(stream, peer, id, shared, admission).await,
                        Transport::Tls(acceptor) => {
                            let limit = shared.cfg.handshake_timeout;
                            let cancel = shared.shutdown.clone();
                            let hs = tokio::select! {
                                _ = cancel.cancelled() => return,
                                r = tokio::time::timeout(limit, acceptor.accept(stream)) => r,
                            };
                            match hs {
                                Ok(Ok(tls)) => session::run(tls, peer, id, shared, admission).await,
                                Ok(Err(e)) => refused(&refusals, peer, &e.to_string()),
                                Err(_) => {
                                    refused(&refusals, peer, &format!("TLS handshake not finished within {limit:?}"))
                                }
                            }
                        }
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait and retry
                // rather than spin or give up.
                error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    info!(transport = kind, "OpenFlow listener stopped");
}

fn refused(limit: &RateLimit, peer: SocketAddr, reason: &str) {
    if let Some(suppressed) = limit.allow() {
        warn!(%peer, reason, suppressed, "TLS connection refused");
    }
}

/// At most `per_sec` log lines a second; says how many it held back.
pub(crate) struct RateLimit {
    per_sec: u32,
    state: Mutex<(Instant, u32, u64)>,
}

impl RateLimit {
    pub(crate) fn new(per_sec: u32) -> RateLimit {
        RateLimit { per_sec, state: Mutex::new((Instant::now(), 0, 0)) }
    }

    /// `Some(suppressed_since_last)` when a line may be written now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now.duration_since(g.0) >= Duration::from_secs(1) {
            g.0 = now;
            g.1 = 0;
        }
        if g.1 < self.per_sec {
            g.1 += 1;
            let s = g.2;
            g.2 = 0;
            Some(s)
        } else {
            g.2 += 1;
            None
        }
    }
}
