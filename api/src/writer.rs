//! [`Writer`]: the one path by which the exemptions change. Handlers, the
//! sync and the expiry task all go through it.
//!
//! Writes follow one rule: persist (with the audit entries), then publish,
//! under one lock. So publish order equals store order, a change is
//! acknowledged only after it is durable, and a failed write publishes
//! nothing.
//!
//! The domain events ("exemption granted", "exemptions synced", ...) are
//! logged here too, by the blocking task right after the store commit,
//! not by the handlers: a client that disconnects makes axum drop the
//! handler future, but the task still commits, so this is the one place
//! where every committed change is logged exactly once.

use std::sync::Arc;

use port25_rules::{
    AuditAction, AuditContext, Change, Committed, Exemption, ExemptionId, ExemptionStore, NewExemption, Snapshot,
};
use time::OffsetDateTime;
use tokio::sync::{watch, Mutex};
use tracing::{debug, info};

use crate::error::ApiError;

/// What a commit is, for the line it logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// One grant: a line per record.
    Grant,
    /// One revoke: a line per record.
    Revoke,
    /// Expiries: a line per record.
    Expire,
    /// `POST /v1/exemptions/bulk`: one line with the counts (each record
    /// at debug), even when nothing was created.
    Bulk,
    /// `PUT /v1/exemptions`: one line with the counts (each record at
    /// debug), even when everything was kept.
    Sync,
}

/// Log what a commit changed. `total` is the number of exemptions after it.
fn log_committed(event: Event, done: &Committed, ctx: &AuditContext, version: u64, total: usize) {
    let request_id = ctx.request_id.as_deref().unwrap_or("");
    let actor = ctx.actor.as_str();
    let source = ctx.source.map(|s| s.to_string()).unwrap_or_default();
    // The record's fields are formatted only if the line is enabled: a
    // bulk of 100,000 logs each record at debug.
    let each = |e: &Exemption, what: &str, detail: bool| {
        if detail {
            debug!(id = e.id.0, subscriber = %e.subscriber, policy_version = version, request_id, actor, source, "exemption {what}");
        } else {
            info!(id = e.id.0, subscriber = %e.subscriber, policy_version = version, request_id, actor, source, "exemption {what}");
        }
    };
    match event {
        Event::Grant => done.created.iter().for_each(|e| each(e, "granted", false)),
        Event::Revoke => done.removed.iter().for_each(|e| each(e, "revoked", false)),
        Event::Expire => done.removed.iter().for_each(|e| each(e, "expired", false)),
        Event::Bulk => {
            let ids = (done.created.first().map(|e| e.id.0), done.created.last().map(|e| e.id.0));
            info!(
                created = done.created.len(),
                first_id = ids.0,
                last_id = ids.1,
                policy_version = version,
                request_id,
                actor,
                source,
                "exemptions granted in bulk"
            );
            done.created.iter().for_each(|e| each(e, "granted", true));
        }
        Event::Sync => {
            // After a sync the store holds exactly the list, so what was
            // neither created nor updated was kept.
            let kept = total.saturating_sub(done.created.len() + done.updated.len());
            info!(
                created = done.created.len(),
                updated = done.updated.len(),
                deleted = done.removed.len(),
                kept,
                policy_version = version,
                request_id,
                actor,
                source,
                "exemptions synced"
            );
            done.created.iter().for_each(|e| each(e, "granted", true));
            done.updated.iter().for_each(|(_, after)| each(after, "updated", true));
            done.removed.iter().for_each(|e| each(e, "revoked", true));
        }
    }
}

/// Store plus policy channel plus the write lock. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    store: Arc<dyn ExemptionStore>,
    policy: Arc<watch::Sender<Arc<Snapshot>>>,
    /// Serialises writes so that publish order equals store order: without
    /// it, two grants could be stored as 1, 2 but published as 2, 1, and the
    /// snapshot versions would not describe the store's history. It also
    /// makes the published snapshot equal to the store while it is held,
    /// so a change can be planned from the snapshot. A tokio mutex because
    /// the guard is held across the `spawn_blocking` await; the guard is an
    /// owned one so it can move into the blocking task.
    lock: Arc<Mutex<()>>,
}

impl Writer {
    /// A writer over `store`, publishing to `policy`, which should already
    /// hold a snapshot of what `store` contains.
    pub fn new(store: Arc<dyn ExemptionStore>, policy: Arc<watch::Sender<Arc<Snapshot>>>) -> Writer {
        Writer { store, policy, lock: Arc::new(Mutex::new(())) }
    }

    /// The policy channel (for building an [`crate::AppState`]).
    pub fn sender(&self) -> Arc<watch::Sender<Arc<Snapshot>>> {
        Arc::clone(&self.policy)
    }

    /// The published policy right now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.policy.borrow().clone()
    }

    /// A receiver of every published policy.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.policy.subscribe()
    }

    /// Plan a change from the current snapshot, commit it with its audit
    /// entries, and publish the result as one new policy version (none if
    /// nothing changed). Returns what was committed, what `plan` returned
    /// besides the change, and the policy version after the change.
    ///
    /// `plan` runs under the write lock, when the snapshot equals the
    /// store. Everything runs on the blocking pool (the store fsyncs) with
    /// the lock guard moved into the task: if the client goes away, axum
    /// drops this future, but the task still runs to the end, so a change
    /// is never stored without also being published, nor without being
    /// logged (as `event` says, with the request id and actor of `ctx`).
    ///
    /// # Errors
    /// What `plan` or the store returns; nothing is published then.
    pub async fn commit<R, F>(&self, ctx: AuditContext, event: Event, plan: F) -> Result<(Committed, R, u64), ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&Snapshot, OffsetDateTime) -> Result<(Change, R), ApiError> + Send + 'static,
    {
        let guard = Arc::clone(&self.lock).lock_owned().await;
        let store = Arc::clone(&self.store);
        let policy = Arc::clone(&self.policy);
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let now = OffsetDateTime::now_utc();
            let current = policy.borrow().clone();
            let (change, extra) = plan(&current, now)?;
            let committed = store.commit(change, &ctx, now)?;
            if committed.is_empty() {
                if matches!(event, Event::Bulk | Event::Sync) {
                    log_committed(event, &committed, &ctx, current.version, current.exemptions.len());
                }
                return Ok((committed, extra, current.version));
            }
            let (added, removed) = committed.for_snapshot();
            let next = Arc::new(current.apply(added, &removed));
            let version = next.version;
            // Logged before publishing, so that whoever sees the new
            // policy can also find its log line.
            log_committed(event, &committed, &ctx, version, next.exemptions.len());
            policy.send_replace(next);
            Ok((committed, extra, version))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
    }

    /// Grant one exemption (audited as "grant"). `make` builds the request
    /// under the write lock, from the `now` the record is stored with, so
    /// that an expiry is computed and checked with the clock of the
    /// commit, not of the request's arrival. Returns the record and the
    /// policy version that carries it.
    ///
    /// # Errors
    /// What `make` returns; `409` for a duplicate; store failures.
    pub async fn grant<F>(&self, ctx: AuditContext, make: F) -> Result<(Exemption, u64), ApiError>
    where
        F: FnOnce(OffsetDateTime) -> Result<NewExemption, ApiError> + Send + 'static,
    {
        let (mut done, (), version) = self
            .commit(ctx, Event::Grant, move |_, now| {
                let mut change = Change::new(AuditAction::Grant);
                change.create.push(make(now)?);
                Ok((change, ()))
            })
            .await?;
        let record = done.created.pop().ok_or_else(|| ApiError::Internal("a grant created nothing".into()))?;
        Ok((record, version))
    }

    /// Revoke one exemption (audited as "revoke"); `None` if there was no
    /// such id. Returns the record and the policy version without it.
    ///
    /// # Errors
    /// Store failures.
    pub async fn revoke(&self, id: ExemptionId, ctx: AuditContext) -> Result<Option<(Exemption, u64)>, ApiError> {
        let (mut done, (), version) = self
            .commit(ctx, Event::Revoke, move |_, _| {
                let mut change = Change::new(AuditAction::Revoke);
                change.remove.push(id);
                Ok((change, ()))
            })
            .await?;
        Ok(done.removed.pop().map(|e| (e, version)))
    }

    /// Revoke every exemption whose `expires_at` has passed (audited as
    /// "expire", with `ctx`: normally [`AuditContext::port25d`]), as one
    /// policy version. Returns what was removed.
    ///
    /// # Errors
    /// Store failures.
    pub async fn expire_due(&self, ctx: AuditContext) -> Result<Vec<Exemption>, ApiError> {
        let (done, (), _) = self
            .commit(ctx, Event::Expire, |snap, now| {
                let mut change = Change::new(AuditAction::Expire);
                change.remove = snap.exemptions.values().filter(|e| e.is_expired(now)).map(|e| e.id).collect();
                Ok((change, ()))
            })
            .await?;
        Ok(done.removed)
    }

    /// Run a store read on the blocking pool. Reads take no lock: they see
    /// the store, which is never behind the published policy.
    ///
    /// # Errors
    /// Store failures.
    pub(crate) async fn read<R: Send + 'static>(
        &self,
        op: impl FnOnce(&dyn ExemptionStore) -> Result<R, port25_rules::StoreError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || op(store.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
            .map_err(ApiError::from)
    }
}
