//! An OpenFlow 1.3 switch simulator, for port25's scale benchmark and tests.
//!
//! A [`Switch`] connects to a controller like OVS does and answers it:
//! Hello, features (configurable datapath id), echo, flow-mods into a flow
//! table with OpenFlow's semantics (ADD replaces the flow with the same
//! match and priority; DELETE_STRICT needs match, priority and the cookie
//! under the cookie mask; DELETE removes every flow the match covers),
//! flow stats filtered by table, cookie and match and split over multipart
//! replies, barriers, and ONF bundles (open, add, close, commit atomically,
//! discard; a closed connection discards its bundles). Each message can be
//! delayed by a configurable latency, and every switch counts what it
//! received.
//!
//! Built to run a thousand switches of 20,007 flows in one process: the
//! flows' bytes are interned once per [`Fabric`] and each table holds two
//! `u32`s per flow (see [`table`]). `tests/ovs_semantics.rs` checks the
//! table against a real OVS bridge fed the same flow-mods.
//!
//! # Layout
//! - [`switch`]: [`Switch`], its connection loop, bundles, counters, [`Probe`].
//! - [`table`]: flow-mod decoding and the flow table.
//! - [`oxm`]: canonical matches and non-strict matching.
//! - [`intern`]: the shared blob interner.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod intern;
pub mod oxm;
pub mod switch;
pub mod table;

pub use switch::{CounterSnapshot, Fabric, Probe, ProbeHit, Switch, SwitchConfig};
pub use table::SimFlow;
