//! The read-only view of every switch session, shared with the REST API.
//!
//! Sessions write their own entry; the API reads a copy. A std `RwLock` is
//! right here: it is held only to copy or update a small struct, never
//! across an `.await`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use port25_rules::Dpid;
use serde::Serialize;
use time::OffsetDateTime;

/// Where a switch session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchState {
    /// TCP is up, Hello/Features not finished.
    Handshaking,
    /// The switch cannot speak a version we support; the connection was closed.
    Refused,
    /// Reading back our flows and converging.
    Syncing,
    /// The switch holds exactly the desired flows (barrier-confirmed).
    InSync,
    /// The switch reported an error for one of our messages, or a round
    /// failed; it may not hold the desired flows.
    Degraded,
    /// The connection is gone (kept briefly for the record).
    Disconnected,
}

/// The state of one switch connection, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchStatus {
    /// Per-connection id, unique for the process lifetime.
    pub session: u64,
    /// Datapath id, once the features reply arrived.
    pub dpid: Option<Dpid>,
    /// Negotiated OpenFlow version, e.g. "1.3".
    pub openflow_version: Option<String>,
    /// The switch's address.
    pub peer: SocketAddr,
    /// When the TCP connection was accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub connected_since: OffsetDateTime,
    pub state: SwitchState,
    /// Number of our flows the switch holds, as of the last read-back plus
    /// the changes it has confirmed since.
    pub flow_count: usize,
    /// True when the last confirmed round left the switch with exactly the
    /// desired flows for `policy_version`.
    pub in_sync: bool,
    /// The policy version the switch has confirmed (barrier reply).
    pub policy_version: u64,
    /// IPv6 port-25 traffic is enforced on this switch (false on
    /// OpenFlow 1.0 switches: 1.0 cannot match IPv6 ports).
    pub ipv6_enforced: bool,
    /// Fragmented TCP is dropped on this switch (false on OpenFlow 1.0
    /// switches: 1.0 cannot match IP fragments, so a fragmented SYN to
    /// port 25 gets through).
    pub fragments_enforced: bool,
    /// Whether the switch applies our larger rounds as atomic bundles:
    /// unknown (null) until the first bundle, false after it refused one
    /// (port25d then uses ordered flow-mods and a barrier).
    pub bundles: Option<bool>,
    /// Packets and bytes each port-25 drop flow has dropped on this
    /// switch, as of the last poll (flow stats every
    /// `counters_interval`): the count of blocked SMTP attempts.
    pub blocked: Vec<BlockedCounter>,
    /// When `blocked` was read.
    #[serde(with = "time::serde::rfc3339::option")]
    pub blocked_at: Option<OffsetDateTime>,
    /// What the last finished round did.
    pub last_round: Option<RoundSummary>,
    /// The last error from or about this switch, if any.
    pub last_error: Option<String>,
    /// When `last_error` happened.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
}

/// One drop flow's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedCounter {
    /// Which drop rule, e.g. `tcp_dst_25_ipv4`.
    pub rule: &'static str,
    pub packets: u64,
    pub bytes: u64,
}

/// What one reconciliation round did to a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RoundSummary {
    /// Policy version the round converged to.
    pub policy_version: u64,
    /// Flows added (or overwritten in place).
    pub added: usize,
    /// Stale flows deleted.
    pub deleted: usize,
    /// Flows already right and left alone.
    pub kept: usize,
    /// Flows the switch refused.
    pub refused: usize,
    /// Whether the round started from a complete read-back or exact model.
    pub complete: bool,
    /// From the start of the round to the barrier reply.
    pub elapsed_ms: u64,
}

/// All sessions, keyed by session id. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    inner: Arc<RwLock<BTreeMap<u64, SwitchStatus>>>,
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet::default()
    }

    /// A copy of every entry, ordered by dpid then session.
    pub fn snapshot(&self) -> Vec<SwitchStatus> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<SwitchStatus> = g.values().cloned().collect();
        v.sort_by_key(|s| (s.dpid, s.session));
        v
    }

    /// Insert or replace an entry.
    pub fn put(&self, status: SwitchStatus) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        g.insert(status.session, status);
    }

    /// Change an entry in place, if it exists.
    pub fn update(&self, session: u64, f: impl FnOnce(&mut SwitchStatus)) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g.get_mut(&session) {
            f(s);
        }
    }

    /// Drop an entry.
    pub fn remove(&self, session: u64) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        g.remove(&session);
    }
}
