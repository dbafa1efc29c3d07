//! OXM match fields ↔ [`Match`].
//!
//! ```text
//! One OXM TLV:
//!  0               16             23  24          32
//! +----------------+---------------+---+-----------+---------------------+
//! | class (16)     | field (7)     |HM | length (8)| value [, mask]      |
//! +----------------+---------------+---+-----------+---------------------+
//!   HM = has-mask; length counts value and mask (so 2x the value when HM)
//!
//! Fields port25 models (class 0x8000 OPENFLOW_BASIC unless noted):
//!   ETH_TYPE 5 (2)      IP_PROTO 10 (1)
//!   IPV4_SRC 11 / IPV4_DST 12 (4, maskable)
//!   TCP_SRC 13 / TCP_DST 14 (2)
//!   IPV6_SRC 26 / IPV6_DST 27 (16, maskable)
//!   NXM_NX_IP_FRAG: class 0x0001 (NXM_1), field 26 (1, maskable)
//! ```
//!
//! Encoding is canonical: prerequisites first (eth_type, ip_proto), then
//! addresses, ports, ip_frag; a host prefix and a full mask are written
//! without a mask. Decoding accepts any order (OVS puts addresses before
//! ip_proto in its replies) and any mask that means the same thing, so a
//! flow we install and OVS echoes back decodes to an equal [`Match`].
//!
//! NXM_NX_IP_FRAG has two meaningful bits; OVS writes it without a mask
//! when the mask is 0x03 (e.g. `nw_frag=first` comes back as value 0x01,
//! no mask), so a missing mask means 0x03, not 0xff.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BufMut, BytesMut};
use port25_rules::{FragMatch, Match, Prefix};

use super::error::need;
use super::DecodeError;

pub const OFPXMC_NXM_1: u16 = 0x0001;
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
pub const OFPXMC_EXPERIMENTER: u16 = 0xffff;

pub const OXM_ETH_TYPE: u8 = 5;
pub const OXM_IP_PROTO: u8 = 10;
pub const OXM_IPV4_SRC: u8 = 11;
pub const OXM_IPV4_DST: u8 = 12;
pub const OXM_TCP_SRC: u8 = 13;
pub const OXM_TCP_DST: u8 = 14;
pub const OXM_IPV6_SRC: u8 = 26;
pub const OXM_IPV6_DST: u8 = 27;
pub const NXM_NX_IP_FRAG: u8 = 26;

/// The bits of NXM_NX_IP_FRAG that mean anything.
const IP_FRAG_FULL_MASK: u8 = 0x03;

fn put_oxm(buf: &mut BytesMut, class: u16, field: u8, value: &[u8], mask: Option<&[u8]>) {
    let len = value.len() + mask.map_or(0, <[u8]>::len);
    debug_assert!(len <= 0xff && field <= 0x7f);
    let header = (u32::from(class) << 16)
        | (u32::from(field & 0x7f) << 9)
        | (u32::from(mask.is_some()) << 8)
        | u32::from(u8::try_from(len).unwrap_or(u8::MAX));
    buf.put_u32(header);
    buf.put_slice(value);
    if let Some(mask) = mask {
        buf.put_slice(mask);
    }
}

fn put_prefix(buf: &mut BytesMut, p: Prefix, field_v4: u8, field_v6: u8) {
    let exact = p.is_host();
    if let Some((addr, mask)) = p.v4() {
        let mask = mask.octets();
        put_oxm(buf, OFPXMC_OPENFLOW_BASIC, field_v4, &addr.octets(), (!exact).then_some(&mask[..]));
    } else if let Some((addr, mask)) = p.v6() {
        let mask = mask.octets();
        put_oxm(buf, OFPXMC_OPENFLOW_BASIC, field_v6, &addr.octets(), (!exact).then_some(&mask[..]));
    }
}

/// Append `m`'s OXM fields (no `ofp_match` header, no padding), in
/// canonical order.
pub fn encode_match(buf: &mut BytesMut, m: &Match) {
    const BASIC: u16 = OFPXMC_OPENFLOW_BASIC;
    if let Some(e) = m.eth_type() {
        put_oxm(buf, BASIC, OXM_ETH_TYPE, &e.to_be_bytes(), None);
    }
    if let Some(p) = m.ip_proto() {
        put_oxm(buf, BASIC, OXM_IP_PROTO, &[p], None);
    }
    if let Some(p) = m.ip_src() {
        put_prefix(buf, p, OXM_IPV4_SRC, OXM_IPV6_SRC);
    }
    if let Some(p) = m.ip_dst() {
        put_prefix(buf, p, OXM_IPV4_DST, OXM_IPV6_DST);
    }
    if let Some(p) = m.tcp_src() {
        put_oxm(buf, BASIC, OXM_TCP_SRC, &p.to_be_bytes(), None);
    }
    if let Some(p) = m.tcp_dst() {
        put_oxm(buf, BASIC, OXM_TCP_DST, &p.to_be_bytes(), None);
    }
    if let Some(f) = m.ip_frag() {
        let (value, mask) = f.value_mask();
        let mask = (mask != IP_FRAG_FULL_MASK).then_some([mask]);
        put_oxm(buf, OFPXMC_NXM_1, NXM_NX_IP_FRAG, &[value], mask.as_ref().map(|m| &m[..]));
    }
}

/// Decode OXM fields (the bytes inside an `ofp_match`, without its header
/// and padding).
///
/// Returns `Ok(None)` when the fields are well-formed but not something a
/// [`Match`] can say: an unknown class or field, an experimenter OXM, a
/// mask that is not a CIDR mask (or on a field we only match exactly), a
/// duplicate field, a value of the wrong size, or a prerequisite missing.
///
/// # Errors
/// A TLV header or value running past the end of `oxm`.
pub fn decode_match(oxm: &[u8]) -> Result<Option<Match>, DecodeError> {
    let mut buf = oxm;
    let mut fields = Fields::default();
    let mut modelled = true;
    while buf.has_remaining() {
        need(&buf, 4, "OXM header")?;
        let header = buf.get_u32();
        let class = u16::try_from(header >> 16).unwrap_or(u16::MAX);
        let field = u8::try_from((header >> 9) & 0x7f).unwrap_or(u8::MAX);
        let has_mask = header & 0x100 != 0;
        let len = usize::from(u8::try_from(header & 0xff).unwrap_or(u8::MAX));
        let Some((payload, rest)) = buf.split_at_checked(len) else {
            return Err(DecodeError::Truncated { what: "OXM field", need: len, have: buf.len() });
        };
        buf = rest;
        // Keep walking after an unmodelled field: the rest must still be well-formed.
        modelled = modelled && fields.take(class, field, has_mask, payload);
    }
    Ok(if modelled { fields.build() } else { None })
}

/// Fields seen so far; each at most once.
#[derive(Default)]
struct Fields {
    eth_type: Option<u16>,
    ip_proto: Option<u8>,
    ip_src: Option<Prefix>,
    ip_dst: Option<Prefix>,
    tcp_src: Option<u16>,
    tcp_dst: Option<u16>,
    ip_frag: Option<FragMatch>,
}

/// Store `value` in an empty slot; false for a duplicate or an unusable value.
fn fill<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    match value {
        Some(v) if slot.is_none() => {
            *slot = Some(v);
            true
        }
        _ => false,
    }
}

impl Fields {
    /// Record one TLV; false when it is outside what a [`Match`] models.
    fn take(&mut self, class: u16, field: u8, has_mask: bool, p: &[u8]) -> bool {
        match (class, field, has_mask) {
            (OFPXMC_OPENFLOW_BASIC, OXM_ETH_TYPE, false) => fill(&mut self.eth_type, be16(p)),
            (OFPXMC_OPENFLOW_BASIC, OXM_IP_PROTO, false) => {
                fill(&mut self.ip_proto, <[u8; 1]>::try_from(p).ok().map(|[b]| b))
            }
            (OFPXMC_OPENFLOW_BASIC, OXM_TCP_SRC, false) => fill(&mut self.tcp_src, be16(p)),
            (OFPXMC_OPENFLOW_BASIC, OXM_TCP_DST, false) => fill(&mut self.tcp_dst, be16(p)),
            (OFPXMC_OPENFLOW_BASIC, OXM_IPV4_SRC, m) => fill(&mut self.ip_src, prefix_v4(p, m)),
            (OFPXMC_OPENFLOW_BASIC, OXM_IPV4_DST, m) => fill(&mut self.ip_dst, prefix_v4(p, m)),
            (OFPXMC_OPENFLOW_BASIC, OXM_IPV6_SRC, m) => fill(&mut self.ip_src, prefix_v6(p, m)),
            (OFPXMC_OPENFLOW_BASIC, OXM_IPV6_DST, m) => fill(&mut self.ip_dst, prefix_v6(p, m)),
            (OFPXMC_NXM_1, NXM_NX_IP_FRAG, m) => fill(&mut self.ip_frag, ip_frag(p, m)),
            _ => false,
        }
    }

    fn build(self) -> Option<Match> {
        let Fields { eth_type, ip_proto, ip_src, ip_dst, tcp_src, tcp_dst, ip_frag } = self;
        Match::from_parts(eth_type, ip_proto, ip_src, ip_dst, tcp_src, tcp_dst, ip_frag).ok()
    }
}

fn be16(p: &[u8]) -> Option<u16> {
    <[u8; 2]>::try_from(p).ok().map(u16::from_be_bytes)
}

fn prefix_v4(p: &[u8], has_mask: bool) -> Option<Prefix> {
    let (addr, len) = if has_mask {
        let [a0, a1, a2, a3, m0, m1, m2, m3] = <[u8; 8]>::try_from(p).ok()?;
        (Ipv4Addr::new(a0, a1, a2, a3), cidr_len(u128::from(u32::from_be_bytes([m0, m1, m2, m3])) << 96)?)
    } else {
        (Ipv4Addr::from(<[u8; 4]>::try_from(p).ok()?), 32)
    };
    Prefix::new(IpAddr::V4(addr), len).ok()
}

fn prefix_v6(p: &[u8], has_mask: bool) -> Option<Prefix> {
    let (addr, len) = if has_mask {
        let (a, m) = p.split_at_checked(16).filter(|(_, m)| m.len() == 16)?;
        (Ipv6Addr::from(<[u8; 16]>::try_from(a).ok()?), cidr_len(u128::from_be_bytes(<[u8; 16]>::try_from(m).ok()?))?)
    } else {
        (Ipv6Addr::from(<[u8; 16]>::try_from(p).ok()?), 128)
    };
    Prefix::new(IpAddr::V6(addr), len).ok()
}

/// The prefix length of a left-aligned contiguous mask; `None` if it has holes.
fn cidr_len(mask: u128) -> Option<u8> {
    let ones = mask.leading_ones();
    let expect = u128::MAX.checked_shl(128 - ones).unwrap_or(0);
    if mask != expect {
        return None;
    }
    u8::try_from(ones).ok()
}

fn ip_frag(p: &[u8], has_mask: bool) -> Option<FragMatch> {
    let (value, mask) = if has_mask {
        let [v, m] = <[u8; 2]>::try_from(p).ok()?;
        (v, m)
    } else {
        let [v] = <[u8; 1]>::try_from(p).ok()?;
        (v, IP_FRAG_FULL_MASK)
    };
    FragMatch::from_value_mask(value, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_len_accepts_only_contiguous_masks() {
        assert_eq!(cidr_len(u128::MAX), Some(128));
        assert_eq!(cidr_len(0), Some(0));
        assert_eq!(cidr_len(u128::MAX << 64), Some(64));
        assert_eq!(cidr_len((u128::MAX << 64) | 1), None);
        assert_eq!(cidr_len(u128::from(0xffff_ff00u32) << 96), Some(24));
    }

    #[test]
    fn ip_frag_without_mask_means_both_bits() {
        assert_eq!(ip_frag(&[1], false), Some(FragMatch::First));
        assert_eq!(ip_frag(&[3], false), Some(FragMatch::Later));
        assert_eq!(ip_frag(&[1, 1], true), Some(FragMatch::Any));
        assert_eq!(ip_frag(&[1, 0xff], true), None);
    }
}
