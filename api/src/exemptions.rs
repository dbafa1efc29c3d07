//! `/v1/exemptions`: grant, list, show and revoke.
//!
//! Writes follow one rule: persist, then publish, under one lock. A grant
//! is acknowledged only after the store has made it durable and the new
//! policy snapshot is published; a rejected request touches neither.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use port25_rules::{Dpid, Exemption, ExemptionId, ExemptionStore, NewExemption, Prefix, Scope, Snapshot, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::info;

use crate::error::ApiError;
use crate::extract::{field_of, kind, ApiJson};
use crate::AppState;

/// Longest note accepted, in characters.
pub(crate) const MAX_NOTE_CHARS: usize = 1024;

/// The body of `POST /v1/exemptions` as received. Fields are raw JSON
/// values so that [`GrantBody::validate`] can name the field in every
/// error, type errors included (serde's own type errors do not say which
/// field they are about). `null` is the same as absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantBody {
    #[serde(default)]
    subscriber: Option<Value>,
    #[serde(default)]
    note: Option<Value>,
    #[serde(default)]
    switches: Option<Value>,
}

impl GrantBody {
    /// Check every field and build the domain request.
    ///
    /// # Errors
    /// A `400` naming the first offending field.
    pub(crate) fn validate(self) -> Result<NewExemption, ApiError> {
        let subscriber = match self.subscriber {
            None => {
                return Err(ApiError::field(
                    "subscriber",
                    "subscriber is required: the address or prefix to exempt, such as 203.0.113.7/32",
                ))
            }
            Some(Value::String(s)) => s.parse::<Prefix>().map_err(|e| ApiError::field("subscriber", e.to_string()))?,
            Some(other) => {
                return Err(ApiError::field(
                    "subscriber",
                    format!("subscriber must be a string such as \"203.0.113.7/32\", not {}", kind(&other)),
                ))
            }
        };
        let note = match self.note {
            None => None,
            Some(Value::String(s)) => Some(check_note(s)?),
            Some(other) => return Err(ApiError::field("note", format!("note must be a string, not {}", kind(&other)))),
        };
        let switches = match self.switches {
            None => None,
            Some(Value::Array(items)) => Some(parse_switches(items)?),
            Some(other) => {
                return Err(ApiError::field(
                    "switches",
                    format!("switches must be a list of datapath ids, not {}", kind(&other)),
                ))
            }
        };
        Ok(NewExemption { subscriber, note, scope: Scope::from_list(switches) })
    }
}

fn check_note(note: String) -> Result<String, ApiError> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::field("note", format!("note is longer than {MAX_NOTE_CHARS} characters")));
    }
    // Notes end up in logs and operator tooling; control characters
    // (newlines included) could forge log lines or garble terminals.
    if note.chars().any(char::is_control) {
        return Err(ApiError::field("note", "note must not contain control characters (including newlines and tabs)"));
    }
    Ok(note)
}

fn parse_switches(items: Vec<Value>) -> Result<Vec<Dpid>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::field(
            "switches",
            "switches is empty: omit switches to apply to every switch, or list at least one datapath id",
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("switches[{i}]");
            match item {
                Value::String(s) => s.parse::<Dpid>().map_err(|e| ApiError::field(field, e.to_string())),
                other => Err(ApiError::field(
                    field,
                    format!("a datapath id must be a string such as \"0000000000000001\", not {}", kind(&other)),
                )),
            }
        })
        .collect()
}

/// `POST /v1/exemptions`: `201` with the stored record and its `Location`.
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<(StatusCode, HeaderMap, Json<Exemption>), ApiError> {
    let new = body.validate()?;
    let record = write(&state, move |store, policy| {
        let record = store.insert(new, OffsetDateTime::now_utc())?;
        policy.send_modify(|s| *s = Arc::new(s.with(record.clone())));
        Ok(record)
    })
    .await?;
    info!(id = %record.id, subscriber = %record.subscriber, "exemption granted");
    let mut headers = HeaderMap::new();
    let location = HeaderValue::from_str(&format!("/v1/exemptions/{}", record.id))
        .map_err(|e| ApiError::Internal(format!("location header: {e}")))?;
    headers.insert(header::LOCATION, location);
    Ok((StatusCode::CREATED, headers, Json(record)))
}

/// `DELETE /v1/exemptions/{id}`: `204`, or `404` if there is no such id.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(id)?;
    let removed = write(&state, move |store, policy| {
        let removed = store.remove(id)?;
        if removed.is_some() {
            policy.send_modify(|s| *s = Arc::new(s.without(id)));
        }
        Ok(removed)
    })
    .await?;
    match removed {
        Some(rec) => {
            info!(id = %rec.id, subscriber = %rec.subscriber, "exemption revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(not_found(id)),
    }
}

/// `GET /v1/exemptions/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Exemption>, ApiError> {
    let id = parse_id(id)?;
    read(&state, move |store| store.get(id)).await?.map(Json).ok_or_else(|| not_found(id))
}

/// Query of `GET /v1/exemptions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// An address or prefix: only exemptions covering all of it are listed.
    subscriber: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct ExemptionList {
    exemptions: Vec<Exemption>,
}

/// `GET /v1/exemptions[?subscriber=ADDR_OR_PREFIX]`, ordered by id.
///
/// With `subscriber`, lists the exemptions that cover it entirely: for an
/// address, those whose prefix contains it; for a prefix, the equal one and
/// any wider one containing it. That answers "is this customer allowed to
/// send on port 25, and by which record?".
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ExemptionList>, ApiError> {
    let Query(query) = query.map_err(|r| {
        let text = r.body_text();
        match field_of(&text) {
            Some(field) => ApiError::field(field, text),
            None => ApiError::bad_request(text),
        }
    })?;
    let filter = match query.subscriber {
        None => None,
        Some(s) => Some(s.parse::<Prefix>().map_err(|e| ApiError::field("subscriber", e.to_string()))?),
    };
    let mut exemptions = read(&state, |store| store.list()).await?;
    if let Some(q) = filter {
        exemptions.retain(|e| e.subscriber.len() <= q.len() && e.subscriber.contains(q.addr()));
    }
    Ok(Json(ExemptionList { exemptions }))
}

fn parse_id(path: Result<Path<String>, PathRejection>) -> Result<ExemptionId, ApiError> {
    let Path(raw) = path.map_err(|r| ApiError::field("id", r.body_text()))?;
    // Digits only: `u64::from_str` would also take "+7".
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::field(
            "id",
            format!("'{raw}' is not an exemption id: expected a whole number such as 7"),
        ));
    }
    raw.parse::<u64>()
        .map(ExemptionId)
        .map_err(|_| ApiError::field("id", format!("'{raw}' is not an exemption id: too large")))
}

fn not_found(id: ExemptionId) -> ApiError {
    ApiError::NotFound(format!("no exemption with id {id}"))
}

/// Run a store write and its publication under the write lock, on the
/// blocking pool (the store fsyncs).
///
/// The lock guard and the whole persist-then-publish step move into the
/// blocking task. If the client goes away, axum drops this future, but the
/// task still runs to the end: a record is never stored without also being
/// published, and the lock is held until both happened.
async fn write<R: Send + 'static>(
    state: &AppState,
    op: impl FnOnce(&dyn ExemptionStore, &watch::Sender<Arc<Snapshot>>) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    let guard = Arc::clone(&state.write).lock_owned().await;
    let store = Arc::clone(&state.store);
    let policy = Arc::clone(&state.policy);
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        op(store.as_ref(), &policy)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
    .map_err(ApiError::from)
}

/// Run a store read on the blocking pool. Reads take no lock: they see the
/// store, which is never behind the published policy.
async fn read<R: Send + 'static>(
    state: &AppState,
    op: impl FnOnce(&dyn ExemptionStore) -> Result<R, StoreError> + Send + 'static,
) -> Result<R, ApiError> {
    let store = Arc::clone(&state.store);
    tokio::task::spawn_blocking(move || op(store.as_ref()))
        .await
        .map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
        .map_err(ApiError::from)
}
