//! port25d configuration: a TOML file, then flags on top.
//!
//! Every key is optional and has the default shown in
//! `examples/port25d.toml`. Unknown keys are refused, so a typo stops
//! start-up instead of silently leaving a default in place.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use port25_controller::session::SessionConfig;
use port25_rules::{CookieSpace, Forward, PolicyConfig};
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
    /// Where switches connect (`ovs-vsctl set-controller BR tcp:HOST:PORT`).
    pub listen: SocketAddr,
    pub echo_interval_secs: u64,
    pub idle_timeout_secs: u64,
    pub handshake_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub max_switches: usize,
}

impl Default for OpenFlowSection {
    fn default() -> Self {
        OpenFlowSection {
            listen: "0.0.0.0:6653".parse().expect("literal address"),
            echo_interval_secs: 5,
            idle_timeout_secs: 15,
            handshake_timeout_secs: 10,
            request_timeout_secs: 30,
            max_switches: 4096,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// REST API address. Loopback by default: the API can open port 25.
    pub listen: SocketAddr,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection { listen: "127.0.0.1:8080".parse().expect("literal address") }
    }
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
    Invalid { key: &'static str, reason: String },
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
        let forward =
            parse_forward(&p.forward).map_err(|reason| ConfigError::Invalid { key: "policy.forward", reason })?;
        let prefix = parse_cookie_prefix(&p.cookie_prefix)
            .map_err(|reason| ConfigError::Invalid { key: "policy.cookie_prefix", reason })?;
        let cfg = PolicyConfig {
            table: p.table,
            exempt_priority: p.exempt_priority,
            drop_priority: p.drop_priority,
            default_priority: p.default_priority,
            forward,
            cookies: CookieSpace::new(prefix),
        };
        cfg.validate().map_err(|e| ConfigError::Invalid { key: "policy", reason: e.to_string() })?;
        Ok(cfg)
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
                return Err(ConfigError::Invalid { key, reason: format!("{v} is out of range (1 to 3600 seconds)") });
            }
        }
        if o.idle_timeout_secs <= o.echo_interval_secs {
            return Err(ConfigError::Invalid {
                key: "openflow.idle_timeout_secs",
                reason: format!(
                    "{} must be longer than echo_interval_secs ({}), or every quiet switch is dropped",
                    o.idle_timeout_secs, o.echo_interval_secs
                ),
            });
        }
        if o.max_switches == 0 {
            return Err(ConfigError::Invalid { key: "openflow.max_switches", reason: "must be at least 1".into() });
        }
        Ok(SessionConfig {
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
        assert_eq!(c.openflow.listen.to_string(), "0.0.0.0:6653");
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

    #[test]
    fn idle_timeout_must_exceed_echo_interval() {
        let c = Config::parse("[openflow]\necho_interval_secs = 10\nidle_timeout_secs = 5\n").unwrap();
        assert!(c.session_config().unwrap_err().to_string().contains("idle_timeout_secs"));
    }
}
