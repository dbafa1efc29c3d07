//! Validated domain values: subscriber prefixes, datapath ids, exemptions.
//!
//! Everything that enters port25 from the outside (REST bodies, the config
//! file, the store) is parsed into these types at the boundary, so the flow
//! compiler never sees a string.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;

/// Address family of a prefix or packet. Every policy rule exists once per
/// family: IPv4 and IPv6 are always enforced together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// Both families, in a fixed order (so compiled output is deterministic).
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The Ethernet type carrying this family.
    pub fn eth_type(self) -> u16 {
        match self {
            Family::V4 => 0x0800,
            Family::V6 => 0x86dd,
        }
    }

    /// The family for an Ethernet type, if it is IP.
    pub fn from_eth_type(eth_type: u16) -> Option<Family> {
        match eth_type {
            0x0800 => Some(Family::V4),
            0x86dd => Some(Family::V6),
            _ => None,
        }
    }

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// Why a prefix was refused. The message is shown to API clients as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("expected an address with a prefix length, such as 203.0.113.7/32 or 2001:db8::/64")]
    Empty,
    #[error("'{0}' is not a valid IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("prefix length '{0}' is not a number")]
    BadLength(String),
    #[error("prefix length /{len} is too long for {family} (at most /{max})")]
    LengthTooLong { len: u32, max: u8, family: &'static str },
    #[error("host bits are set: {given} is not a network address; did you mean {canonical}?")]
    HostBitsSet { given: String, canonical: String },
    #[error("{0} would exempt every address and switch the port-25 block off for everyone")]
    MatchesEverything(String),
}

/// An IPv4 or IPv6 network in canonical form: no host bits set, prefix
/// length within range, never the whole address space (`0.0.0.0/0`, `::/0`).
///
/// Parsing accepts a bare address as a host route (`/32` or `/128`).
/// Display and serde always write `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(IpNetwork);

impl Prefix {
    /// Build from an address and length, refusing host bits and `/0`.
    ///
    /// # Errors
    /// See [`PrefixError`].
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let given = format!("{addr}/{len}");
        let net = match addr {
            IpAddr::V4(a) => {
                if len > 32 {
                    return Err(PrefixError::LengthTooLong { len: len.into(), max: 32, family: "IPv4" });
                }
                IpNetwork::V4(Ipv4Network::new(a, len).map_err(|_| PrefixError::BadLength(len.to_string()))?)
            }
            IpAddr::V6(a) => {
                if len > 128 {
                    return Err(PrefixError::LengthTooLong { len: len.into(), max: 128, family: "IPv6" });
                }
                IpNetwork::V6(Ipv6Network::new(a, len).map_err(|_| PrefixError::BadLength(len.to_string()))?)
            }
        };
        if net.network() != addr {
            let canonical = format!("{}/{len}", net.network());
            return Err(PrefixError::HostBitsSet { given, canonical });
        }
        if len == 0 {
            return Err(PrefixError::MatchesEverything(given));
        }
        Ok(Prefix(net))
    }

    /// A host prefix (`/32` or `/128`) for one address.
    pub fn host(addr: IpAddr) -> Prefix {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Prefix::new(addr, len).expect("a host prefix is always canonical")
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.0.network()
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        self.0.prefix()
    }

    /// Never true: a `/0` prefix is refused at construction. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The netmask as an address of the same family.
    pub fn mask(&self) -> IpAddr {
        self.0.mask()
    }

    /// True when the mask covers every bit (a single host).
    pub fn is_host(&self) -> bool {
        match self.0 {
            IpNetwork::V4(_) => self.len() == 32,
            IpNetwork::V6(_) => self.len() == 128,
        }
    }

    /// Address family.
    pub fn family(&self) -> Family {
        Family::of(self.addr())
    }

    /// Whether this prefix covers all of `other`: equal, or wider and
    /// containing it (false across families).
    pub fn covers(&self, other: &Prefix) -> bool {
        self.len() <= other.len() && self.contains(other.addr())
    }

    /// Whether `addr` lies inside this prefix (false across families).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.0, addr) {
            (IpNetwork::V4(n), IpAddr::V4(a)) => n.contains(a),
            (IpNetwork::V6(n), IpAddr::V6(a)) => n.contains(a),
            _ => false,
        }
    }

    /// The network address of an IPv4 prefix with its mask, or `None` for IPv6.
    pub fn v4(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        match self.0 {
            IpNetwork::V4(n) => Some((n.network(), n.mask())),
            IpNetwork::V6(_) => None,
        }
    }

    /// The network address of an IPv6 prefix with its mask, or `None` for IPv4.
    pub fn v6(&self) -> Option<(Ipv6Addr, Ipv6Addr)> {
        match self.0 {
            IpNetwork::V6(n) => Some((n.network(), n.mask())),
            IpNetwork::V4(_) => None,
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PrefixError::Empty);
        }
        let (addr_s, len_s) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_s.parse().map_err(|_| PrefixError::BadAddress(addr_s.to_owned()))?;
        let max: u8 = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let len = match len_s {
            None => max,
            Some(l) => {
                // Only plain decimal digits: "+8", " 8" and "08x" are refused.
                if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PrefixError::BadLength(l.to_owned()));
                }
                let n: u32 = l.parse().map_err(|_| PrefixError::BadLength(l.to_owned()))?;
                if n > u32::from(max) {
                    let family = if max == 32 { "IPv4" } else { "IPv6" };
                    return Err(PrefixError::LengthTooLong { len: n, max, family });
                }
                n as u8 // n <= 128, checked above
            }
        };
        Prefix::new(addr, len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len())
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Prefix, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a datapath id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a datapath id: expected 1 to 16 hex digits, optionally with ':' separators, such as 0000000000000001"
)]
pub struct DpidError(pub String);

/// An OpenFlow datapath id. Written as 16 lower-case hex digits, the way
/// `ovs-vsctl get bridge BR datapath_id` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dpid(pub u64);

impl fmt::Display for Dpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Dpid {
    type Err = DpidError;

    fn from_str(s: &str) -> Result<Dpid, DpidError> {
        let t = s.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DpidError(s.to_owned()));
        }
        u64::from_str_radix(&hex, 16).map(Dpid).map_err(|_| DpidError(s.to_owned()))
    }
}

impl Serialize for Dpid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dpid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dpid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Identifier of a stored exemption. Allocated by the store, never reused.
/// It is also the per-record part of the flow cookie, so it must fit in
/// [`crate::flow::COOKIE_VALUE_BITS`] bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExemptionId(pub u64);

impl fmt::Display for ExemptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The switches an exemption applies to: all of them, or a listed few.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Scope {
    #[default]
    All,
    /// Sorted, deduplicated, never empty.
    Only(Vec<Dpid>),
}

impl Scope {
    /// Build from an optional list, sorting and deduplicating it.
    /// An absent list means every switch. An empty list would mean "no
    /// switch", which no caller wants (the API refuses it with a reason);
    /// here it is also read as "every switch" rather than kept as an
    /// exemption that can never take effect.
    pub fn from_list(list: Option<Vec<Dpid>>) -> Scope {
        match list {
            None => Scope::All,
            Some(v) if v.is_empty() => Scope::All,
            Some(mut v) => {
                v.sort();
                v.dedup();
                Scope::Only(v)
            }
        }
    }

    /// Whether a switch is covered.
    pub fn covers(&self, dpid: Dpid) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(v) => v.binary_search(&dpid).is_ok(),
        }
    }

    /// The list form used on the wire (`None` = all switches).
    pub fn as_list(&self) -> Option<&[Dpid]> {
        match self {
            Scope::All => None,
            Scope::Only(v) => Some(v),
        }
    }
}

/// A request to exempt a subscriber, validated but not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExemption {
    pub subscriber: Prefix,
    pub note: Option<String>,
    pub scope: Scope,
    /// When port25d revokes it by itself; `None` = never.
    pub expires_at: Option<OffsetDateTime>,
    /// The provisioning system's own key for it (set by sync).
    pub external_id: Option<String>,
}

impl NewExemption {
    /// A request for `subscriber` on every switch, with nothing else set.
    pub fn new(subscriber: Prefix) -> NewExemption {
        NewExemption { subscriber, note: None, scope: Scope::All, expires_at: None, external_id: None }
    }
}

/// A stored exemption: the subscriber prefix may open TCP port 25.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// Store-allocated id; also the per-record part of the flow cookie.
    pub id: ExemptionId,
    /// The exempted network, canonical.
    pub subscriber: Prefix,
    /// Free text from the provisioning system (ticket number, customer id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the exemption was stored (UTC, RFC 3339 on the wire).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Datapath ids the exemption applies to; absent or null means every switch.
    #[serde(default, with = "scope_serde")]
    pub switches: Scope,
    /// When port25d revokes it by itself (UTC, RFC 3339); absent = never.
    /// Optional so that records stored before expiry existed still load.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// The provisioning system's key for this record (`PUT /v1/exemptions`
    /// matches on it); absent for records granted one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl Exemption {
    /// Whether this exemption applies on the given switch.
    pub fn applies_to(&self, dpid: Dpid) -> bool {
        self.switches.covers(dpid)
    }

    /// Whether it has expired at `now` (an expiry at exactly `now` has).
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

mod scope_serde {
    use super::{Dpid, Scope};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(scope: &Scope, s: S) -> Result<S::Ok, S::Error> {
        scope.as_list().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Scope, D::Error> {
        Ok(Scope::from_list(Option::<Vec<Dpid>>::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_prefixes() {
        assert_eq!("203.0.113.7/32".parse::<Prefix>().unwrap().to_string(), "203.0.113.7/32");
        assert_eq!("203.0.113.7".parse::<Prefix>().unwrap().to_string(), "203.0.113.7/32");
        assert_eq!("2001:DB8::/32".parse::<Prefix>().unwrap().to_string(), "2001:db8::/32");
        assert_eq!("2001:db8::1".parse::<Prefix>().unwrap().len(), 128);
    }

    #[test]
    fn rejects_bad_prefixes_with_reasons() {
        assert!(matches!("10.0.0.300/32".parse::<Prefix>(), Err(PrefixError::BadAddress(_))));
        assert!(matches!("10.0.0.1/33".parse::<Prefix>(), Err(PrefixError::LengthTooLong { .. })));
        assert!(matches!("2001:db8::/129".parse::<Prefix>(), Err(PrefixError::LengthTooLong { .. })));
        assert!(matches!("192.0.2.10/24".parse::<Prefix>(), Err(PrefixError::HostBitsSet { .. })));
        assert!(matches!("0.0.0.0/0".parse::<Prefix>(), Err(PrefixError::MatchesEverything(_))));
        assert!(matches!("::/0".parse::<Prefix>(), Err(PrefixError::MatchesEverything(_))));
        assert!(matches!("10.0.0.0/+8".parse::<Prefix>(), Err(PrefixError::BadLength(_))));
        assert!(matches!("10.0.0.0/".parse::<Prefix>(), Err(PrefixError::BadLength(_))));
        assert!(matches!("".parse::<Prefix>(), Err(PrefixError::Empty)));
        let e = "192.0.2.10/24".parse::<Prefix>().unwrap_err().to_string();
        assert!(e.contains("192.0.2.0/24"), "{e}");
    }

    #[test]
    fn dpid_round_trips() {
        let d: Dpid = "0000000000000001".parse().unwrap();
        assert_eq!(d, Dpid(1));
        assert_eq!(d.to_string(), "0000000000000001");
        assert_eq!("00:00:00:00:00:00:00:0a".parse::<Dpid>().unwrap(), Dpid(10));
        assert!("xyz".parse::<Dpid>().is_err());
        assert!("00000000000000001".parse::<Dpid>().is_err());
    }

    #[test]
    fn covers_means_equal_or_wider() {
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        assert!(p("203.0.113.0/24").covers(&p("203.0.113.0/24")));
        assert!(p("203.0.113.0/24").covers(&p("203.0.113.7")));
        assert!(!p("203.0.113.0/24").covers(&p("203.0.0.0/16")));
        assert!(!p("203.0.113.0/24").covers(&p("2001:db8::1")));
    }

    #[test]
    fn records_without_expiry_or_external_id_still_load() {
        let old = r#"{"id":3,"subscriber":"203.0.113.7/32","created_at":"2026-01-02T03:04:05Z","switches":null}"#;
        let e: Exemption = serde_json::from_str(old).unwrap();
        assert_eq!((e.expires_at, e.external_id.as_deref()), (None, None));
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("expires_at") && !text.contains("external_id"), "{text}");
        let mut e2 = e.clone();
        e2.expires_at = Some(time::macros::datetime!(2030-01-01 00:00 UTC));
        e2.external_id = Some("crm-1".into());
        let back: Exemption = serde_json::from_str(&serde_json::to_string(&e2).unwrap()).unwrap();
        assert_eq!(back, e2);
    }
}
