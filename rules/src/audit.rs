//! The audit trail: one [`AuditEntry`] per exemption that changed, written
//! by the store in the same transaction as the change itself.
//!
//! Entries are append-only: the store numbers them from a counter that only
//! grows ([`AuditEntry::seq`]) and never rewrites or deletes one.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{Exemption, ExemptionId, Prefix};

/// What happened to an exemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    /// Granted one by one (`POST /v1/exemptions`).
    Grant,
    /// Revoked one by one (`DELETE /v1/exemptions/{id}`).
    Revoke,
    /// Revoked by port25d because its `expires_at` passed.
    Expire,
    /// Created, updated or deleted by a provisioning sync
    /// (`PUT /v1/exemptions`); `before`/`after` say which.
    Sync,
}

impl AuditAction {
    /// Every action, in the order they are documented.
    pub const ALL: [AuditAction; 4] = [AuditAction::Grant, AuditAction::Revoke, AuditAction::Expire, AuditAction::Sync];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Grant => "grant",
            AuditAction::Revoke => "revoke",
            AuditAction::Expire => "expire",
            AuditAction::Sync => "sync",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an audit action: expected grant, revoke, expire or sync")]
pub struct AuditActionError(pub String);

impl FromStr for AuditAction {
    type Err = AuditActionError;

    fn from_str(s: &str) -> Result<AuditAction, AuditActionError> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| AuditActionError(s.to_owned()))
    }
}

/// Who made a change, recorded with every entry it causes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditContext {
    /// The API token's name, `"anonymous"` when the API runs without
    /// tokens, `"port25d"` for changes port25d makes itself (expiry).
    pub actor: String,
    /// The TCP peer of the request, if it came over the network.
    pub source: Option<SocketAddr>,
    /// The request id (also sent back as `x-request-id`).
    pub request_id: Option<String>,
}

impl AuditContext {
    /// The context of a change port25d makes by itself.
    pub fn port25d() -> AuditContext {
        AuditContext { actor: "port25d".into(), source: None, request_id: None }
    }
}

/// One change to one exemption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// Position in the trail: 1, 2, 3, ... in the order changes were made.
    pub seq: u64,
    /// When the change was made (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub action: AuditAction,
    /// See [`AuditContext::actor`].
    pub actor: String,
    /// See [`AuditContext::source`].
    pub source: Option<SocketAddr>,
    /// See [`AuditContext::request_id`].
    pub request_id: Option<String>,
    /// The exemption that changed.
    pub exemption_id: ExemptionId,
    /// Its subscriber prefix (so the trail can be filtered by address).
    pub subscriber: Prefix,
    /// The record before the change; `null` when it was created.
    pub before: Option<Exemption>,
    /// The record after the change; `null` when it was removed.
    pub after: Option<Exemption>,
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only entries about exemptions whose prefix covers this address or
    /// prefix (the same test as the exemption list's `subscriber` filter).
    pub subscriber: Option<Prefix>,
    /// Only entries made at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries of this action.
    pub action: Option<AuditAction>,
    /// Only entries with a `seq` below this one (for paging backwards).
    pub before_seq: Option<u64>,
    /// At most this many entries.
    pub limit: usize,
}

impl Default for AuditQuery {
    fn default() -> AuditQuery {
        AuditQuery { subscriber: None, since: None, action: None, before_seq: None, limit: 100 }
    }
}

impl AuditQuery {
    /// Whether an entry passes every filter except `before_seq` and `limit`
    /// (which the store applies while reading).
    pub fn matches(&self, e: &AuditEntry) -> bool {
        // Not `is_none_or`: the workspace's rust-version is 1.80.
        !matches!(&self.subscriber, Some(q) if !e.subscriber.covers(q))
            && !matches!(self.since, Some(t) if e.at < t)
            && !matches!(self.action, Some(a) if e.action != a)
    }
}
