//! The read-only view of every switch session, shared with the REST API.
//!
//! Sessions write their own entry; the API reads a copy. A std `RwLock` is
//! right here: it is held only to copy or update a small struct, never
//! across an `.await`.
//!
//! Every `put`, `update` and `remove` also bumps a change counter in a
//! `tokio::sync::watch` channel ([`Fleet::subscribe`]), so the API can wait
//! for switches to confirm a policy version (`?wait=applied`) without
//! polling. A watch rather than a `Notify`: a waiter that subscribes, then
//! reads the fleet, cannot miss a change made in between, and a burst of
//! changes wakes it once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use port25_rules::Dpid;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;

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
    /// Flows of other applications in our table that sit above the
    /// port-25 drops, do not drop, and could match what a drop is for
    /// (as of the last scan, after each full round): each one, with the
    /// drops it overrides. port25d never touches them; while this is not
    /// empty the switch is not enforcing the whole policy, whatever
    /// `in_sync` says about port25d's own flows.
    pub overridden_by: Vec<String>,
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
#[derive(Debug, Clone)]
pub struct Fleet {
    inner: Arc<RwLock<BTreeMap<u64, SwitchStatus>>>,
    /// Bumped after every change of `inner` (a count of changes).
    changes: Arc<watch::Sender<u64>>,
}

impl Default for Fleet {
    fn default() -> Fleet {
        Fleet { inner: Arc::default(), changes: Arc::new(watch::Sender::new(0)) }
    }
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

    /// Number of entries (sessions), without copying any.
    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A receiver that sees every change of the fleet after this call
    /// (`changed()` resolves once per burst of changes). Subscribe first,
    /// then read the fleet: a change in between is not missed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Insert or replace an entry.
    pub fn put(&self, status: SwitchStatus) {
        {
            let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
            g.insert(status.session, status);
        }
        self.changed();
    }

    /// Change an entry in place, if it exists.
    pub fn update(&self, session: u64, f: impl FnOnce(&mut SwitchStatus)) {
        let found = {
            let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
            g.get_mut(&session).map(f).is_some()
        };
        if found {
            self.changed();
        }
    }

    /// Mark `session` refused for `why`, and forget earlier refused
    /// entries of the same switch: the same datapath id, or, before the
    /// switch said who it is, the same peer address (port aside). A
    /// refused switch reconnects every few seconds; the list shows it
    /// once, with its latest attempt, not once per attempt.
    pub fn refuse(&self, session: u64, why: String, at: OffsetDateTime) {
        {
            let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
            let Some(me) = g.get(&session).map(|s| (s.dpid, s.peer.ip())) else { return };
            g.retain(|id, s| {
                let same = match (me.0, s.dpid) {
                    (Some(a), Some(b)) => a == b,
                    (None, None) => s.peer.ip() == me.1,
                    _ => false,
                };
                *id == session || s.state != SwitchState::Refused || !same
            });
            if let Some(s) = g.get_mut(&session) {
                s.state = SwitchState::Refused;
                s.last_error = Some(why);
                s.last_error_at = Some(at);
            }
        }
        self.changed();
    }

    /// Drop an entry.
    pub fn remove(&self, session: u64) {
        let removed = {
            let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
            g.remove(&session).is_some()
        };
        if removed {
            self.changed();
        }
    }

    /// Wake the subscribers, after the write lock is released (they read
    /// the fleet as soon as they wake).
    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(session: u64) -> SwitchStatus {
        SwitchStatus {
            session,
            dpid: None,
            openflow_version: None,
            peer: "127.0.0.1:1".parse().unwrap(),
            connected_since: OffsetDateTime::UNIX_EPOCH,
            state: SwitchState::Handshaking,
            flow_count: 0,
            in_sync: false,
            policy_version: 0,
            ipv6_enforced: true,
            fragments_enforced: true,
            bundles: None,
            blocked: Vec::new(),
            blocked_at: None,
            last_round: None,
            last_error: None,
            last_error_at: None,
            overridden_by: Vec::new(),
        }
    }

    #[test]
    fn every_change_notifies_subscribers_and_len_counts_entries() {
        let fleet = Fleet::new();
        let mut rx = fleet.subscribe();
        assert!(fleet.is_empty());
        assert!(!rx.has_changed().unwrap());

        fleet.put(status(1));
        assert!(rx.has_changed().unwrap(), "put");
        rx.mark_unchanged();
        fleet.update(1, |s| s.policy_version = 2);
        assert!(rx.has_changed().unwrap(), "update");
        rx.mark_unchanged();
        fleet.update(9, |s| s.policy_version = 2);
        assert!(!rx.has_changed().unwrap(), "update of an unknown session changes nothing");
        assert_eq!(fleet.len(), 1);
        fleet.remove(1);
        assert!(rx.has_changed().unwrap(), "remove");
        assert_eq!(fleet.len(), 0);
    }

    #[test]
    fn a_refused_switch_that_retries_is_listed_once() {
        let fleet = Fleet::new();
        let at = OffsetDateTime::UNIX_EPOCH;
        // Three attempts of one switch (dpid 7), one of another, and two
        // refused before the features reply from one address.
        for (session, dpid) in [(1, Some(7)), (2, Some(8)), (3, Some(7)), (4, None), (5, None), (6, Some(7))] {
            fleet.put(SwitchStatus { dpid: dpid.map(Dpid), ..status(session) });
            fleet.refuse(session, format!("attempt {session}"), at);
        }
        // A live session of dpid 7 is not a refused one: it stays.
        fleet.put(SwitchStatus { dpid: Some(Dpid(7)), state: SwitchState::InSync, ..status(9) });
        fleet.put(SwitchStatus { dpid: Some(Dpid(7)), ..status(10) });
        fleet.refuse(10, "attempt 10".into(), at);
        let left: Vec<(u64, SwitchState)> = fleet.snapshot().iter().map(|s| (s.session, s.state)).collect();
        assert_eq!(
            left,
            vec![
                (5, SwitchState::Refused),
                (9, SwitchState::InSync),
                (10, SwitchState::Refused),
                (2, SwitchState::Refused)
            ]
        );
        assert_eq!(
            fleet.snapshot().iter().find(|s| s.session == 10).unwrap().last_error.as_deref(),
            Some("attempt 10")
        );
    }
}
