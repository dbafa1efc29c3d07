//! Converging a switch's table by difference. Pure: no I/O.
//!
//! Given what the switch holds (read back by cookie, or known from the last
//! confirmed round) and what it should hold, [`plan`] returns the flow-mods
//! in an order that never lets a packet through that both the old and the
//! new policy drop, and never drops a packet that both forward:
//!
//! ```text
//! 1. add     desired drop flows that are missing or differ
//! 2. add     desired allow flows that are missing or differ
//! 3. delete  stale drop flows (strict: match + priority + full cookie)
//! 4. delete  stale allow flows
//! 5. delete  stale flows whose action we cannot classify
//! (then one barrier, sent by the session)
//! ```
//!
//! Why this order: drops first, so a fresh switch never forwards port 25
//! before the block is in place. Allows are added before stale allows go,
//! so an exemption that is replaced by an overlapping one (a /32 by its
//! /24) never drops its traffic in between. Stale drops go before stale
//! allows, so a packet exempted in both policies never meets a stale drop
//! without the allow above it. Unclassified flows go last: whatever they
//! do, they did it under the old policy too. A packet whose verdict
//! changes may see either verdict during the round, and the new one after
//! the barrier. `tests.rs` checks this on every intermediate table.
//!
//! A flow that exists with the right identity but the wrong cookie or
//! action is overwritten by its ADD (same match and priority replace in
//! place), never deleted first: deleting it would open a gap.
//!
//! When the read-back was incomplete (a reply cut off, a timeout), nothing
//! is deleted: the switch may hold flows we have not seen, and a flow we
//! have not seen cannot be judged stale.

use std::collections::BTreeMap;

use std::collections::BTreeSet;

use bytes::Bytes;
use port25_rules::compile::exemption_flows;
use port25_rules::snapshot::ChangeSet;
use port25_rules::{Dpid, FlowAction, FlowKey, FlowSpec, Match, PolicyConfig, Prefix, Snapshot};

/// A flow the switch holds, as far as we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    /// The match in our terms, or `None` when the switch's flow has fields
    /// we do not model (then it is never equal to a desired flow).
    pub matcher: Option<Match>,
    /// The OXM bytes to delete it strictly with, as the switch sent them;
    /// `None` for flows we know only from our own successful adds (their
    /// match is then always `Some`).
    pub raw_match: Option<Bytes>,
    /// Its action in our terms, `None` if unrecognised.
    pub action: Option<FlowAction>,
}

impl Installed {
    /// The record for a flow we added ourselves and the switch confirmed.
    pub fn from_spec(f: &FlowSpec) -> Installed {
        Installed {
            table: f.table,
            priority: f.priority,
            cookie: f.cookie,
            matcher: Some(f.matcher.clone()),
            raw_match: None,
            action: Some(f.action),
        }
    }

    /// Identity in the switch, if we can express it.
    pub fn key(&self) -> Option<FlowKey> {
        self.matcher.as_ref().map(|m| FlowKey { table: self.table, priority: self.priority, matcher: m.clone() })
    }

    /// True when this is exactly the desired flow.
    fn is(&self, f: &FlowSpec) -> bool {
        self.table == f.table
            && self.priority == f.priority
            && self.cookie == f.cookie
            && self.action == Some(f.action)
            && self.matcher.as_ref() == Some(&f.matcher)
    }
}

/// One change to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add (or overwrite in place) a desired flow.
    Add(FlowSpec),
    /// Strictly delete a stale flow.
    Delete(Installed),
}

impl Change {
    /// Short text for logs and error reports.
    pub fn describe(&self) -> String {
        match self {
            Change::Add(f) => format!("add {f}"),
            Change::Delete(i) => format!(
                "delete cookie=0x{:x},table={},priority={},{}",
                i.cookie,
                i.table,
                i.priority,
                i.matcher.as_ref().map_or_else(|| "<unmodelled match>".to_owned(), |m| m.to_string())
            ),
        }
    }
}

/// What a round must do, in send order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Flows left alone because they are already right.
    pub kept: usize,
    /// Stale flows not deleted because the read-back was incomplete.
    pub deletions_withheld: usize,
}

impl Plan {
    pub fn adds(&self) -> usize {
        self.changes.iter().filter(|c| matches!(c, Change::Add(_))).count()
    }
    pub fn deletes(&self) -> usize {
        self.changes.iter().filter(|c| matches!(c, Change::Delete(_))).count()
    }
}

/// Plan the changes that take `current` to `desired`.
///
/// `desired` must be deduplicated by identity (as `rules::compile` returns
/// it). `complete` says whether `current` is known to be everything of ours
/// in the switch.
pub fn plan(current: &[Installed], desired: &[FlowSpec], complete: bool) -> Plan {
    let mut by_key: BTreeMap<FlowKey, &Installed> = BTreeMap::new();
    let mut stale: Vec<&Installed> = Vec::new();
    for i in current {
        match i.key() {
            Some(k) => {
                // Two read-back flows with one identity cannot both exist in
                // a switch; if a reply says so anyway, the later one is stale.
                if let Some(prev) = by_key.insert(k, i) {
                    stale.push(prev);
                }
            }
            None => stale.push(i),
        }
    }
    let mut plan = Plan::default();
    let mut add_drops = Vec::new();
    let mut add_allows = Vec::new();
    for f in desired {
        match by_key.remove(&f.key()) {
            Some(i) if i.is(f) => plan.kept += 1,
            // Present with another cookie or action: overwrite in place.
            Some(_) | None => {
                if f.action == FlowAction::Drop {
                    add_drops.push(Change::Add(f.clone()));
                } else {
                    add_allows.push(Change::Add(f.clone()));
                }
            }
        }
    }
    stale.extend(by_key.into_values());
    plan.changes.extend(add_drops);
    plan.changes.extend(add_allows);
    if !complete {
        plan.deletions_withheld = stale.len();
        return plan;
    }
    // Stable sort. In our table: drops, then allows, then unclassified
    // (the desired drops are in place already). Then flows of ours left
    // in another table (policy.table changed) in the reverse order:
    // forwarders first, drops last, so that old table never forwards
    // what it used to drop while it is being emptied.
    let ours = desired.first().map(|f| f.table);
    stale.sort_by_key(|i| {
        let rank = match i.action {
            Some(FlowAction::Drop) => 0,
            Some(FlowAction::Normal) | Some(FlowAction::GotoTable(_)) => 1,
            None => 2,
        };
        if Some(i.table) == ours || ours.is_none() {
            rank
        } else {
            5 - rank
        }
    });
    plan.changes.extend(stale.into_iter().map(|i| Change::Delete(i.clone())));
    plan
}

/// The table after a round: `current` with `plan` applied, as a switch
/// applies flow-mods (an add replaces its identity; a strict delete needs
/// the exact cookie). Tests use it to walk through intermediate tables.
pub fn apply(current: &[Installed], plan: &Plan) -> Vec<Installed> {
    /// A flow's identity plus the cookie a strict delete must carry.
    type Ident = (u8, u16, Option<Match>, u64, Option<Bytes>);
    let mut out: BTreeMap<Ident, Installed> = BTreeMap::new();
    let ident = |i: &Installed| -> Ident { (i.table, i.priority, i.matcher.clone(), i.cookie, i.raw_match.clone()) };
    for i in current {
        out.insert(ident(i), i.clone());
    }
    for c in &plan.changes {
        match c {
            Change::Delete(i) => {
                out.remove(&ident(i));
            }
            Change::Add(f) => {
                // An add replaces whatever had the same identity.
                let key = f.key();
                out.retain(|_, i| i.key().as_ref() != Some(&key));
                let n = Installed::from_spec(f);
                out.insert(ident(&n), n);
            }
        }
    }
    out.into_values().collect()
}

/// Plan the move of a switch that holds exactly `compile(old)` to
/// `compile(new)`, from the change sets between them (as
/// [`Snapshot::changes_since`] returns them), without compiling or
/// comparing the whole policy: the cost is O(changes), whatever the number
/// of stored exemptions.
///
/// Only the prefixes named in `changes` can have changed flows. For each,
/// the flows' owner on this switch before and after (the lowest applying
/// exemption id, as `compile` chooses) decides: a new or different owner
/// is an add (which overwrites in place), no owner any more is a strict
/// delete of the old owner's flows. Adds go first, then deletes: the same
/// order as [`plan`].
///
/// `keep` filters the flows a switch can hold (an OpenFlow 1.0 switch
/// cannot hold IPv6 flows).
///
/// Returns the plan and the change in the number of our flows.
pub fn plan_delta(
    cfg: &PolicyConfig,
    old: &Snapshot,
    new: &Snapshot,
    changes: &[std::sync::Arc<ChangeSet>],
    dpid: Dpid,
    keep: impl Fn(&FlowSpec) -> bool,
) -> (Plan, i64) {
    let prefixes: BTreeSet<Prefix> =
        changes.iter().flat_map(|c| c.added.iter().chain(c.removed.iter())).map(|e| e.subscriber).collect();
    let kept = |e: &port25_rules::Exemption| -> Vec<FlowSpec> {
        exemption_flows(cfg, e).into_iter().filter(|f| keep(f)).collect()
    };
    let mut adds = Vec::new();
    let mut deletes = Vec::new();
    let mut delta: i64 = 0;
    for p in &prefixes {
        let before = old.owner(p, dpid);
        let after = new.owner(p, dpid);
        match (before, after) {
            (Some(b), Some(a)) if b.id == a.id => {}
            (b, Some(a)) => {
                // The adds replace the old owner's flows (same identities).
                let add = kept(a);
                delta += add.len() as i64 - b.map_or(0, |b| kept(b).len() as i64);
                adds.extend(add.into_iter().map(Change::Add));
            }
            (Some(b), None) => {
                let del = kept(b);
                delta -= del.len() as i64;
                deletes.extend(del.iter().map(|f| Change::Delete(Installed::from_spec(f))));
            }
            (None, None) => {}
        }
    }
    let mut plan = Plan::default();
    plan.changes.extend(adds);
    plan.changes.extend(deletes);
    (plan, delta)
}

#[cfg(test)]
mod tests;
