//! port25's OpenFlow side: wire codec, switch sessions, reconciliation.
//!
//! # Layout
//! - [`ofp`]: the OpenFlow 1.3 wire codec (framing, typed messages). No I/O.
//! - [`reconcile`]: the difference between a switch's table and the policy, in fail-closed order. Pure.
//! - [`session`]: one task set per switch: handshake, read-back, rounds, echo.
//! - [`server`]: the listeners (TCP, TLS) that give each connection a session.
//! - [`tls`]: the mutual-TLS acceptor for `ssl:` switches.
//! - [`fleet`]: the shared, read-only view of every switch for the API.
//! - [`metrics`]: Prometheus counters, histograms and fleet gauges.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod fleet;
pub mod metrics;
pub mod ofp;
pub mod reconcile;
pub mod server;
pub mod session;
pub mod tls;

pub use fleet::{BlockedCounter, Fleet, RoundSummary, SwitchState, SwitchStatus};
pub use metrics::Metrics;
