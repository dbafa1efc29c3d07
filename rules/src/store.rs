//! Where exemptions live: the [`ExemptionStore`] trait in domain terms,
//! [`SledStore`] on disk (the only code in port25 that imports sled) and
//! [`MemStore`] for tests.
//!
//! Every write method returns only after the change is durable: for sled,
//! after `flush()` has written and fsynced it. The API acknowledges a write
//! only after the store returned, so an acknowledged exemption survives
//! `kill -9`.
//!
//! # sled layout
//!
//! ```text
//! tree "exemptions"  key: id as 8 bytes big-endian  value: the Exemption as JSON
//! tree "identity"    key: "<prefix>|<scope>"        value: id as 8 bytes big-endian
//!                    scope = "*" (all switches) or the sorted dpids joined by ","
//! tree "meta"        key: "schema"                  value: "1"
//! ```
//!
//! Both trees change in one sled transaction, so the identity index never
//! disagrees with the records. Ids come from `Db::generate_id`, which never
//! repeats across restarts; ids start at 1.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use time::OffsetDateTime;

use crate::flow::MAX_EXEMPTION_ID;
use crate::model::{Exemption, ExemptionId, NewExemption, Prefix, Scope};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The same subscriber prefix and scope is already stored.
    #[error("an exemption for {subscriber} with the same switches already exists (id {existing})")]
    Conflict { existing: ExemptionId, subscriber: Prefix },
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

    /// Store a new exemption and make it durable before returning it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the same prefix and scope exist; I/O.
    fn insert(&self, new: NewExemption, now: OffsetDateTime) -> Result<Exemption, StoreError>;

    /// Remove an exemption durably; returns what was removed, or `None` if
    /// no such id exists.
    ///
    /// # Errors
    /// I/O.
    fn remove(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError>;
}

/// The identity of an exemption for duplicate detection.
fn identity_key(subscriber: &Prefix, scope: &Scope) -> String {
    let scope = match scope.as_list() {
        None => "*".to_owned(),
        Some(list) => list.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
    };
    format!("{subscriber}|{scope}")
}

/// Exemptions on disk, in sled.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    records: sled::Tree,
    identity: sled::Tree,
}

fn io(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
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
                Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock && attempt < 20 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
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
        let meta = db.open_tree("meta").map_err(io)?;
        match meta.get("schema").map_err(io)? {
            None => {
                meta.insert("schema", "1").map_err(io)?;
                db.flush().map_err(io)?;
            }
            Some(v) if v.as_ref() == b"1" => {}
            Some(v) => {
                return Err(StoreError::Corrupt {
                    key: "meta/schema".into(),
                    reason: format!("schema {:?} is not supported by this version", String::from_utf8_lossy(&v)),
                })
            }
        }
        Ok(SledStore { db, records, identity })
    }

    fn decode(key: &[u8], value: &[u8]) -> Result<Exemption, StoreError> {
        serde_json::from_slice(value).map_err(|e| StoreError::Corrupt {
            key: format!("exemptions/{}", key_to_id(key).map_or_else(|| "?".into(), |i| i.to_string())),
            reason: e.to_string(),
        })
    }
}

fn key_to_id(key: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = key.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
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

    fn insert(&self, new: NewExemption, now: OffsetDateTime) -> Result<Exemption, StoreError> {
        let id = self.db.generate_id().map_err(io)?.checked_add(1).ok_or(StoreError::IdsExhausted)?;
        if id > MAX_EXEMPTION_ID {
            return Err(StoreError::IdsExhausted);
        }
        let record = Exemption {
            id: ExemptionId(id),
            subscriber: new.subscriber,
            note: new.note,
            created_at: now,
            switches: new.scope,
        };
        let ident = identity_key(&record.subscriber, &record.switches);
        let value = serde_json::to_vec(&record).map_err(|e| StoreError::Io(e.to_string()))?;
        let key = id.to_be_bytes();
        let res = (&self.records, &self.identity).transaction(|(records, identity)| {
            if let Some(existing) = identity.get(ident.as_bytes())? {
                let existing = key_to_id(&existing).unwrap_or(0);
                return Err(ConflictableTransactionError::Abort(ExemptionId(existing)));
            }
            identity.insert(ident.as_bytes(), &key)?;
            records.insert(&key, value.as_slice())?;
            Ok(())
        });
        match res {
            Ok(()) => {}
            Err(TransactionError::Abort(existing)) => {
                return Err(StoreError::Conflict { existing, subscriber: record.subscriber })
            }
            Err(TransactionError::Storage(e)) => return Err(io(e)),
        }
        self.db.flush().map_err(io)?;
        Ok(record)
    }

    fn remove(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        let key = id.0.to_be_bytes();
        let Some(existing) = self.get(id)? else { return Ok(None) };
        let ident = identity_key(&existing.subscriber, &existing.switches);
        (&self.records, &self.identity)
            .transaction(|(records, identity)| {
                records.remove(&key)?;
                identity.remove(ident.as_bytes())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => StoreError::Io("transaction aborted".into()),
                TransactionError::Storage(e) => io(e),
            })?;
        self.db.flush().map_err(io)?;
        Ok(Some(existing))
    }
}

/// Exemptions in memory, for tests. Same semantics as [`SledStore`],
/// without durability.
#[derive(Default)]
pub struct MemStore {
    // A std Mutex: held only for map operations, never across an await.
    inner: Mutex<MemInner>,
}

#[derive(Default)]
struct MemInner {
    next: u64,
    records: BTreeMap<ExemptionId, Exemption>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        // A poisoned lock only means a test thread panicked mid-insert; the
        // map itself is always consistent between statements.
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

    fn insert(&self, new: NewExemption, now: OffsetDateTime) -> Result<Exemption, StoreError> {
        let mut g = self.lock();
        let ident = identity_key(&new.subscriber, &new.scope);
        if let Some(e) = g.records.values().find(|e| identity_key(&e.subscriber, &e.switches) == ident) {
            return Err(StoreError::Conflict { existing: e.id, subscriber: e.subscriber });
        }
        g.next += 1;
        let record = Exemption {
            id: ExemptionId(g.next),
            subscriber: new.subscriber,
            note: new.note,
            created_at: now,
            switches: new.scope,
        };
        g.records.insert(record.id, record.clone());
        Ok(record)
    }

    fn remove(&self, id: ExemptionId) -> Result<Option<Exemption>, StoreError> {
        Ok(self.lock().records.remove(&id))
    }
}
