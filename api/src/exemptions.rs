//! `/v1/exemptions`: grant, list, show and revoke, and the validation of
//! one exemption's fields shared with the sync.
//!
//! Writes go through [`crate::Writer`]: a grant is acknowledged only after
//! the store has made it (and its audit entry) durable and the new policy
//! snapshot is published; a rejected request touches neither.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use port25_rules::model::clip;
use port25_rules::{Dpid, Exemption, ExemptionId, Family, NewExemption, Prefix, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::auth::Who;
use crate::error::ApiError;
use crate::extract::{field_of, kind, ApiJson, NoQuery};
use crate::wait::{Applied, WaitParams};
use crate::{AppState, MinPrefixLen};

/// Longest note accepted, in characters.
pub(crate) const MAX_NOTE_CHARS: usize = 1024;

/// The body of `POST /v1/exemptions` as received. Fields are raw JSON
/// values so that [`Item::validate`] can name the field in every error,
/// type errors included (serde's own type errors do not say which field
/// they are about). `null` is the same as absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrantBody {
    #[serde(default)]
    subscriber: Option<Value>,
    #[serde(default)]
    note: Option<Value>,
    #[serde(default)]
    switches: Option<Value>,
    #[serde(default)]
    expires_at: Option<Value>,
    #[serde(default)]
    ttl_seconds: Option<Value>,
}

impl From<GrantBody> for Item {
    fn from(b: GrantBody) -> Item {
        Item {
            subscriber: b.subscriber,
            note: b.note,
            switches: b.switches,
            expires_at: b.expires_at,
            ttl_seconds: b.ttl_seconds,
            external_id: None,
        }
    }
}

/// The fields of one exemption as received, by `POST` (no `external_id`)
/// or as an item of a sync.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Item {
    #[serde(default)]
    subscriber: Option<Value>,
    #[serde(default)]
    note: Option<Value>,
    #[serde(default)]
    switches: Option<Value>,
    #[serde(default)]
    expires_at: Option<Value>,
    #[serde(default)]
    ttl_seconds: Option<Value>,
    #[serde(default)]
    external_id: Option<Value>,
}

/// Longest TTL accepted: ten years of 365.25 days.
pub(crate) const MAX_TTL_SECONDS: u64 = 315_576_000;

/// Longest external id accepted, in characters.
pub(crate) const MAX_EXTERNAL_ID_CHARS: usize = 128;

impl Item {
    /// Check every field and build the domain request, all but its
    /// expiry: that is computed against the clock when it is stored
    /// ([`Checked::at`]). Error fields are named `{prefix}{field}`
    /// (`prefix` is empty for a POST body, and `exemptions[3].` for a bulk
    /// or sync item).
    ///
    /// # Errors
    /// A `400` naming the first offending field.
    pub(crate) fn validate(self, prefix: &str, min: MinPrefixLen) -> Result<Checked, ApiError> {
        let f = |name: &str| format!("{prefix}{name}");
        let subscriber = match self.subscriber {
            None => {
                return Err(ApiError::field(
                    f("subscriber"),
                    "subscriber is required: the address or prefix to exempt, such as 203.0.113.7/32",
                ))
            }
            Some(Value::String(s)) => {
                let p = s.parse::<Prefix>().map_err(|e| ApiError::field(f("subscriber"), e.to_string()))?;
                check_subscriber(p, min).map_err(|m| ApiError::field(f("subscriber"), m))?
            }
            Some(other) => {
                return Err(ApiError::field(
                    f("subscriber"),
                    format!("subscriber must be a string such as \"203.0.113.7/32\", not {}", kind(&other)),
                ))
            }
        };
        let note = match self.note {
            None => None,
            Some(Value::String(s)) => Some(check_note(s).map_err(|m| ApiError::field(f("note"), m))?),
            Some(other) => {
                return Err(ApiError::field(f("note"), format!("note must be a string, not {}", kind(&other))))
            }
        };
        let switches = match self.switches {
            None => None,
            Some(Value::Array(items)) => Some(parse_switches(items, prefix)?),
            Some(other) => {
                return Err(ApiError::field(
                    f("switches"),
                    format!("switches must be a list of datapath ids, not {}", kind(&other)),
                ))
            }
        };
        let expiry = match (self.expires_at, self.ttl_seconds) {
            (Some(_), Some(_)) => {
                return Err(ApiError::field(f("ttl_seconds"), "give expires_at or ttl_seconds, not both"))
            }
            (Some(at), None) => {
                let (at, given) = parse_expires_at(at).map_err(|m| ApiError::field(f("expires_at"), m))?;
                Some(Expiry::At { at, given, field: f("expires_at") })
            }
            (None, Some(ttl)) => Some(Expiry::Ttl(parse_ttl(ttl).map_err(|m| ApiError::field(f("ttl_seconds"), m))?)),
            (None, None) => None,
        };
        let external_id = match self.external_id {
            None => None,
            Some(Value::String(s)) => Some(check_external_id(s).map_err(|m| ApiError::field(f("external_id"), m))?),
            Some(other) => {
                return Err(ApiError::field(
                    f("external_id"),
                    format!("external_id must be a string, not {}", kind(&other)),
                ))
            }
        };
        let new = NewExemption { subscriber, note, scope: Scope::from_list(switches), expires_at: None, external_id };
        Ok(Checked { new, expiry })
    }
}

/// An expiry as the client gave it. Turned into a time, and checked
/// against the clock, only by [`Checked::at`], with the `now` of the
/// commit: a request that waited for the write lock behind a big bulk
/// must not be stored with an expiry that passed while it waited.
#[derive(Debug, Clone)]
enum Expiry {
    /// `expires_at`, as parsed and as written (for the error message).
    At { at: OffsetDateTime, given: String, field: String },
    /// `ttl_seconds`, 1 to [`MAX_TTL_SECONDS`].
    Ttl(u64),
}

/// An exemption whose every field is checked, its expiry still to be
/// resolved against the clock when it is stored.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    /// Everything but `expires_at` (still `None`).
    pub(crate) new: NewExemption,
    expiry: Option<Expiry>,
}

impl Checked {
    /// The request as stored at `now` (the `now` the [`crate::Writer`]
    /// passes to the plan: the store's `created_at`): `ttl_seconds` counts
    /// from it, and `expires_at` must lie after it and at most ten years
    /// away.
    ///
    /// # Errors
    /// A `400` on `expires_at` that is not in the future at `now`, or more
    /// than ten years away.
    pub(crate) fn at(self, now: OffsetDateTime) -> Result<NewExemption, ApiError> {
        let mut new = self.new;
        new.expires_at = match self.expiry {
            None => None,
            Some(Expiry::Ttl(secs)) => Some(now + Duration::seconds(secs as i64)),
            Some(Expiry::At { at, given, field }) => {
                if at <= now {
                    return Err(ApiError::field(field, format!("expires_at {given} is not in the future")));
                }
                if at > now + Duration::seconds(MAX_TTL_SECONDS as i64) {
                    return Err(ApiError::field(field, format!("expires_at {given} is more than ten years away")));
                }
                Some(at)
            }
        };
        Ok(new)
    }
}

/// Whether `p` may be an exemption's subscriber: long enough for its
/// family, and an address a subscriber can have
/// ([`Prefix::check_subscriber`]). Filters do not go through this.
fn check_subscriber(p: Prefix, min: MinPrefixLen) -> Result<Prefix, String> {
    let (shortest, family, key) = match p.family() {
        Family::V4 => (min.v4, "IPv4", "min_prefix_len_v4"),
        Family::V6 => (min.v6, "IPv6", "min_prefix_len_v6"),
    };
    if p.len() < shortest {
        return Err(format!(
            "{p} is too wide: an {family} exemption must be /{shortest} or longer (set by [api] {key} in the \
             config file)"
        ));
    }
    p.check_subscriber().map_err(|e| e.to_string())?;
    Ok(p)
}

/// `expires_at` parsed (UTC), with the text as given. Whether it is in
/// the future is for [`Checked::at`].
fn parse_expires_at(v: Value) -> Result<(OffsetDateTime, String), String> {
    let Value::String(s) = v else {
        return Err(format!("expires_at must be an RFC 3339 time such as \"2027-01-31T00:00:00Z\", not {}", kind(&v)));
    };
    let at = OffsetDateTime::parse(&s, &Rfc3339)
        .map_err(|e| format!("'{}' is not an RFC 3339 time such as 2027-01-31T00:00:00Z: {e}", clip(&s)))?
        .to_offset(UtcOffset::UTC);
    Ok((at, s))
}

fn parse_ttl(v: Value) -> Result<u64, String> {
    let range = format!("ttl_seconds must be a whole number of seconds from 1 to {MAX_TTL_SECONDS} (ten years)");
    let Value::Number(n) = &v else {
        return Err(format!("{range}, not {}", kind(&v)));
    };
    match n.as_u64() {
        Some(secs @ 1..=MAX_TTL_SECONDS) => Ok(secs),
        _ => Err(format!("{range}, not {}", clip(&n.to_string()))),
    }
}

fn check_external_id(id: String) -> Result<String, String> {
    if id.is_empty() {
        return Err("external_id is empty: omit it, or give the provisioning system's key".into());
    }
    if id.chars().count() > MAX_EXTERNAL_ID_CHARS {
        return Err(format!("external_id is longer than {MAX_EXTERNAL_ID_CHARS} characters"));
    }
    check_plain("external_id", &id)?;
    Ok(id)
}

fn check_note(note: String) -> Result<String, String> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("note is longer than {MAX_NOTE_CHARS} characters"));
    }
    check_plain("note", &note)?;
    Ok(note)
}

/// What is wrong with `c` in a note or external id, if anything.
///
/// Notes end up in logs, the audit trail and operator tooling. Control
/// characters (newlines included) could forge log lines or garble
/// terminals; format, bidirectional and invisible characters make text
/// read differently from what it is (U+202E turns `ticket 4411` around
/// on screen); noncharacters are not text at all.
fn unwanted(c: char) -> Option<&'static str> {
    let cp = u32::from(c);
    let what = match cp {
        _ if c.is_control() => "a control character, such as a newline or tab",
        0x00AD => "a soft hyphen, which is invisible",
        0x061C | 0x200E | 0x200F => "a bidirectional mark",
        0x180E => "an invisible separator",
        0x200B..=0x200D => "a zero-width character",
        0x2028 | 0x2029 => "a line or paragraph separator",
        0x202A | 0x202B => "a bidirectional embedding",
        0x202C => "a bidirectional formatting pop",
        0x202D | 0x202E => "a bidirectional override",
        0x2060..=0x2064 => "an invisible formatting character",
        0x2066..=0x2069 => "a bidirectional isolate",
        0x206A..=0x206F => "a deprecated formatting character",
        0xFEFF => "a zero-width no-break space (byte order mark)",
        0xFFF9..=0xFFFB => "an interlinear annotation character",
        0xFDD0..=0xFDEF => "a noncharacter",
        _ if cp & 0xFFFE == 0xFFFE => "a noncharacter",
        _ => return None,
    };
    Some(what)
}

/// Refuse the first [`unwanted`] character of `text`, saying which and where.
fn check_plain(name: &str, text: &str) -> Result<(), String> {
    match text.chars().enumerate().find_map(|(i, c)| unwanted(c).map(|what| (i, c, what))) {
        None => Ok(()),
        Some((i, c, what)) => Err(format!(
            "{name} contains U+{:04X} ({what}) at character {}; it must be plain text on one line",
            u32::from(c),
            i + 1
        )),
    }
}

fn parse_switches(items: Vec<Value>, prefix: &str) -> Result<Vec<Dpid>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::field(
            format!("{prefix}switches"),
            "switches is empty: omit switches to apply to every switch, or list at least one datapath id",
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("{prefix}switches[{i}]");
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

/// A write's reply body, with `applied` when the client asked to wait
/// (`?wait=applied`).
#[derive(Serialize)]
pub(crate) struct WithApplied<T> {
    #[serde(flatten)]
    pub(crate) body: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) applied: Option<Applied>,
}

/// Wait for the switches when asked to (`wait` is the timeout).
pub(crate) async fn maybe_wait(state: &AppState, version: u64, wait: Option<std::time::Duration>) -> Option<Applied> {
    match wait {
        Some(timeout) => Some(crate::wait::until_applied(&state.fleet, version, timeout).await),
        None => None,
    }
}

/// `POST /v1/exemptions[?wait=applied[&wait_timeout_ms=N]]`: `201` with the
/// stored record and its `Location`; with `wait`, also `applied` (the
/// status stays `201` when the wait times out: the grant is durable).
#[utoipa::path(
    post,
    path = "/v1/exemptions",
    tag = "exemptions",
    params(
        ("wait" = Option<String>, Query, description = "`applied`: answer once every connected switch confirmed the change (or the timeout passed), with `applied`"),
        ("wait_timeout_ms" = Option<u64>, Query, description = "With wait=applied: 0 to 60000, default 5000")
    ),
    request_body = crate::openapi::GrantRequest,
    responses(
        (status = 201, description = "Stored and published (with `applied` when waited for)", body = crate::openapi::ExemptionReply),
        (status = 400, description = "Bad input; `field` names what to fix", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 403, description = "A read token on a write route", body = crate::openapi::ErrorBody),
        (status = 409, description = "The same subscriber with the same switches exists; `existing_id` names it", body = crate::openapi::ErrorBody),
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
    ApiJson(body): ApiJson<GrantBody>,
) -> Result<(StatusCode, HeaderMap, Json<WithApplied<Exemption>>), ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let wait = params.timeout()?;
    let checked = Item::from(body).validate("", state.min_prefix_len)?;
    let (record, version) = state.writer.grant(who, move |now| checked.at(now)).await?;
    let mut headers = HeaderMap::new();
    let location = HeaderValue::from_str(&format!("/v1/exemptions/{}", record.id))
        .map_err(|e| ApiError::Internal(format!("location header: {e}")))?;
    headers.insert(header::LOCATION, location);
    let applied = maybe_wait(&state, version, wait).await;
    Ok((StatusCode::CREATED, headers, Json(WithApplied { body: record, applied })))
}

/// `DELETE /v1/exemptions/{id}[?wait=applied[&wait_timeout_ms=N]]`: `204`,
/// or `404` if there is no such id. With `wait`, `200` with the revoked
/// record and `applied` (a `204` cannot carry the outcome).
#[utoipa::path(
    delete,
    path = "/v1/exemptions/{id}",
    tag = "exemptions",
    params(
        ("id" = u64, Path, description = "Exemption id"),
        ("wait" = Option<String>, Query, description = "`applied`: answer once every connected switch confirmed the change (or the timeout passed), with `applied`"),
        ("wait_timeout_ms" = Option<u64>, Query, description = "With wait=applied: 0 to 60000, default 5000")
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 200, description = "Revoked, with wait=applied: the revoked record and `applied`", body = crate::openapi::ExemptionReply),
        (status = 400, description = "Bad input; `field` names what to fix", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 403, description = "A read token on a write route", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such exemption", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Who(who): Who,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<WaitParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let Query(params) = params.map_err(query_error)?;
    let wait = params.timeout()?;
    match state.writer.revoke(id, who).await? {
        Some((rec, version)) => match maybe_wait(&state, version, wait).await {
            None => Ok(StatusCode::NO_CONTENT.into_response()),
            Some(applied) => Ok(Json(WithApplied { body: rec, applied: Some(applied) }).into_response()),
        },
        None => Err(not_found(id)),
    }
}

/// `GET /v1/exemptions/{id}`.
#[utoipa::path(
    get,
    path = "/v1/exemptions/{id}",
    tag = "exemptions",
    params(
        ("id" = u64, Path, description = "Exemption id")
    ),
    responses(
        (status = 200, description = "The exemption", body = crate::openapi::Exemption),
        (status = 400, description = "Bad input; `field` names what to fix", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such exemption", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    query: Result<NoQuery, ApiError>,
) -> Result<Json<Exemption>, ApiError> {
    let id = parse_id(id)?;
    query?;
    state.writer.read(move |store| store.get(id)).await?.map(Json).ok_or_else(|| not_found(id))
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
#[utoipa::path(
    get,
    path = "/v1/exemptions",
    tag = "exemptions",
    params(
        ("subscriber" = Option<String>, Query, description = "Only exemptions covering all of this address or prefix")
    ),
    responses(
        (status = 200, description = "Exemptions by id", body = crate::openapi::ExemptionList),
        (status = 400, description = "Bad input; `field` names what to fix", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or an unknown bearer token (when tokens are configured)", body = crate::openapi::ErrorBody),
        (status = 500, description = "Server-side failure (generic body; the cause is logged)", body = crate::openapi::ErrorBody)
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ExemptionList>, ApiError> {
    let Query(query) = query.map_err(query_error)?;
    let filter = query.subscriber.as_deref().map(parse_subscriber_filter).transpose()?;
    let mut exemptions = state.writer.read(|store| store.list()).await?;
    if let Some(q) = filter {
        exemptions.retain(|e| e.subscriber.covers(&q));
    }
    Ok(Json(ExemptionList { exemptions }))
}

fn parse_id(path: Result<Path<String>, PathRejection>) -> Result<ExemptionId, ApiError> {
    let Path(raw) = path.map_err(|r| ApiError::field("id", r.body_text()))?;
    // Digits only: `u64::from_str` would also take "+7".
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::field(
            "id",
            format!("'{}' is not an exemption id: expected a whole number such as 7", clip(&raw)),
        ));
    }
    raw.parse::<u64>()
        .map(ExemptionId)
        .map_err(|_| ApiError::field("id", format!("'{raw}' is not an exemption id: too large")))
}

fn not_found(id: ExemptionId) -> ApiError {
    ApiError::NotFound(format!("no exemption with id {id}"))
}

/// A query string rejection as a `400`, naming the field when serde did.
pub(crate) fn query_error(r: QueryRejection) -> ApiError {
    let text = r.body_text();
    match field_of(&text) {
        Some(field) => ApiError::field(field, text),
        None => ApiError::bad_request(text),
    }
}

/// The `subscriber` filter of the list and the audit trail.
pub(crate) fn parse_subscriber_filter(s: &str) -> Result<Prefix, ApiError> {
    s.parse::<Prefix>().map_err(|e| ApiError::field("subscriber", e.to_string()))
}
