//! The API's HTTP server: the axum router on hyper's HTTP/1 connections,
//! with the limits `axum::serve` does not set.
//!
//! - **Header timeout.** A connection that has not sent a whole request
//!   head within [`HttpLimits::header_timeout`] is closed; that covers a
//!   client that trickles its headers and an idle keep-alive connection
//!   (hyper runs the same timer while it waits for the next request).
//!   Bodies have their own timeout in the API's JSON extractor.
//! - **Connection cap.** At most [`HttpLimits::max_connections`] at once;
//!   one more is closed at once, with a rate-limited warning.
//! - **Peer address.** Each request carries `ConnectInfo<SocketAddr>`, as
//!   with `into_make_service_with_connect_info`: the audit trail records it.
//! - **Graceful shutdown.** When `shutdown` fires, no new connection is
//!   accepted, idle ones are closed, and requests in flight finish, for
//!   at most [`HttpLimits::grace`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Limits on API connections.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request head (request line and headers) must arrive within this,
    /// counted from when the connection is ready for it.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long requests in flight may take to finish at shutdown.
    pub grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits { header_timeout: Duration::from_secs(10), max_connections: 1024, grace: Duration::from_secs(5) }
    }
}

/// Serve `app` on `listener` until `shutdown` fires, then drain.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken, limits: HttpLimits) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut refused: u64 = 0;
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    backoff = Duration::from_millis(10);
                    a
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, retry.
                    warn!(error = %e, "API accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                warn!(%peer, refused, max = limits.max_connections, "API connection refused: too many open");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = app.clone().map_request(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = conn.await {
                // Timeouts and clients that go away: routine.
                debug!(%peer, error = %e, "API connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown()).await.is_err() {
        warn!(grace_ms = limits.grace.as_millis() as u64, "API requests still running at shutdown were cut off");
    }
}
