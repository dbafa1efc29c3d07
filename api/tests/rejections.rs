//! Every kind of bad POST body is refused with a JSON error naming the
//! field, and leaves the store and the published policy untouched.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use common::{harness, post_json};

const BAD: StatusCode = StatusCode::BAD_REQUEST;

async fn refused_body(body: &str, field: Option<&str>) -> String {
    harness().refused(post_json(body), BAD, field).await
}

#[tokio::test]
async fn rejects_bad_address() {
    let m = refused_body(r#"{"subscriber":"10.0.0.300/32"}"#, Some("subscriber")).await;
    assert!(m.contains("10.0.0.300"), "{m}");
}

#[tokio::test]
async fn rejects_prefix_length_too_long_v4_and_v6() {
    let m = refused_body(r#"{"subscriber":"10.0.0.1/33"}"#, Some("subscriber")).await;
    assert!(m.contains("/33"), "{m}");
    let m = refused_body(r#"{"subscriber":"2001:db8::/129"}"#, Some("subscriber")).await;
    assert!(m.contains("/129"), "{m}");
}

#[tokio::test]
async fn rejects_unicode_whitespace_and_leading_zeros_in_the_length() {
    for s in [r"\u00a0203.0.113.7/32", r"203.0.113.7/32\u3000"] {
        refused_body(&format!(r#"{{"subscriber":"{s}"}}"#), Some("subscriber")).await;
    }
    let m = refused_body(r#"{"subscriber":"203.0.113.7/032"}"#, Some("subscriber")).await;
    assert!(m.contains("leading zero"), "{m}");
    // ASCII whitespace around the value is still forgiven.
    assert_eq!(harness().grant(r#"{"subscriber":" 203.0.113.7/32\t"}"#).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn error_messages_repeat_at_most_64_characters_of_the_value() {
    let long = "1".repeat(10_000);
    for body in [
        format!(r#"{{"subscriber":"{long}"}}"#),
        format!(r#"{{"subscriber":"10.0.0.0/{long}"}}"#),
        format!(r#"{{"subscriber":"203.0.113.7","switches":["{long}"]}}"#),
    ] {
        let h = harness();
        let r = h.send(post_json(&body)).await;
        assert_eq!(r.status, BAD, "{}", r.json);
        let m = r.json["error"].as_str().unwrap();
        assert!(m.chars().count() < 300 && m.contains('\u{2026}'), "{} characters: {}", m.len(), &m[..100]);
    }
}

#[tokio::test]
async fn rejects_host_bits_and_suggests_the_network() {
    let m = refused_body(r#"{"subscriber":"192.0.2.10/24"}"#, Some("subscriber")).await;
    assert!(m.contains("192.0.2.0/24"), "{m}");
}

#[tokio::test]
async fn rejects_prefixes_that_match_everything() {
    for p in ["0.0.0.0/0", "::/0"] {
        let m = refused_body(&format!(r#"{{"subscriber":"{p}"}}"#), Some("subscriber")).await;
        assert!(m.contains("everyone"), "{m}");
    }
}

#[tokio::test]
async fn rejects_missing_or_null_subscriber() {
    let m = refused_body(r#"{"note":"ticket 1"}"#, Some("subscriber")).await;
    assert!(m.contains("required"), "{m}");
    refused_body(r#"{"subscriber":null}"#, Some("subscriber")).await;
    refused_body(r#"{"subscriber":""}"#, Some("subscriber")).await;
}

#[tokio::test]
async fn rejects_subscriber_that_is_not_a_string() {
    let m = refused_body(r#"{"subscriber":5}"#, Some("subscriber")).await;
    assert!(m.contains("a number"), "{m}");
    refused_body(r#"{"subscriber":["203.0.113.7/32"]}"#, Some("subscriber")).await;
}

#[tokio::test]
async fn rejects_unknown_field_naming_it() {
    let m = refused_body(r#"{"subscribr":"203.0.113.7/32"}"#, Some("subscribr")).await;
    assert!(m.contains("subscribr"), "{m}");
    // Also next to a valid subscriber: a typo in an optional field must
    // not be silently dropped.
    refused_body(r#"{"subscriber":"203.0.113.7/32","swiches":["1"]}"#, Some("swiches")).await;
}

#[tokio::test]
async fn rejects_duplicate_field() {
    refused_body(r#"{"subscriber":"203.0.113.7/32","subscriber":"0.0.0.0/0"}"#, Some("subscriber")).await;
}

#[tokio::test]
async fn rejects_truncated_json() {
    let m = refused_body(r#"{"subscriber":"203.0.113.7/32""#, None).await;
    assert!(m.contains("not valid JSON"), "{m}");
    refused_body("", None).await;
    refused_body("{subscriber: 1}", None).await;
}

#[tokio::test]
async fn rejects_body_that_is_not_an_object() {
    // A derived Deserialize would take this array positionally.
    let m = refused_body(r#"["203.0.113.7/32"]"#, None).await;
    assert!(m.contains("object"), "{m}");
    refused_body(r#""203.0.113.7/32""#, None).await;
    refused_body("null", None).await;
    refused_body("  42", None).await;
}

#[tokio::test]
async fn rejects_wrong_content_type_with_415() {
    let h = harness();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/exemptions")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"subscriber":"203.0.113.7/32"}"#))
        .unwrap();
    let m = h.refused(req, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
    assert!(m.contains("application/json"), "{m}");
}

#[tokio::test]
async fn rejects_missing_content_type_with_415() {
    let h = harness();
    let req = Request::post("/v1/exemptions").body(Body::from(r#"{"subscriber":"203.0.113.7/32"}"#)).unwrap();
    h.refused(req, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
}

#[tokio::test]
async fn accepts_json_content_type_with_charset() {
    let h = harness();
    let req = Request::post("/v1/exemptions")
        .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
        .body(Body::from(r#"{"subscriber":"203.0.113.7/32"}"#))
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn rejects_oversized_body_with_json_413() {
    let note = "a".repeat(70 * 1024);
    let body = format!(r#"{{"subscriber":"203.0.113.7/32","note":"{note}"}}"#);
    let m = harness().refused(post_json(&body), StatusCode::PAYLOAD_TOO_LARGE, None).await;
    assert!(m.contains("65536"), "{m}");
}

#[tokio::test]
async fn rejects_note_too_long() {
    let ok = "é".repeat(1024); // counted in characters, not bytes
    let h = harness();
    let reply = h.grant(&format!(r#"{{"subscriber":"203.0.113.7/32","note":"{ok}"}}"#)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let long = "a".repeat(1025);
    let m = refused_body(&format!(r#"{{"subscriber":"203.0.113.7/32","note":"{long}"}}"#), Some("note")).await;
    assert!(m.contains("1024"), "{m}");
}

#[tokio::test]
async fn rejects_note_with_control_characters() {
    for note in [r"line\nforged", r"bell\u0007", r"tab\there", r"del\u007f"] {
        refused_body(&format!(r#"{{"subscriber":"203.0.113.7/32","note":"{note}"}}"#), Some("note")).await;
    }
    refused_body(r#"{"subscriber":"203.0.113.7/32","note":4411}"#, Some("note")).await;
}

#[tokio::test]
async fn rejects_empty_switch_list() {
    let m = refused_body(r#"{"subscriber":"203.0.113.7/32","switches":[]}"#, Some("switches")).await;
    assert!(m.contains("omit switches to apply to every switch"), "{m}");
}

#[tokio::test]
async fn rejects_bad_dpid_naming_its_position() {
    let m =
        refused_body(r#"{"subscriber":"203.0.113.7/32","switches":["0000000000000001","zz"]}"#, Some("switches[1]"))
            .await;
    assert!(m.contains("'zz'"), "{m}");
    refused_body(r#"{"subscriber":"203.0.113.7/32","switches":[1]}"#, Some("switches[0]")).await;
    // Only the two written forms: hex digits, or 8 colon-separated pairs.
    for bad in [":::3:::", "0x:1", "00:02", r"\u30005"] {
        let body = format!(r#"{{"subscriber":"203.0.113.7/32","switches":["{bad}"]}}"#);
        refused_body(&body, Some("switches[0]")).await;
    }
    refused_body(r#"{"subscriber":"203.0.113.7/32","switches":"0000000000000001"}"#, Some("switches")).await;
}

#[tokio::test]
async fn rejects_a_compressed_body_with_415() {
    let h = harness();
    for coding in ["gzip", "GZIP", "identity, gzip", "br", "deflate"] {
        let req = Request::post("/v1/exemptions")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_ENCODING, coding)
            .body(Body::from(r#"{"subscriber":"203.0.113.7/32"}"#))
            .unwrap();
        let m = h.refused(req, StatusCode::UNSUPPORTED_MEDIA_TYPE, None).await;
        assert!(m.contains("Content-Encoding") && m.contains("identity"), "{coding}: {m}");
    }
    let req = Request::post("/v1/exemptions")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_ENCODING, "Identity")
        .body(Body::from(r#"{"subscriber":"203.0.113.7/32"}"#))
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn refuses_an_announced_length_over_the_limit_before_reading() {
    let h = harness();
    for (uri, method, limit) in [
        ("/v1/exemptions", Method::POST, port25_api::MAX_BODY_BYTES),
        ("/v1/exemptions", Method::PUT, port25_api::SYNC_MAX_BODY_BYTES),
        ("/v1/exemptions/bulk", Method::POST, port25_api::bulk::BULK_MAX_BODY_BYTES),
    ] {
        for announced in [limit as u64 + 1, 99_999_999_999] {
            let req = Request::builder()
                .method(method.clone())
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, announced)
                .body(Body::from(r#"{"subscriber":"203.0.113.7/32"}"#))
                .unwrap();
            h.refused(req, StatusCode::PAYLOAD_TOO_LARGE, None).await;
        }
    }
    // Within the limit is read as usual (the route's own limit, not 64 KiB).
    let body = r#"{"exemptions":[]}"#;
    let req = Request::put("/v1/exemptions")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn syntax_errors_inside_a_value_name_the_field() {
    for (body, field) in [
        (r#"{"subscriber":"203.0.113.7/32","note":"\ud800"}"#, "note"),
        (r#"{"subscriber":"203.0.113.7/32","note":"a\qb"}"#, "note"),
        (r#"{"subscriber":"203.0.113.7/32","ttl_seconds":1e400}"#, "ttl_seconds"),
        ("{\n  \"subscriber\": \"203.0.113.7/32\",\n  \"switches\": [\"1\", \"\\ud800\"]\n}", "switches[1]"),
    ] {
        let m = refused_body(body, Some(field)).await;
        assert!(m.contains("not valid JSON"), "{body}: {m}");
    }
    // Invalid UTF-8 inside the note.
    let mut bytes = br#"{"subscriber":"203.0.113.7/32","note":"caf"#.to_vec();
    bytes.extend_from_slice(&[0xe9, b'"', b'}']);
    let req = Request::post("/v1/exemptions")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .unwrap();
    let m = harness().refused(req, BAD, Some("note")).await;
    assert!(m.contains("UTF-8"), "{m}");
}

#[tokio::test]
async fn rejects_note_with_format_bidi_and_invisible_characters() {
    for (note, code) in [
        (r"ticket \u202e1144", "U+202E (a bidirectional override)"),
        (r"a\u00adb", "U+00AD"),
        (r"a\u061cb", "U+061C"),
        (r"a\u180eb", "U+180E"),
        (r"a\u200bb", "U+200B"),
        (r"a\u200fb", "U+200F"),
        (r"a\u2028b", "U+2028"),
        (r"a\u202ab", "U+202A"),
        (r"a\u2060b", "U+2060"),
        (r"a\u2064b", "U+2064"),
        (r"a\u2066b", "U+2066"),
        (r"a\u206fb", "U+206F"),
        (r"a\ufeffb", "U+FEFF"),
        (r"a\ufff9b", "U+FFF9"),
        (r"a\ufffbb", "U+FFFB"),
        (r"a\ufdd0b", "U+FDD0 (a noncharacter)"),
        (r"a\ufdefb", "U+FDEF"),
        (r"a\ufffeb", "U+FFFE"),
        (r"a\uffffb", "U+FFFF"),
        (r"a\ud83f\udffeb", "U+1FFFE (a noncharacter)"),
        (r"a\udbff\udfffb", "U+10FFFF"),
        (r"line\nforged", "U+000A (a control character"),
    ] {
        let m = refused_body(&format!(r#"{{"subscriber":"203.0.113.7/32","note":"{note}"}}"#), Some("note")).await;
        assert!(m.contains(code) && m.starts_with("note contains"), "{note}: {m}");
    }
    // Neighbours of the refused ranges are fine: text in any script, emoji.
    let h = harness();
    for (i, note) in [
        r"a\u00acb",
        r"a\u2065b",
        r"a\ufdcfb",
        r"a\ufff8b",
        r"a\ufffcb",
        "Ticket 4411 \u{1F4E7} \u{05D0}\u{05D1}",
        r"\ud83d\ude00",
    ]
    .iter()
    .enumerate()
    {
        let r = h.grant(&format!(r#"{{"subscriber":"203.0.113.{i}/32","note":"{note}"}}"#)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{note}: {}", r.json);
    }
}
