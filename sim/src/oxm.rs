//! OXM matches as a switch sees them: canonical form and the
//! "at least as specific" relation non-strict commands use.
//!
//! ```text
//! OXM TLV: header u32 | payload (length bytes)
//!   header: class u16 | field u7 | hasmask u1 | length u8
//!   payload: value, then a mask of the same size when hasmask is set
//! ```
//!
//! Two encodings of one match must be one flow, as in OVS: the canonical
//! form drops all-zero masks (the field is a wildcard), turns all-ones
//! masks into exact fields, clears value bits outside the mask, and sorts
//! fields by (class, field). An already-canonical match (the common case:
//! port25's encoder) is returned without allocating.

use std::borrow::Cow;

/// One parsed field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<'a> {
    /// class << 7 | field; experimenter fields also carry their id in `value`'s first 4 bytes.
    pub key: u32,
    pub value: Cow<'a, [u8]>,
    pub mask: Option<Cow<'a, [u8]>>,
}

/// Why a match is refused (`OFPET_BAD_MATCH` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchError {
    /// `OFPBMC_BAD_LEN` (1).
    BadLen,
    /// `OFPBMC_DUP_FIELD` (12).
    DupField,
}

impl MatchError {
    pub fn code(self) -> u16 {
        match self {
            MatchError::BadLen => 1,
            MatchError::DupField => 12,
        }
    }
}

/// Split OXM bytes into fields, checking every length.
pub fn parse(mut oxm: &[u8]) -> Result<Vec<Field<'_>>, MatchError> {
    let mut out = Vec::new();
    while !oxm.is_empty() {
        let Some(&[c0, c1, fm, len]) = oxm.get(..4) else { return Err(MatchError::BadLen) };
        let len = usize::from(len);
        let payload = oxm.get(4..4 + len).ok_or(MatchError::BadLen)?;
        let has_mask = fm & 1 == 1;
        let key = (u32::from(u16::from_be_bytes([c0, c1])) << 7) | u32::from(fm >> 1);
        let field = if has_mask {
            if len % 2 != 0 || len == 0 {
                return Err(MatchError::BadLen);
            }
            let (v, m) = payload.split_at(len / 2);
            Field { key, value: Cow::Borrowed(v), mask: Some(Cow::Borrowed(m)) }
        } else {
            Field { key, value: Cow::Borrowed(payload), mask: None }
        };
        out.push(field);
        oxm = &oxm[4 + len..];
    }
    Ok(out)
}

fn canonical_field(f: Field<'_>) -> Option<Field<'_>> {
    match &f.mask {
        None => Some(f),
        Some(m) if m.iter().all(|&b| b == 0xff) => Some(Field { key: f.key, value: f.value, mask: None }),
        Some(m) if m.iter().all(|&b| b == 0) => None,
        Some(m) => {
            let v: Vec<u8> = f.value.iter().zip(m.iter()).map(|(a, b)| a & b).collect();
            Some(Field { key: f.key, value: Cow::Owned(v), mask: f.mask })
        }
    }
}

fn is_canonical(fields: &[Field<'_>]) -> bool {
    fields.windows(2).all(|w| w[0].key < w[1].key)
        && fields.iter().all(|f| match &f.mask {
            None => true,
            Some(m) => {
                !m.iter().all(|&b| b == 0xff)
                    && !m.iter().all(|&b| b == 0)
                    && f.value.iter().zip(m.iter()).all(|(v, m)| v & !m == 0)
            }
        })
}

/// Encode fields back to OXM bytes.
pub fn encode(fields: &[Field<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.len() * 12);
    for f in fields {
        let class = (f.key >> 7) as u16;
        let field = (f.key & 0x7f) as u8;
        let len = f.value.len() + f.mask.as_ref().map_or(0, |m| m.len());
        out.extend_from_slice(&class.to_be_bytes());
        out.push((field << 1) | u8::from(f.mask.is_some()));
        out.push(len as u8);
        out.extend_from_slice(&f.value);
        if let Some(m) = &f.mask {
            out.extend_from_slice(m);
        }
    }
    out
}

/// The canonical form of a match (see the module docs).
///
/// # Errors
/// Malformed TLVs, or a field present twice.
pub fn canonical(oxm: &[u8]) -> Result<Cow<'_, [u8]>, MatchError> {
    let fields = parse(oxm)?;
    if is_canonical(&fields) {
        return Ok(Cow::Borrowed(oxm));
    }
    let mut fields: Vec<Field<'_>> = fields.into_iter().filter_map(canonical_field).collect();
    fields.sort_by_key(|f| f.key);
    if fields.windows(2).any(|w| w[0].key == w[1].key) {
        return Err(MatchError::DupField);
    }
    Ok(Cow::Owned(encode(&fields)))
}

/// Whether a flow with match `flow` falls under the filter `filter` (both
/// canonical): every field of the filter is in the flow, at least as
/// specific, with the same value under the filter's mask. An empty filter
/// covers every flow. This is OpenFlow's non-strict match for DELETE,
/// MODIFY and flow stats requests.
pub fn covers(filter: &[u8], flow: &[u8]) -> bool {
    if filter.is_empty() {
        return true;
    }
    let (Ok(filter), Ok(flow)) = (parse(filter), parse(flow)) else { return false };
    filter.iter().all(|m| {
        let Some(f) = flow.iter().find(|f| f.key == m.key) else { return false };
        if f.value.len() != m.value.len() {
            return false;
        }
        for i in 0..m.value.len() {
            let mm = m.mask.as_ref().map_or(0xff, |x| x[i]);
            let fm = f.mask.as_ref().map_or(0xff, |x| x[i]);
            if fm & mm != mm || (f.value[i] & mm) != (m.value[i] & mm) {
                return false;
            }
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // OXM_OF_ETH_TYPE (class 0x8000, field 5), OXM_OF_IP_PROTO (field 10),
    // OXM_OF_IPV4_SRC (field 11), OXM_OF_TCP_DST (field 14).
    const ETH_IP: [u8; 6] = [0x80, 0x00, 5 << 1, 2, 0x08, 0x00];
    const PROTO_TCP: [u8; 5] = [0x80, 0x00, 10 << 1, 1, 6];
    const TCP_DST_25: [u8; 6] = [0x80, 0x00, 14 << 1, 2, 0, 25];

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn sorted_match_is_borrowed_and_reordered_one_is_sorted() {
        let m = cat(&[&ETH_IP, &PROTO_TCP, &TCP_DST_25]);
        assert!(matches!(canonical(&m).unwrap(), Cow::Borrowed(_)));
        let r = cat(&[&TCP_DST_25, &ETH_IP, &PROTO_TCP]);
        assert_eq!(canonical(&r).unwrap().as_ref(), &m[..]);
    }

    #[test]
    fn full_mask_is_exact_and_zero_mask_is_gone() {
        let full = [0x80, 0x00, (11 << 1) | 1, 8, 10, 0, 0, 1, 255, 255, 255, 255];
        let exact = [0x80, 0x00, 11 << 1, 4, 10, 0, 0, 1];
        assert_eq!(canonical(&cat(&[&ETH_IP, &full])).unwrap().as_ref(), &cat(&[&ETH_IP, &exact])[..]);
        let zero = [0x80, 0x00, (11 << 1) | 1, 8, 10, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(canonical(&cat(&[&ETH_IP, &zero])).unwrap().as_ref(), &ETH_IP[..]);
    }

    #[test]
    fn duplicates_and_bad_lengths_are_refused() {
        assert_eq!(canonical(&cat(&[&TCP_DST_25, &TCP_DST_25])), Err(MatchError::DupField));
        assert_eq!(canonical(&[0x80, 0, 10, 5, 1]), Err(MatchError::BadLen));
    }

    #[test]
    fn covers_is_non_strict_matching() {
        let flow = cat(&[&ETH_IP, &PROTO_TCP, &TCP_DST_25]);
        assert!(covers(&[], &flow));
        assert!(covers(&ETH_IP, &flow));
        assert!(covers(&cat(&[&ETH_IP, &PROTO_TCP]), &flow));
        assert!(!covers(&flow, &ETH_IP), "the filter is more specific than the flow");
        let net = [0x80, 0x00, (11 << 1) | 1, 8, 10, 0, 0, 0, 255, 0, 0, 0];
        let host = [0x80, 0x00, 11 << 1, 4, 10, 1, 2, 3];
        let other = [0x80, 0x00, 11 << 1, 4, 11, 1, 2, 3];
        assert!(covers(&cat(&[&ETH_IP, &net]), &cat(&[&ETH_IP, &host])));
        assert!(!covers(&cat(&[&ETH_IP, &net]), &cat(&[&ETH_IP, &other])));
        assert!(!covers(&cat(&[&ETH_IP, &host]), &cat(&[&ETH_IP, &net])));
    }
}
