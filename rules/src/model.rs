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

/// Longest piece of client input an error message repeats, in characters.
pub const MAX_ECHO_CHARS: usize = 64;

/// `s` as an error message may repeat it: at most [`MAX_ECHO_CHARS`]
/// characters, the last of them an ellipsis when `s` was cut. A client
/// that sends 10,000 characters does not get them back, nor do the logs.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS - 1) {
        Some((at, _)) if s[at..].chars().nth(1).is_some() => format!("{}\u{2026}", &s[..at]),
        _ => s.to_owned(),
    }
}

/// The ASCII whitespace around `s` removed, and only that: a value
/// wrapped in U+00A0 or U+3000 is not a clean value with spaces around it.
fn trim_ascii(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Why a prefix was refused. The message is shown to API clients as is;
/// any input it repeats is cut with [`clip`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("expected an address with a prefix length, such as 203.0.113.7/32 or 2001:db8::/64")]
    Empty,
    #[error("'{0}' is not a valid IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("prefix length '{0}' is not a number")]
    BadLength(String),
    #[error("prefix length '{0}' has a leading zero: write it without one, such as /8")]
    LeadingZero(String),
    #[error("prefix length /{len} is too long for {family} (at most /{max})")]
    LengthTooLong { len: u32, max: u8, family: &'static str },
    #[error("host bits are set: {given} is not a network address; did you mean {canonical}?")]
    HostBitsSet { given: String, canonical: String },
    #[error("{0} would exempt every address and switch the port-25 block off for everyone")]
    MatchesEverything(String),
    /// An IPv6 prefix inside `::ffff:0:0/96`. Switches match IPv4 packets
    /// on their IPv4 addresses, never on this form, so it would exempt nobody.
    #[error(
        "{given} is an IPv4-mapped IPv6 prefix, which never matches IPv4 packets on a switch{}",
        suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default()
    )]
    Ipv4Mapped { given: String, suggestion: Option<String> },
    /// A prefix whose network address no subscriber can have.
    #[error("{given} cannot be a subscriber: {what}")]
    NotASubscriber { given: String, what: &'static str },
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

    /// Check that this prefix can be an exemption's subscriber.
    ///
    /// Parsing accepts every canonical prefix, because filters (`?subscriber=`
    /// on the list and the audit trail) may ask about anything. An exemption
    /// is refused when it could never take effect or names no subscriber:
    /// - an IPv4-mapped IPv6 prefix (inside `::ffff:0:0/96`, length 96 or
    ///   more): a switch matches IPv4 packets on their IPv4 addresses, so
    ///   the error suggests that form;
    /// - a network address that is "this network" (`0.0.0.0/8`) or
    ///   unspecified (`::`), loopback (`127.0.0.0/8`, `::1`), multicast
    ///   (`224.0.0.0/4`, `ff00::/8`), or the limited broadcast
    ///   `255.255.255.255`.
    ///
    /// # Errors
    /// [`PrefixError::Ipv4Mapped`] or [`PrefixError::NotASubscriber`].
    pub fn check_subscriber(&self) -> Result<(), PrefixError> {
        let refuse = |what| Err(PrefixError::NotASubscriber { given: self.to_string(), what });
        match self.0 {
            IpNetwork::V4(n) => {
                let a = n.network();
                if a.octets()[0] == 0 {
                    return refuse("its network address is in 0.0.0.0/8, \"this network\", which no host has");
                }
                if a.is_loopback() {
                    return refuse("its network address is loopback (127.0.0.0/8), which never leaves a host");
                }
                if a.is_multicast() {
                    return refuse(
                        "its network address is multicast (224.0.0.0/4), which never opens a TCP connection",
                    );
                }
                if a.is_broadcast() {
                    return refuse("255.255.255.255 is the limited broadcast address");
                }
                Ok(())
            }
            IpNetwork::V6(n) => {
                let a = n.network();
                if n.prefix() >= 96 {
                    if let Some(v4) = a.to_ipv4_mapped() {
                        // The same network written as IPv4, if that is a
                        // subscriber itself.
                        let suggestion = Prefix::new(IpAddr::V4(v4), n.prefix() - 96)
                            .ok()
                            .filter(|p| p.check_subscriber().is_ok())
                            .map(|p| p.to_string());
                        return Err(PrefixError::Ipv4Mapped { given: self.to_string(), suggestion });
                    }
                }
                if a.is_unspecified() {
                    return refuse("its network address is the unspecified address ::, which no host has");
                }
                if a.is_loopback() {
                    return refuse("::1 is the loopback address, which never leaves a host");
                }
                if a.is_multicast() {
                    return refuse("its network address is multicast (ff00::/8), which never opens a TCP connection");
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// `addr` or `addr/len`, with ASCII whitespace around it allowed. The
    /// length is plain decimal digits without a leading zero (`/0` itself
    /// is then refused as matching everything), as std's address parser
    /// already refuses leading zeros in IPv4 octets.
    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let s = trim_ascii(s);
        if s.is_empty() {
            return Err(PrefixError::Empty);
        }
        let (addr_s, len_s) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_s.parse().map_err(|_| PrefixError::BadAddress(clip(addr_s)))?;
        let max: u8 = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let len = match len_s {
            None => max,
            Some(l) => {
                // Only plain decimal digits: "+8", " 8" and "08x" are refused.
                if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PrefixError::BadLength(clip(l)));
                }
                if l.len() > 1 && l.starts_with('0') {
                    return Err(PrefixError::LeadingZero(l.to_owned()));
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

/// Why a datapath id was refused (the input is cut with [`clip`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a datapath id: expected 1 to 16 hex digits, optionally after 0x, such as 0000000000000001, \
     or 8 colon-separated pairs, such as 00:00:00:00:00:00:00:01"
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

    /// Two forms, with ASCII whitespace around them allowed: 1 to 16 hex
    /// digits, optionally after `0x` (`1`, `0x1`, `0000000000000001`), or
    /// exactly 8 colon-separated pairs of hex digits
    /// (`00:00:00:00:00:00:00:01`, as OVS writes `other-config:datapath-id`).
    /// Nothing in between: `:::3:::` and `00:1` say nothing clear.
    fn from_str(s: &str) -> Result<Dpid, DpidError> {
        let bad = || DpidError(clip(s));
        let t = trim_ascii(s);
        let hex: String = if t.contains(':') {
            let pairs: Vec<&str> = t.split(':').collect();
            if pairs.len() != 8 || !pairs.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(bad());
            }
            pairs.concat()
        } else {
            let digits = t.strip_prefix("0x").unwrap_or(t);
            if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            digits.to_owned()
        };
        u64::from_str_radix(&hex, 16).map(Dpid).map_err(|_| bad())
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
    fn dpid_accepts_only_the_two_written_forms() {
        for (s, d) in [
            ("1", 1),
            ("0x1", 1),
            (" 0x00000000000000ff\t", 255),
            ("FFFFFFFFFFFFFFFF", u64::MAX),
            ("0xffffffffffffffff", u64::MAX),
            ("00:00:00:00:00:00:01:0A", 0x10a),
        ] {
            assert_eq!(s.parse::<Dpid>(), Ok(Dpid(d)), "{s:?}");
        }
        for s in [
            ":::3:::",
            "0x:1",
            "0x",
            "",
            "   ",
            "\u{3000}5",
            "5\u{a0}",
            "00:02",
            "0:0:0:0:0:0:0:1",
            "00:00:00:00:00:00:00:00:01",
            "00:00:00:00:00:00:00:1g",
            "0x00:00:00:00:00:00:00:01",
            "+1",
            "0X1",
        ] {
            assert!(s.parse::<Dpid>().is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn prefix_trims_ascii_whitespace_only() {
        assert_eq!(" \t203.0.113.7/32\r\n".parse::<Prefix>().unwrap().to_string(), "203.0.113.7/32");
        for s in ["\u{a0}203.0.113.7", "203.0.113.7\u{3000}", "\u{2003}2001:db8::1", "203.0.113.7/32\u{85}"] {
            assert!(s.parse::<Prefix>().is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn prefix_length_with_a_leading_zero_is_refused() {
        assert!(matches!("10.0.0.0/08".parse::<Prefix>(), Err(PrefixError::LeadingZero(_))));
        assert!(matches!("203.0.113.7/032".parse::<Prefix>(), Err(PrefixError::LeadingZero(_))));
        assert!(matches!("2001:db8::/064".parse::<Prefix>(), Err(PrefixError::LeadingZero(_))));
        assert!(matches!("0.0.0.0/00".parse::<Prefix>(), Err(PrefixError::LeadingZero(_))));
        assert!(matches!("0.0.0.0/0".parse::<Prefix>(), Err(PrefixError::MatchesEverything(_))));
        assert!(matches!("010.0.0.1/32".parse::<Prefix>(), Err(PrefixError::BadAddress(_))));
        assert_eq!("10.0.0.0/8".parse::<Prefix>().unwrap().len(), 8);
        assert_eq!("2001:db8::/100".parse::<Prefix>().unwrap().len(), 100);
    }

    #[test]
    fn errors_repeat_at_most_64_characters_of_input() {
        let long = "1".repeat(10_000);
        for e in [
            long.parse::<Prefix>().unwrap_err().to_string(),
            format!("10.0.0.0/{long}").parse::<Prefix>().unwrap_err().to_string(),
            long.parse::<Dpid>().unwrap_err().to_string(),
            format!("{}x", "é".repeat(5000)).parse::<Dpid>().unwrap_err().to_string(),
        ] {
            assert!(e.chars().count() < 64 + 200, "{} characters: {}", e.len(), &e[..200]);
            assert!(e.contains('\u{2026}'), "{e}");
        }
        assert_eq!(clip(&"a".repeat(64)), "a".repeat(64));
        assert_eq!(clip(&"a".repeat(65)).chars().count(), 64);
        assert_eq!(clip(&"é".repeat(65)), format!("{}\u{2026}", "é".repeat(63)));
        assert_eq!(clip(""), "");
    }

    #[test]
    fn subscribers_that_cannot_be_exempted_are_refused() {
        let check = |s: &str| s.parse::<Prefix>().unwrap().check_subscriber();
        for ok in ["203.0.113.7/32", "10.0.0.0/8", "1.0.0.0/8", "126.255.255.255", "223.255.255.0/24", "2001:db8::/32"]
        {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for ok in ["::2/128", "fe80::/10", "::fffe:0:0/96", "64:ff9b::c612:1/128", "::1:0:0/96"] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        let e = check("::ffff:198.18.0.1/128").unwrap_err();
        assert!(matches!(e, PrefixError::Ipv4Mapped { .. }), "{e:?}");
        assert!(e.to_string().contains("did you mean 198.18.0.1/32?"), "{e}");
        assert!(check("::ffff:198.18.0.0/112").unwrap_err().to_string().contains("did you mean 198.18.0.0/16?"));
        // No suggestion when the IPv4 form could not be a subscriber either.
        let e = check("::ffff:0:0/96").unwrap_err();
        assert!(matches!(e, PrefixError::Ipv4Mapped { suggestion: None, .. }), "{e:?}");
        assert!(!e.to_string().contains("did you mean"), "{e}");
        let e = check("::ffff:127.0.0.1").unwrap_err();
        assert!(matches!(e, PrefixError::Ipv4Mapped { suggestion: None, .. }), "{e:?}");
        for (bad, why) in [
            ("0.0.0.0/8", "this network"),
            ("0.0.0.0/32", "this network"),
            ("0.1.2.3", "this network"),
            ("127.0.0.0/8", "loopback"),
            ("127.0.0.1", "loopback"),
            ("224.0.0.0/4", "multicast"),
            ("239.1.2.0/24", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::/128", "unspecified"),
            ("::/8", "unspecified"),
            ("::1", "loopback"),
            ("ff00::/8", "multicast"),
            ("ff02::1", "multicast"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(matches!(e, PrefixError::NotASubscriber { .. }), "{bad}: {e:?}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
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
