//! `port25d`: the port-25 policy controller.
//!
//! Run `port25d --help` for flags. Environment variables (`PORT25_*`)
//! override the config file, and flags override both.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use port25::config::{Config, Listen};
use port25::daemon::{self, Settings};
use tracing_subscriber::EnvFilter;

/// OpenFlow controller enforcing the MAAWG port-25 policy on Open vSwitch edges.
#[derive(Debug, Parser)]
#[command(name = "port25d", version)]
struct Args {
    /// TOML config file (see examples/port25d.toml). Without it, defaults apply.
    #[arg(long, value_name = "FILE", env = "PORT25_CONFIG")]
    config: Option<PathBuf>,
    /// Address switches connect to over plain TCP, or `none` to turn plain TCP off [default: 0.0.0.0:6653].
    #[arg(long, value_name = "ADDR|none", env = "PORT25_OPENFLOW_LISTEN")]
    openflow_listen: Option<Listen>,
    /// Address switches connect to over TLS (`ssl:` targets). Needs --tls-cert, --tls-key and --tls-client-ca.
    #[arg(long, value_name = "ADDR")]
    openflow_tls_listen: Option<SocketAddr>,
    /// Our certificate chain for TLS (PEM).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Our private key for TLS (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA certificate(s) that switch certificates must chain to (PEM). A switch without one is refused.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Serve only this datapath id (16 hex digits); repeat for more. Others are refused.
    #[arg(long = "allow-dpid", value_name = "HEX")]
    allow_dpid: Vec<String>,
    /// Address of the REST API [default: 127.0.0.1:8080]. A non-loopback address needs [[api.tokens]].
    #[arg(long, value_name = "ADDR", env = "PORT25_API_LISTEN")]
    api_listen: Option<SocketAddr>,
    /// Directory of the exemption store [default: ./port25-data].
    #[arg(long, value_name = "DIR", env = "PORT25_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `port25_controller=debug,info` [default: info]. Overrides RUST_LOG,
    /// which overrides [log] filter.
    #[arg(long, value_name = "FILTER", env = "PORT25_LOG")]
    log: Option<String>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut cfg = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => return fail(&e.to_string()),
        },
        None => Config::default(),
    };
    if let Some(a) = args.openflow_listen {
        cfg.openflow.listen = a;
    }
    if let Some(a) = args.openflow_tls_listen {
        cfg.openflow.tls_listen = Some(a);
    }
    if let Some(f) = args.tls_cert {
        cfg.openflow.tls_cert = Some(f);
    }
    if let Some(f) = args.tls_key {
        cfg.openflow.tls_key = Some(f);
    }
    if let Some(f) = args.tls_client_ca {
        cfg.openflow.tls_client_ca = Some(f);
    }
    if !args.allow_dpid.is_empty() {
        cfg.openflow.allow_dpids = Some(args.allow_dpid);
    }
    if let Some(a) = args.api_listen {
        cfg.api.listen = a;
    }
    if let Some(d) = args.data_dir {
        cfg.store.data_dir = d;
    }
    // --log (or PORT25_LOG), else RUST_LOG, else [log] filter.
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = match (args.log, rust_log) {
        (Some(l), _) => EnvFilter::try_new(&l).map_err(|e| format!("--log / PORT25_LOG {l:?}: {e}")),
        (None, Some(v)) => EnvFilter::try_new(&v).map_err(|e| format!("RUST_LOG={v:?}: {e}")),
        (None, None) => {
            EnvFilter::try_new(&cfg.log.filter).map_err(|e| format!("config key log.filter {:?}: {e}", cfg.log.filter))
        }
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => return fail(&format!("invalid log filter: {e}")),
    };
    // Colour only for a person at a terminal: a log file or the journal
    // gets no ANSI escapes, and NO_COLOR (https://no-color.org) turns
    // colour off everywhere.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !no_color;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).init();

    // Every check start-up makes short of opening the store and binding,
    // the same for --check-config as for a start.
    let checked = match cfg.check() {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if args.check_config {
        println!("configuration OK");
        return ExitCode::SUCCESS;
    }
    let settings = Settings {
        openflow_listen: checked.openflow_listen,
        openflow_tls: checked.openflow_tls,
        api_listen: cfg.api.listen,
        data_dir: cfg.store.data_dir.clone(),
        session: checked.session,
        max_switches: cfg.openflow.max_switches,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(daemon::run_with(settings, checked.api, daemon::signal(), |_| {})) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("port25d: error: {msg}");
    ExitCode::from(2)
}
