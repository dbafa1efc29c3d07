//! The expiry task: revokes exemptions when their `expires_at` passes, on
//! every switch, through the same [`Writer`] as an API revoke (so it is
//! audited, as action "expire" by "port25d", and published in store order).
//!
//! It sleeps until the earliest `expires_at` in the published policy, but
//! never longer than [`MAX_SLEEP`], so a wall-clock jump cannot delay an
//! expiry for long; a newly published policy wakes it to look again.

use std::future::Future;
use std::time::Duration;

use port25_rules::{AuditContext, Snapshot};
use time::OffsetDateTime;
use tracing::error;

use crate::Writer;

/// Longest sleep between two looks at the clock.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

/// The request id of the audit entries of expiries applied at start-up
/// (they passed while port25d was down); the expiry task's have none.
pub const STARTUP_REQUEST_ID: &str = "port25d-start";

/// Pause after a failed store write before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// The earliest expiry in a snapshot. O(n) over the exemptions; it runs
/// once per published change, which is cheap next to the change itself.
pub fn next_expiry(snap: &Snapshot) -> Option<OffsetDateTime> {
    snap.exemptions.values().filter_map(|e| e.expires_at).min()
}

/// How long to sleep until `next` (none: [`MAX_SLEEP`]).
fn wait(next: Option<OffsetDateTime>, now: OffsetDateTime) -> Duration {
    match next {
        None => MAX_SLEEP,
        Some(t) => Duration::try_from(t - now).unwrap_or(Duration::ZERO).min(MAX_SLEEP),
    }
}

/// Run until `shutdown` resolves. Expiries that are already due when it
/// starts are applied at once (the daemon applies them before it even
/// listens for switches, with [`Writer::expire_due`] and
/// [`STARTUP_REQUEST_ID`]).
pub async fn run(writer: Writer, shutdown: impl Future<Output = ()>) {
    let mut policy = writer.subscribe();
    tokio::pin!(shutdown);
    loop {
        let next = next_expiry(&policy.borrow_and_update());
        let pause = wait(next, OffsetDateTime::now_utc());
        tokio::select! {
            () = &mut shutdown => return,
            changed = policy.changed() => {
                if changed.is_err() {
                    return; // the policy channel is gone: shutting down
                }
                continue;
            }
            () = tokio::time::sleep(pause) => {}
        }
        if !matches!(next, Some(t) if t <= OffsetDateTime::now_utc()) {
            continue; // a bounded sleep ended, or the clock moved back
        }
        // The writer logs each expiry as it commits it.
        match writer.expire_due(AuditContext::port25d()).await {
            Ok(_) => {}
            Err(e) => {
                error!(cause = %e, retry_ms = RETRY.as_millis() as u64, "cannot apply an expiry");
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sleeps_until_the_next_expiry_but_never_long() {
        let now = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(wait(None, now), MAX_SLEEP);
        assert_eq!(wait(Some(now + time::Duration::seconds(2)), now), Duration::from_secs(2));
        assert_eq!(wait(Some(now - time::Duration::seconds(2)), now), Duration::ZERO);
        assert_eq!(wait(Some(now + time::Duration::days(400)), now), MAX_SLEEP);
    }
}
