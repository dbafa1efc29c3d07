//! port25 policy: the model, flow compilation and the exemption store.
//!
//! # Layout
//! - [`model`]: validated values (subscriber [`Prefix`], [`Dpid`], [`Exemption`]).
//! - [`flow`]: protocol-neutral flows ([`Match`], [`FlowSpec`]) and the cookie layout.
//! - [`compile`]: policy → the sorted set of flows for one switch. Pure.
//! - [`decide`]: the reference verdict for a packet. Pure.
//! - [`table`]: a fake flow table, to check `compile` against `decide`.
//! - [`snapshot`]: the whole policy as one shared, versioned value.
//! - [`store`]: the [`ExemptionStore`] trait, the sled store and an in-memory one.
//!   The only module that touches sled.
//! - [`audit`]: the audit trail's entries and queries.
//!
//! Nothing here does network I/O or depends on an async runtime.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod audit;
pub mod compile;
pub mod decide;
pub mod flow;
pub mod model;
pub mod snapshot;
pub mod store;
pub mod table;

pub use audit::{AuditAction, AuditContext, AuditEntry, AuditQuery};
pub use compile::{compile, ConfigError, Forward, PolicyConfig};
pub use decide::{decide, Headers, Packet, Verdict};
pub use flow::{CookieKind, CookieSpace, FlowAction, FlowKey, FlowSpec, FragMatch, Fragment, Match};
pub use model::{Dpid, Exemption, ExemptionId, Family, NewExemption, Prefix, PrefixError, Scope};
pub use snapshot::Snapshot;
pub use store::{Change, Committed, ExemptionStore, MemStore, SledStore, StoreError};
