//! Tokens end to end: `port25ctl token new` prints the tables, port25d is
//! configured with exactly that text, and the CLI's exit codes follow what
//! port25d says about each token.

mod support;

use support::{ctl_at, run, Daemon};

/// `token new NAME --role ROLE`: the token, and the rest of the output
/// (comments and the `[[api.tokens]]` table).
fn new_token(name: &str, role: &str) -> (String, String) {
    let out = ctl_at("http://127.0.0.1:1", &["token", "new", name, "--role", role]).expect_code(0);
    let token = out.stdout.lines().find(|l| l.len() == 64 && !l.starts_with('#')).expect("token line").to_owned();
    let rest: String = out.stdout.lines().filter(|l| *l != token).map(|l| format!("{l}\n")).collect();
    (token, rest)
}

#[test]
fn printed_tables_configure_port25d_and_exit_codes_follow_the_role() {
    let (write, write_toml) = new_token("crm", "write");
    let (read, read_toml) = new_token("abuse-desk", "read");
    let d = Daemon::start_with_config(&format!("{write_toml}\n{read_toml}"));
    let with = |token: &str, args: &[&str]| {
        let mut c = support::ctl_command();
        c.env("PORT25_TOKEN", token).arg("--url").arg(d.url()).args(args);
        run(c)
    };

    // No token, and a wrong one: 401, exit 3.
    let r = d.ctl(&["exemptions", "list"]).expect_code(3);
    assert!(r.stderr.contains("401"), "{}", r.stderr);
    let r = with(&format!("{read}x"), &["exemptions", "list"]).expect_code(3);
    assert!(r.stderr.contains("401 Unauthorized: unknown bearer token"), "{}", r.stderr);
    assert!(!r.stderr.contains(&read), "the token is not echoed: {}", r.stderr);

    // The read token reads, and may not write: 403, exit 3, nothing stored.
    with(&read, &["exemptions", "list"]).expect_code(0);
    let r = with(&read, &["exemptions", "add", "203.0.113.7/32"]).expect_code(3);
    assert!(r.stderr.contains("403 Forbidden") && r.stderr.contains("abuse-desk"), "{}", r.stderr);
    let v = with(&read, &["--json", "exemptions", "list"]).expect_code(0).json();
    assert_eq!(v["exemptions"].as_array().unwrap().len(), 0, "{v}");

    // The write token writes, and the audit trail names it.
    with(&write, &["exemptions", "add", "203.0.113.7/32"]).expect_code(0);
    let v = with(&read, &["--json", "audit"]).expect_code(0).json();
    assert_eq!(v["entries"][0]["actor"], "crm", "{v}");
    // --token on the command line works too.
    ctl_at(&d.url(), &["--token", &write, "exemptions", "rm", "1"]).expect_code(0);
}
