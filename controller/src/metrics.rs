//! Prometheus metrics of the OpenFlow side.
//!
//! Two kinds: counters and histograms the sessions update as things happen
//! ([`Metrics`]), and gauges read from the [`Fleet`] at scrape time
//! ([`FleetCollector`]): switches by state, our flows per switch, and the
//! packet and byte counters of each switch's port-25 drop flows (polled
//! from the switch with flow stats), which is what abuse desks watch.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::fleet::{Fleet, SwitchState};

type Labels = Vec<(&'static str, String)>;

/// Session-side metrics. Cheap to share (`Arc`); updates are lock-free.
#[derive(Debug)]
pub struct Metrics {
    /// Errors switches reported for our messages, by switch and OpenFlow
    /// error type and code.
    pub flow_mod_errors: Family<Labels, Counter>,
    /// Reconciliation rounds by kind (`full`, `delta`) and outcome
    /// (`in_sync`, `degraded`).
    pub rounds: Family<Labels, Counter>,
    /// Round duration, from the first message to the barrier reply.
    pub round_seconds: Family<Labels, Histogram>,
}

fn round_histogram() -> Histogram {
    // 100 µs .. ~100 s.
    Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 100.0])
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            flow_mod_errors: Family::default(),
            rounds: Family::default(),
            round_seconds: Family::new_with_constructor(round_histogram),
        }
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Register these metrics and a collector over `fleet` in `registry`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry, fleet: Fleet) {
        registry.register(
            "port25_flow_mod_errors",
            "OpenFlow errors switches reported for port25d's messages, by type and code",
            self.flow_mod_errors.clone(),
        );
        registry.register(
            "port25_reconcile_rounds",
            "Reconciliation rounds by kind (full read-back or delta) and outcome",
            self.rounds.clone(),
        );
        registry.register(
            "port25_reconcile_round_seconds",
            "Duration of reconciliation rounds, first message to barrier reply",
            self.round_seconds.clone(),
        );
        registry.register_collector(Box::new(FleetCollector { fleet }));
    }

    pub(crate) fn error(&self, dpid: Option<port25_rules::Dpid>, error: &str, err_type: u16, code: u16) {
        self.flow_mod_errors
            .get_or_create(&vec![
                ("dpid", dpid.map(|d| d.to_string()).unwrap_or_default()),
                ("error", error.to_owned()),
                ("type", err_type.to_string()),
                ("code", code.to_string()),
            ])
            .inc();
    }

    pub(crate) fn round(&self, kind: &'static str, ok: bool, seconds: f64) {
        let outcome = if ok { "in_sync" } else { "degraded" };
        self.rounds.get_or_create(&vec![("kind", kind.to_owned()), ("outcome", outcome.to_owned())]).inc();
        self.round_seconds.get_or_create(&vec![("kind", kind.to_owned())]).observe(seconds);
    }
}

/// Gauges and polled counters read from the fleet on each scrape.
#[derive(Debug)]
pub struct FleetCollector {
    fleet: Fleet,
}

impl FleetCollector {
    pub fn new(fleet: Fleet) -> FleetCollector {
        FleetCollector { fleet }
    }
}

const STATES: [(SwitchState, &str); 6] = [
    (SwitchState::Handshaking, "handshaking"),
    (SwitchState::Refused, "refused"),
    (SwitchState::Syncing, "syncing"),
    (SwitchState::InSync, "in_sync"),
    (SwitchState::Degraded, "degraded"),
    (SwitchState::Disconnected, "disconnected"),
];

impl Collector for FleetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let switches = self.fleet.snapshot();

        let mut by_state: BTreeMap<&str, i64> = STATES.iter().map(|(_, n)| (*n, 0)).collect();
        for s in &switches {
            if let Some((_, n)) = STATES.iter().find(|(st, _)| *st == s.state) {
                *by_state.entry(n).or_default() += 1;
            }
        }
        let g = ConstGauge::new(0i64);
        let mut m =
            encoder.encode_descriptor("port25_switches", "Switch connections by state", None, g.metric_type())?;
        for (state, n) in &by_state {
            let labels = vec![("state", (*state).to_owned())];
            ConstGauge::new(*n).encode(m.encode_family(&labels)?)?;
        }

        let mut m = encoder.encode_descriptor(
            "port25_switch_flows",
            "port25d's flows in each switch, as of its last round",
            None,
            g.metric_type(),
        )?;
        for s in switches.iter().filter(|s| s.dpid.is_some()) {
            let labels = vec![("dpid", dpid(s))];
            ConstGauge::new(i64::try_from(s.flow_count).unwrap_or(i64::MAX)).encode(m.encode_family(&labels)?)?;
        }

        let mut m = encoder.encode_descriptor(
            "port25_switch_in_sync",
            "1 when the switch holds exactly the policy (barrier-confirmed)",
            None,
            g.metric_type(),
        )?;
        for s in switches.iter().filter(|s| s.dpid.is_some()) {
            let labels = vec![("dpid", dpid(s))];
            ConstGauge::new(i64::from(s.in_sync)).encode(m.encode_family(&labels)?)?;
        }

        let c = ConstCounter::new(0u64);
        let mut m = encoder.encode_descriptor(
            "port25_blocked_packets",
            "Packets dropped by each switch's port-25 drop flows (polled flow stats)",
            None,
            c.metric_type(),
        )?;
        for s in switches.iter().filter(|s| s.dpid.is_some()) {
            for b in &s.blocked {
                let labels = vec![("dpid", dpid(s)), ("rule", b.rule.to_owned())];
                ConstCounter::new(b.packets).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "port25_blocked_bytes",
            "Bytes dropped by each switch's port-25 drop flows (polled flow stats)",
            None,
            c.metric_type(),
        )?;
        for s in switches.iter().filter(|s| s.dpid.is_some()) {
            for b in &s.blocked {
                let labels = vec![("dpid", dpid(s)), ("rule", b.rule.to_owned())];
                ConstCounter::new(b.bytes).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

fn dpid(s: &crate::fleet::SwitchStatus) -> String {
    s.dpid.map(|d| d.to_string()).unwrap_or_default()
}
