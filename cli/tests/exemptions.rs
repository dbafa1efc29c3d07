//! `port25ctl exemptions ...`, `switches` and `--json` against a real
//! port25d.

mod support;

use serde_json::Value;
use support::Daemon;

/// Grant through the CLI and return the new id.
fn add(d: &Daemon, args: &[&str]) -> u64 {
    let mut all = vec!["--json", "exemptions", "add"];
    all.extend_from_slice(args);
    let v = d.ctl(&all).expect_code(0).json();
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}

#[test]
fn add_list_show_rm_round_trip() {
    let d = Daemon::start();
    let out = d
        .ctl(&["exemptions", "add", "203.0.113.7/32", "--note", "ticket 4411", "--switch", "0000000000000001"])
        .expect_code(0);
    assert!(out.stdout.contains("subscriber:") && out.stdout.contains("203.0.113.7/32"), "{}", out.stdout);
    assert!(out.stdout.contains("0000000000000001"), "{}", out.stdout);
    let id_line = out.stdout.lines().find(|l| l.starts_with("id:")).expect("id line");
    let id: u64 = id_line.trim_start_matches("id:").trim().parse().expect("numeric id");

    let list = d.ctl(&["exemptions", "list"]).expect_code(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "header and one row: {}", list.stdout);
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "SUBSCRIBER", "SWITCHES", "EXPIRES", "NOTE"]);
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[..3], [id.to_string().as_str(), "203.0.113.7/32", "0000000000000001"]);
    assert!(lines[1].ends_with("ticket 4411"), "{}", lines[1]);
    // Columns line up: each header starts where its cells start.
    assert_eq!(lines[0].find("SUBSCRIBER"), lines[1].find("203.0.113.7/32"));

    let show = d.ctl(&["exemptions", "show", &id.to_string()]).expect_code(0);
    assert!(show.stdout.contains("ticket 4411"), "{}", show.stdout);

    let rm = d.ctl(&["exemptions", "rm", &id.to_string()]).expect_code(0);
    assert_eq!(rm.stdout.trim(), format!("revoked exemption {id}"));
    let list = d.ctl(&["exemptions", "list"]).expect_code(0);
    assert_eq!(list.stdout.lines().count(), 1, "only the header after rm: {}", list.stdout);
    d.ctl(&["exemptions", "show", &id.to_string()]).expect_code(2);
}

#[test]
fn json_output_is_the_servers_json() {
    let d = Daemon::start();
    let a = add(&d, &["198.51.100.0/24", "--note", "relay"]);
    let b = add(&d, &["2001:db8:7::/48"]);
    let v = d.ctl(&["--json", "exemptions", "list"]).expect_code(0).json();
    let ids: Vec<u64> = v["exemptions"].as_array().unwrap().iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [a, b]);
    assert_eq!(v["exemptions"][0]["note"], "relay");
    assert_eq!(v["exemptions"][1]["switches"], Value::Null);

    let one = d.ctl(&["--json", "exemptions", "show", &b.to_string()]).expect_code(0).json();
    assert_eq!(one["subscriber"], "2001:db8:7::/48");

    // The filter goes to the server: an address inside the /24 finds it.
    let f = d.ctl(&["--json", "exemptions", "list", "--subscriber", "198.51.100.9"]).expect_code(0).json();
    assert_eq!(f["exemptions"].as_array().unwrap().len(), 1, "{f}");
    assert_eq!(f["exemptions"][0]["id"], a);
    // A prefix with a slash is encoded, not taken as a path.
    let f = d.ctl(&["--json", "exemptions", "list", "--subscriber", "2001:db8:7:1::/64"]).expect_code(0).json();
    assert_eq!(f["exemptions"][0]["id"], b, "{f}");

    // 204 carries no body, so there is nothing to print; the exit code is
    // the answer.
    let rm = d.ctl(&["--json", "exemptions", "rm", &a.to_string()]).expect_code(0);
    assert_eq!(rm.stdout, "", "{}", rm.stdout);
    d.ctl(&["exemptions", "show", &a.to_string()]).expect_code(2);
}

#[test]
fn json_output_is_the_reply_body_byte_for_byte() {
    let d = Daemon::start();
    let id = add(&d, &["198.51.100.0/24", "--note", "relay"]);
    // port25d writes "id" first; re-serialising would sort the keys and
    // start with "created_at".
    let one = d.ctl(&["--json", "exemptions", "show", &id.to_string()]).expect_code(0);
    assert!(one.stdout.starts_with(&format!("{{\"id\":{id},\"subscriber\":")), "{}", one.stdout);

    // Whatever the server sends (key order, spacing, unknown fields) comes
    // out unchanged, with one newline added.
    let body = r#"{"switches": [ ],"zeta":1,"alpha":{"b":2,"a":1}}"#;
    let reply =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    let (addr, server) = support::canned(Some(&reply));
    let r = support::ctl_at(&format!("http://{addr}"), &["--json", "switches"]).expect_code(0);
    assert_eq!(r.stdout, format!("{body}\n"));
    server.join().unwrap();
}

#[test]
fn unknown_id_exits_2_with_the_servers_message() {
    let d = Daemon::start();
    let r = d.ctl(&["exemptions", "show", "999"]).expect_code(2);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(r.stderr.contains("404") && r.stderr.contains("no exemption with id 999"), "{}", r.stderr);
    d.ctl(&["exemptions", "rm", "999"]).expect_code(2);
}

#[test]
fn refused_input_exits_1_and_names_the_field() {
    let d = Daemon::start();
    let r = d.ctl(&["exemptions", "add", "10.0.0.300/32"]).expect_code(1);
    assert!(r.stderr.contains("400"), "{}", r.stderr);
    assert!(r.stderr.contains("(field: subscriber)"), "{}", r.stderr);
    let r = d.ctl(&["exemptions", "add", "192.0.2.1/32", "--switch", "nope"]).expect_code(1);
    assert!(r.stderr.contains("(field: switches[0])"), "{}", r.stderr);
    // Nothing was written.
    let v = d.ctl(&["--json", "exemptions", "list"]).expect_code(0).json();
    assert_eq!(v["exemptions"].as_array().unwrap().len(), 0, "{v}");
}

#[test]
fn duplicate_grant_exits_4_with_the_existing_id() {
    let d = Daemon::start();
    let id = add(&d, &["203.0.113.8/32"]);
    let r = d.ctl(&["exemptions", "add", "203.0.113.8/32"]).expect_code(4);
    assert!(r.stderr.contains("409") && r.stderr.contains(&format!("existing id: {id}")), "{}", r.stderr);
}

#[test]
fn switches_prints_a_table_and_json() {
    let d = Daemon::start();
    let t = d.ctl(&["switches"]).expect_code(0);
    let header: Vec<&str> = t.stdout.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["DPID", "VERSION", "STATE", "IN_SYNC", "POLICY", "FLOWS", "PEER", "LAST_ERROR"]);
    let v = d.ctl(&["--json", "switches"]).expect_code(0).json();
    assert_eq!(v["switches"], serde_json::json!([]));
}

#[test]
fn url_comes_from_the_environment() {
    let d = Daemon::start();
    let mut c = support::ctl_command();
    c.env("PORT25_URL", d.url()).args(["--json", "exemptions", "list"]);
    let r = support::run(c).expect_code(0);
    assert!(r.json()["exemptions"].is_array());
}
