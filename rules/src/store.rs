//! Where exemptions live: the [`ExemptionStore`] trait in domain terms,
//! [`SledStore`] on disk (the only code in port25 that imports sled) and
//! [`MemStore`] for tests.
//!
//! Every write goes through [`ExemptionStore::commit`]: a [`Change`] of any
//! number of creations, updates and removals, applied all or nothing,
//! together with one [`AuditEntry`] per changed record. It returns only
//! after the change is durable: for sled, after `flush()` has written and
//! fsynced it. The API acknowledges a write only after the store returned,
//! so an acknowledged exemption (and its audit entry) survives `kill -9`.
//!
//! # sled layout
//!
//! ```text
//! tree "exemptions"  key: id as 8 bytes big-endian  value: the Exemption as JSON
//! tree "identity"    key: "<prefix>|<scope>"        value: id as 8 bytes big-endian
//!                    scope = "*" (all switches) or the sorted dpids joined by ","
//! tree "audit"       key: seq as 8 bytes big-endian value: the AuditEntry as JSON
//! tree "meta"        key: "schema"                  value: "3"
//!                    key: "last_id"                 value: the last id handed out, 8 bytes big-endian
//! ```
//!
//! The data trees and `meta/last_id` change in one sled transaction, so
//! the identity index never disagrees with the records, every change has
//! its audit entry, and an id is used up only by a change that was
//! stored: ids go 1, 2, 3, ... across restarts, and a refused grant (a
//! conflict) takes none. They are never reused. Audit `seq`s are the last
//! key plus one; both counters are read under the store's write lock, and
//! the audit tree is only ever appended to.
//!
//! Schema 2 added the audit tree and the optional `expires_at` and
//! `external_id` fields; schema 3 added `meta/last_id` (schema 2 took ids
//! from sled's `generate_id`, which jumps by a million at every restart).
//! Older stores are upgraded in place on open: `last_id` starts above
//! every id a record, an audit entry or `generate_id` ever had. A port25d
//! that knows an older schema refuses a newer store instead of misreading
//! it (an older one would hand out ids again from `generate_id`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

mod mem;
#[cfg(test)]
mod tests;
pub use mem::MemStore;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditContext, AuditEntry, AuditQuery};
use crate::flow::MAX_EXEMPTION_ID;
use crate::model::{Exemption, ExemptionId, NewExemption, Prefix, Scope};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The same subscriber prefix and scope is already stored.
    #[error("an exemption for {subscriber} with the same switches already exists (id {existing})")]
    Conflict { existing: ExemptionId, subscriber: Prefix },
    /// An update named an exemption that is not stored.
    #[error("no exemption with id {0}")]
    NotFound(ExemptionId),
    /// The store could not read or write its files.
    #[error("store I/O failed: {0}")]
    Io(String),
    /// A stored record could not be read back (corrupt or from a newer version).
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    /// Ids ran past what a flow cookie can carry.
    #[error("exemption ids are exhausted")]
    IdsExhausted,
}

/// A batch of changes, applied all or nothing by [`ExemptionStore::commit`].
/// Removals are applied first, then updates, then creations, so a batch
/// may remove a record and create one with the same identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// How every changed record is audited.
    pub action: AuditAction,
    /// New exemptions; the store assigns ids and `created_at`.
    pub create: Vec<NewExemption>,
    /// Replacements for stored records, matched by id. The stored
    /// `created_at` is kept.
    pub update: Vec<Exemption>,
    /// Ids to remove; unknown ids are skipped.
    pub remove: Vec<ExemptionId>,
}

impl Change {
    /// An empty change audited as `action`.
    pub fn new(action: AuditAction) -> Change {
        Change { action, create: Vec::new(), update: Vec::new(), remove: Vec::new() }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.remove.is_empty()
    }
}

/// What a committed [`Change`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The records created, with their ids.
    pub created: Vec<Exemption>,
    /// Each updated record as `(before, after)`.
    pub updated: Vec<(Exemption, Exemption)>,
    /// The records removed, as they were.
    pub removed: Vec<Exemption>,
}

impl Committed {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.removed.is_empty()
    }

    /// The arguments for `Snapshot::apply`: records to add or replace,
    /// and ids to remove.
    pub fn for_snapshot(&self) -> (Vec<Exemption>, Vec<ExemptionId>) {
        let added = self.created.iter().cloned().chain(self.updated.iter().map(|(_, after)| after.clone())).collect();
        (added, self.removed.iter().map(|e| e.id).collect())
    }
}

/// Exemptions in domain terms. Implementations are cheap to share behind an
/// `Arc` and safe to call from several threads. Methods block (disk I/O):
/// call them from `spawn_blocking` in async code.
pub trait ExemptionStore: Send + Sync + 'static {
    /// Every stored exemption, ordered by id.
    ///
    /// # Errors
    /// I/O or a corrupt record.
    fn list(&self) -> Result<Vec<Exemption>, StoreError>;

    /// One exemption by id.
    ///
    /// # Errors
    /// I/O or a corrupt record.
    fn get(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError>;

    /// Apply a change all or nothing, append one audit entry per changed
    /// record (made at `at`, by `ctx`), and make both durable before
    /// returning.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a created or updated record would
    /// have the prefix and scope of another; [`StoreError::NotFound`] for
    /// an update of an unknown id; I/O. Nothing is written on error.
    fn commit(&self, change: Change, ctx: &AuditContext, at: OffsetDateTime) -> Result<Committed, StoreError>;

    /// Audit entries matching `query`, newest first.
    ///
    /// # Errors
    /// I/O or a corrupt entry.
    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    /// The `seq` of the newest audit entry (0 for none). It grows with
    /// every stored change and never goes back, across restarts too; the
    /// daemon numbers its policy versions from it.
    ///
    /// # Errors
    /// I/O.
    fn last_audit_seq(&self) -> Result<u64, StoreError>;

    /// Store one new exemption (audited as a grant).
    ///
    /// # Errors
    /// As [`ExemptionStore::commit`].
    fn insert(&self, new: NewExemption, ctx: &AuditContext, now: OffsetDateTime) -> Result<Exemption, StoreError> {
        let mut change = Change::new(AuditAction::Grant);
        change.create.push(new);
        self.commit(change, ctx, now)?.created.pop().ok_or_else(|| StoreError::Io("commit created nothing".into()))
    }

    /// Remove one exemption, audited as `action`; returns what was
    /// removed, or `None` if no such id exists.
    ///
    /// # Errors
    /// As [`ExemptionStore::commit`].
    fn remove(
        &self,
        id: ExemptionId,
        action: AuditAction,
        ctx: &AuditContext,
        now: OffsetDateTime,
    ) -> Result<Option<Exemption>, StoreError> {
        let mut change = Change::new(action);
        change.remove.push(id);
        Ok(self.commit(change, ctx, now)?.removed.pop())
    }
}

/// The identity of an exemption for duplicate detection.
fn identity_key(subscriber: &Prefix, scope: &Scope) -> String {
    let scope = match scope.as_list() {
        None => "*".to_owned(),
        Some(list) => list.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
    };
    format!("{subscriber}|{scope}")
}

/// A change worked out against the stored state: the records to write,
/// the identity index entries to set (`Some`) or clear (`None`), and the
/// audit entries. Shared by both stores so they cannot differ.
struct Prepared {
    committed: Committed,
    identity: HashMap<String, Option<ExemptionId>>,
    audit: Vec<AuditEntry>,
}

/// What [`prepare`] needs to know about the stored state.
trait Stored {
    fn record(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError>;
    fn identity(&self, key: &str) -> Result<Option<ExemptionId>, StoreError>;
    fn next_id(&mut self) -> Result<ExemptionId, StoreError>;
}

fn prepare(
    stored: &mut dyn Stored,
    change: Change,
    ctx: &AuditContext,
    at: OffsetDateTime,
    first_seq: u64,
) -> Result<Prepared, StoreError> {
    let mut identity: HashMap<String, Option<ExemptionId>> = HashMap::new();
    let mut committed = Committed::default();
    let mut gone = HashSet::new();
    for id in change.remove {
        if !gone.insert(id) {
            continue;
        }
        if let Some(old) = stored.record(id)? {
            identity.insert(identity_key(&old.subscriber, &old.switches), None);
            committed.removed.push(old);
        }
    }
    let mut updated_ids = HashSet::new();
    for mut new in change.update {
        if gone.contains(&new.id) || !updated_ids.insert(new.id) {
            return Err(StoreError::NotFound(new.id));
        }
        let old = stored.record(new.id)?.ok_or(StoreError::NotFound(new.id))?;
        new.created_at = old.created_at;
        let (old_key, new_key) =
            (identity_key(&old.subscriber, &old.switches), identity_key(&new.subscriber, &new.switches));
        if old_key != new_key {
            identity.insert(old_key, None);
            claim(&mut identity, stored, new_key, new.id, new.subscriber)?;
        }
        committed.updated.push((old, new));
    }
    for new in change.create {
        let id = stored.next_id()?;
        let record = Exemption {
            id,
            subscriber: new.subscriber,
            note: new.note,
            created_at: at,
            switches: new.scope,
            expires_at: new.expires_at,
            external_id: new.external_id,
        };
        let key = identity_key(&record.subscriber, &record.switches);
        claim(&mut identity, stored, key, id, record.subscriber)?;
        committed.created.push(record);
    }
    let befores = committed.removed.iter().map(|old| (Some(old), None));
    let updates = committed.updated.iter().map(|(old, new)| (Some(old), Some(new)));
    let creates = committed.created.iter().map(|new| (None, Some(new)));
    let audit = befores
        .chain(updates)
        .chain(creates)
        .zip(first_seq..)
        .map(|((before, after), seq): ((Option<&Exemption>, Option<&Exemption>), u64)| {
            let any = after.or(before).expect("every entry has a before or an after");
            AuditEntry {
                seq,
                at,
                action: change.action,
                actor: ctx.actor.clone(),
                source: ctx.source,
                request_id: ctx.request_id.clone(),
                exemption_id: any.id,
                subscriber: any.subscriber,
                before: before.cloned(),
                after: after.cloned(),
            }
        })
        .collect();
    Ok(Prepared { committed, identity, audit })
}

/// Give `key` to `id` in the batch's identity overlay, unless another
/// record holds it (in the overlay, or in the store where the overlay has
/// nothing).
fn claim(
    identity: &mut HashMap<String, Option<ExemptionId>>,
    stored: &mut dyn Stored,
    key: String,
    id: ExemptionId,
    subscriber: Prefix,
) -> Result<(), StoreError> {
    let holder = match identity.get(&key) {
        Some(h) => *h,
        None => stored.identity(&key)?,
    };
    match holder {
        Some(existing) if existing != id => Err(StoreError::Conflict { existing, subscriber }),
        _ => {
            identity.insert(key, Some(id));
            Ok(())
        }
    }
}

/// Exemptions on disk, in sled.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    records: sled::Tree,
    identity: sled::Tree,
    audit: sled::Tree,
    meta: sled::Tree,
    /// Serialises commits. The audit `seq` is read (last key + 1) before
    /// the transaction, and the change is worked out from reads made
    /// before it too; both are only right if no other commit runs in
    /// between. Held for the whole commit including the flush; a std
    /// Mutex because callers are on blocking threads.
    write: std::sync::Arc<Mutex<()>>,
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Io(format!("cannot encode a record: {e}"))
}

impl SledStore {
    /// Open (or create) the store in `dir`.
    ///
    /// # Errors
    /// The directory cannot be created or opened (permissions, another
    /// port25d holding the lock, a corrupt database).
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        // sled 0.34 can hold its file lock for a moment after the last
        // handle in this process is dropped (its flusher thread lets go
        // asynchronously); retry the lock briefly so an in-process restart
        // does not fail. Another process holding the lock still fails.
        let mut attempt = 0;
        let db = loop {
            match sled::Config::new().path(dir).mode(sled::Mode::HighThroughput).open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if is_lock_busy(&e) && attempt < 20 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(sled::Error::Io(e)) if is_lock_busy(&e) => {
                    return Err(StoreError::Io(format!(
                        "cannot open {}: another port25d (or another process) holds its lock",
                        dir.display()
                    )))
                }
                Err(e) => return Err(StoreError::Io(format!("cannot open {}: {e}", dir.display()))),
            }
        };
        let records = db.open_tree("exemptions").map_err(io)?;
        let identity = db.open_tree("identity").map_err(io)?;
        let audit = db.open_tree("audit").map_err(io)?;
        let meta = db.open_tree("meta").map_err(io)?;
        let schema = meta.get("schema").map_err(io)?;
        match schema.as_deref() {
            Some(SCHEMA) => {}
            // Schema 1 had no audit tree and no optional fields, schema 2
            // no id counter: all additive, so the upgrade is the counter
            // and the marker.
            None | Some(b"1") | Some(b"2") => {
                let last = legacy_last_id(&db, &records, &audit)?;
                meta.transaction(|meta| {
                    meta.insert(LAST_ID, &last.to_be_bytes())?;
                    meta.insert("schema", SCHEMA)?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                })
                .map_err(tx_err)?;
                db.flush().map_err(io)?;
            }
            Some(v) => {
                return Err(StoreError::Corrupt {
                    key: "meta/schema".into(),
                    reason: format!("schema {:?} is not supported by this version", String::from_utf8_lossy(v)),
                })
            }
        }
        Ok(SledStore { db, records, identity, audit, meta, write: Default::default() })
    }

    /// The last id handed out (0 before the first).
    fn last_id(&self) -> Result<u64, StoreError> {
        match self.meta.get(LAST_ID).map_err(io)? {
            None => Ok(0),
            Some(v) => key_to_id(&v)
                .ok_or_else(|| StoreError::Corrupt { key: "meta/last_id".into(), reason: "not 8 bytes".into() }),
        }
    }

    fn decode(key: &[u8], value: &[u8]) -> Result<Exemption, StoreError> {
        serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
            key: format!("exemptions/{}", key_to_id(key).map_or_else(|| "?".into(), |i| i.to_string())),
            reason: e.to_string(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded value is (); a panic in another commit left nothing
        // half-done in memory (sled's transaction is all or nothing).
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether opening failed because another handle holds the file lock.
/// sled reports that either as a plain `WouldBlock` or wrapped in an
/// error of its own kind whose text says so.
fn is_lock_busy(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// The current schema marker.
const SCHEMA: &[u8] = b"3";
/// The meta key of the id counter.
const LAST_ID: &str = "last_id";

/// Where the id counter of a store from before schema 3 starts: above
/// every id a record or an audit entry names, and above sled's own
/// generator, which handed out the ids of schema 2 (removed records of a
/// schema 1 store left no audit entry, but their ids came from it too).
fn legacy_last_id(db: &sled::Db, records: &sled::Tree, audit: &sled::Tree) -> Result<u64, StoreError> {
    let mut last = db.generate_id().map_err(io)?;
    if let Some((k, _)) = records.last().map_err(io)? {
        last = last.max(key_to_id(&k).unwrap_or(0));
    }
    for kv in audit.iter() {
        let (_, v) = kv.map_err(io)?;
        if let Ok(entry) = serde_json::from_slice::<AuditEntry>(&v) {
            last = last.max(entry.exemption_id.0);
        }
    }
    Ok(last)
}

fn tx_err(e: TransactionError<()>) -> StoreError {
    match e {
        TransactionError::Abort(()) => StoreError::Io("transaction aborted".into()),
        TransactionError::Storage(e) => io(e),
    }
}

fn key_to_id(key: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// [`Stored`] over the sled store during one commit: ids are counted
/// from `meta/last_id` here, and the counter is written back in the
/// commit's transaction, so a change that fails uses up no id.
struct SledIds<'a> {
    store: &'a SledStore,
    last: u64,
}

impl Stored for SledIds<'_> {
    fn record(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        self.store.get(id)
    }

    fn identity(&self, key: &str) -> Result<Option<ExemptionId>, StoreError> {
        Ok(self.store.identity.get(key.as_bytes()).map_err(io)?.map(|v| ExemptionId(key_to_id(&v).unwrap_or(0))))
    }

    fn next_id(&mut self) -> Result<ExemptionId, StoreError> {
        let id = self.last.checked_add(1).filter(|id| *id <= MAX_EXEMPTION_ID).ok_or(StoreError::IdsExhausted)?;
        self.last = id;
        Ok(ExemptionId(id))
    }
}

impl ExemptionStore for SledStore {
    fn list(&self) -> Result<Vec<Exemption>, StoreError> {
        self.records
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(io)?;
                SledStore::decode(&k, &v)
            })
            .collect()
    }

    fn get(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        let key = id.0.to_be_bytes();
        match self.records.get(key).map_err(io)? {
            None => Ok(None),
            Some(v) => SledStore::decode(&key, &v).map(Some),
        }
    }

    fn commit(&self, change: Change, ctx: &AuditContext, at: OffsetDateTime) -> Result<Committed, StoreError> {
        if change.is_empty() {
            return Ok(Committed::default());
        }
        let _guard = self.lock();
        let last = self.last_audit_seq()?;
        let first_id = self.last_id()?;
        let mut ids = SledIds { store: self, last: first_id };
        let p = prepare(&mut ids, change, ctx, at, last + 1)?;
        let last_id = (ids.last != first_id).then(|| ids.last.to_be_bytes());
        // Encode everything once, outside the transaction closure (sled
        // may run the closure more than once).
        let mut puts: Vec<([u8; 8], Vec<u8>)> = Vec::new();
        for e in p.committed.created.iter().chain(p.committed.updated.iter().map(|(_, after)| after)) {
            puts.push((e.id.0.to_be_bytes(), serde_json::to_vec(e).map_err(json_err)?));
        }
        let dels: Vec<[u8; 8]> = p.committed.removed.iter().map(|e| e.id.0.to_be_bytes()).collect();
        let entries: Vec<([u8; 8], Vec<u8>)> = p
            .audit
            .iter()
            .map(|a| Ok((a.seq.to_be_bytes(), serde_json::to_vec(a).map_err(json_err)?)))
            .collect::<Result<_, StoreError>>()?;
        (&self.records, &self.identity, &self.audit, &self.meta)
            .transaction(|(records, identity, audit, meta)| {
                for key in &dels {
                    records.remove(key)?;
                }
                for (key, value) in &puts {
                    records.insert(key, value.as_slice())?;
                }
                for (key, holder) in &p.identity {
                    match holder {
                        Some(id) => identity.insert(key.as_bytes(), &id.0.to_be_bytes())?,
                        None => identity.remove(key.as_bytes())?,
                    };
                }
                for (key, value) in &entries {
                    audit.insert(key, value.as_slice())?;
                }
                if let Some(last_id) = &last_id {
                    meta.insert(LAST_ID, last_id)?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(tx_err)?;
        self.db.flush().map_err(io)?;
        Ok(p.committed)
    }

    fn last_audit_seq(&self) -> Result<u64, StoreError> {
        Ok(self.audit.last().map_err(io)?.and_then(|(k, _)| key_to_id(&k)).unwrap_or(0))
    }

    fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let end = query.before_seq.unwrap_or(u64::MAX).to_be_bytes();
        let mut out = Vec::new();
        for kv in self.audit.range(..end).rev() {
            if out.len() >= query.limit {
                break;
            }
            let (k, v) = kv.map_err(io)?;
            let entry: AuditEntry = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("audit/{}", key_to_id(&k).map_or_else(|| "?".into(), |i| i.to_string())),
                reason: e.to_string(),
            })?;
            if query.matches(&entry) {
                out.push(entry);
            }
        }
        Ok(out)
    }
}
