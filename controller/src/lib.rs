//! port25's OpenFlow side: wire codec, switch sessions, reconciliation.
//!
//! # Layout
//! - [`ofp`]: the OpenFlow 1.3 wire codec (framing, typed messages). No I/O.
//! - [`fleet`]: the shared, read-only view of every switch for the API.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod fleet;
pub mod ofp;

pub use fleet::{Fleet, SwitchState, SwitchStatus};
