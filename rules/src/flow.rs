//! Protocol-neutral flows: what port25 wants in a switch's table.
//!
//! A [`Match`] can only be built with its OpenFlow prerequisites in place:
//! a TCP port match always carries `ip_proto=6` and an IP `eth_type`, an
//! address match always carries the `eth_type` of its family. The wire
//! encoders in `port25-controller` turn these into OXM (OpenFlow 1.3).
//!
//! # Cookie layout
//!
//! ```text
//!  63            48 47      40 39                                   0
//! +----------------+----------+-------------------------------------+
//! | prefix (16)    | kind (8) | value (40)                          |
//! +----------------+----------+-------------------------------------+
//!   prefix: identifies port25's flows (default 0x2525)
//!   kind:   1 = base policy (drops, default forwarding), 2 = exemption
//!   value:  base rule number, or the exemption id
//! ```
//!
//! port25 reads, changes and deletes only flows whose cookie carries its
//! prefix; any other flow in the table is foreign and never touched.

use std::fmt;

use crate::model::{ExemptionId, Family, Prefix};

/// Bits of the cookie that carry the per-record value.
pub const COOKIE_VALUE_BITS: u32 = 40;
/// Largest exemption id that fits in a cookie.
pub const MAX_EXEMPTION_ID: u64 = (1 << COOKIE_VALUE_BITS) - 1;
/// Mask selecting the prefix part of a cookie.
pub const COOKIE_PREFIX_MASK: u64 = 0xffff_0000_0000_0000;

/// What a cookie says about a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CookieKind {
    /// A base policy flow (drop or default forwarding); value = rule number.
    Base(u64),
    /// An exemption's allow flow.
    Exemption(ExemptionId),
    /// Our prefix, but a kind we do not know (written by a newer version):
    /// ours to delete if it is not in the desired set.
    Other(u8, u64),
}

/// Builds and reads cookies under one prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CookieSpace {
    prefix: u16,
}

impl CookieSpace {
    pub const DEFAULT_PREFIX: u16 = 0x2525;
    const KIND_BASE: u8 = 1;
    const KIND_EXEMPTION: u8 = 2;

    pub fn new(prefix: u16) -> CookieSpace {
        CookieSpace { prefix }
    }

    pub fn prefix(&self) -> u16 {
        self.prefix
    }

    /// The cookie value used to filter flow stats and deletions to ours.
    pub fn filter_value(&self) -> u64 {
        u64::from(self.prefix) << 48
    }

    /// The mask that goes with [`CookieSpace::filter_value`].
    pub fn filter_mask(&self) -> u64 {
        COOKIE_PREFIX_MASK
    }

    /// Whether a cookie is one of ours.
    pub fn owns(&self, cookie: u64) -> bool {
        cookie & COOKIE_PREFIX_MASK == self.filter_value()
    }

    fn make(&self, kind: u8, value: u64) -> u64 {
        self.filter_value() | (u64::from(kind) << COOKIE_VALUE_BITS) | (value & MAX_EXEMPTION_ID)
    }

    /// Cookie for a base policy flow.
    pub fn base(&self, rule: u64) -> u64 {
        self.make(Self::KIND_BASE, rule)
    }

    /// Cookie for an exemption's flows.
    pub fn exemption(&self, id: ExemptionId) -> u64 {
        self.make(Self::KIND_EXEMPTION, id.0)
    }

    /// Decode one of our cookies; `None` if it is foreign.
    pub fn parse(&self, cookie: u64) -> Option<CookieKind> {
        if !self.owns(cookie) {
            return None;
        }
        let kind = ((cookie >> COOKIE_VALUE_BITS) & 0xff) as u8; // masked to 8 bits
        let value = cookie & MAX_EXEMPTION_ID;
        Some(match kind {
            Self::KIND_BASE => CookieKind::Base(value),
            Self::KIND_EXEMPTION => CookieKind::Exemption(ExemptionId(value)),
            k => CookieKind::Other(k, value),
        })
    }
}

impl Default for CookieSpace {
    fn default() -> CookieSpace {
        CookieSpace::new(CookieSpace::DEFAULT_PREFIX)
    }
}

/// An IP fragment match, in OVS's `nw_frag` terms (NXM_NX_IP_FRAG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FragMatch {
    /// `nw_frag=yes`: any fragment, first or later (value 1, mask 1).
    Any,
    /// `nw_frag=no`: not a fragment (value 0, mask 1).
    No,
    /// `nw_frag=first` (value 1, mask 3).
    First,
    /// `nw_frag=later` (value 3, mask 3).
    Later,
    /// `nw_frag=not_later` (value 0, mask 2).
    NotLater,
}

impl FragMatch {
    /// (value, mask) of the NXM_NX_IP_FRAG field.
    pub fn value_mask(self) -> (u8, u8) {
        match self {
            FragMatch::Any => (1, 1),
            FragMatch::No => (0, 1),
            FragMatch::First => (1, 3),
            FragMatch::Later => (3, 3),
            FragMatch::NotLater => (0, 2),
        }
    }

    /// Inverse of [`FragMatch::value_mask`]; `None` for a combination OVS would not produce.
    pub fn from_value_mask(value: u8, mask: u8) -> Option<FragMatch> {
        match (value & mask, mask) {
            (1, 1) => Some(FragMatch::Any),
            (0, 1) => Some(FragMatch::No),
            (1, 3) => Some(FragMatch::First),
            (3, 3) => Some(FragMatch::Later),
            (0, 2) => Some(FragMatch::NotLater),
            _ => None,
        }
    }

    /// Whether a packet with the given fragment state matches.
    pub fn matches(self, frag: Fragment) -> bool {
        let bits: u8 = match frag {
            Fragment::None => 0,
            Fragment::First => 1,
            Fragment::Later => 3,
        };
        let (v, m) = self.value_mask();
        bits & m == v
    }
}

/// A packet's fragment state, as a switch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fragment {
    /// Not fragmented.
    None,
    /// The first fragment (offset 0, more-fragments set).
    First,
    /// A later fragment (offset > 0).
    Later,
}

/// Why a set of match fields is not a valid match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("{0} requires an IP eth_type")]
    MissingEthType(&'static str),
    #[error("{0} requires ip_proto=6 (TCP)")]
    NotTcp(&'static str),
    #[error("{0} has a different address family than eth_type")]
    FamilyMismatch(&'static str),
}

/// A flow match over the fields port25 uses. Built only through
/// constructors that add the OpenFlow prerequisites; compares by value, so
/// a match read back from a switch equals the one we compiled when the
/// switch holds the same flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Match {
    eth_type: Option<u16>,
    ip_proto: Option<u8>,
    ip_src: Option<Prefix>,
    ip_dst: Option<Prefix>,
    tcp_src: Option<u16>,
    tcp_dst: Option<u16>,
    ip_frag: Option<FragMatch>,
}

impl Match {
    /// Match every packet.
    pub fn any() -> Match {
        Match::default()
    }

    /// Every frame whose Ethernet type, as the switch parsed it, is
    /// `eth_type`. With an IP type, prefer [`Match::tcp`] and friends.
    pub fn ethertype(eth_type: u16) -> Match {
        Match { eth_type: Some(eth_type), ..Match::default() }
    }

    /// All IP packets of one family whose protocol, as the switch parsed
    /// it, is `ip_proto` (`eth_type` and `ip_proto`).
    pub fn ip_proto_of(family: Family, ip_proto: u8) -> Match {
        Match { eth_type: Some(family.eth_type()), ip_proto: Some(ip_proto), ..Match::default() }
    }

    /// All TCP of one family (`eth_type`, `ip_proto=6`).
    pub fn tcp(family: Family) -> Match {
        Match { eth_type: Some(family.eth_type()), ip_proto: Some(6), ..Match::default() }
    }

    /// Add `tcp_dst`.
    pub fn with_tcp_dst(mut self, port: u16) -> Match {
        self.tcp_dst = Some(port);
        self
    }

    /// Add `tcp_src`.
    pub fn with_tcp_src(mut self, port: u16) -> Match {
        self.tcp_src = Some(port);
        self
    }

    /// Add an IP fragment match.
    pub fn with_ip_frag(mut self, frag: FragMatch) -> Match {
        self.ip_frag = Some(frag);
        self
    }

    /// All TCP from a prefix (its family's `eth_type`, `ip_proto=6`, `ip_src`).
    pub fn tcp_from(prefix: Prefix) -> Match {
        Match { ip_src: Some(prefix), ..Match::tcp(prefix.family()) }
    }

    /// All TCP to a prefix.
    pub fn tcp_to(prefix: Prefix) -> Match {
        Match { ip_dst: Some(prefix), ..Match::tcp(prefix.family()) }
    }

    /// Assemble from decoded fields, checking prerequisites. Used by wire
    /// decoders; policy code uses the constructors above.
    ///
    /// # Errors
    /// A field without its prerequisite, or addresses of the wrong family.
    pub fn from_parts(
        eth_type: Option<u16>,
        ip_proto: Option<u8>,
        ip_src: Option<Prefix>,
        ip_dst: Option<Prefix>,
        tcp_src: Option<u16>,
        tcp_dst: Option<u16>,
        ip_frag: Option<FragMatch>,
    ) -> Result<Match, MatchError> {
        let family = eth_type.and_then(Family::from_eth_type);
        for (name, p) in [("ip_src", ip_src), ("ip_dst", ip_dst)] {
            if let Some(p) = p {
                match family {
                    None => return Err(MatchError::MissingEthType(name)),
                    Some(f) if f != p.family() => return Err(MatchError::FamilyMismatch(name)),
                    Some(_) => {}
                }
            }
        }
        if ip_proto.is_some() && family.is_none() {
            return Err(MatchError::MissingEthType("ip_proto"));
        }
        if ip_frag.is_some() && family.is_none() {
            return Err(MatchError::MissingEthType("ip_frag"));
        }
        for (name, p) in [("tcp_src", tcp_src), ("tcp_dst", tcp_dst)] {
            if p.is_some() {
                if family.is_none() {
                    return Err(MatchError::MissingEthType(name));
                }
                if ip_proto != Some(6) {
                    return Err(MatchError::NotTcp(name));
                }
            }
        }
        Ok(Match { eth_type, ip_proto, ip_src, ip_dst, tcp_src, tcp_dst, ip_frag })
    }

    pub fn eth_type(&self) -> Option<u16> {
        self.eth_type
    }
    pub fn ip_proto(&self) -> Option<u8> {
        self.ip_proto
    }
    pub fn ip_src(&self) -> Option<Prefix> {
        self.ip_src
    }
    pub fn ip_dst(&self) -> Option<Prefix> {
        self.ip_dst
    }
    pub fn tcp_src(&self) -> Option<u16> {
        self.tcp_src
    }
    pub fn tcp_dst(&self) -> Option<u16> {
        self.tcp_dst
    }
    pub fn ip_frag(&self) -> Option<FragMatch> {
        self.ip_frag
    }

    /// The family this match is restricted to, if any.
    pub fn family(&self) -> Option<Family> {
        self.eth_type.and_then(Family::from_eth_type)
    }

    /// Whether some packet could match both `self` and `other`: no field
    /// that both constrain rules it out. Prefixes overlap when one covers
    /// the other; fragment matches when some fragment state meets both.
    pub fn may_overlap(&self, other: &Match) -> bool {
        fn same<T: PartialEq>(a: Option<T>, b: Option<T>) -> bool {
            match (a, b) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
        }
        let prefixes = |a: Option<Prefix>, b: Option<Prefix>| match (a, b) {
            (Some(a), Some(b)) => a.covers(&b) || b.covers(&a),
            _ => true,
        };
        let frags = match (self.ip_frag, other.ip_frag) {
            (Some(a), Some(b)) => {
                [Fragment::None, Fragment::First, Fragment::Later].iter().any(|f| a.matches(*f) && b.matches(*f))
            }
            _ => true,
        };
        // As OVS sees fragments (default frag mode): their ports are 0, so
        // a match on a non-zero port never meets one that wants fragments.
        let wants_fragment = |m: &Match| m.ip_frag.is_some_and(|f| !f.matches(Fragment::None));
        let has_port = |m: &Match| m.tcp_src.is_some_and(|p| p != 0) || m.tcp_dst.is_some_and(|p| p != 0);
        if (wants_fragment(self) && has_port(other)) || (wants_fragment(other) && has_port(self)) {
            return false;
        }
        same(self.eth_type, other.eth_type)
            && same(self.ip_proto, other.ip_proto)
            && prefixes(self.ip_src, other.ip_src)
            && prefixes(self.ip_dst, other.ip_dst)
            && same(self.tcp_src, other.tcp_src)
            && same(self.tcp_dst, other.tcp_dst)
            && frags
    }
}

impl fmt::Display for Match {
    /// `ovs-ofctl`-like text, for logs and error reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        match (self.family(), self.ip_proto) {
            (Some(Family::V4), Some(6)) => parts.push("tcp".into()),
            (Some(Family::V6), Some(6)) => parts.push("tcp6".into()),
            (Some(Family::V4), None) => parts.push("ip".into()),
            (Some(Family::V6), None) => parts.push("ipv6".into()),
            (Some(Family::V4), Some(p)) => parts.push(format!("ip,nw_proto={p}")),
            (Some(Family::V6), Some(p)) => parts.push(format!("ipv6,nw_proto={p}")),
            (fam, proto) => {
                if let Some(e) = self.eth_type {
                    parts.push(format!("dl_type=0x{e:04x}"));
                }
                if let (Some(_), Some(p)) = (fam, proto) {
                    parts.push(format!("nw_proto={p}"));
                }
            }
        }
        let v6 = self.family() == Some(Family::V6);
        if let Some(p) = self.ip_src {
            parts.push(format!("{}={p}", if v6 { "ipv6_src" } else { "nw_src" }));
        }
        if let Some(p) = self.ip_dst {
            parts.push(format!("{}={p}", if v6 { "ipv6_dst" } else { "nw_dst" }));
        }
        if let Some(p) = self.tcp_src {
            parts.push(format!("tp_src={p}"));
        }
        if let Some(p) = self.tcp_dst {
            parts.push(format!("tp_dst={p}"));
        }
        if let Some(fr) = self.ip_frag {
            let s = match fr {
                FragMatch::Any => "yes",
                FragMatch::No => "no",
                FragMatch::First => "first",
                FragMatch::Later => "later",
                FragMatch::NotLater => "not_later",
            };
            parts.push(format!("nw_frag={s}"));
        }
        if parts.is_empty() {
            f.write_str("any")
        } else {
            f.write_str(&parts.join(","))
        }
    }
}

/// What a flow does with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowAction {
    /// No instructions: the packet is dropped.
    Drop,
    /// Apply-actions `output:NORMAL` (the switch's own L2/L3 forwarding).
    Normal,
    /// `goto_table:N`: hand the packet to the next application's table.
    GotoTable(u8),
}

impl fmt::Display for FlowAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowAction::Drop => f.write_str("drop"),
            FlowAction::Normal => f.write_str("NORMAL"),
            FlowAction::GotoTable(t) => write!(f, "goto_table:{t}"),
        }
    }
}

/// One flow as port25 wants it in a switch.
///
/// Identity in the switch is (table, priority, match); cookie and action
/// are the flow's content. Ordering is by identity first, so a sorted
/// `Vec<FlowSpec>` is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowSpec {
    pub table: u8,
    pub priority: u16,
    pub matcher: Match,
    pub cookie: u64,
    pub action: FlowAction,
}

impl FlowSpec {
    /// The key a switch identifies this flow by.
    pub fn key(&self) -> FlowKey {
        FlowKey { table: self.table, priority: self.priority, matcher: self.matcher.clone() }
    }
}

impl fmt::Display for FlowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cookie=0x{:x},table={},priority={},{} actions={}",
            self.cookie, self.table, self.priority, self.matcher, self.action
        )
    }
}

/// A flow's identity in a switch table: OpenFlow's (table, priority, match).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub table: u8,
    pub priority: u16,
    pub matcher: Match,
}
