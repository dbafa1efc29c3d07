//! [`MemStore`]: the store in memory, for tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use time::OffsetDateTime;

use super::{identity_key, prepare, Change, Committed, ExemptionStore, StoreError, Stored};
use crate::audit::{AuditContext, AuditEntry, AuditQuery};
use crate::model::{Exemption, ExemptionId};

/// Exemptions in memory, for tests. Same semantics as [`SledStore`]
/// (both work a change out with the same code), without durability.
#[derive(Default)]
pub struct MemStore {
    // A std Mutex: held only for map operations, never across an await.
    inner: Mutex<MemInner>,
}

#[derive(Default)]
struct MemInner {
    next: u64,
    records: BTreeMap<ExemptionId, Exemption>,
    /// The identity index, as sled's "identity" tree.
    identity: HashMap<String, ExemptionId>,
    audit: Vec<AuditEntry>,
}

impl Stored for MemInner {
    fn record(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        Ok(self.records.get(&id).cloned())
    }

    fn identity(&self, key: &str) -> Result<Option<ExemptionId>, StoreError> {
        Ok(self.identity.get(key).copied())
    }

    fn next_id(&mut self) -> Result<ExemptionId, StoreError> {
        self.next += 1;
        Ok(ExemptionId(self.next))
    }
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemInner> {
        // A poisoned lock only means a test thread panicked mid-commit; the
        // maps are only changed after a change was worked out in full.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ExemptionStore for MemStore {
    fn list(&self) -> Result<Vec<Exemption>, StoreError> {
        Ok(self.lock().records.values().cloned().collect())
    }

    fn get(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        Ok(self.lock().records.get(&id).cloned())
    }

    fn commit(&self, change: Change, ctx: &AuditContext, at: OffsetDateTime) -> Result<Committed, StoreError> {
        if change.is_empty() {
            return Ok(Committed::default());
        }
        let mut g = self.lock();
        let first_seq = g.audit.last().map_or(1, |a| a.seq + 1);
        // Work on the id counter only; records change after success.
        let mut ids = MemIds { inner: &g, next: g.next };
        let p = prepare(&mut ids, change, ctx, at, first_seq)?;
        let next = ids.next;
        g.next = next;
        for old in &p.committed.removed {
            g.records.remove(&old.id);
        }
        for e in p.committed.created.iter().chain(p.committed.updated.iter().map(|(_, after)| after)) {
            g.records.insert(e.id, e.clone());
        }
        for (key, holder) in p.identity {
            match holder {
                Some(id) => g.identity.insert(key, id),
                None => g.identity.remove(&key),
            };
        }
        debug_assert!(g
            .records
            .values()
            .all(|e| g.identity.get(&identity_key(&e.subscriber, &e.switches)) == Some(&e.id)));
        g.audit.extend(p.audit);
        Ok(p.committed)
    }

    fn last_audit_seq(&self) -> Result<u64, StoreError> {
        Ok(self.lock().audit.last().map_or(0, |a| a.seq))
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let g = self.lock();
        let end = query.before_seq.unwrap_or(u64::MAX);
        Ok(g.audit.iter().rev().filter(|a| a.seq < end && query.matches(a)).take(query.limit).cloned().collect())
    }
}

/// [`Stored`] over a locked [`MemInner`] whose counter moves only if the
/// commit succeeds.
struct MemIds<'a> {
    inner: &'a MemInner,
    next: u64,
}

impl Stored for MemIds<'_> {
    fn record(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        self.inner.record(id)
    }

    fn identity(&self, key: &str) -> Result<Option<ExemptionId>, StoreError> {
        self.inner.identity(key)
    }

    fn next_id(&mut self) -> Result<ExemptionId, StoreError> {
        self.next += 1;
        Ok(ExemptionId(self.next))
    }
}
