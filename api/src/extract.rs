//! [`ApiJson`]: a JSON body extractor whose every rejection is an
//! [`ApiError`], so a client sees the same error body whether the JSON was
//! malformed or a value failed validation.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use port25_rules::model::clip;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::Value;

use crate::error::ApiError;

/// A request body that must be a JSON object deserializable as `T`.
///
/// Checks, in order: `Content-Type` is JSON (`415`), `Content-Encoding`
/// is absent or `identity` (`415`: port25d decompresses nothing, and a
/// body labelled gzip is not read as if it were plain), a `Content-Length`
/// within the route's limit (`413` before any of the body is read), the
/// body arrives within [`crate::BODY_TIMEOUT`] or the app's own
/// timeout (`408`) and fits the limit
/// set by `DefaultBodyLimit` in [`crate::routes`] (`413`), it is
/// syntactically JSON (`400`), it is an object (`400`), and it matches `T`
/// (`400`, naming the field for unknown, missing and duplicate fields).
///
/// `T` should use `#[serde(deny_unknown_fields)]` so that a misspelt
/// optional field is refused instead of silently ignored.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// How long the body may take to arrive ([`crate::BODY_TIMEOUT`] unless
/// the app was built with another).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimeout(pub(crate) std::time::Duration);

/// The body limit of the route, when it is not [`crate::MAX_BODY_BYTES`];
/// set beside its `DefaultBodyLimit` (which axum keeps to itself) so the
/// announced `Content-Length` can be checked before reading.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_content_type(req.headers())?;
        check_content_encoding(req.headers())?;
        let limit = req.extensions().get::<BodyLimit>().map_or(crate::MAX_BODY_BYTES, |l| l.0);
        check_content_length(req.headers(), limit)?;
        let timeout = req.extensions().get::<BodyTimeout>().map_or(crate::BODY_TIMEOUT, |t| t.0);
        let read = tokio::time::timeout(timeout, Bytes::from_request(req, state))
            .await
            .map_err(|_| ApiError::RequestTimeout(timeout))?;
        let bytes = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request(format!("cannot read request body: {}", rejection.body_text()))
            }
        })?;
        parse_object(&bytes).map(ApiJson)
    }
}

/// Only an uncompressed body: no `Content-Encoding`, or `identity`
/// (every value of every such header).
fn check_content_encoding(headers: &HeaderMap) -> Result<(), ApiError> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let plain = text.split(',').all(|coding| coding.trim().eq_ignore_ascii_case("identity"));
        if !plain {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Encoding {:?} is not supported: send the body uncompressed (identity)",
                clip(&text)
            )));
        }
    }
    Ok(())
}

/// Refuse an announced length over `limit` before reading anything: the
/// limit on the body itself only trips once that much has arrived, and a
/// client announcing 99999999999 bytes may never send them. A length that
/// is not a number is left to hyper, which refuses the request itself.
fn check_content_length(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let announced =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    match announced {
        Some(n) if n > limit as u64 => Err(ApiError::PayloadTooLarge),
        _ => Ok(()),
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType("missing Content-Type: expected application/json".into()));
    };
    let essence = value.to_str().ok().and_then(|v| v.split(';').next()).map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(e) if e.starts_with("application/") && e.ends_with("+json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {:?} is not supported: expected application/json",
            clip(&String::from_utf8_lossy(value.as_bytes()))
        ))),
    }
}

/// Parse the body as an object of type `T`.
///
/// A derived `Deserialize` would also accept a positional array for a
/// struct, so anything not starting with `{` is refused first (parsed as a
/// [`Value`] only to say what it is, or why it is not JSON). Objects are
/// parsed straight into `T`, which keeps serde's duplicate-field check: a
/// `Value` round trip would silently keep the last of two `subscriber`s.
pub(crate) fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let starts_object = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) == Some(&b'{');
    if !starts_object {
        let value: Value = serde_json::from_slice(bytes).map_err(not_json)?;
        return Err(ApiError::bad_request(format!("request body must be a JSON object, not {}", kind(&value))));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        Category::Data => {
            let message = e.to_string();
            match field_of(&message) {
                Some(field) => ApiError::field(field, message),
                None => ApiError::bad_request(message),
            }
        }
        Category::Syntax | Category::Eof | Category::Io => not_json(e),
    })
}

fn not_json(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("request body is not valid JSON: {e}"))
}

/// The field a serde error is about, for the messages serde's derive
/// produces: "unknown field `x`, expected ...", "missing field `x`",
/// "duplicate field `x`", also when wrapped in a longer message (axum's
/// query rejection prefixes its own text). Type errors inside a field carry no name, which is
/// why request structs take `serde_json::Value` fields and check the types
/// themselves.
pub(crate) fn field_of(message: &str) -> Option<String> {
    let rest = ["unknown field `", "missing field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.find(p).map(|at| &message[at + p.len()..]))?;
    rest.split_once('`').map(|(name, _)| name.to_owned())
}

/// How a JSON value is called in error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn field_of_reads_serde_derive_messages() {
        let m = "unknown field `subscribr`, expected one of `subscriber`, `note`, `switches`";
        assert_eq!(field_of(m).as_deref(), Some("subscribr"));
        assert_eq!(field_of("missing field `subscriber`").as_deref(), Some("subscriber"));
        assert_eq!(field_of("duplicate field `note`").as_deref(), Some("note"));
        assert_eq!(field_of("invalid type: integer `5`, expected a string"), None);
    }
}
