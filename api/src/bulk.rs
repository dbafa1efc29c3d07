//! `POST /v1/exemptions/bulk`: many grants in one request, stored as one
//! group commit: one store transaction, one flush and one published
//! policy version for all the valid items, each audited as "grant".
//!
//! Unlike a sync, a bulk create is not all or nothing: each item is checked
//! on its own, the valid ones are stored and the others come back in
//! `rejected` with their index, the reason and the field (as
//! `exemptions[i].field`). An item that duplicates a stored exemption, or
//! an earlier item of the same request, is rejected as a conflict with the
//! id it duplicates in `existing_id`. An item is stored whole or not at
//! all. Only a body that is not `{"exemptions": [...]}` at all (or has more
//! than [`BULK_MAX_ITEMS`] items) refuses the whole request with `400`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use port25_rules::{AuditAction, Change, Exemption, ExemptionId, Prefix, Scope};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::auth::Who;
use crate::error::ApiError;
use crate::exemptions::{maybe_wait, query_error, Checked, GrantBody, Item};
use crate::extract::{parse_object, ApiJson};
use crate::wait::{Applied, WaitParams};
use crate::writer::Event;
use crate::AppState;

/// Most items in one bulk request.
pub const BULK_MAX_ITEMS: usize = 100_000;

/// Largest body of a bulk request: room for [`BULK_MAX_ITEMS`] items of a
/// few hundred bytes each.
pub const BULK_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkBody {
    /// Kept raw so each item is parsed, and refused, on its own.
    #[serde(default)]
    exemptions: Option<Box<RawValue>>,
}

/// One refused item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Rejected {
    /// Position in the request's list, from 0.
    index: usize,
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// For a conflict: the stored exemption it duplicates (or the one
    /// created from the earlier item it duplicates).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    existing_id: Option<ExemptionId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BulkReply {
    /// The stored records, in request order.
    #[schema(value_type = Vec<crate::openapi::Exemption>)]
    created: Vec<Exemption>,
    /// The refused items, by index.
    rejected: Vec<Rejected>,
    /// The policy version that carries `created`.
    policy_version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<Applied>,
}

fn rejected(index: usize, e: ApiError) -> Rejected {
    match e {
        ApiError::BadRequest { message, field } => Rejected { index, error: message, field, existing_id: None },
        other => Rejected { index, error: other.to_string(), field: None, existing_id: None },
    }
}

/// Who holds an identity, as the plan sees it.
#[derive(Clone, Copy)]
enum Holder {
    Stored(ExemptionId),
    /// An earlier item of this request, by index.
    Item(usize),
}

/// `POST /v1/exemptions/bulk[?wait=applied[&wait_timeout_ms=N]]`: `200`.
#[utoipa::path(
    post,
    path = "/v1/exemptions/bulk",
    tag = "exemptions",
    params(
        ("wait" = Option<String>, Query, description = "`applied`: answer once every connected switch confirmed the change (or the timeout passed), with `applied`"),
        ("wait_timeout_ms" = Option<u64>, Query, description = "With wait=applied: 0 to 60000, default 5000")
    ),
    request_body = crate::openapi::BulkRequest,
    responses(
        (status = 200, description = "The valid items stored as one version; the others rejected one by one", body = BulkReply),
        (status = 400, description = "Bad input; `field` names what to fix", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 403, description = "A read token on a write route", body = crate::openapi::ErrorBody),
        (status = 408, description = "Body not received within 30 seconds", body = crate::openapi::ErrorBody),
        (status = 413, description = "Body too large, or a Content-Length announcing more", body = crate::openapi::ErrorBody),
        (status = 415, description = "Body not declared as JSON, or compressed (Content-Encoding other than identity)", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Who(who): Who,
    params: Result<Query<WaitParams>, QueryRejection>,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Json<BulkReply>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let wait = params.timeout()?;
    let raw = body
        .exemptions
        .ok_or_else(|| ApiError::field("exemptions", "exemptions is required: a list of exemptions to grant"))?;
    let items: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| ApiError::field("exemptions", "exemptions must be a list of exemption objects"))?;
    if items.len() > BULK_MAX_ITEMS {
        return Err(ApiError::field(
            "exemptions",
            format!("at most {BULK_MAX_ITEMS} exemptions per request, not {}: split the list", items.len()),
        ));
    }

    // Checked outside the write lock: this is the CPU-heavy part. Only
    // the expiries wait for the commit's clock (`Checked::at`).
    let mut refused = Vec::new();
    let mut valid: Vec<(usize, Checked)> = Vec::with_capacity(items.len());
    for (i, raw) in items.into_iter().enumerate() {
        let prefix = format!("exemptions[{i}].");
        let checked = parse_object::<GrantBody>(raw.get().as_bytes(), &format!("exemptions[{i}]"))
            .map_err(|e| match e {
                ApiError::BadRequest { message, field } => ApiError::BadRequest {
                    message,
                    field: Some(field.map_or_else(|| format!("exemptions[{i}]"), |f| format!("{prefix}{f}"))),
                },
                other => other,
            })
            .and_then(|body| Item::from(body).validate(&prefix, state.min_prefix_len));
        match checked {
            Ok(new) => valid.push((i, new)),
            Err(e) => refused.push(rejected(i, e)),
        }
    }

    let (created, conflicts, version) = if valid.is_empty() {
        (Vec::new(), Vec::new(), state.writer.snapshot().version)
    } else {
        let (done, (indices, conflicts, late), version) = state
            .writer
            .commit(who, Event::Bulk, move |snap, now| {
                // Under the write lock the snapshot equals the store, so
                // these conflicts are exactly the store's.
                let mut holders: HashMap<(Prefix, Scope), Option<Holder>> =
                    valid.iter().map(|(_, c)| ((c.new.subscriber, c.new.scope.clone()), None)).collect();
                for e in snap.exemptions.values() {
                    if let Some(h) = holders.get_mut(&(e.subscriber, e.switches.clone())) {
                        h.get_or_insert(Holder::Stored(e.id));
                    }
                }
                let mut change = Change::new(AuditAction::Grant);
                let mut indices = Vec::with_capacity(valid.len());
                let mut conflicts = Vec::new();
                // Expiries checked with the clock of this commit.
                let mut late = Vec::new();
                for (i, checked) in valid {
                    let new = match checked.at(now) {
                        Ok(new) => new,
                        Err(e) => {
                            late.push(rejected(i, e));
                            continue;
                        }
                    };
                    let slot = holders.entry((new.subscriber, new.scope.clone())).or_default();
                    match *slot {
                        Some(holder) => conflicts.push((i, new.subscriber, holder)),
                        None => {
                            *slot = Some(Holder::Item(i));
                            indices.push(i);
                            change.create.push(new);
                        }
                    }
                }
                Ok((change, (indices, conflicts, late)))
            })
            .await?;
        // The store creates in the order given.
        let id_of: HashMap<usize, ExemptionId> =
            indices.iter().copied().zip(done.created.iter().map(|e| e.id)).collect();
        let conflicts = conflicts
            .into_iter()
            .map(|(i, subscriber, holder)| {
                let (existing, what) = match holder {
                    Holder::Stored(id) => (Some(id), "a stored exemption".to_owned()),
                    Holder::Item(j) => (id_of.get(&j).copied(), format!("exemptions[{j}] of this request")),
                };
                Rejected {
                    index: i,
                    error: format!("{subscriber} with the same switches duplicates {what}"),
                    field: Some(format!("exemptions[{i}].subscriber")),
                    existing_id: existing,
                }
            })
            .collect::<Vec<_>>();
        refused.extend(late);
        (done.created, conflicts, version)
    };
    refused.extend(conflicts);
    refused.sort_by_key(|r| r.index);
    let applied = maybe_wait(&state, version, wait).await;
    Ok(Json(BulkReply { created, rejected: refused, policy_version: version, applied }))
}
