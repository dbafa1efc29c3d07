//! `PUT /v1/exemptions[?dry_run=true | ?wait=applied]`: a provisioning system states the full list of
//! exemptions it believes in; port25d works out the difference and, unless
//! `?dry_run=true`, applies it as one store transaction (one flush, one
//! audit entry per changed record, action "sync") and one policy version
//! (so each switch gets one round).
//!
//! # Matching
//! An item is matched to a stored record by its `external_id` when it has
//! one, otherwise by its subscriber and switches (a stored record with an
//! `external_id` only matches an item with the same `external_id`). Then:
//! - equal in every field the item can give: **keep** (no write, no audit);
//! - same subscriber and switches, but a different note or expiry:
//!   **update** in place (same id, same `created_at`; audited with before
//!   and after; the switches' flows do not change);
//! - otherwise (an `external_id` whose subscriber or switches changed): the
//!   old record is **deleted** and a new one **created**;
//! - stored records no item matches: **delete**. The list is the whole
//!   truth: this includes exemptions granted one by one with `POST`.
//!
//! `ttl_seconds` counts from each sync, so repeating a sync with a TTL
//! renews (updates) those records every time, like a lease.
//!
//! Any invalid item refuses the whole request with `400` naming
//! `exemptions[i].<field>`, and nothing is written.

use std::collections::{HashMap, HashSet};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use port25_rules::model::clip;
use port25_rules::{AuditAction, Change, Exemption, NewExemption, Prefix, Scope, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::auth::Who;
use crate::error::ApiError;
use crate::exemptions::{query_error, Checked, Item};
use crate::extract::{parse_object, ApiJson};
use crate::writer::Event;
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncBody {
    /// Kept raw so each item's errors can be named `exemptions[i].field`.
    #[serde(default)]
    exemptions: Option<Box<RawValue>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncParams {
    dry_run: Option<String>,
    wait: Option<String>,
    wait_timeout_ms: Option<String>,
}

/// How an item finds its stored record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    External(String),
    Identity(Prefix, Scope),
}

fn key_of(external_id: &Option<String>, subscriber: Prefix, scope: &Scope) -> Key {
    match external_id {
        Some(x) => Key::External(x.clone()),
        None => Key::Identity(subscriber, scope.clone()),
    }
}

/// A record to be created, as the dry run shows it (no id yet).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Preview {
    subscriber: Prefix,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    switches: Option<Vec<port25_rules::Dpid>>,
    #[serde(skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
}

impl From<&NewExemption> for Preview {
    fn from(n: &NewExemption) -> Preview {
        Preview {
            subscriber: n.subscriber,
            note: n.note.clone(),
            switches: n.scope.as_list().map(<[_]>::to_vec),
            expires_at: n.expires_at,
            external_id: n.external_id.clone(),
        }
    }
}

/// The difference between the stored records and the desired list.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    create: Vec<NewExemption>,
    /// `(before, after)`.
    update: Vec<(Exemption, Exemption)>,
    delete: Vec<Exemption>,
    keep: Vec<Exemption>,
}

/// Work out the difference. O(stored + desired) with hash maps.
pub(crate) fn plan(snap: &Snapshot, desired: Vec<NewExemption>) -> Plan {
    let mut by_key: HashMap<Key, &Exemption> = HashMap::with_capacity(snap.exemptions.len());
    let mut plan = Plan::default();
    for e in snap.exemptions.values() {
        if let Some(dup) = by_key.insert(key_of(&e.external_id, e.subscriber, &e.switches), e) {
            // Two stored records with one external id cannot come from a
            // sync; if there are any, keep the newer one matchable.
            plan.delete.push(dup.clone());
        }
    }
    for d in desired {
        match by_key.remove(&key_of(&d.external_id, d.subscriber, &d.scope)) {
            None => plan.create.push(d),
            Some(old) if old.subscriber == d.subscriber && old.switches == d.scope => {
                if old.note == d.note && old.expires_at == d.expires_at {
                    plan.keep.push(old.clone());
                } else {
                    let mut new = old.clone();
                    new.note = d.note;
                    new.expires_at = d.expires_at;
                    plan.update.push((old.clone(), new));
                }
            }
            Some(old) => {
                plan.delete.push(old.clone());
                plan.create.push(d);
            }
        }
    }
    plan.delete.extend(by_key.into_values().cloned());
    plan.delete.sort_by_key(|e| e.id);
    plan
}

#[derive(Serialize)]
pub(crate) struct Counts {
    create: usize,
    update: usize,
    delete: usize,
    keep: usize,
}

#[derive(Serialize)]
pub(crate) struct UpdateView {
    before: Exemption,
    after: Exemption,
}

/// An entry of `create`: the stored record, or for a dry run the record
/// that would be stored (no id yet).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Created {
    Stored(Exemption),
    Preview(Preview),
}

/// The answer: the difference (applied, or not for a dry run) and the
/// policy version that carries it (wait for switches to confirm it).
#[derive(Serialize)]
pub(crate) struct SyncReply {
    dry_run: bool,
    policy_version: u64,
    counts: Counts,
    /// Created records (with their ids), or for a dry run the records that
    /// would be created.
    create: Vec<Created>,
    update: Vec<UpdateView>,
    delete: Vec<Exemption>,
    keep: Vec<Exemption>,
    /// With `?wait=applied`: where the switches stand with `policy_version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<crate::wait::Applied>,
}

fn reply(dry_run: bool, policy_version: u64, create: Vec<Created>, plan: Plan) -> SyncReply {
    SyncReply {
        dry_run,
        policy_version,
        counts: Counts {
            create: create.len(),
            update: plan.update.len(),
            delete: plan.delete.len(),
            keep: plan.keep.len(),
        },
        create,
        update: plan.update.into_iter().map(|(before, after)| UpdateView { before, after }).collect(),
        delete: plan.delete,
        keep: plan.keep,
        applied: None,
    }
}

/// Parse and check every item; the first bad one refuses the request.
/// Expiries are resolved later, against the clock of the commit
/// ([`resolve`]).
pub(crate) fn validate(body: SyncBody, min: crate::MinPrefixLen) -> Result<Vec<Checked>, ApiError> {
    let raw = body.exemptions.ok_or_else(|| {
        ApiError::field("exemptions", "exemptions is required: the full list of exemptions, possibly empty")
    })?;
    let items: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| ApiError::field("exemptions", "exemptions must be a list of exemption objects"))?;
    let mut out = Vec::with_capacity(items.len());
    let mut external_ids = HashSet::new();
    let mut identities = HashSet::new();
    for (i, raw) in items.into_iter().enumerate() {
        let prefix = format!("exemptions[{i}].");
        let item: Item = parse_object(raw.get().as_bytes(), &format!("exemptions[{i}]")).map_err(|e| match e {
            ApiError::BadRequest { message, field } => ApiError::BadRequest {
                message,
                field: Some(field.map_or_else(|| format!("exemptions[{i}]"), |f| format!("{prefix}{f}"))),
            },
            other => other,
        })?;
        let checked = item.validate(&prefix, min)?;
        let new = &checked.new;
        if let Some(x) = &new.external_id {
            if !external_ids.insert(x.clone()) {
                return Err(ApiError::field(
                    format!("{prefix}external_id"),
                    format!("external_id '{}' appears more than once in the list", clip(x)),
                ));
            }
        }
        if !identities.insert((new.subscriber, new.scope.clone())) {
            return Err(ApiError::field(
                format!("{prefix}subscriber"),
                format!("{} with the same switches appears more than once in the list", new.subscriber),
            ));
        }
        out.push(checked);
    }
    Ok(out)
}

/// Every item as stored at `now`: `ttl_seconds` counts from it, and an
/// `expires_at` that is not after it refuses the whole sync.
///
/// # Errors
/// A `400` naming the first item whose expiry is refused.
fn resolve(checked: Vec<Checked>, now: OffsetDateTime) -> Result<Vec<NewExemption>, ApiError> {
    checked.into_iter().map(|c| c.at(now)).collect()
}

/// `PUT /v1/exemptions[?dry_run=true]`: `200` with the difference.
#[utoipa::path(
    put,
    path = "/v1/exemptions",
    tag = "exemptions",
    params(
        ("dry_run" = Option<bool>, Query, description = "true: only show the difference"),
        ("wait" = Option<String>, Query, description = "`applied`: answer once every connected switch confirmed the change (or the timeout passed), with `applied`"),
        ("wait_timeout_ms" = Option<u64>, Query, description = "With wait=applied: 0 to 60000, default 5000")
    ),
    request_body = crate::openapi::SyncRequest,
    responses(
        (status = 200, description = "The difference (create, update, delete, keep), applied unless dry_run", body = crate::openapi::Object),
        (status = 400, description = "Bad input; `field` names what to fix", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 403, description = "A read token on a write route", body = crate::openapi::ErrorBody),
        (status = 408, description = "Body not received within 30 seconds", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large, or a Content-Length announcing more", body = crate::openapi::ErrorBody),
        (status = 415, description = "Body not declared as JSON, or compressed (Content-Encoding other than identity)", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn apply(
    State(state): State<AppState>,
    Who(who): Who,
    params: Result<Query<SyncParams>, QueryRejection>,
    ApiJson(body): ApiJson<SyncBody>,
) -> Result<Json<SyncReply>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let dry_run = match params.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::field("dry_run", format!("dry_run must be true or false, not '{}'", clip(other))))
        }
    };
    let wait = crate::wait::parse(params.wait.as_deref(), params.wait_timeout_ms.as_deref())?;
    if dry_run && wait.is_some() {
        return Err(ApiError::field("wait", "a dry run changes nothing, so there is nothing to wait for"));
    }
    let desired = validate(body, state.min_prefix_len)?;
    if dry_run {
        let snap = state.writer.snapshot();
        let plan = plan(&snap, resolve(desired, OffsetDateTime::now_utc())?);
        let create = plan.create.iter().map(|n| Created::Preview(Preview::from(n))).collect();
        return Ok(Json(reply(true, snap.version, create, plan)));
    }
    let (done, plan, version) = state
        .writer
        .commit(who, Event::Sync, move |snap, now| {
            let mut plan = plan(snap, resolve(desired, now)?);
            let mut change = Change::new(AuditAction::Sync);
            change.create = std::mem::take(&mut plan.create);
            change.update = plan.update.iter().map(|(_, after)| after.clone()).collect();
            change.remove = plan.delete.iter().map(|e| e.id).collect();
            Ok((change, plan))
        })
        .await?;
    let create = done.created.into_iter().map(Created::Stored).collect();
    let mut body = reply(false, version, create, plan);
    body.applied = crate::exemptions::maybe_wait(&state, version, wait).await;
    Ok(Json(body))
}
