//! port25d configuration: a TOML file, then environment variables, then
//! flags on top (`src/bin/port25d.rs` applies those two).
//!
//! Every key is optional and has the default shown in
//! `examples/port25d.toml`. Unknown keys are refused, so a typo stops
//! start-up instead of silently leaving a default in place. Validation
//! names the key and the reason.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use port25_api::auth::parse_sha256_hex;
use port25_api::{ApiOptions, ApiToken, MinPrefixLen, Role, Tokens};
use port25_controller::session::SessionConfig;
use port25_controller::tls::{self, TlsError, TlsFiles};
use port25_rules::{CookieSpace, Dpid, Forward, PolicyConfig};

use crate::daemon::TlsListen;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub openflow: OpenFlowSection,
    pub api: ApiSection,
    pub store: StoreSection,
    pub policy: PolicySection,
    pub log: LogSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenFlowSection {
    /// Where switches connect (`ovs-vsctl set-controller BR tcp:HOST:PORT`);
    /// `"none"` turns plain TCP off.
    pub listen: Listen,
    /// TLS listener (`ssl:HOST:PORT` targets); needs the three files below.
    pub tls_listen: Option<SocketAddr>,
    /// Our certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Our private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA certificate(s) (PEM) that switch certificates must chain to.
    pub tls_client_ca: Option<PathBuf>,
    /// When set, only these datapath ids are served (16 hex digits each).
    pub allow_dpids: Option<Vec<String>>,
    /// Serve switches that speak only OpenFlow 1.0 (IPv4 policy only).
    pub allow_openflow10: bool,
    pub echo_interval_secs: u64,
    pub idle_timeout_secs: u64,
    pub handshake_timeout_secs: u64,
    pub request_timeout_secs: u64,
    /// Full read-back of in-sync switches every this many seconds, to
    /// repair drift; 0 turns it off.
    pub audit_interval_secs: u64,
    /// Poll the port-25 drop flows' packet and byte counters every this
    /// many seconds; 0 turns polling off.
    pub counters_interval_secs: u64,
    pub max_switches: usize,
}

impl Default for OpenFlowSection {
    fn default() -> Self {
        OpenFlowSection {
            listen: Listen::On("0.0.0.0:6653".parse().expect("literal address")),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            allow_dpids: None,
            allow_openflow10: true,
            echo_interval_secs: 5,
            idle_timeout_secs: 15,
            handshake_timeout_secs: 10,
            request_timeout_secs: 30,
            audit_interval_secs: 300,
            counters_interval_secs: 15,
            max_switches: 4096,
        }
    }
}

/// A listen address, or `none` to turn a listener off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(SocketAddr),
}

impl Listen {
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(a) => Some(*a),
        }
    }
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Listen, String> {
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(Listen::Off);
        }
        s.trim()
            .parse()
            .map(Listen::On)
            .map_err(|_| format!("'{s}' is neither \"none\" nor an address such as 0.0.0.0:6653"))
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Listen, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// REST API address. Loopback by default: the API can open port 25.
    pub listen: SocketAddr,
    /// `[[api.tokens]]`: bearer tokens. None: no authentication, which is
    /// allowed only on a loopback address.
    pub tokens: Vec<TokenEntry>,
    /// The shortest IPv4 subscriber prefix an exemption may name (1 to 32).
    /// Read as a plain integer so that any value gets our range message.
    pub min_prefix_len_v4: i64,
    /// The shortest IPv6 subscriber prefix an exemption may name (1 to 128).
    pub min_prefix_len_v6: i64,
}

impl Default for ApiSection {
    fn default() -> Self {
        let min = MinPrefixLen::default();
        ApiSection {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            tokens: Vec::new(),
            min_prefix_len_v4: min.v4.into(),
            min_prefix_len_v6: min.v6.into(),
        }
    }
}

/// One `[[api.tokens]]` table, as written. Every key is required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Shown in logs and the audit trail: 1 to 64 of `[A-Za-z0-9-_.@]`.
    pub name: String,
    /// `"read"` (GET only) or `"write"` (everything).
    pub role: String,
    /// Hex SHA-256 of the token: `printf %s "$TOKEN" | sha256sum`.
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Directory of the sled database.
    pub data_dir: PathBuf,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection { data_dir: PathBuf::from("./port25-data") }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    pub table: u8,
    pub exempt_priority: u16,
    pub drop_priority: u16,
    pub default_priority: u16,
    /// `"normal"` or `"goto_table:N"`.
    pub forward: String,
    /// Cookie prefix (16 bits) marking port25's flows, e.g. `"0x2525"`.
    pub cookie_prefix: String,
}

impl Default for PolicySection {
    fn default() -> Self {
        let d = PolicyConfig::default();
        PolicySection {
            table: d.table,
            exempt_priority: d.exempt_priority,
            drop_priority: d.drop_priority,
            default_priority: d.default_priority,
            forward: "normal".into(),
            cookie_prefix: format!("0x{:04x}", CookieSpace::DEFAULT_PREFIX),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A tracing filter such as `info` or `port25=debug,info`. `RUST_LOG` overrides it.
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { filter: "info".into() }
    }
}

/// A configuration problem, worded to say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key {key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), reason: reason.into() }
}

impl Config {
    /// Read and parse a config file.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or has unknown or mistyped keys.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::parse(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
    }

    /// Parse config text. The error text names the key and line.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// The flow layout, validated.
    ///
    /// # Errors
    /// A bad `forward`, `cookie_prefix`, or priorities in the wrong order.
    pub fn policy_config(&self) -> Result<PolicyConfig, ConfigError> {
        let p = &self.policy;
        let forward = parse_forward(&p.forward).map_err(|reason| invalid("policy.forward", reason))?;
        let prefix = parse_cookie_prefix(&p.cookie_prefix).map_err(|reason| invalid("policy.cookie_prefix", reason))?;
        let cfg = PolicyConfig {
            table: p.table,
            exempt_priority: p.exempt_priority,
            drop_priority: p.drop_priority,
            default_priority: p.default_priority,
            forward,
            cookies: CookieSpace::new(prefix),
        };
        cfg.validate().map_err(|e| invalid("policy", e.to_string()))?;
        Ok(cfg)
    }

    /// The TLS listener, if configured, with every file it needs.
    ///
    /// # Errors
    /// A TLS listener without its certificate, key or client CA, or files
    /// given without a listener.
    pub fn tls_listen(&self) -> Result<Option<TlsListen>, ConfigError> {
        let o = &self.openflow;
        let files = [
            ("openflow.tls_cert", &o.tls_cert),
            ("openflow.tls_key", &o.tls_key),
            ("openflow.tls_client_ca", &o.tls_client_ca),
        ];
        match o.tls_listen {
            None => {
                if let Some((key, _)) = files.iter().find(|(_, v)| v.is_some()) {
                    return Err(ConfigError::Invalid {
                        key: (*key).into(),
                        reason: "is set but openflow.tls_listen (--openflow-tls-listen) is not".into(),
                    });
                }
                Ok(None)
            }
            Some(addr) => {
                for (key, v) in files {
                    if v.is_none() {
                        return Err(ConfigError::Invalid {
                            key: key.into(),
                            reason: "is required with openflow.tls_listen (mutual TLS needs our certificate, our key and the CA that signs switch certificates)".into(),
                        });
                    }
                }
                Ok(Some(TlsListen {
                    addr,
                    files: TlsFiles {
                        cert: o.tls_cert.clone().unwrap_or_default(),
                        key: o.tls_key.clone().unwrap_or_default(),
                        client_ca: o.tls_client_ca.clone().unwrap_or_default(),
                    },
                }))
            }
        }
    }

    /// Session tunables, validated.
    ///
    /// # Errors
    /// Zero or inconsistent timeouts.
    pub fn session_config(&self) -> Result<SessionConfig, ConfigError> {
        let o = &self.openflow;
        for (key, v) in [
            ("openflow.echo_interval_secs", o.echo_interval_secs),
            ("openflow.idle_timeout_secs", o.idle_timeout_secs),
            ("openflow.handshake_timeout_secs", o.handshake_timeout_secs),
            ("openflow.request_timeout_secs", o.request_timeout_secs),
        ] {
            if v == 0 || v > 3600 {
                return Err(invalid(key, format!("{v} is out of range (1 to 3600 seconds)")));
            }
        }
        if o.idle_timeout_secs <= o.echo_interval_secs {
            return Err(invalid(
                "openflow.idle_timeout_secs",
                format!(
                    "{} must be longer than echo_interval_secs ({}), or every quiet switch is dropped",
                    o.idle_timeout_secs, o.echo_interval_secs
                ),
            ));
        }
        if o.max_switches == 0 {
            return Err(invalid("openflow.max_switches", "must be at least 1"));
        }
        let allow_dpids = match &o.allow_dpids {
            None => None,
            Some(list) => {
                let mut set = std::collections::BTreeSet::new();
                for (i, d) in list.iter().enumerate() {
                    let dpid: Dpid = d.parse().map_err(|e: port25_rules::model::DpidError| ConfigError::Invalid {
                        key: "openflow.allow_dpids".into(),
                        reason: format!("item {i}: {e}"),
                    })?;
                    set.insert(dpid);
                }
                Some(std::sync::Arc::new(set))
            }
        };
        let audit_interval = match o.audit_interval_secs {
            0 => None,
            n if n > 86_400 => {
                return Err(ConfigError::Invalid {
                    key: "openflow.audit_interval_secs".into(),
                    reason: format!("{n} is out of range (0 to turn off, or 1 to 86400 seconds)"),
                })
            }
            n => Some(Duration::from_secs(n)),
        };
        let counters_interval = match o.counters_interval_secs {
            0 => None,
            n if n > 86_400 => {
                return Err(ConfigError::Invalid {
                    key: "openflow.counters_interval_secs".into(),
                    reason: format!("{n} is out of range (0 to turn off, or 1 to 86400 seconds)"),
                })
            }
            n => Some(Duration::from_secs(n)),
        };
        Ok(SessionConfig {
            counters_interval,
            allow_openflow10: o.allow_openflow10,
            audit_interval,
            allow_dpids,
            policy: self.policy_config()?,
            echo_interval: Duration::from_secs(o.echo_interval_secs),
            idle_timeout: Duration::from_secs(o.idle_timeout_secs),
            handshake_timeout: Duration::from_secs(o.handshake_timeout_secs),
            request_timeout: Duration::from_secs(o.request_timeout_secs),
            write_timeout: Duration::from_secs(o.request_timeout_secs),
            ..SessionConfig::default()
        })
    }
}

/// The configuration as start-up uses it, after every check that needs
/// neither a socket nor the store: what `--check-config` runs.
#[derive(Debug)]
pub struct Checked {
    pub session: SessionConfig,
    pub api: ApiOptions,
    /// The plain-TCP OpenFlow listener (`None`: off).
    pub openflow_listen: Option<SocketAddr>,
    /// The TLS listener, its files loaded once to check them.
    pub openflow_tls: Option<TlsListen>,
}

impl Config {
    /// Run every check start-up runs before it opens the store or binds a
    /// socket: session tunables and the flow layout, tokens and API
    /// exposure, minimum prefix lengths, the TLS keys (present together)
    /// and at least one OpenFlow listener, and the TLS files loaded the
    /// way the listener loads them (`tls::acceptor`). `port25d` runs this
    /// both for `--check-config` and before starting, so both stop with
    /// the same message.
    ///
    /// # Errors
    /// The first problem found, naming its key.
    pub fn check(&self) -> Result<Checked, ConfigError> {
        let session = self.session_config()?;
        let api = self.api_options()?;
        let openflow_tls = self.tls_listen()?;
        let openflow_listen = self.openflow.listen.addr();
        if openflow_listen.is_none() && openflow_tls.is_none() {
            return Err(invalid(
                "openflow.listen",
                "is \"none\" and no TLS listener is configured, so no switch could connect: listen on an \
                 address, or set openflow.tls_listen with tls_cert, tls_key and tls_client_ca",
            ));
        }
        if let Some(t) = &openflow_tls {
            tls::acceptor(&t.files).map_err(|e| tls_problem(&e))?;
        }
        Ok(Checked { session, api, openflow_listen, openflow_tls })
    }

    /// What the API takes from the configuration: the tokens
    /// ([`Config::api_tokens`]) and the minimum subscriber prefix lengths.
    ///
    /// # Errors
    /// As [`Config::api_tokens`], or a minimum prefix length out of range.
    pub fn api_options(&self) -> Result<ApiOptions, ConfigError> {
        let len = |key: &str, v: i64, max: u8| match u8::try_from(v) {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(invalid(
                format!("api.{key}"),
                format!("{v} is out of range (1 to {max}; the default is {})", if max == 32 { 8 } else { 32 }),
            )),
        };
        let min_prefix_len = MinPrefixLen {
            v4: len("min_prefix_len_v4", self.api.min_prefix_len_v4, 32)?,
            v6: len("min_prefix_len_v6", self.api.min_prefix_len_v6, 128)?,
        };
        Ok(ApiOptions { tokens: self.api_tokens()?, min_prefix_len })
    }

    /// The API tokens, validated, after checking that the API is not
    /// exposed without them.
    ///
    /// # Errors
    /// A token entry with a bad name, role or digest, a duplicate name or
    /// digest, or a non-loopback `api.listen` without tokens.
    pub fn api_tokens(&self) -> Result<Tokens, ConfigError> {
        let mut names = HashSet::new();
        let mut digests = HashSet::new();
        let mut tokens = Vec::new();
        for (i, t) in self.api.tokens.iter().enumerate() {
            let key = |k: &str| format!("api.tokens[{i}].{k}");
            let name_ok = !t.name.is_empty()
                && t.name.len() <= 64
                && t.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
            if !name_ok {
                return Err(invalid(key("name"), format!("{:?} must be 1 to 64 of A-Z a-z 0-9 - _ . @", t.name)));
            }
            if !names.insert(t.name.clone()) {
                return Err(invalid(key("name"), format!("the name {:?} is used by an earlier token", t.name)));
            }
            let role: Role = t.role.parse().map_err(|e: String| invalid(key("role"), e))?;
            let sha256 = parse_sha256_hex(&t.sha256).map_err(|e| invalid(key("sha256"), e))?;
            if !digests.insert(sha256) {
                return Err(invalid(key("sha256"), "the same digest (the same token) is used by an earlier token"));
            }
            tokens.push(ApiToken { name: t.name.clone(), role, sha256 });
        }
        let tokens = Tokens::new(tokens);
        check_api_exposure(self.api.listen, &tokens)?;
        Ok(tokens)
    }
}

/// Refuse an API reachable from other machines without tokens: whoever
/// reaches it could switch the port-25 block off.
///
/// # Errors
/// `api.listen` is not a loopback address and `tokens` is empty.
pub fn check_api_exposure(listen: SocketAddr, tokens: &Tokens) -> Result<(), ConfigError> {
    if tokens.is_empty() && !listen.ip().is_loopback() {
        return Err(invalid(
            "api.listen",
            format!(
                "{listen} is not a loopback address and no [[api.tokens]] are configured: anyone who can reach \
                 the API could open port 25. Configure [[api.tokens]] (see examples/port25d.toml) or listen on \
                 127.0.0.1"
            ),
        ));
    }
    Ok(())
}

/// A TLS file that cannot be used, under the key that names it.
fn tls_problem(e: &TlsError) -> ConfigError {
    let key = match e {
        TlsError::Read { what, .. } | TlsError::Empty { what, .. } => match *what {
            "private key" => "openflow.tls_key",
            "client CA" => "openflow.tls_client_ca",
            _ => "openflow.tls_cert",
        },
        TlsError::Config(m) if m.starts_with("client CA") => "openflow.tls_client_ca",
        // The certificate and key do not go together, or rustls refuses them.
        TlsError::Config(_) => "openflow.tls_cert",
    };
    invalid(key, format!("cannot set up TLS for switches: {e}"))
}

fn parse_forward(s: &str) -> Result<Forward, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("normal") {
        return Ok(Forward::Normal);
    }
    if let Some(n) = s.strip_prefix("goto_table:") {
        return n
            .parse::<u8>()
            .map(Forward::GotoTable)
            .map_err(|_| format!("'{s}': table must be a number from 1 to 254"));
    }
    Err(format!("'{s}' is neither \"normal\" nor \"goto_table:N\""))
}

fn parse_cookie_prefix(s: &str) -> Result<u16, String> {
    let t = s.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let v = u16::from_str_radix(t, 16).map_err(|_| format!("'{s}' is not a 16-bit hex number such as 0x2525"))?;
    if v == 0 {
        return Err("0x0000 would claim every flow with a zero cookie (foreign flows); choose another prefix".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.openflow.listen, Listen::On("0.0.0.0:6653".parse().unwrap()));
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.policy_config().unwrap(), PolicyConfig::default());
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let e = Config::parse("[api]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n").unwrap_err();
        assert!(e.contains("listne"), "{e}");
    }

    #[test]
    fn priorities_in_wrong_order_are_refused() {
        let c = Config::parse("[policy]\nexempt_priority = 100\ndrop_priority = 200\n").unwrap();
        let e = c.policy_config().unwrap_err().to_string();
        assert!(e.contains("exempt_priority"), "{e}");
    }

    #[test]
    fn forward_and_cookie_are_parsed() {
        let c = Config::parse("[policy]\nforward = \"goto_table:3\"\ncookie_prefix = \"0xbeef\"\n").unwrap();
        let p = c.policy_config().unwrap();
        assert_eq!(p.forward, Forward::GotoTable(3));
        assert_eq!(p.cookies.prefix(), 0xbeef);
        let c = Config::parse("[policy]\nforward = \"flood\"\n").unwrap();
        assert!(c.policy_config().unwrap_err().to_string().contains("policy.forward"));
        let c = Config::parse("[policy]\ncookie_prefix = \"0\"\n").unwrap();
        assert!(c.policy_config().is_err());
    }

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn token(name: &str, role: &str, sha256: &str) -> String {
        format!("[[api.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{sha256}\"\n")
    }

    #[test]
    fn tokens_are_parsed() {
        let text = format!(
            "[api]\nlisten = \"0.0.0.0:8080\"\n{}{}",
            token("crm", "write", ABC),
            token("desk", "read", &"0".repeat(64))
        );
        let t = Config::parse(&text).unwrap().api_tokens().unwrap();
        assert_eq!(t.find("abc").map(|t| (t.name.as_str(), t.role)), Some(("crm", Role::Write)));
    }

    #[test]
    fn bad_token_entries_name_the_key() {
        let cases = [
            (token("crm", "write", "abcd"), "api.tokens[0].sha256"),
            (token("crm", "admin", ABC), "api.tokens[0].role"),
            (token("", "write", ABC), "api.tokens[0].name"),
            (token("crm", "write", ABC) + &token("crm", "read", &"0".repeat(64)), "api.tokens[1].name"),
            (token("crm", "write", ABC) + &token("desk", "read", ABC), "api.tokens[1].sha256"),
        ];
        for (text, key) in cases {
            let e = Config::parse(&text).unwrap().api_tokens().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        let e = Config::parse("[[api.tokens]]\nname = \"x\"\nrole = \"read\"\n").unwrap_err();
        assert!(e.contains("sha256"), "{e}");
    }

    #[test]
    fn exposed_api_without_tokens_is_refused() {
        let e = Config::parse("[api]\nlisten = \"0.0.0.0:8080\"\n").unwrap().api_tokens().unwrap_err().to_string();
        assert!(e.contains("api.listen") && e.contains("[[api.tokens]]"), "{e}");
        assert!(Config::parse("[api]\nlisten = \"[::1]:8080\"\n").unwrap().api_tokens().unwrap().is_empty());
    }

    #[test]
    fn min_prefix_lengths_default_and_are_range_checked() {
        let o = Config::parse("").unwrap().api_options().unwrap();
        assert_eq!(o.min_prefix_len, MinPrefixLen { v4: 8, v6: 32 });
        let o = Config::parse("[api]\nmin_prefix_len_v4 = 32\nmin_prefix_len_v6 = 1\n").unwrap().api_options().unwrap();
        assert_eq!(o.min_prefix_len, MinPrefixLen { v4: 32, v6: 1 });
        for (text, key) in [
            ("[api]\nmin_prefix_len_v4 = 0\n", "api.min_prefix_len_v4"),
            ("[api]\nmin_prefix_len_v4 = 33\n", "api.min_prefix_len_v4"),
            ("[api]\nmin_prefix_len_v4 = -8\n", "api.min_prefix_len_v4"),
            ("[api]\nmin_prefix_len_v6 = 129\n", "api.min_prefix_len_v6"),
            ("[api]\nmin_prefix_len_v6 = 300\n", "api.min_prefix_len_v6"),
        ] {
            let e = Config::parse(text).unwrap().api_options().unwrap_err().to_string();
            assert!(e.contains(key) && e.contains("out of range"), "{text}: {e}");
        }
    }

    #[test]
    fn idle_timeout_must_exceed_echo_interval() {
        let c = Config::parse("[openflow]\necho_interval_secs = 10\nidle_timeout_secs = 5\n").unwrap();
        assert!(c.session_config().unwrap_err().to_string().contains("idle_timeout_secs"));
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    #[test]
    fn listen_none_turns_plain_off() {
        let c = Config::parse("[openflow]\nlisten = \"none\"\n").unwrap();
        assert_eq!(c.openflow.listen, Listen::Off);
        assert!(Config::parse("[openflow]\nlisten = \"nowhere\"\n").unwrap_err().contains("none"));
    }

    #[test]
    fn tls_needs_all_three_files() {
        let c = Config::parse("[openflow]\ntls_listen = \"127.0.0.1:6654\"\ntls_cert = \"c.pem\"\n").unwrap();
        let e = c.tls_listen().unwrap_err().to_string();
        assert!(e.contains("openflow.tls_key"), "{e}");
        let c = Config::parse("[openflow]\ntls_cert = \"c.pem\"\n").unwrap();
        assert!(c.tls_listen().unwrap_err().to_string().contains("tls_listen"));
        let c = Config::parse(
            "[openflow]\ntls_listen = \"127.0.0.1:6654\"\ntls_cert = \"c\"\ntls_key = \"k\"\ntls_client_ca = \"ca\"\n",
        )
        .unwrap();
        assert_eq!(c.tls_listen().unwrap().unwrap().addr.port(), 6654);
    }

    #[test]
    fn check_runs_the_start_up_checks_without_sockets() {
        assert!(Config::parse("").unwrap().check().is_ok());
        let e = Config::parse("[openflow]\nlisten = \"none\"\n").unwrap().check().unwrap_err().to_string();
        assert!(e.contains("openflow.listen") && e.contains("no TLS listener"), "{e}");
        let e =
            Config::parse("[openflow]\ntls_listen = \"127.0.0.1:6654\"\n").unwrap().check().unwrap_err().to_string();
        assert!(e.contains("openflow.tls_cert"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let text = format!(
            "[openflow]\ntls_listen = \"127.0.0.1:6654\"\ntls_cert = {m:?}\ntls_key = {m:?}\ntls_client_ca = {m:?}\n",
            m = missing.display().to_string()
        );
        let e = Config::parse(&text).unwrap().check().unwrap_err().to_string();
        assert!(e.contains("config key openflow.tls_cert") && e.contains("nope.pem"), "{e}");
        let e = Config::parse("[api]\nmin_prefix_len_v6 = 0\n").unwrap().check().unwrap_err().to_string();
        assert!(e.contains("api.min_prefix_len_v6"), "{e}");
    }

    #[test]
    fn allowlist_is_parsed_and_bad_ids_are_named() {
        let c =
            Config::parse("[openflow]\nallow_dpids = [\"0000000000000001\", \"00:00:00:00:00:00:00:02\"]\n").unwrap();
        let s = c.session_config().unwrap();
        assert_eq!(s.allow_dpids.unwrap().len(), 2);
        let c = Config::parse("[openflow]\nallow_dpids = [\"zz\"]\n").unwrap();
        let e = c.session_config().unwrap_err().to_string();
        assert!(e.contains("openflow.allow_dpids") && e.contains("zz"), "{e}");
    }
}
