//! The OpenFlow listener: accepts switch connections and gives each its
//! own session task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::session::{self, Shared};

/// Accept switches on `listener` until `shared.shutdown` fires. Each
/// connection runs in its own task, tracked by `tracker` so shutdown can
/// wait for them. At most `max_switches` connections are served at once;
/// more wait in the kernel's accept queue.
pub async fn serve(listener: TcpListener, shared: Shared, tracker: TaskTracker, max_switches: usize) {
    let local = listener.local_addr().ok();
    info!(listen = ?local, "OpenFlow listener ready");
    let next_id = AtomicU64::new(1);
    let permits = Arc::new(Semaphore::new(max_switches.max(1)));
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
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                tracker.spawn(async move {
                    session::run(stream, peer, id, shared).await;
                    drop(permit);
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
    warn!("OpenFlow listener stopped");
}
