//! port25d: the daemon that wires the exemption store, the OpenFlow
//! controller and the REST API together.
//!
//! # Layout
//! - [`config`]: the TOML file and its validation.
//! - [`daemon`]: start-up, serving and shutdown.
//! - [`http`]: the API's HTTP server (timeouts, connection cap, drain).
//! - `src/bin/port25d.rs`: flags, logging, exit codes.
//!
//! The crates: `port25-rules` (policy, flows, store), `port25-controller`
//! (OpenFlow), `port25-api` (REST).
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod config;
pub mod daemon;
pub mod http;
