//! Who is calling: bearer tokens, request ids and the audit context.
//!
//! Tokens are configured as SHA-256 digests only. A presented token is
//! hashed and the digest compared with every configured one in constant
//! time, so neither the config file nor the timing of a refusal gives a
//! token away. Tokens are never logged; the token's *name* is, and goes
//! into the audit trail.
//!
//! Two middlewares run before every handler, outermost first:
//! 1. [`request_id`]: takes a sane client `x-request-id` or makes one, and
//!    sends it back on every response (errors included);
//! 2. [`authenticate`]: when tokens are configured, every `/v1` route and
//!    `/metrics` need one (`401` without or with an unknown one), and a
//!    route that changes something (any method but `GET`/`HEAD`) needs the
//!    `write` role (`403`). `/healthz` stays open.
//!
//! Handlers that write take a [`Who`], the audit context of the request.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use port25_rules::AuditContext;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::Span;

use crate::error::ApiError;
use crate::AppState;

/// The request id header, read and written.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client request id kept; a longer one is replaced.
pub const MAX_REQUEST_ID: usize = 64;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `GET` only: list, show, lookup, audit, switches.
    Read,
    /// Everything.
    Write,
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            other => Err(format!("role '{other}' is neither \"read\" nor \"write\"")),
        }
    }
}

/// One configured token: a name for logs and the audit trail, a role, and
/// the SHA-256 of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The digest is not the secret, but there is no reason to print it.
        f.debug_struct("ApiToken").field("name", &self.name).field("role", &self.role).finish_non_exhaustive()
    }
}

/// Every configured token. Empty means authentication is off (allowed
/// only on a loopback address; the daemon checks that).
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<ApiToken>);

impl Tokens {
    /// Tokens as configured; names and digests should be unique (the
    /// config validation refuses duplicates).
    pub fn new(tokens: Vec<ApiToken>) -> Tokens {
        Tokens(tokens)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The configured token whose digest is the presented token's.
    /// Every digest is compared, each in constant time.
    pub fn find(&self, presented: &str) -> Option<&ApiToken> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for t in &self.0 {
            if bool::from(t.sha256.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        found
    }
}

/// The hex SHA-256 of a token, as `[[api.tokens]] sha256` wants it (the
/// same as `printf %s "$TOKEN" | sha256sum`).
pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse 64 hex digits into a digest.
///
/// # Errors
/// A message saying what is wrong with the text.
pub fn parse_sha256_hex(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected 64 hex digits (the output of printf %s \"$TOKEN\" | sha256sum), got {} characters",
            s.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The request id of the current request.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

/// The authenticated caller of the current request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub String);

/// Whether a client-provided request id can be kept: 1 to 64 characters of
/// `[A-Za-z0-9-_.]` (safe in logs, headers and JSON as is).
pub fn sane_request_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_REQUEST_ID
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A fresh request id: the time in nanoseconds and a process-wide counter,
/// in hex. Unique within a process and, through the time, across restarts.
fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{:x}-{:x}", nanos, COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Middleware: give the request an id and send it back.
pub(crate) async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| sane_request_id(s))
        .map_or_else(new_request_id, str::to_owned);
    Span::current().record("request_id", id.as_str());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    res
}

/// Middleware: check the bearer token (when tokens are configured) and
/// record who is calling.
pub(crate) async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = match check(&state, &req) {
        Ok(name) => name,
        Err(e) => return e.into_response(),
    };
    Span::current().record("caller", caller.as_str());
    req.extensions_mut().insert(Caller(caller));
    next.run(req).await
}

/// Whether a path needs a token when tokens are configured: every `/v1`
/// route, and `/metrics` (per-switch counters and the exemption count are
/// not for everyone; Prometheus sends a read token with
/// `authorization: {credentials: ...}` or `bearer_token_file`). Only
/// `/healthz` stays open, for load balancers and liveness probes.
fn needs_token(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/") || path == "/metrics"
}

fn check(state: &AppState, req: &Request) -> Result<String, ApiError> {
    let tokens = &state.tokens;
    if tokens.is_empty() {
        return Ok("anonymous".into());
    }
    let path = req.uri().path();
    if !needs_token(path) {
        return Ok("anonymous".into());
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("this API needs a token: send Authorization: Bearer TOKEN".into()))?;
    let token = presented
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be: Bearer TOKEN".into()))?;
    let Some(found) = tokens.find(token) else {
        // Never log the token itself, not even a prefix.
        tracing::warn!("request with an unknown bearer token refused");
        return Err(ApiError::Unauthorized("unknown bearer token".into()));
    };
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD);
    if writes && found.role != Role::Write {
        return Err(ApiError::Forbidden(format!(
            "token '{}' has the read role; {} {path} needs a write token",
            found.name,
            req.method()
        )));
    }
    Ok(found.name.clone())
}

/// The audit context of a request: the caller's token name (or
/// "anonymous"), the TCP peer when the server provides it, the request id.
#[derive(Debug, Clone)]
pub(crate) struct Who(pub AuditContext);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Who, ApiError> {
        let actor = parts.extensions.get::<Caller>().map_or_else(|| "anonymous".to_owned(), |c| c.0.clone());
        // `MockConnectInfo` is how tests give a oneshot request a peer.
        let source = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| parts.extensions.get::<MockConnectInfo<SocketAddr>>().map(|c| c.0));
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        Ok(Who(AuditContext { actor, source, request_id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tokens_by_digest_only() {
        let t = Tokens::new(vec![
            ApiToken {
                name: "crm".into(),
                role: Role::Write,
                sha256: parse_sha256_hex(&sha256_hex("s3cret")).unwrap(),
            },
            ApiToken { name: "desk".into(), role: Role::Read, sha256: parse_sha256_hex(&sha256_hex("other")).unwrap() },
        ]);
        assert_eq!(t.find("s3cret").map(|t| t.name.as_str()), Some("crm"));
        assert_eq!(t.find("other").map(|t| t.name.as_str()), Some("desk"));
        assert!(t.find("s3cre").is_none());
        assert!(t.find(&sha256_hex("s3cret")).is_none(), "the digest is not the token");
    }

    #[test]
    fn sha256_hex_matches_sha256sum() {
        // printf %s abc | sha256sum
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(parse_sha256_hex("ba78").is_err());
        assert!(parse_sha256_hex(&"g".repeat(64)).is_err());
        assert!(parse_sha256_hex(&"AB".repeat(32)).is_ok());
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(sane_request_id("abc-123_x.y"));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id("a b"));
        assert!(!sane_request_id(&"a".repeat(65)));
        assert!(!sane_request_id("x\r\ny"));
        assert_ne!(new_request_id(), new_request_id());
    }
}
