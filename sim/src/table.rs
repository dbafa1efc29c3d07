//! One switch's flow table (all its OpenFlow tables), stored as pairs of
//! interned ids.
//!
//! ```text
//! identity blob: table u8 | priority u16 | canonical OXM match     (what OpenFlow keys a flow by)
//! content blob:  cookie u64 | instructions                          (what an ADD sets)
//! table:         Vec<(identity id, content id)>, sorted by identity id
//! ```
//!
//! Eight bytes per flow per switch. Identity ids are handed out in the
//! order the fabric first sees them, and a controller sends every switch
//! its flows in the same order, so adds to a fresh table arrive in
//! ascending id order and append; a lookup is a binary search.

use std::borrow::Cow;

use crate::intern::Interner;
use crate::oxm::{self, MatchError};

/// `OFPTT_ALL`.
pub const TABLE_ALL: u8 = 0xff;

/// Flow-mod commands (`ofp_flow_mod_command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Modify,
    ModifyStrict,
    Delete,
    DeleteStrict,
}

impl Command {
    pub fn from_wire(v: u8) -> Option<Command> {
        Some(match v {
            0 => Command::Add,
            1 => Command::Modify,
            2 => Command::ModifyStrict,
            3 => Command::Delete,
            4 => Command::DeleteStrict,
            _ => return None,
        })
    }
}

/// An OpenFlow error to send back: (type, code).
pub type OfError = (u16, u16);
pub const OFPET_BAD_REQUEST: u16 = 1;
pub const OFPBRC_BAD_LEN: u16 = 6;
pub const OFPET_BAD_MATCH: u16 = 4;
pub const OFPBMC_BAD_TYPE: u16 = 0;
pub const OFPET_FLOW_MOD_FAILED: u16 = 5;
pub const OFPFMFC_BAD_TABLE_ID: u16 = 2;
pub const OFPFMFC_BAD_COMMAND: u16 = 6;

/// A decoded `OFPT_FLOW_MOD` body (after the 8-byte header), match
/// already canonical.
#[derive(Debug, Clone)]
pub struct FlowModMsg<'a> {
    pub cookie: u64,
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: Command,
    pub priority: u16,
    pub out_port: u32,
    pub out_group: u32,
    pub flags: u16,
    pub oxm: Cow<'a, [u8]>,
    pub instructions: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6], b[at + 7]])
}

/// Take an `ofp_match` (type, length, OXM, padding to 8) off `b`: returns
/// the canonical OXM and the bytes after the padding.
pub fn split_match(b: &[u8]) -> Result<(Cow<'_, [u8]>, &[u8]), OfError> {
    if b.len() < 4 {
        return Err((OFPET_BAD_REQUEST, OFPBRC_BAD_LEN));
    }
    if be16(b, 0) != 1 {
        return Err((OFPET_BAD_MATCH, OFPBMC_BAD_TYPE));
    }
    let len = usize::from(be16(b, 2));
    let padded = len.div_ceil(8) * 8;
    if len < 4 || b.len() < padded {
        return Err((OFPET_BAD_REQUEST, OFPBRC_BAD_LEN));
    }
    let oxm = oxm::canonical(&b[4..len]).map_err(|e: MatchError| (OFPET_BAD_MATCH, e.code()))?;
    Ok((oxm, &b[padded..]))
}

/// Decode a flow-mod body (the message without its 8-byte header).
///
/// # Errors
/// The OpenFlow error OVS would send for the same input, roughly: a short
/// body, a bad match, an unknown command.
pub fn parse_flow_mod(body: &[u8]) -> Result<FlowModMsg<'_>, OfError> {
    if body.len() < 40 {
        return Err((OFPET_BAD_REQUEST, OFPBRC_BAD_LEN));
    }
    let command = Command::from_wire(body[17]).ok_or((OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_COMMAND))?;
    let (oxm, instructions) = split_match(&body[40..])?;
    let fm = FlowModMsg {
        cookie: be64(body, 0),
        cookie_mask: be64(body, 8),
        table_id: body[16],
        command,
        priority: be16(body, 22),
        out_port: be32(body, 28),
        out_group: be32(body, 32),
        flags: be16(body, 36),
        oxm,
        instructions,
    };
    if fm.table_id == TABLE_ALL && matches!(command, Command::Add | Command::Modify | Command::ModifyStrict) {
        return Err((OFPET_FLOW_MOD_FAILED, OFPFMFC_BAD_TABLE_ID));
    }
    Ok(fm)
}

/// A flow-mod reduced to ids, ready to apply (now, or at a bundle commit).
/// Adds are interned when they arrive, so a bundle of 20,000 adds costs
/// 12 bytes each until it is committed.
#[derive(Debug, Clone)]
pub enum Op {
    Add {
        ident: u32,
        content: u32,
        cookie: u64,
    },
    /// Strict delete in one table; `ident` is `None` when no switch ever
    /// held that identity (nothing to delete).
    DeleteStrict {
        ident: Option<u32>,
        cookie: u64,
        mask: u64,
    },
    /// Everything else (non-strict, all-table strict deletes, modifies):
    /// rare, kept whole.
    Other(Box<OwnedMod>),
}

#[derive(Debug, Clone)]
pub struct OwnedMod {
    pub command: Command,
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub oxm: Vec<u8>,
    pub instructions: Vec<u8>,
}

fn ident_blob(scratch: &mut Vec<u8>, table: u8, priority: u16, oxm: &[u8]) {
    scratch.clear();
    scratch.push(table);
    scratch.extend_from_slice(&priority.to_be_bytes());
    scratch.extend_from_slice(oxm);
}

/// Turn a decoded flow-mod into an [`Op`], interning what an add needs.
pub fn to_op(interner: &Interner, scratch: &mut Vec<u8>, fm: &FlowModMsg<'_>) -> Op {
    match fm.command {
        Command::Add => {
            ident_blob(scratch, fm.table_id, fm.priority, &fm.oxm);
            let ident = interner.intern(scratch);
            scratch.clear();
            scratch.extend_from_slice(&fm.cookie.to_be_bytes());
            scratch.extend_from_slice(fm.instructions);
            let content = interner.intern(scratch);
            Op::Add { ident, content, cookie: fm.cookie }
        }
        Command::DeleteStrict if fm.table_id != TABLE_ALL => {
            ident_blob(scratch, fm.table_id, fm.priority, &fm.oxm);
            Op::DeleteStrict { ident: interner.lookup(scratch), cookie: fm.cookie, mask: fm.cookie_mask }
        }
        command => Op::Other(Box::new(OwnedMod {
            command,
            table_id: fm.table_id,
            priority: fm.priority,
            cookie: fm.cookie,
            cookie_mask: fm.cookie_mask,
            oxm: fm.oxm.to_vec(),
            instructions: fm.instructions.to_vec(),
        })),
    }
}

/// One flow, decoded from its interned blobs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimFlow {
    pub table: u8,
    pub priority: u16,
    pub cookie: u64,
    /// Canonical OXM bytes.
    pub oxm: Vec<u8>,
    pub instructions: Vec<u8>,
}

/// See the module docs.
#[derive(Debug, Default, Clone)]
pub struct FlowTable {
    flows: Vec<(u32, u32)>,
}

fn cookie_of(content: &[u8]) -> u64 {
    be64(content, 0)
}

impl FlowTable {
    pub fn new() -> FlowTable {
        FlowTable::default()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Bytes this table holds (not counting the shared blobs).
    pub fn heap_bytes(&self) -> usize {
        self.flows.capacity() * std::mem::size_of::<(u32, u32)>()
    }

    fn insert(&mut self, ident: u32, content: u32) {
        match self.flows.last() {
            Some(&(last, _)) if last >= ident => match self.flows.binary_search_by_key(&ident, |&(i, _)| i) {
                Ok(at) => self.flows[at].1 = content,
                Err(at) => {
                    self.grow();
                    self.flows.insert(at, (ident, content));
                }
            },
            _ => {
                self.grow();
                self.flows.push((ident, content));
            }
        }
    }

    /// Grow by an eighth rather than doubling: 1,000 tables of 20,007
    /// flows would otherwise carry up to 60% slack.
    fn grow(&mut self) {
        if self.flows.len() == self.flows.capacity() {
            self.flows.reserve_exact(self.flows.len() / 8 + 16);
        }
    }

    /// Apply one op.
    pub fn apply(&mut self, interner: &Interner, op: &Op) {
        match op {
            Op::Add { ident, content, .. } => self.insert(*ident, *content),
            Op::DeleteStrict { ident: Some(ident), cookie, mask } => {
                if let Ok(at) = self.flows.binary_search_by_key(ident, |&(i, _)| i) {
                    let c = cookie_of(&interner.get(self.flows[at].1));
                    if c & mask == cookie & mask {
                        self.flows.remove(at);
                    }
                }
            }
            Op::DeleteStrict { ident: None, .. } => {}
            Op::Other(m) => self.apply_other(interner, m),
        }
    }

    fn apply_other(&mut self, interner: &Interner, m: &OwnedMod) {
        let strict = matches!(m.command, Command::DeleteStrict | Command::ModifyStrict);
        let selected = |ident: &[u8], content: &[u8]| {
            let (table, prio, oxm) = (ident[0], be16(ident, 1), &ident[3..]);
            (m.table_id == TABLE_ALL || m.table_id == table)
                && cookie_of(content) & m.cookie_mask == m.cookie & m.cookie_mask
                && if strict { prio == m.priority && oxm == &m.oxm[..] } else { oxm::covers(&m.oxm, oxm) }
        };
        match m.command {
            Command::Delete | Command::DeleteStrict => {
                self.flows.retain(|&(i, c)| !selected(&interner.get(i), &interner.get(c)));
            }
            Command::Modify | Command::ModifyStrict => {
                // OpenFlow 1.3: instructions change, cookie and counters stay;
                // nothing is added when nothing matches.
                for f in &mut self.flows {
                    let content = interner.get(f.1);
                    if selected(&interner.get(f.0), &content) {
                        let mut blob = content[..8].to_vec();
                        blob.extend_from_slice(&m.instructions);
                        f.1 = interner.intern(&blob);
                    }
                }
            }
            Command::Add => {}
        }
    }

    /// Call `f` with (identity blob, content blob) of every flow in table
    /// `table` (or all, for [`TABLE_ALL`]) whose cookie matches under
    /// `mask` and whose match falls under `filter` (non-strict).
    pub fn select(
        &self,
        interner: &Interner,
        table: u8,
        cookie: u64,
        mask: u64,
        filter: &[u8],
        mut f: impl FnMut(&[u8], &[u8]),
    ) {
        for &(i, c) in &self.flows {
            let ident = interner.get(i);
            if table != TABLE_ALL && ident[0] != table {
                continue;
            }
            let content = interner.get(c);
            if cookie_of(&content) & mask != cookie & mask {
                continue;
            }
            if !oxm::covers(filter, &ident[3..]) {
                continue;
            }
            f(&ident, &content);
        }
    }

    /// Every flow, decoded, sorted.
    pub fn flows(&self, interner: &Interner) -> Vec<SimFlow> {
        let mut v = Vec::with_capacity(self.flows.len());
        self.select(interner, TABLE_ALL, 0, 0, &[], |ident, content| {
            v.push(SimFlow {
                table: ident[0],
                priority: be16(ident, 1),
                cookie: cookie_of(content),
                oxm: ident[3..].to_vec(),
                instructions: content[8..].to_vec(),
            })
        });
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETH_IP: [u8; 6] = [0x80, 0x00, 5 << 1, 2, 0x08, 0x00];
    const PROTO_TCP: [u8; 5] = [0x80, 0x00, 10 << 1, 1, 6];

    fn src(last: u8) -> Vec<u8> {
        [&ETH_IP[..], &PROTO_TCP, &[0x80, 0x00, 11 << 1, 4, 10, 0, 0, last]].concat()
    }

    fn fm(command: Command, prio: u16, cookie: u64, mask: u64, oxm: &[u8]) -> FlowModMsg<'_> {
        FlowModMsg {
            cookie,
            cookie_mask: mask,
            table_id: 0,
            command,
            priority: prio,
            out_port: 0xffff_ffff,
            out_group: 0xffff_ffff,
            flags: 0,
            oxm: Cow::Borrowed(oxm),
            instructions: &[],
        }
    }

    fn run(t: &mut FlowTable, i: &Interner, m: FlowModMsg<'_>) {
        let mut s = Vec::new();
        let op = to_op(i, &mut s, &m);
        t.apply(i, &op);
    }

    #[test]
    fn add_replaces_same_match_and_priority() {
        let i = Interner::new();
        let mut t = FlowTable::new();
        run(&mut t, &i, fm(Command::Add, 10, 1, 0, &src(1)));
        run(&mut t, &i, fm(Command::Add, 10, 2, 0, &src(1)));
        run(&mut t, &i, fm(Command::Add, 11, 3, 0, &src(1)));
        let f = t.flows(&i);
        assert_eq!(f.iter().map(|f| (f.priority, f.cookie)).collect::<Vec<_>>(), vec![(10, 2), (11, 3)]);
    }

    #[test]
    fn strict_delete_needs_priority_and_cookie() {
        let i = Interner::new();
        let mut t = FlowTable::new();
        run(&mut t, &i, fm(Command::Add, 10, 0x25, 0, &src(1)));
        run(&mut t, &i, fm(Command::DeleteStrict, 11, 0x25, u64::MAX, &src(1)));
        run(&mut t, &i, fm(Command::DeleteStrict, 10, 0x26, u64::MAX, &src(1)));
        assert_eq!(t.len(), 1);
        run(&mut t, &i, fm(Command::DeleteStrict, 10, 0x26, 0, &src(1)));
        assert_eq!(t.len(), 0, "cookie mask 0 ignores the cookie");
    }

    #[test]
    fn non_strict_delete_covers_more_specific_flows() {
        let i = Interner::new();
        let mut t = FlowTable::new();
        for n in 1..=5 {
            run(&mut t, &i, fm(Command::Add, n.into(), 0x100 + u64::from(n), 0, &src(n)));
        }
        run(&mut t, &i, fm(Command::Add, 9, 0x200, 0, &ETH_IP));
        run(&mut t, &i, fm(Command::Delete, 0, 0x100, 0xf00, &[&ETH_IP[..], &PROTO_TCP].concat()));
        let left: Vec<u64> = t.flows(&i).iter().map(|f| f.cookie).collect();
        assert_eq!(left, vec![0x200]);
    }

    #[test]
    fn out_of_order_inserts_stay_sorted() {
        let i = Interner::new();
        let mut t = FlowTable::new();
        for n in [5u8, 1, 3, 2, 4, 3] {
            run(&mut t, &i, fm(Command::Add, 1, u64::from(n), 0, &src(n)));
        }
        assert_eq!(t.len(), 5);
        assert!(t.flows.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
