//! Wiring: store → policy channel → OpenFlow listener, REST API and the
//! expiry task, with one shutdown token for all of them.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::http::HttpLimits;
use anyhow::Context;
use port25_api::{expiry, AppState, Tokens, Writer};
use port25_controller::server::{self, Transport};
use port25_controller::session::{SessionConfig, Shared};
use port25_controller::tls::{self, TlsFiles};
use port25_controller::Fleet;
use port25_rules::{AuditContext, ExemptionStore, SledStore, Snapshot};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Everything `run` needs, already validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Plain-TCP OpenFlow listener; `None` turns plain TCP off.
    pub openflow_listen: Option<SocketAddr>,
    /// TLS OpenFlow listener with mutual authentication, if any.
    pub openflow_tls: Option<TlsListen>,
    pub api_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub session: SessionConfig,
    pub max_switches: usize,
}

/// A TLS listener: where, and with which certificates.
#[derive(Debug, Clone)]
pub struct TlsListen {
    pub addr: SocketAddr,
    pub files: TlsFiles,
}

/// Addresses actually bound (port 0 in `Settings` picks a free port).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    /// Where switches connect: the plain-TCP listener, or the TLS one when
    /// plain TCP is off.
    pub openflow: SocketAddr,
    /// The TLS listener, if configured.
    pub openflow_tls: Option<SocketAddr>,
    pub api: SocketAddr,
}

/// [`run_with`] without API tokens (the API must then be on loopback).
///
/// # Errors
/// As [`run_with`].
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(Bound) + Send,
) -> anyhow::Result<()> {
    run_with(settings, Tokens::default(), shutdown, on_ready).await
}

/// Open the store, apply expiries that passed while port25d was down,
/// bind both listeners, serve until `shutdown` resolves, then stop
/// accepting, close sessions (flows stay on the switches) and return.
/// `on_ready` is called with the bound addresses once both listeners are
/// up. With `tokens`, every `/v1` route needs one.
///
/// # Errors
/// The store cannot be opened or the due expiries cannot be applied, a
/// listener cannot be bound, or the API would be reachable from other
/// machines without tokens; the message says which and what to change.
pub async fn run_with(
    settings: Settings,
    api: impl Into<port25_api::ApiOptions>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(Bound) + Send,
) -> anyhow::Result<()> {
    let api = api.into();
    crate::config::check_api_exposure(settings.api_listen, &api.tokens)?;
    let dir = settings.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || SledStore::open(&dir))
        .await
        .context("store open task failed")?
        .with_context(|| {
            format!(
                "cannot open the exemption store in {} (set --data-dir or [store] data_dir to a writable directory \
                 that no other port25d is using)",
                settings.data_dir.display()
            )
        })?;
    let store: Arc<dyn ExemptionStore> = Arc::new(store);
    let (list, seq) = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || Ok::<_, port25_rules::StoreError>((s.list()?, s.last_audit_seq()?)))
            .await
            .context("store list task failed")??
    };
    // Versions continue from the audit trail, so they never go back
    // across restarts (see Snapshot::at_version).
    let snapshot = Snapshot::from_list(list).at_version(seq + 1);
    info!(exemptions = snapshot.exemptions.len(), policy_version = snapshot.version, data_dir = %settings.data_dir.display(), "exemption store opened");
    let (policy_tx, policy_rx) = watch::channel(Arc::new(snapshot));
    let policy_tx = Arc::new(policy_tx);
    let writer = Writer::new(store.clone(), policy_tx.clone());

    // Expiries that passed while port25d was down are applied now, before
    // the OpenFlow listener exists: no switch is ever brought in sync with
    // an expired exemption. If that fails, port25d does not start (it
    // would enforce exemptions that should be gone).
    let startup = AuditContext { request_id: Some(expiry::STARTUP_REQUEST_ID.into()), ..AuditContext::port25d() };
    let expired = writer
        .expire_due(startup)
        .await
        .map_err(|e| anyhow::anyhow!("cannot revoke the exemptions that expired while port25d was down: {e}"))?;
    if !expired.is_empty() {
        // Each record has its own line from the writer.
        info!(count = expired.len(), "exemptions that expired while port25d was down were revoked");
    }

    if settings.openflow_listen.is_none() && settings.openflow_tls.is_none() {
        anyhow::bail!(
            "no OpenFlow listener: --openflow-listen is none and no TLS listener is configured \
             (set --openflow-tls-listen with --tls-cert, --tls-key and --tls-client-ca)"
        );
    }
    let acceptor = match &settings.openflow_tls {
        Some(t) => Some(tls::acceptor(&t.files).context("cannot set up TLS for switches")?),
        None => None,
    };
    let of_listener = match settings.openflow_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for switches on {addr} (set --openflow-listen)"))?,
        ),
        None => None,
    };
    let tls_listener =
        match &settings.openflow_tls {
            Some(t) => Some(TcpListener::bind(t.addr).await.with_context(|| {
                format!("cannot listen for TLS switches on {} (set --openflow-tls-listen)", t.addr)
            })?),
            None => None,
        };
    let api_listener = TcpListener::bind(settings.api_listen)
        .await
        .with_context(|| format!("cannot listen for the API on {} (set --api-listen)", settings.api_listen))?;
    let openflow_tls = match &tls_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let openflow = match &of_listener {
        Some(l) => l.local_addr()?,
        None => openflow_tls.context("no OpenFlow listener")?,
    };
    let bound = Bound { openflow, openflow_tls, api: api_listener.local_addr()? };

    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let fleet = Fleet::new();
    let metrics = port25_controller::Metrics::new();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry, fleet.clone());
    let shared = Shared::new(settings.session.clone(), policy_rx, fleet.clone(), token.clone(), metrics);
    let mut of_tasks = Vec::new();
    if let Some(l) = of_listener {
        of_tasks.push(tokio::spawn(server::serve(l, shared.clone(), tracker.clone(), settings.max_switches)));
    }
    if let (Some(l), Some(acc)) = (tls_listener, acceptor) {
        of_tasks.push(tokio::spawn(server::serve_with(
            l,
            Transport::Tls(acc),
            shared.clone(),
            tracker.clone(),
            settings.max_switches,
        )));
    }
    drop(shared);

    tracker.spawn(expiry::run(writer.clone(), token.clone().cancelled_owned()));

    // `/metrics` serves this registry: the OpenFlow side's metrics
    // registered above, plus the API's own.
    let app =
        port25_api::app(AppState::with_writer(writer, store.clone(), fleet).with_options(api).with_registry(registry));
    let api_token = token.clone();
    // With the peer address (the audit trail records it), a header
    // timeout and a connection cap: see crate::http.
    let api_task = tokio::spawn(crate::http::serve(api_listener, app, api_token, HttpLimits::default()));
    info!(openflow = %bound.openflow, api = %bound.api, "port25d ready");
    on_ready(bound);

    shutdown.await;
    info!("shutting down: closing switch sessions (flows stay on the switches)");
    token.cancel();
    tracker.close();
    let grace = Duration::from_secs(5);
    if tokio::time::timeout(grace, async {
        for t in of_tasks {
            let _ = t.await;
        }
        tracker.wait().await;
        let _ = api_task.await;
    })
    .await
    .is_err()
    {
        warn!(grace_secs = grace.as_secs(), "tasks still running after the grace period; exiting anyway");
    }
    // Every acknowledged write was flushed when it was acknowledged;
    // dropping the store here only closes it.
    drop(store);
    info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM, logging which.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C will stop port25d");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "signal received"),
        _ = term.recv() => info!(signal = "SIGTERM", "signal received"),
    }
}
