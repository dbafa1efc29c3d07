//! `port25ctl token new`: runs without a server; its table is valid TOML
//! whose sha256 is the hash of the printed token.

mod support;

use sha2::{Digest, Sha256};
use support::{closed_port, ctl_at};

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn prints_the_token_once_and_a_matching_config_table() {
    // A closed URL: the command must not need a server.
    let r = ctl_at(&format!("http://{}", closed_port()), &["token", "new", "provisioning", "--role", "write"])
        .expect_code(0);
    let token_lines: Vec<&str> =
        r.stdout.lines().filter(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit())).collect();
    assert_eq!(token_lines.len(), 1, "exactly one token line:\n{}", r.stdout);
    let token = token_lines[0];
    assert_eq!(r.stdout.matches(token).count(), 1, "the token is printed once");

    // Everything but the token line is TOML (comments included).
    let toml_text: String = r.stdout.lines().filter(|l| *l != token).map(|l| format!("{l}\n")).collect();
    let doc: toml::Table = toml_text.parse().unwrap_or_else(|e| panic!("not TOML ({e}):\n{toml_text}"));
    let entry = &doc["api"]["tokens"][0];
    assert_eq!(entry["name"].as_str(), Some("provisioning"));
    assert_eq!(entry["role"].as_str(), Some("write"));
    assert_eq!(entry["sha256"].as_str(), Some(sha256_hex(token).as_str()));
    assert!(r.stdout.contains("[[api.tokens]]\nname = \"provisioning\"\nrole = \"write\"\nsha256 = \""));
}

#[test]
fn tokens_differ_between_runs_and_json_has_the_same_fields() {
    let url = format!("http://{}", closed_port());
    let a = ctl_at(&url, &["--json", "token", "new", "ro", "--role", "read"]).expect_code(0).json();
    let b = ctl_at(&url, &["--json", "token", "new", "ro", "--role", "read"]).expect_code(0).json();
    assert_ne!(a["token"], b["token"]);
    assert_eq!(a["role"], "read");
    assert_eq!(a["sha256"].as_str().unwrap(), sha256_hex(a["token"].as_str().unwrap()));
}

#[test]
fn refuses_a_name_that_would_break_the_config() {
    let r = ctl_at("http://127.0.0.1:1", &["token", "new", "a\"b", "--role", "read"]).expect_code(1);
    assert!(r.stderr.contains("A-Z a-z 0-9 - _ . @"), "{}", r.stderr);
}
