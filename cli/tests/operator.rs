//! `sync`, `lookup` and `audit` against a real port25d.

mod support;

use serde_json::Value;
use support::{closed_port, ctl_at, ctl_with_stdin, write_file, Daemon};

fn add(d: &Daemon, args: &[&str]) -> u64 {
    let mut all = vec!["--json", "exemptions", "add"];
    all.extend_from_slice(args);
    d.ctl(&all).expect_code(0).json()["id"].as_u64().expect("id")
}

fn ids(d: &Daemon) -> Vec<u64> {
    let v = d.ctl(&["--json", "exemptions", "list"]).expect_code(0).json();
    v["exemptions"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

fn subscribers(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().unwrap().iter().map(|e| e["subscriber"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn sync_dry_run_shows_the_difference_and_changes_nothing() {
    let d = Daemon::start();
    let a = add(&d, &["203.0.113.1/32"]);
    let b = add(&d, &["203.0.113.2/32"]);
    let dir = tempfile::tempdir().unwrap();
    // A bare array: keep B, create C, and A (not listed) is deleted.
    let file = write_file(
        dir.path(),
        "desired.json",
        r#"[{"subscriber":"203.0.113.2/32"},{"subscriber":"203.0.113.3/32","external_id":"cust-3","note":"new"}]"#,
    );

    let v = d.ctl(&["--json", "sync", &file, "--dry-run"]).expect_code(0).json();
    assert_eq!(v["dry_run"], true, "{v}");
    assert_eq!(subscribers(&v, "create"), ["203.0.113.3/32"], "{v}");
    assert_eq!(v["delete"][0]["id"], a, "{v}");
    assert_eq!(v["keep"][0]["id"], b, "{v}");

    let t = d.ctl(&["sync", &file, "--dry-run"]).expect_code(0);
    assert!(t.stdout.starts_with("dry run, nothing changed: create 1, update 0, delete 1, keep 1\n"), "{}", t.stdout);
    let row = |change: &str| -> Vec<String> {
        let line = t.stdout.lines().find(|l| l.starts_with(change)).unwrap_or_else(|| panic!("{change}: {}", t.stdout));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("create")[..3], ["create", "-", "203.0.113.3/32"]);
    assert_eq!(row("delete")[..3], ["delete".to_owned(), a.to_string(), "203.0.113.1/32".to_owned()]);
    assert_eq!(ids(&d), [a, b], "a dry run writes nothing");
}

#[test]
fn sync_applies_a_list_from_stdin() {
    let d = Daemon::start();
    let a = add(&d, &["203.0.113.1/32"]);
    let body = r#"{"exemptions":[{"subscriber":"198.51.100.0/24","external_id":"relay-1"}]}"#;
    let r = ctl_with_stdin(&d.url(), &["sync", "-"], body).expect_code(0);
    assert!(r.stdout.starts_with("applied as policy version "), "{}", r.stdout);
    assert!(r.stdout.contains("create 1, update 0, delete 1, keep 0"), "{}", r.stdout);
    let v = d.ctl(&["--json", "exemptions", "list"]).expect_code(0).json();
    assert_eq!(subscribers(&v, "exemptions"), ["198.51.100.0/24"]);
    assert_eq!(v["exemptions"][0]["external_id"], "relay-1");
    assert_ne!(v["exemptions"][0]["id"], a);
    // The same list again changes nothing.
    let r = ctl_with_stdin(&d.url(), &["sync", "-"], body).expect_code(0);
    assert!(r.stdout.contains("create 0, update 0, delete 0, keep 1"), "{}", r.stdout);
}

#[test]
fn sync_refusals_name_the_item_and_write_nothing() {
    let d = Daemon::start();
    let a = add(&d, &["203.0.113.1/32"]);
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "bad.json", r#"[{"subscriber":"203.0.113.9/32"},{"subscriber":"0.0.0.0/0"}]"#);
    let r = d.ctl(&["sync", &file]).expect_code(1);
    assert!(r.stderr.contains("(field: exemptions[1].subscriber)"), "{}", r.stderr);
    assert_eq!(ids(&d), [a]);
}

#[test]
fn sync_checks_the_file_before_contacting_port25d() {
    // A closed URL: reaching for the server would exit 5.
    let url = format!("http://{}", closed_port());
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("trunc.json", "[{\"subscriber\":"), ("obj.json", r#"{"subscriber":"203.0.113.1/32"}"#)] {
        let file = write_file(dir.path(), name, text);
        let r = ctl_at(&url, &["sync", &file]).expect_code(1);
        assert!(r.stderr.contains(name), "{}", r.stderr);
    }
    ctl_at(&url, &["sync", &dir.path().join("missing.json").to_string_lossy()]).expect_code(1);
}

#[test]
fn lookup_gives_verdicts_and_covering_exemptions() {
    let d = Daemon::start();
    let id = add(&d, &["198.51.100.0/24", "--note", "relay"]);
    let v = d.ctl(&["--json", "lookup", "198.51.100.9"]).expect_code(0).json();
    assert_eq!((v["outbound"].as_str(), v["inbound"].as_str()), (Some("exempt"), Some("exempt")), "{v}");
    assert_eq!(v["exemptions"][0]["id"], id);

    let t = d.ctl(&["lookup", "198.51.100.9"]).expect_code(0);
    assert!(t.stdout.contains("outbound:       exempt\n"), "{}", t.stdout);
    assert!(t.stdout.contains("198.51.100.0/24"), "{}", t.stdout);
    let t = d.ctl(&["lookup", "2001:db8::25"]).expect_code(0);
    assert!(
        t.stdout.contains("outbound:       blocked\n") && t.stdout.contains("inbound:        blocked\n"),
        "{}",
        t.stdout
    );
    assert!(t.stdout.contains("exemptions covering it:\n  none\n"), "{}", t.stdout);

    let r = d.ctl(&["lookup", "198.51.100.0/24"]).expect_code(1);
    assert!(r.stderr.contains("(field: ip)"), "{}", r.stderr);
}

#[test]
fn audit_lists_changes_newest_first_with_filters_and_paging() {
    let d = Daemon::start();
    let a = d.ctl(&["--json", "--request-id", "crm-7", "exemptions", "add", "203.0.113.7/32"]).expect_code(0).json()
        ["id"]
        .as_u64()
        .unwrap();
    add(&d, &["198.51.100.0/24"]);
    d.ctl(&["exemptions", "rm", &a.to_string()]).expect_code(0);

    let v = d.ctl(&["--json", "audit"]).expect_code(0).json();
    let actions: Vec<&str> = v["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["revoke", "grant", "grant"], "{v}");

    let t = d.ctl(&["audit", "--subscriber", "203.0.113.7", "--action", "grant"]).expect_code(0);
    let lines: Vec<&str> = t.stdout.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["SEQ", "TIME", "ACTION", "ID", "SUBSCRIBER", "ACTOR", "SOURCE", "REQUEST_ID"]);
    assert_eq!(lines.len(), 2, "{}", t.stdout);
    assert!(lines[1].contains("203.0.113.7/32") && lines[1].ends_with("crm-7"), "{}", lines[1]);

    let t = d.ctl(&["audit", "--limit", "1"]).expect_code(0);
    assert_eq!(t.stdout.lines().count(), 2, "{}", t.stdout);
    let hint = t.stderr.trim();
    let seq = hint.strip_prefix("(more entries: add --before ").and_then(|s| s.strip_suffix(')')).expect(hint);
    let older = d.ctl(&["--json", "audit", "--before", seq]).expect_code(0).json();
    assert_eq!(older["entries"].as_array().unwrap().len(), 2, "{older}");

    let r = d.ctl(&["audit", "--since", "yesterday"]).expect_code(1);
    assert!(r.stderr.contains("(field: since)"), "{}", r.stderr);
}
