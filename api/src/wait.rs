//! `?wait=applied` on the writes: after a change is durable and published
//! as policy version V, wait until every switch that should enforce it has
//! confirmed V (barrier reply), or until `wait_timeout_ms` passes, and say
//! per switch where it stands.
//!
//! The switches waited for are those with a datapath id that are neither
//! refused nor disconnected: the ones port25d is bringing in sync. A
//! switch has applied V when it is in sync at V or later. With no such
//! switch the wait is trivially complete (and `switches` is empty).
//!
//! The wait holds no lock: the [`crate::Writer`] has released its mutex by
//! the time it starts, so other writes go on meanwhile (and a switch that
//! confirmed a later version has applied V too). It wakes on the fleet's
//! change notification, not by polling.

use std::time::Duration;

use port25_controller::{Fleet, SwitchState, SwitchStatus};
use port25_rules::model::clip;
use port25_rules::Dpid;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::ApiError;

/// `wait_timeout_ms` when not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5000);
/// Largest `wait_timeout_ms` accepted.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// The query of a write: `?wait=applied[&wait_timeout_ms=N]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitParams {
    wait: Option<String>,
    wait_timeout_ms: Option<String>,
}

impl WaitParams {
    /// How long to wait, or `None` for no wait.
    ///
    /// # Errors
    /// A `400` naming `wait` or `wait_timeout_ms`.
    pub(crate) fn timeout(&self) -> Result<Option<Duration>, ApiError> {
        parse(self.wait.as_deref(), self.wait_timeout_ms.as_deref())
    }
}

/// Parse the two parameters (shared with the sync, whose query has them
/// beside `dry_run`).
pub(crate) fn parse(wait: Option<&str>, timeout_ms: Option<&str>) -> Result<Option<Duration>, ApiError> {
    match wait {
        None => {
            if timeout_ms.is_some() {
                return Err(ApiError::field("wait_timeout_ms", "wait_timeout_ms needs wait=applied"));
            }
            Ok(None)
        }
        Some("applied") => match timeout_ms {
            None => Ok(Some(DEFAULT_TIMEOUT)),
            Some(t) => {
                let ms = (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse::<u64>().ok())
                    .flatten()
                    .filter(|ms| *ms <= MAX_TIMEOUT_MS)
                    .ok_or_else(|| {
                        ApiError::field(
                            "wait_timeout_ms",
                            format!(
                                "wait_timeout_ms must be a whole number from 0 to {MAX_TIMEOUT_MS}, not '{}'",
                                clip(t)
                            ),
                        )
                    })?;
                Ok(Some(Duration::from_millis(ms)))
            }
        },
        Some(other) => Err(ApiError::field("wait", format!("wait must be \"applied\", not '{}'", clip(other)))),
    }
}

/// Where the switches stand with one policy version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Applied {
    /// The version the write was published as.
    pub policy_version: u64,
    /// Every switch waited for has applied it.
    pub complete: bool,
    pub switches: Vec<SwitchApplied>,
}

/// One switch's standing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SwitchApplied {
    /// 16 hex digits.
    #[schema(value_type = String)]
    pub dpid: Dpid,
    /// In sync at `policy_version` of the write or later.
    pub applied: bool,
    /// handshaking, syncing, in_sync or degraded.
    #[schema(value_type = String)]
    pub state: SwitchState,
    /// The version this switch has confirmed.
    pub policy_version: u64,
}

fn counts(s: &SwitchStatus) -> bool {
    s.dpid.is_some() && !matches!(s.state, SwitchState::Refused | SwitchState::Disconnected)
}

/// The standing of the fleet with `version` right now.
pub(crate) fn report(switches: &[SwitchStatus], version: u64) -> Applied {
    let switches: Vec<SwitchApplied> = switches
        .iter()
        .filter(|s| counts(s))
        .filter_map(|s| {
            Some(SwitchApplied {
                dpid: s.dpid?,
                applied: s.in_sync && s.policy_version >= version,
                state: s.state,
                policy_version: s.policy_version,
            })
        })
        .collect();
    Applied { policy_version: version, complete: switches.iter().all(|s| s.applied), switches }
}

/// Wait until every switch has applied `version`, or `timeout` passed;
/// either way, return where they stand.
pub(crate) async fn until_applied(fleet: &Fleet, version: u64, timeout: Duration) -> Applied {
    let deadline = Instant::now() + timeout;
    // Subscribe before reading: a change between the read and the wait
    // then wakes the wait instead of being missed.
    let mut changes = fleet.subscribe();
    loop {
        changes.mark_unchanged();
        let now = report(&fleet.snapshot(), version);
        if now.complete {
            return now;
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out, or the fleet is gone (shutting down).
            _ => return report(&fleet.snapshot(), version),
        }
    }
}
