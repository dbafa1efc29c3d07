//! The policy as one value: what the API publishes and every switch
//! session converges to.
//!
//! A [`Snapshot`] is cheap to clone and to change: the exemptions sit in a
//! persistent map (structural sharing), so publishing one grant costs
//! O(log n), not a copy of every exemption. Each snapshot also carries the
//! most recent change sets, so a session that confirmed version V can move
//! its switch to version W by sending only what changed in between,
//! whatever the number of stored exemptions.

use std::sync::Arc;

use imbl::{OrdMap, OrdSet, Vector};

use crate::model::{Dpid, Exemption, ExemptionId, Prefix};

/// How many recent change sets a snapshot remembers. A session further
/// behind than this falls back to a full difference.
pub const LOG_CAPACITY: usize = 4096;

/// What one published version changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    /// The version this change produced.
    pub version: u64,
    /// Exemptions that appeared.
    pub added: Vec<Exemption>,
    /// Exemptions that went away (the records as they were).
    pub removed: Vec<Exemption>,
}

/// Every exemption at one moment, with a version that grows by one per
/// change. Shared as `Arc<Snapshot>`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Grows by one with every published change; sessions report the
    /// version a switch has confirmed (barrier reply).
    pub version: u64,
    /// The exemptions, by id.
    pub exemptions: OrdMap<ExemptionId, Exemption>,
    /// Exemption ids by subscriber prefix. Several exemptions can name
    /// one prefix (with different switch scopes); on a switch their flows
    /// have one identity, owned by the lowest id that applies there.
    by_prefix: OrdMap<Prefix, OrdSet<ExemptionId>>,
    /// The last [`LOG_CAPACITY`] change sets, oldest first.
    log: Vector<Arc<ChangeSet>>,
}

impl Snapshot {
    /// A snapshot of a list of exemptions at version 1.
    pub fn from_list(list: Vec<Exemption>) -> Snapshot {
        let mut by_prefix: OrdMap<Prefix, OrdSet<ExemptionId>> = OrdMap::new();
        for e in &list {
            by_prefix.entry(e.subscriber).or_default().insert(e.id);
        }
        Snapshot {
            version: 1,
            exemptions: list.into_iter().map(|e| (e.id, e)).collect(),
            by_prefix,
            log: Vector::new(),
        }
    }

    /// The same snapshot numbered `version` (at least 1), with no change
    /// log. The daemon starts at the store's last audit `seq` plus one:
    /// every published version stores at least one audited change, so
    /// versions then never go back across restarts, and a client that
    /// waits for version V is not fooled by a restart.
    pub fn at_version(mut self, version: u64) -> Snapshot {
        self.version = version.max(1);
        self.log = Vector::new();
        self
    }

    /// The exemption whose flows for `prefix` a switch holds: the lowest
    /// id among those for that prefix that apply to `dpid` (the same
    /// choice `compile` makes when it deduplicates).
    pub fn owner(&self, prefix: &Prefix, dpid: Dpid) -> Option<&Exemption> {
        self.by_prefix.get(prefix)?.iter().filter_map(|id| self.exemptions.get(id)).find(|e| e.applies_to(dpid))
    }

    /// The next snapshot with one exemption added (or replaced).
    pub fn with(&self, ex: Exemption) -> Snapshot {
        self.apply(vec![ex], &[])
    }

    /// The next snapshot with one exemption removed.
    pub fn without(&self, id: ExemptionId) -> Snapshot {
        self.apply(Vec::new(), &[id])
    }

    /// The next snapshot with a batch of changes as one version. Removals
    /// of unknown ids are ignored; an added id that exists replaces it
    /// (recorded as a removal plus an addition).
    pub fn apply(&self, added: Vec<Exemption>, removed: &[ExemptionId]) -> Snapshot {
        let mut map = self.exemptions.clone();
        let mut by_prefix = self.by_prefix.clone();
        let mut gone = Vec::new();
        let unindex = |old: &Exemption, by_prefix: &mut OrdMap<Prefix, OrdSet<ExemptionId>>| {
            if let Some(set) = by_prefix.get_mut(&old.subscriber) {
                set.remove(&old.id);
                if set.is_empty() {
                    by_prefix.remove(&old.subscriber);
                }
            }
        };
        for id in removed {
            if let Some(old) = map.remove(id) {
                unindex(&old, &mut by_prefix);
                gone.push(old);
            }
        }
        for ex in &added {
            if let Some(old) = map.insert(ex.id, ex.clone()) {
                unindex(&old, &mut by_prefix);
                gone.push(old);
            }
            by_prefix.entry(ex.subscriber).or_default().insert(ex.id);
        }
        let version = self.version + 1;
        let mut log = self.log.clone();
        log.push_back(Arc::new(ChangeSet { version, added, removed: gone }));
        while log.len() > LOG_CAPACITY {
            log.pop_front();
        }
        Snapshot { version, exemptions: map, by_prefix, log }
    }

    /// The change sets that lead from `version` to this snapshot, oldest
    /// first; empty when `version` is this one; `None` when the log no
    /// longer reaches back that far (or `version` is from the future).
    pub fn changes_since(&self, version: u64) -> Option<Vec<Arc<ChangeSet>>> {
        if version == self.version {
            return Some(Vec::new());
        }
        if version > self.version {
            return None;
        }
        let first = self.log.front()?;
        // The log holds versions first.version ..= self.version, contiguous.
        if version + 1 < first.version {
            return None;
        }
        let skip = usize::try_from(version + 1 - first.version).ok()?;
        Some(self.log.iter().skip(skip).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dpid, Scope};

    fn ex(id: u64) -> Exemption {
        Exemption {
            id: ExemptionId(id),
            subscriber: format!("198.51.100.{id}/32").parse().unwrap(),
            note: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            switches: Scope::All,
            expires_at: None,
            external_id: None,
        }
    }

    #[test]
    fn versions_and_change_log() {
        let s1 = Snapshot::from_list(vec![ex(1)]);
        let s2 = s1.with(ex(2));
        let s3 = s2.without(ExemptionId(1));
        assert_eq!((s1.version, s2.version, s3.version), (1, 2, 3));
        assert_eq!(s3.exemptions.len(), 1);
        assert_eq!(s1.exemptions.len(), 1, "old snapshots are unchanged");
        let c = s3.changes_since(1).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].added, vec![ex(2)]);
        assert_eq!(c[1].removed, vec![ex(1)]);
        assert_eq!(s3.changes_since(3).unwrap().len(), 0);
        assert!(s3.changes_since(0).is_none(), "before the log starts");
        assert!(s3.changes_since(4).is_none(), "from the future");
    }

    #[test]
    fn owner_is_the_lowest_applying_id() {
        let mut a = ex(5);
        a.switches = Scope::from_list(Some(vec![Dpid(2)]));
        let mut b = ex(9);
        b.subscriber = a.subscriber;
        let s = Snapshot::from_list(vec![a.clone(), b.clone()]);
        assert_eq!(s.owner(&a.subscriber, Dpid(2)).map(|e| e.id), Some(ExemptionId(5)));
        assert_eq!(s.owner(&a.subscriber, Dpid(1)).map(|e| e.id), Some(ExemptionId(9)));
        let s = s.without(ExemptionId(9));
        assert_eq!(s.owner(&a.subscriber, Dpid(1)), None);
        let s = s.without(ExemptionId(5));
        assert_eq!(s.owner(&a.subscriber, Dpid(2)), None);
        assert!(s.by_prefix.is_empty());
    }

    #[test]
    fn log_is_bounded() {
        let mut s = Snapshot::from_list(vec![]);
        for i in 0..(LOG_CAPACITY as u64 + 10) {
            s = s.with(ex(i % 200 + 1));
        }
        assert!(s.changes_since(1).is_none());
        assert_eq!(s.changes_since(s.version - 5).unwrap().len(), 5);
    }
}
