//! `port25ctl`: the command line for port25d's REST API.
//!
//! # Layout
//! - this file: the command line (clap), dispatch, and exit codes.
//! - [`client`]: a blocking HTTP/1.1 client over `std::net`.
//! - [`render`]: tables and `key: value` views of the API's JSON.
//! - [`token`]: `token new`, local token generation.
//!
//! Each command is one request (or none, for `token new`). The server's
//! reply decides the exit code (see [`Exit`]); `--json` prints the reply
//! body byte for byte as it came (nothing for a reply without a body).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod client;
mod render;
mod token;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use crate::client::{encode, query, Client, Endpoint, HttpError, Reply};
use crate::token::NewToken;

const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  usage error, or input refused by port25d (400 and other 4xx not below)
  2  not found (404): no such exemption
  3  not allowed (401/403): no token, an unknown token, or a read token on a write command
  4  conflict (409): the same exemption already exists (its id is printed)
  5  port25d unreachable: connection refused, name not resolved, or no reply within --timeout
  6  port25d failed (5xx) or its reply was not HTTP/JSON

Errors go to stderr with port25d's message, the field it is about, and the request id.";

/// What a run ended with; the numbers are the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    Ok = 0,
    Usage = 1,
    NotFound = 2,
    Auth = 3,
    Conflict = 4,
    Unreachable = 5,
    Server = 6,
}

impl Exit {
    fn for_status(status: u16) -> Exit {
        match status {
            200..=299 => Exit::Ok,
            404 => Exit::NotFound,
            401 | 403 => Exit::Auth,
            409 => Exit::Conflict,
            400..=499 => Exit::Usage,
            _ => Exit::Server,
        }
    }
}

/// A failed run: the exit code and what to say on stderr.
struct Failure {
    exit: Exit,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure { exit: Exit::Usage, message: message.into() }
    }
}

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Failure {
        match e {
            HttpError::BadUrl(m) => Failure { exit: Exit::Usage, message: m },
            HttpError::Unreachable(m) => Failure { exit: Exit::Unreachable, message: m },
            HttpError::Protocol(m) => Failure { exit: Exit::Server, message: m },
        }
    }
}

/// Command-line client for port25d's REST API.
///
/// Grants, lists and revokes port-25 exemptions, shows switches, looks up
/// subscribers, reads the audit trail and syncs exemptions from a file.
#[derive(Debug, Parser)]
#[command(name = "port25ctl", version, after_help = EXIT_CODES)]
struct Cli {
    /// port25d's API
    #[arg(long, global = true, env = "PORT25_URL", default_value = "http://127.0.0.1:8080", value_name = "URL")]
    url: String,
    /// API token, sent as `Authorization: Bearer TOKEN` (prefer the
    /// environment variable: a flag is visible to other local users in `ps`)
    #[arg(long, global = true, env = "PORT25_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Print port25d's reply body byte for byte as it came, instead of a
    /// table. A reply without a body (`exemptions rm`: 204) prints nothing
    #[arg(long, global = true)]
    json: bool,
    /// Send this as the request's x-request-id (port25d records it in the
    /// audit trail); by default port25d makes one
    #[arg(long, global = true, value_name = "ID")]
    request_id: Option<String>,
    /// Give up connecting, sending or waiting for a reply after this long
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Grant, list, show and revoke exemptions
    #[command(subcommand, after_help = EXIT_CODES)]
    Exemptions(ExemptionsCommand),
    /// Verdict for one address: blocked or exempt, by which exemptions, and
    /// whether each switch has the flows in place
    #[command(after_help = EXIT_CODES)]
    Lookup {
        /// IPv4 or IPv6 address
        ip: String,
    },
    /// Every switch session and its state
    #[command(after_help = EXIT_CODES)]
    Switches,
    /// The audit trail of changes
    #[command(after_help = EXIT_CODES)]
    Audit(AuditArgs),
    /// Make the stored exemptions equal to a list (from a provisioning system)
    ///
    /// FILE is JSON, either {"exemptions": [...]} or a bare array of
    /// exemptions as for `exemptions add` ({"subscriber": ..., "note": ...,
    /// "switches": [...], "external_id": ...}). Exemptions not in the list
    /// are revoked.
    #[command(after_help = EXIT_CODES)]
    Sync {
        /// JSON file, or `-` for standard input
        file: PathBuf,
        /// Only show what would be created and deleted
        #[arg(long)]
        dry_run: bool,
    },
    /// API tokens
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum ExemptionsCommand {
    /// Grant an exemption
    Add(AddArgs),
    /// List exemptions, optionally only those covering an address or prefix
    #[command(visible_alias = "ls")]
    List {
        /// Address or prefix, such as 203.0.113.7 or 203.0.113.0/24
        #[arg(long, value_name = "IP_OR_PREFIX")]
        subscriber: Option<String>,
    },
    /// Show one exemption
    Show {
        /// Exemption id
        id: u64,
    },
    /// Revoke an exemption
    #[command(visible_alias = "revoke")]
    Rm {
        /// Exemption id
        id: u64,
    },
}

#[derive(Debug, Args)]
struct AddArgs {
    /// Address or prefix to exempt, such as 203.0.113.7/32 or 2001:db8:7::/48
    subscriber: String,
    /// Free text: ticket, customer id
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
    /// Apply on this switch only (datapath id, 16 hex digits); repeat for
    /// several. Default: every switch
    #[arg(long = "switch", value_name = "DPID")]
    switches: Vec<String>,
    /// Revoke automatically after this many seconds
    #[arg(long, value_name = "SECS", conflicts_with = "expires")]
    ttl: Option<u64>,
    /// Revoke automatically at this time (RFC 3339, such as 2026-12-31T23:00:00Z)
    #[arg(long, value_name = "RFC3339")]
    expires: Option<String>,
}

#[derive(Debug, Args)]
struct AuditArgs {
    /// Only changes to exemptions covering this address or prefix
    #[arg(long, value_name = "IP_OR_PREFIX")]
    subscriber: Option<String>,
    /// Only changes at or after this time (RFC 3339)
    #[arg(long, value_name = "RFC3339")]
    since: Option<String>,
    /// Only this action (such as grant, revoke, expire, sync)
    #[arg(long)]
    action: Option<String>,
    /// At most this many entries (port25d's default is 100)
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Only entries older than this sequence number (the next page)
    #[arg(long, value_name = "SEQ")]
    before: Option<u64>,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Generate a token and the [[api.tokens]] table for port25d's config.
    ///
    /// Runs locally. The token is printed once and stored nowhere; port25d
    /// keeps only its SHA-256.
    New {
        /// Who or what will use the token, shown in logs and the audit trail
        /// (1 to 64 of A-Z a-z 0-9 - _ . @)
        name: String,
        /// read: GET routes only; write: also grant, revoke and sync
        #[arg(long, value_enum)]
        role: Role,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Role {
    Read,
    Write,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on usage errors; 2 is "not found" here.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { Exit::Ok as u8 });
        }
    };
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("port25ctl: {}", f.message);
            ExitCode::from(f.exit as u8)
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    if let Command::Token(TokenCommand::New { name, role }) = &cli.command {
        return token_new(cli, name, *role);
    }
    let endpoint = Endpoint::parse(&cli.url)?;
    let token = cli.token.clone().filter(|t| !t.is_empty());
    // Both go into a header line: a newline would smuggle in another header.
    for (what, v) in [("--token", &token), ("--request-id", &cli.request_id)] {
        if v.as_ref().is_some_and(|v| v.chars().any(char::is_control)) {
            return Err(Failure::usage(format!("{what} must not contain control characters")));
        }
    }
    let api = Api {
        client: Client::new(endpoint, token, cli.request_id.clone(), Duration::from_secs(cli.timeout)),
        json: cli.json,
    };
    match &cli.command {
        Command::Exemptions(ExemptionsCommand::Add(args)) => {
            let body = grant_body(args);
            let v = api.call("POST", "/v1/exemptions", Some(&body))?;
            api.print(&v, render::exemption)
        }
        Command::Exemptions(ExemptionsCommand::List { subscriber }) => {
            let v =
                api.call("GET", &format!("/v1/exemptions{}", query(&[("subscriber", subscriber.clone())])), None)?;
            api.print(&v, |v| render::exemption_list(render::items(v, "exemptions")))
        }
        Command::Exemptions(ExemptionsCommand::Show { id }) => {
            let v = api.call("GET", &format!("/v1/exemptions/{id}"), None)?;
            api.print(&v, render::exemption)
        }
        Command::Exemptions(ExemptionsCommand::Rm { id }) => {
            let v = api.call("DELETE", &format!("/v1/exemptions/{id}"), None)?;
            // 204 has no body, and --json prints none: the exit code says
            // it was revoked.
            api.print(&v, |_| format!("revoked exemption {id}\n"))
        }
        Command::Lookup { ip } => {
            let v = api.call("GET", &format!("/v1/lookup?ip={}", encode(ip)), None)?;
            api.print(&v, render::lookup)
        }
        Command::Switches => {
            let v = api.call("GET", "/v1/switches", None)?;
            api.print(&v, |v| render::switches(render::items(v, "switches")))
        }
        Command::Audit(a) => {
            let q = query(&[
                ("subscriber", a.subscriber.clone()),
                ("since", a.since.clone()),
                ("action", a.action.clone()),
                ("limit", a.limit.map(|n| n.to_string())),
                ("before", a.before.map(|n| n.to_string())),
            ]);
            let v = api.call("GET", &format!("/v1/audit{q}"), None)?;
            api.print(&v, render::audit)?;
            if let (false, Some(seq)) = (cli.json, v.value["next_before"].as_u64()) {
                eprintln!("(more entries: add --before {seq})");
            }
            Ok(())
        }
        Command::Sync { file, dry_run } => {
            let body = sync_body(file)?;
            let path = if *dry_run { "/v1/exemptions?dry_run=true" } else { "/v1/exemptions" };
            let v = api.call("PUT", path, Some(&body))?;
            api.print(&v, render::sync)
        }
        Command::Token(_) => unreachable!("handled above, without a server"),
    }
}

/// The client plus the output mode.
struct Api {
    client: Client,
    json: bool,
}

/// A 2xx reply's body: the bytes as received, for `--json`, and parsed,
/// for the tables.
struct Body {
    raw: Vec<u8>,
    /// `Null` when the body is empty.
    value: Value,
}

impl Api {
    /// One request; a 2xx reply's body, or the failure its status means.
    /// A body that is not JSON is a failure even with `--json`: exit code
    /// 6 says so.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Body, Failure> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("a Value always serializes"));
        let reply = self.client.request(method, path, bytes.as_deref())?;
        let exit = Exit::for_status(reply.status);
        if exit != Exit::Ok {
            return Err(Failure { exit, message: describe_error(&reply) });
        }
        if reply.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body { raw: reply.body, value: Value::Null });
        }
        let value = serde_json::from_slice(&reply.body).map_err(|e| Failure {
            exit: Exit::Server,
            message: format!("{} {}: reply is not JSON: {e}", reply.status, reply.reason),
        })?;
        Ok(Body { raw: reply.body, value })
    }

    /// With `--json`, the body's bytes unchanged (serde_json would sort the
    /// keys and drop the server's formatting) and a newline if it lacks
    /// one; nothing for an empty body. Otherwise the renderer's text.
    fn print(&self, body: &Body, human: impl FnOnce(&Value) -> String) -> Result<(), Failure> {
        let mut out = std::io::stdout().lock();
        let written = if !self.json {
            out.write_all(human(&body.value).as_bytes())
        } else if body.raw.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else if body.raw.ends_with(b"\n") {
            out.write_all(&body.raw)
        } else {
            out.write_all(&body.raw).and_then(|()| out.write_all(b"\n"))
        };
        written.and_then(|()| out.flush()).map_err(|e| Failure::usage(format!("cannot write to stdout: {e}")))
    }
}

/// `404 Not Found: no exemption with id 7 (field: id) [request id: ...]`.
fn describe_error(reply: &Reply) -> String {
    let mut out = format!("{} {}", reply.status, reply.reason);
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(v) => {
            if let Some(e) = v["error"].as_str() {
                out.push_str(&format!(": {}", render::cell(&Value::from(e))));
                if reply.status == 404 && e == "no such route" {
                    out.push_str(" (is this port25d older than port25ctl?)");
                }
            }
            if let Some(f) = v["field"].as_str() {
                out.push_str(&format!(" (field: {})", render::cell(&Value::from(f))));
            }
            if !v["existing_id"].is_null() {
                out.push_str(&format!(" (existing id: {})", render::cell(&v["existing_id"])));
            }
        }
        Err(_) if reply.body.is_empty() => {}
        Err(_) => {
            let text = String::from_utf8_lossy(&reply.body);
            let text: String = text.chars().take(200).collect();
            out.push_str(&format!(": {}", render::cell(&Value::from(text.trim()))));
        }
    }
    if let Some(id) = reply.header("x-request-id") {
        out.push_str(&format!(" [request id: {}]", render::cell(&Value::from(id))));
    }
    out
}

/// The `POST /v1/exemptions` body: only the fields given, so that an older
/// port25d without expiry still takes a plain grant. There is no
/// `external_id` here: port25d takes external ids only from a sync, where
/// they are what matches an item to its record.
fn grant_body(a: &AddArgs) -> Value {
    let mut body = Map::new();
    body.insert("subscriber".into(), a.subscriber.clone().into());
    if let Some(note) = &a.note {
        body.insert("note".into(), note.clone().into());
    }
    if !a.switches.is_empty() {
        body.insert("switches".into(), a.switches.clone().into());
    }
    if let Some(ttl) = a.ttl {
        body.insert("ttl_seconds".into(), ttl.into());
    }
    if let Some(at) = &a.expires {
        body.insert("expires_at".into(), at.clone().into());
    }
    Value::Object(body)
}

/// Read the sync file and put it in the `{"exemptions": [...]}` form.
fn sync_body(file: &PathBuf) -> Result<Value, Failure> {
    let (name, text) = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
        ("stdin".to_owned(), s)
    } else {
        let s = std::fs::read_to_string(file)
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
        (file.display().to_string(), s)
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| Failure::usage(format!("{name} is not JSON: {e}")))?;
    match v {
        Value::Array(_) => Ok(json!({ "exemptions": v })),
        Value::Object(ref o) if o.get("exemptions").is_some_and(Value::is_array) => Ok(v),
        _ => Err(Failure::usage(format!("{name}: expected {{\"exemptions\": [...]}} or a JSON array of exemptions"))),
    }
}

fn token_new(cli: &Cli, name: &str, role: Role) -> Result<(), Failure> {
    let t = NewToken::generate(name, role.as_str()).map_err(Failure::usage)?;
    if cli.json {
        println!("{}", json!({ "name": t.name, "role": t.role, "token": t.token, "sha256": t.sha256 }));
    } else {
        println!("# Token for {:?} (role {}). It is shown only this once; give it to the client:", t.name, t.role);
        println!("{}", t.token);
        println!();
        println!("# Add this to port25d's config file, then restart port25d:");
        print!("{}", t.toml());
    }
    Ok(())
}
