//! `GET /v1/audit`: the audit trail, newest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use port25_rules::model::clip;
use port25_rules::{AuditAction, AuditEntry, AuditQuery};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::exemptions::{parse_subscriber_filter, query_error};
use crate::AppState;

/// Entries per page when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 100;
/// Most entries per page.
pub(crate) const MAX_LIMIT: usize = 1000;

/// Query of `GET /v1/audit`. Strings, parsed here so each error names its
/// field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// An address or prefix: entries about exemptions covering all of it.
    subscriber: Option<String>,
    /// RFC 3339: entries made at or after it.
    since: Option<String>,
    /// grant, revoke, expire or sync.
    action: Option<String>,
    /// 1 to 1000 (default 100).
    limit: Option<String>,
    /// A `seq`: only older entries (the previous page's `next_before`).
    before: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct AuditPage {
    /// Newest first.
    entries: Vec<AuditEntry>,
    /// Pass as `before` to read the next (older) page; absent when this
    /// page is the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<u64>,
}

/// `GET /v1/audit[?subscriber=..&since=..&action=..&limit=..&before=..]`.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "operators",
    params(
        ("subscriber" = Option<String>, Query, description = "Entries about exemptions covering this address or prefix"),
        ("since" = Option<String>, Query, description = "RFC 3339: entries at or after it"),
        ("action" = Option<String>, Query, description = "grant, revoke, expire or sync"),
        ("limit" = Option<u64>, Query, description = "1 to 1000, default 100"),
        ("before" = Option<u64>, Query, description = "A seq: older entries only (the previous page's next_before)")
    ),
    responses(
        (status = 200, description = "Entries newest first, and next_before", body = crate::openapi::Object),
        (status = 400, description = "Bad input; `field` names what to fix", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let Query(p) = params.map_err(query_error)?;
    let query = AuditQuery {
        subscriber: p.subscriber.as_deref().map(parse_subscriber_filter).transpose()?,
        since: p
            .since
            .map(|s| {
                OffsetDateTime::parse(&s, &Rfc3339).map_err(|e| {
                    ApiError::field(
                        "since",
                        format!("'{}' is not an RFC 3339 time such as 2026-12-03T00:00:00Z: {e}", clip(&s)),
                    )
                })
            })
            .transpose()?,
        action: p
            .action
            .map(|a| {
                a.parse::<AuditAction>().map_err(|_| {
                    ApiError::field(
                        "action",
                        format!("'{}' is not an audit action: grant, revoke, expire or sync", clip(&a)),
                    )
                })
            })
            .transpose()?,
        before_seq: p.before.map(|b| parse_number("before", &b, 1, u64::MAX)).transpose()?,
        limit: match p.limit {
            None => DEFAULT_LIMIT,
            Some(l) => parse_number("limit", &l, 1, MAX_LIMIT as u64)? as usize,
        },
    };
    let limit = query.limit;
    let entries = state.writer.read(move |store| store.audit(&query)).await?;
    let next_before = if entries.len() == limit { entries.last().map(|e| e.seq) } else { None };
    Ok(Json(AuditPage { entries, next_before }))
}

fn parse_number(field: &str, s: &str, min: u64, max: u64) -> Result<u64, ApiError> {
    let n = (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::field(
            field,
            format!("{field} must be a whole number from {min} to {max}, not '{}'", clip(s)),
        )),
    }
}
