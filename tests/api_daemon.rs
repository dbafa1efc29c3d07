//! The operator-facing API through port25d itself: tokens over real HTTP,
//! the refusal to expose the API without them and configuration overrides
//! (through the binary), and expiry on a real OVS bridge (while running
//! and while down).

mod support;

use std::process::Command;
use std::time::Duration;

use port25_api::auth::{parse_sha256_hex, sha256_hex};
use port25_api::{ApiToken, Role, Tokens};
use support::{http_with, wait_for, Bridge, Daemon};

const WRITE: &str = "w-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const READ: &str = "r-0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn tokens() -> Tokens {
    Tokens::new(vec![
        ApiToken { name: "crm".into(), role: Role::Write, sha256: parse_sha256_hex(&sha256_hex(WRITE)).unwrap() },
        ApiToken { name: "desk".into(), role: Role::Read, sha256: parse_sha256_hex(&sha256_hex(READ)).unwrap() },
    ])
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn tokens_guard_the_api_over_real_http_and_the_audit_names_caller_and_peer() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_with_tokens(dir.path(), tokens());
    let api = d.bound.api;
    let grant = Some(r#"{"subscriber":"203.0.113.7"}"#);

    let (st, h, v) = http_with(api, "POST", "/v1/exemptions", grant, &[]);
    assert_eq!(st, 401, "{v}");
    assert!(header(&h, "www-authenticate").is_some_and(|w| w.starts_with("Bearer")), "{h:?}");
    assert!(v["error"].is_string());
    let (st, _, v) = http_with(api, "POST", "/v1/exemptions", grant, &[("authorization", "Bearer nope")]);
    assert_eq!(st, 401, "{v}");
    let read = format!("Bearer {READ}");
    let (st, _, v) = http_with(api, "POST", "/v1/exemptions", grant, &[("authorization", &read)]);
    assert_eq!(st, 403, "{v}");
    let (st, _, v) = http_with(api, "GET", "/v1/exemptions", None, &[("authorization", &read)]);
    assert_eq!((st, v["exemptions"].as_array().map(Vec::len)), (200, Some(0)), "nothing was written: {v}");
    let (st, _, _) = http_with(api, "GET", "/healthz", None, &[]);
    assert_eq!(st, 200, "/healthz stays open");

    let write = format!("Bearer {WRITE}");
    let (st, h, v) =
        http_with(api, "POST", "/v1/exemptions", grant, &[("authorization", &write), ("x-request-id", "ticket-4411")]);
    assert_eq!(st, 201, "{v}");
    assert_eq!(header(&h, "x-request-id"), Some("ticket-4411"));
    let (_, _, audit) = http_with(api, "GET", "/v1/audit", None, &[("authorization", &read)]);
    let e = &audit["entries"][0];
    assert_eq!((e["action"].as_str(), e["actor"].as_str()), (Some("grant"), Some("crm")), "{audit}");
    assert_eq!(e["request_id"], "ticket-4411");
    let source = e["source"].as_str().expect("the peer address is recorded");
    assert!(source.starts_with("127.0.0.1:"), "{source}");
    d.stop();
}

fn port25d(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_port25d"));
    cmd.args(args).env_remove("RUST_LOG");
    for k in ["PORT25_CONFIG", "PORT25_OPENFLOW_LISTEN", "PORT25_API_LISTEN", "PORT25_DATA_DIR", "PORT25_LOG"] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run port25d");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn port25d_checks_exposure_tokens_and_overrides_at_start() {
    let (code, err) = port25d(&["--check-config", "--api-listen", "0.0.0.0:8080"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("api.listen") && err.contains("[[api.tokens]]"), "{err}");
    // The environment overrides the file (here: the default), flags override the environment.
    let (code, err) = port25d(&["--check-config"], &[("PORT25_API_LISTEN", "0.0.0.0:8080")]);
    assert_eq!(code, 2, "{err}");
    let (code, err) =
        port25d(&["--check-config", "--api-listen", "127.0.0.1:8080"], &[("PORT25_API_LISTEN", "0.0.0.0:8080")]);
    assert_eq!(code, 0, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("port25d.toml");
    let good = format!(
        "[api]\nlisten = \"0.0.0.0:8080\"\n[[api.tokens]]\nname = \"crm\"\nrole = \"write\"\nsha256 = \"{}\"\n",
        sha256_hex(WRITE)
    );
    std::fs::write(&file, &good).unwrap();
    let (code, err) = port25d(&["--check-config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "tokens make a public address acceptable: {err}");
    let (code, err) = port25d(&["--check-config"], &[("PORT25_CONFIG", file.to_str().unwrap())]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&file, good.replace("\"write\"", "\"admin\"")).unwrap();
    let (code, err) = port25d(&["--check-config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("api.tokens[0].role"), "{err}");
    std::fs::write(&file, good.replace(&sha256_hex(WRITE), "abc123")).unwrap();
    let (code, err) = port25d(&["--check-config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("api.tokens[0].sha256"), "{err}");
    let (code, err) = port25d(&["--check-config"], &[("PORT25_LOG", "info,=")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PORT25_LOG"), "{err}");
}

#[test]
fn the_example_config_is_valid_with_and_without_tokens() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/port25d.toml");
    let (code, err) = port25d(&["--check-config", "--config", example], &[]);
    assert_eq!(code, 0, "{err}");
    // Uncomment the token tables as documented, with real digests.
    let text = std::fs::read_to_string(example).unwrap();
    let mut enabled = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = match line {
            "# [[api.tokens]]" => "[[api.tokens]]".to_owned(),
            l if l.starts_with("# name = ") || l.starts_with("# role = ") => l[2..].to_owned(),
            l if l.starts_with("# sha256 = ") => format!("sha256 = \"{}\"", sha256_hex(&format!("token-{i}"))),
            l => l.to_owned(),
        };
        enabled.push_str(&l);
        enabled.push('\n');
    }
    assert_eq!(enabled.lines().filter(|l| *l == "[[api.tokens]]").count(), 2, "{enabled}");
    let enabled = enabled.replace("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:8080\"");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("port25d.toml");
    std::fs::write(&file, enabled).unwrap();
    let (code, err) = port25d(&["--check-config", "--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
}

fn has_allow(br: &Bridge, addr: &str) -> bool {
    br.flows().iter().any(|l| l.contains(&format!("nw_src={addr}")) || l.contains(&format!("nw_dst={addr}")))
}

#[test]
fn an_exemption_expires_on_the_switch_and_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let dpid = br.dpid_hex();
    d.wait_in_sync(&dpid);
    // Long enough that the switch surely gets the allow flows first, even
    // on a loaded machine.
    let (st, v) = d.http("POST", "/v1/exemptions", Some(r#"{"subscriber":"198.51.100.77","ttl_seconds":4}"#));
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    wait_for(Duration::from_secs(3), || has_allow(&br, "198.51.100.77").then_some(()))
        .unwrap_or_else(|| panic!("the grant never reached the switch: {:#?}", br.flows()));

    wait_for(Duration::from_secs(10), || (d.http("GET", &format!("/v1/exemptions/{id}"), None).0 == 404).then_some(()))
        .expect("not expired");
    d.wait_in_sync(&dpid);
    assert!(!has_allow(&br, "198.51.100.77"), "{:#?}", br.flows());
    let flow = format!(
        "in_port={},dl_dst=ff:ff:ff:ff:ff:ff,tcp,nw_src=198.51.100.77,nw_dst=192.0.2.1,tp_src=40000,tp_dst=25",
        br.port_a()
    );
    assert_eq!(br.trace(&flow), "Datapath actions: drop");
    let (_, audit) = d.http("GET", "/v1/audit?action=expire", None);
    assert_eq!(audit["entries"][0]["exemption_id"], id, "{audit}");
    assert_eq!(audit["entries"][0]["actor"], "port25d");
    assert_eq!(audit["entries"][0]["request_id"], serde_json::Value::Null, "applied by the expiry task: {audit}");
    d.stop();
}

#[test]
fn an_expiry_that_passed_while_down_is_applied_before_any_switch_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let (st, v) = d.http("POST", "/v1/exemptions", Some(r#"{"subscriber":"198.51.100.78","ttl_seconds":1}"#));
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_u64().unwrap();
    d.stop();
    std::thread::sleep(Duration::from_millis(1500));

    let d = Daemon::start(dir.path());
    // Already gone when the listeners come up: applied at start, not by
    // the expiry task some time later.
    let (st, _) = d.http("GET", &format!("/v1/exemptions/{id}"), None);
    assert_eq!(st, 404);
    let (_, audit) = d.http("GET", "/v1/audit?action=expire", None);
    assert_eq!(audit["entries"][0]["exemption_id"], id, "{audit}");
    assert_eq!(audit["entries"][0]["request_id"], "port25d-start", "applied by the start-up pass: {audit}");
    let br = Bridge::new("OpenFlow13");
    br.attach(d.bound.openflow);
    let st = d.wait_in_sync(&br.dpid_hex());
    assert!(!has_allow(&br, "198.51.100.78"), "{:#?}", br.flows());
    assert_eq!(st["last_round"]["deleted"], 0, "nothing to take back: {st}");
    d.stop();
}

#[test]
fn ids_and_policy_versions_go_on_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let a = d.grant("198.51.100.90");
    let (st, _) = d.http("POST", "/v1/exemptions", Some(r#"{"subscriber":"198.51.100.90"}"#));
    assert_eq!(st, 409, "a duplicate is refused");
    let b = d.grant("198.51.100.91");
    assert_eq!(b, a + 1, "the refused duplicate used up no id");
    let before = d.policy_version();
    d.stop();

    let d = Daemon::start(dir.path());
    let after = d.policy_version();
    assert!(after >= before, "a restart took the policy version back from {before} to {after}");
    let c = d.grant("198.51.100.92");
    assert_eq!(c, b + 1, "ids go on by one after a restart");
    assert!(d.policy_version() > before, "the first change after a restart is a newer version than any before it");
    d.stop();
}
