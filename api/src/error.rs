//! [`ApiError`]: every failure the API can answer with, and the one place
//! where it becomes a status code and a JSON body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use port25_rules::{ExemptionId, StoreError};
use serde::Serialize;
use tracing::error;

/// An error answer. Client errors carry a message meant for the client;
/// [`ApiError::Internal`] carries one meant for the log only.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input: unreadable JSON, an unknown or missing field, a value of
    /// the wrong type or one that fails validation. Always `400`.
    #[error("{message}")]
    BadRequest {
        message: String,
        /// The offending field (`subscriber`, `switches[1]`, `id`), when
        /// the error is about one.
        field: Option<String>,
    },
    /// The body is not declared as JSON, or is compressed (`415`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than the route accepts (`413`):
    /// [`crate::MAX_BODY_BYTES`], or [`crate::SYNC_MAX_BODY_BYTES`] for a sync.
    #[error(
        "request body is too large: at most {} bytes ({} for PUT /v1/exemptions, {} for POST /v1/exemptions/bulk)",
        crate::MAX_BODY_BYTES,
        crate::SYNC_MAX_BODY_BYTES,
        crate::bulk::BULK_MAX_BODY_BYTES
    )]
    PayloadTooLarge,
    /// The body did not arrive within the timeout, normally
    /// [`crate::BODY_TIMEOUT`] (`408`).
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(std::time::Duration),
    /// No bearer token, or one that is not configured (`401`, with
    /// `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose role does not allow this request (`403`).
    #[error("{0}")]
    Forbidden(String),
    /// No such exemption or route (`404`).
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not with this method (`405`).
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The same exemption is already stored (`409`).
    #[error("{message}")]
    Conflict { message: String, existing: ExemptionId },
    /// Anything that is our fault (`500`). The text is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A `400` about one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { message: message.into(), field: Some(field.into()) }
    }

    /// A `400` about the request as a whole.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { message: message.into(), field: None }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict { existing, .. } => ApiError::Conflict { message: e.to_string(), existing },
            StoreError::NotFound(_) => ApiError::NotFound(e.to_string()),
            // Io, Corrupt and IdsExhausted are all ours to fix, not the client's.
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The wire form of every error.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    existing_id: Option<ExemptionId>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = self.to_string();
        let body = match &self {
            ApiError::Internal(cause) => {
                // Runs inside the request span set up by `crate::trace`, so
                // the log line carries the method and path. The client gets
                // nothing that could leak paths or storage details.
                error!(%cause, "request failed");
                ErrorBody { error: "internal error", field: None, existing_id: None }
            }
            ApiError::BadRequest { field, .. } => {
                ErrorBody { error: &text, field: field.as_deref(), existing_id: None }
            }
            ApiError::Conflict { existing, .. } => {
                ErrorBody { error: &text, field: Some("subscriber"), existing_id: Some(*existing) }
            }
            _ => ErrorBody { error: &text, field: None, existing_id: None },
        };
        let mut res = (status, Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized(_)) {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"port25d\""));
        }
        res
    }
}
