//! Which prefixes an exemption may name: at least the configured length
//! per family, never IPv4-mapped IPv6, never an address no subscriber can
//! have; on grants, bulk items and sync items alike. Filters and lookups
//! may ask about anything.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::{harness, harness_options, json_request, post_json};
use port25_api::{ApiOptions, MinPrefixLen};
use port25_rules::MemStore;
use serde_json::json;

const BAD: StatusCode = StatusCode::BAD_REQUEST;

fn grant(subscriber: &str) -> axum::http::Request<axum::body::Body> {
    post_json(&json!({ "subscriber": subscriber }).to_string())
}

#[tokio::test]
async fn two_halves_of_the_address_space_are_refused_by_default() {
    let h = harness();
    for (wide, min, key) in [
        ("128.0.0.0/1", "/8", "min_prefix_len_v4"),
        ("10.0.0.0/7", "/8", "min_prefix_len_v4"),
        ("8000::/1", "/32", "min_prefix_len_v6"),
        ("2001:db8::/31", "/32", "min_prefix_len_v6"),
    ] {
        let m = h.refused(grant(wide), BAD, Some("subscriber")).await;
        assert!(m.contains(min) && m.contains(key), "{wide}: {m}");
    }
    for ok in ["10.0.0.0/8", "2001:db8::/32"] {
        let r = h.send(grant(ok)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{ok}: {}", r.json);
    }
}

#[tokio::test]
async fn the_configured_minimum_applies() {
    let options = ApiOptions { min_prefix_len: MinPrefixLen { v4: 24, v6: 64 }, ..ApiOptions::default() };
    let h = harness_options(Arc::new(MemStore::new()), options);
    let m = h.refused(grant("203.0.112.0/23"), BAD, Some("subscriber")).await;
    assert!(m.contains("/24") && m.contains("[api] min_prefix_len_v4"), "{m}");
    let m = h.refused(grant("2001:db8::/48"), BAD, Some("subscriber")).await;
    assert!(m.contains("/64") && m.contains("[api] min_prefix_len_v6"), "{m}");
    assert_eq!(h.send(grant("203.0.113.0/24")).await.status, StatusCode::CREATED);
    assert_eq!(h.send(grant("2001:db8::/64")).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn bulk_items_and_sync_items_are_held_to_the_same_rules() {
    let h = harness();
    let body = json!({"exemptions": [
        {"subscriber": "0.0.0.0/1"},
        {"subscriber": "128.0.0.0/1"},
        {"subscriber": "203.0.113.7"},
        {"subscriber": "::ffff:198.18.0.1/128"},
        {"subscriber": "127.0.0.1"}
    ]});
    let r = h.send(json_request(Method::POST, "/v1/exemptions/bulk", &body.to_string())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let fields: Vec<&str> =
        r.json["rejected"].as_array().unwrap().iter().map(|x| x["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "exemptions[0].subscriber",
            "exemptions[1].subscriber",
            "exemptions[3].subscriber",
            "exemptions[4].subscriber"
        ],
        "{}",
        r.json
    );
    assert!(r.json["rejected"][2]["error"].as_str().unwrap().contains("did you mean 198.18.0.1/32?"), "{}", r.json);
    assert_eq!(h.stored().len(), 1);

    let body = json!({"exemptions": [{"subscriber": "203.0.113.7"}, {"subscriber": "8000::/1"}]});
    let m = h
        .refused(json_request(Method::PUT, "/v1/exemptions", &body.to_string()), BAD, Some("exemptions[1].subscriber"))
        .await;
    assert!(m.contains("min_prefix_len_v6"), "{m}");
    let body = json!({"exemptions": [{"subscriber": "::ffff:203.0.113.7"}]});
    let m = h
        .refused(json_request(Method::PUT, "/v1/exemptions", &body.to_string()), BAD, Some("exemptions[0].subscriber"))
        .await;
    assert!(m.contains("did you mean 203.0.113.7/32?"), "{m}");
}

#[tokio::test]
async fn ipv4_mapped_subscribers_are_refused_with_the_ipv4_form() {
    let h = harness();
    let m = h.refused(grant("::ffff:198.18.0.1/128"), BAD, Some("subscriber")).await;
    assert!(m.contains("did you mean 198.18.0.1/32?"), "{m}");
    let m = h.refused(grant("::ffff:198.18.0.0/112"), BAD, Some("subscriber")).await;
    assert!(m.contains("did you mean 198.18.0.0/16?"), "{m}");
}

#[tokio::test]
async fn addresses_no_subscriber_can_have_are_refused() {
    let h = harness();
    for (s, why) in [
        ("0.0.0.0/8", "this network"),
        ("0.0.0.1", "this network"),
        ("127.0.0.0/8", "loopback"),
        ("127.0.0.1", "loopback"),
        ("224.0.0.0/8", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("ff0e::/32", "multicast"),
        ("ff02::1", "multicast"),
    ] {
        let m = h.refused(grant(s), BAD, Some("subscriber")).await;
        assert!(m.contains(why), "{s}: {m}");
    }
}

#[tokio::test]
async fn filters_and_lookups_are_not_restricted() {
    let h = harness();
    assert_eq!(h.send(grant("203.0.113.0/24")).await.status, StatusCode::CREATED);
    for uri in [
        "/v1/exemptions?subscriber=0.0.0.0/1",
        "/v1/exemptions?subscriber=::ffff:203.0.113.7",
        "/v1/exemptions?subscriber=127.0.0.1",
        "/v1/audit?subscriber=128.0.0.0/1",
        "/v1/audit?subscriber=ff02::1",
        "/v1/lookup?ip=127.0.0.1",
        "/v1/lookup?ip=224.0.0.1",
    ] {
        let r = h.get(uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.json);
    }
}

#[tokio::test]
async fn lookup_of_an_ipv4_mapped_address_looks_up_the_ipv4_address() {
    let h = harness();
    let id = h.send(grant("203.0.113.0/24")).await.json["id"].clone();
    let r = h.get("/v1/lookup?ip=::ffff:203.0.113.7").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["ip"], "203.0.113.7");
    assert_eq!(r.json["outbound"], "exempt", "{}", r.json);
    assert_eq!(r.json["exemptions"][0]["id"], id);
}
