//! [`ApiJson`]: a JSON body extractor whose every rejection is an
//! [`ApiError`], so a client sees the same error body whether the JSON was
//! malformed or a value failed validation.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use port25_rules::model::{clip, MAX_ECHO_CHARS};
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
        parse_object(&bytes, "request body").map(ApiJson)
    }
}

/// The query of a route that takes no parameters: any parameter is
/// refused (`400`, `field` = its name), as the routes with parameters
/// refuse unknown ones, so that a misspelt filter is never ignored.
#[derive(Debug)]
pub(crate) struct NoQuery;

impl<S: Send + Sync> FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<NoQuery, ApiError> {
        // Written out: Option::is_none_or is newer than our rust-version.
        if matches!(parts.uri.query(), None | Some("")) {
            return Ok(NoQuery);
        }
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::bad_request(format!("the query string is not valid: {}", e.body_text())))?;
        match pairs.into_iter().next() {
            None => Ok(NoQuery),
            Some((name, _)) => {
                let name = clip(&name);
                Err(ApiError::field(
                    name.clone(),
                    format!("unknown query parameter '{name}': {} {} takes none", parts.method, parts.uri.path()),
                ))
            }
        }
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

/// Parse the body as an object of type `T`. `what` names it in messages:
/// "request body", or "exemptions[3]" for an item of a bulk or a sync
/// (whose caller then puts its prefix on the field).
///
/// A derived `Deserialize` would also accept a positional array for a
/// struct, so anything not starting with `{` is refused first (parsed as a
/// [`Value`] only to say what it is, or why it is not JSON). Objects are
/// parsed straight into `T`, which keeps serde's duplicate-field check: a
/// `Value` round trip would silently keep the last of two `subscriber`s.
///
/// A syntax error inside a value (a lone surrogate, invalid UTF-8, a
/// number out of range) names the field it is in, found by
/// [`field_at`] from the error's position.
pub(crate) fn parse_object<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    let starts_object = bytes.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')) == Some(&b'{');
    if !starts_object {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| not_json(bytes, e, what))?;
        return Err(ApiError::bad_request(format!("{what} must be a JSON object, not {}", kind(&value))));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        Category::Data => {
            let message = clip_quoted(&e.to_string());
            match field_of(&message) {
                Some(field) => ApiError::field(field, message),
                None => ApiError::bad_request(message),
            }
        }
        Category::Syntax | Category::Eof | Category::Io => not_json(bytes, e, what),
    })
}

/// A syntax error, naming the field it is in when that can be told.
fn not_json(bytes: &[u8], e: serde_json::Error, what: &str) -> ApiError {
    // Invalid UTF-8 inside a value kept raw (a bulk's or sync's list) is
    // reported by serde_json at the end of that value; where it really is
    // comes from the UTF-8 check itself.
    let (at, message) = match std::str::from_utf8(bytes) {
        Err(bad) => {
            (bad.valid_up_to(), format!("{what} is not valid JSON: invalid UTF-8 at byte {}", bad.valid_up_to()))
        }
        Ok(_) => {
            // serde_json's column is that of the offending byte, or for an
            // early end the last byte: scan up to before the offending one.
            let column = if e.classify() == Category::Eof { e.column() } else { e.column().saturating_sub(1) };
            (offset_of(bytes, e.line(), column), format!("{what} is not valid JSON: {}", clip_quoted(&e.to_string())))
        }
    };
    ApiError::BadRequest { message, field: field_at(bytes, at) }
}

/// The byte offset of serde_json's (1-based line, byte column) position.
fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let start = if line <= 1 {
        0
    } else {
        bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(line - 2).map_or(bytes.len(), |(i, _)| i + 1)
    };
    start.saturating_add(column).min(bytes.len())
}

/// Deepest nesting [`field_at`] follows; serde_json refuses deeper
/// bodies anyway (its recursion limit is 128).
const MAX_DEPTH: usize = 128;

/// The path of the field being parsed at byte `at` of a JSON text that
/// may be cut short or broken there: `note` in `{"note":"\ud800"}`,
/// `exemptions[3].note` in a bulk body. `None` when the position is not
/// inside a value (in a key, between fields, after the end).
///
/// A small scanner over the bytes before `at`, not a parser: it tracks
/// strings, escapes, containers, keys and element indices, and is total
/// (no input makes it panic; a malformed prefix gives some path or none).
pub(crate) fn field_at(bytes: &[u8], at: usize) -> Option<String> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        /// Expecting a key (or the end).
        Key,
        /// Reading the key's string.
        InKey,
        /// After the key, expecting `:`.
        Colon,
        /// After `:` (object) or `[`/`,` (array), expecting a value.
        Value,
        /// Inside the value.
        InValue,
        /// After the value, expecting `,` or the end.
        After,
    }
    struct Frame {
        /// `None` for an array.
        key: Option<Vec<u8>>,
        is_array: bool,
        index: usize,
        state: State,
    }
    fn begin_value(stack: &mut [Frame]) {
        if let Some(top) = stack.last_mut() {
            if top.state == State::Value {
                top.state = State::InValue;
            }
        }
    }
    fn end_value(stack: &mut [Frame]) {
        if let Some(top) = stack.last_mut() {
            if top.state == State::InValue {
                top.state = State::After;
            }
        }
    }
    let mut stack: Vec<Frame> = Vec::new();
    let (mut in_string, mut escaped, mut in_scalar) = (false, false, false);
    for &b in bytes.get(..at.min(bytes.len()))? {
        if in_string {
            let key = stack.last_mut().filter(|t| t.state == State::InKey);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                match key {
                    Some(top) => top.state = State::Colon,
                    None => end_value(&mut stack),
                }
                continue;
            }
            if let Some(name) = key.and_then(|t| t.key.as_mut()) {
                if name.len() < 4 * MAX_ECHO_CHARS {
                    name.push(b);
                }
            }
            continue;
        }
        if in_scalar {
            if !matches!(b, b',' | b'}' | b']' | b':' | b'"' | b'{' | b'[' | b' ' | b'\t' | b'\n' | b'\r') {
                continue;
            }
            in_scalar = false;
            end_value(&mut stack);
        }
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'{' | b'[' => {
                begin_value(&mut stack);
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                let is_array = b == b'[';
                let state = if is_array { State::Value } else { State::Key };
                stack.push(Frame { key: (!is_array).then(Vec::new), is_array, index: 0, state });
            }
            b'}' | b']' => {
                stack.pop();
                end_value(&mut stack);
            }
            b':' => {
                if let Some(top) = stack.last_mut().filter(|t| !t.is_array && t.state == State::Colon) {
                    top.state = State::Value;
                }
            }
            b',' => {
                if let Some(top) = stack.last_mut() {
                    if top.is_array {
                        top.index = top.index.saturating_add(1);
                        top.state = State::Value;
                    } else {
                        top.state = State::Key;
                        top.key = Some(Vec::new());
                    }
                }
            }
            b'"' => {
                in_string = true;
                match stack.last_mut() {
                    Some(top) if !top.is_array && top.state == State::Key => {
                        top.state = State::InKey;
                        top.key = Some(Vec::new());
                    }
                    _ => begin_value(&mut stack),
                }
            }
            _ => {
                in_scalar = true;
                begin_value(&mut stack);
            }
        }
    }
    let mut path = String::new();
    for frame in &stack {
        let inside = if frame.is_array {
            frame.state == State::InValue
        } else {
            matches!(frame.state, State::Colon | State::Value | State::InValue)
        };
        if !inside {
            break;
        }
        if frame.is_array {
            path.push_str(&format!("[{}]", frame.index));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&clip(&String::from_utf8_lossy(frame.key.as_deref().unwrap_or_default())));
        }
    }
    (!path.is_empty()).then_some(path)
}

/// `message` with every backquoted part (serde's way of quoting a field
/// name or a value) cut with [`clip`]: an unknown field of 10,000
/// characters is not sent back whole.
fn clip_quoted(message: &str) -> String {
    let parts: Vec<&str> = message.split('`').collect();
    if parts.len() < 3 {
        return message.to_owned();
    }
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        // Odd parts are quoted, unless the last quote is unmatched.
        .map(|(i, p)| if i % 2 == 1 && i != last { clip(p) } else { (*p).to_owned() })
        .collect::<Vec<_>>()
        .join("`")
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
    use super::{field_at, field_of, parse_object};
    use crate::error::ApiError;

    fn field(text: &str) -> Option<String> {
        match parse_object::<serde_json::Value>(text.as_bytes(), "request body") {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn syntax_errors_inside_a_value_name_its_field() {
        assert_eq!(field(r#"{"subscriber":"203.0.113.7","note":"\ud800"}"#).as_deref(), Some("note"));
        assert_eq!(field(r#"{"ttl_seconds":1e400}"#).as_deref(), Some("ttl_seconds"));
        assert_eq!(field("{\n  \"a\": 1,\n  \"note\": \"x\\q\"\n}").as_deref(), Some("note"));
        assert_eq!(
            field(r#"{"exemptions":[{"subscriber":"a"},{},{},{"note":"\ud800"}]}"#).as_deref(),
            Some("exemptions[3].note")
        );
        assert_eq!(field(r#"{"exemptions":[1,2,[3,{"x":{"y":tru}}]]}"#).as_deref(), Some("exemptions[2][1].x.y"));
        assert_eq!(field(r#"{"note":"abc"#).as_deref(), Some("note"));
        // Not inside a value: no field.
        for text in
            [r#"{"subscriber":"203.0.113.7/32""#, "{subscriber: 1}", r#"{"no\ud800te":1}"#, r#"{"a":1} x"#, "{", ""]
        {
            assert_eq!(field(text), None, "{text}");
        }
        let mut bad = br#"{"subscriber":"203.0.113.7","note":"caf"#.to_vec();
        bad.extend_from_slice(&[0xc3, 0x28, b'"', b'}']);
        match parse_object::<serde_json::Value>(&bad, "request body") {
            Err(ApiError::BadRequest { field, message }) => {
                assert_eq!(field.as_deref(), Some("note"), "{message}");
                assert!(message.contains("UTF-8"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn field_at_is_total() {
        // xorshift: reproducible, no dependency.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = br#"{}[]:,"\ a1e-.ntrufl"#;
        let seeds: [&[u8]; 3] = [
            br#"{"subscriber":"203.0.113.7","note":"\ud800","switches":["1"]}"#,
            br#"{"exemptions":[{"subscriber":"a","ttl_seconds":1e400},"x",[1,{"note":"y"}]]}"#,
            b"[[[[{{{{\"\"\"\\",
        ];
        for round in 0..20_000 {
            let len = (next() % 96) as usize;
            let bytes: Vec<u8> = if round % 2 == 0 {
                (0..len)
                    .map(|_| {
                        if next() % 4 == 0 {
                            next() as u8
                        } else {
                            alphabet[(next() % alphabet.len() as u64) as usize]
                        }
                    })
                    .collect()
            } else {
                let mut b = seeds[round % seeds.len()].to_vec();
                for _ in 0..(next() % 4) {
                    let at = (next() as usize) % (b.len() + 1);
                    match next() % 3 {
                        0 if at < b.len() => b[at] = next() as u8,
                        1 if at < b.len() => {
                            b.remove(at);
                        }
                        _ => b.insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                    }
                }
                b
            };
            for at in [0, bytes.len() / 2, bytes.len(), bytes.len() + 5, usize::MAX] {
                let _ = field_at(&bytes, at);
            }
            let _ = parse_object::<serde_json::Value>(&bytes, "request body");
            let _ = parse_object::<crate::exemptions::GrantBody>(&bytes, "exemptions[0]");
        }
        let deep = "[".repeat(100_000);
        assert_eq!(field_at(deep.as_bytes(), deep.len()), None);
    }

    #[test]
    fn field_of_reads_serde_derive_messages() {
        let m = "unknown field `subscribr`, expected one of `subscriber`, `note`, `switches`";
        assert_eq!(field_of(m).as_deref(), Some("subscribr"));
        assert_eq!(field_of("missing field `subscriber`").as_deref(), Some("subscriber"));
        assert_eq!(field_of("duplicate field `note`").as_deref(), Some("note"));
        assert_eq!(field_of("invalid type: integer `5`, expected a string"), None);
    }
}
