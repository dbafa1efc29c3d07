//! A process-wide interner of byte strings: each distinct blob is stored
//! once and named by a `u32`.
//!
//! The scale goal is 1,000 simulated switches holding the same 20,007
//! flows each. A flow table that stored its flows' bytes would hold 20
//! million copies of 20,007 distinct byte strings; with the interner every
//! switch keeps two `u32`s per flow and the bytes exist once.
//!
//! Sharded by hash so the switch tasks of a large fleet do not queue on
//! one lock; each shard is a std `Mutex` held only for a hash lookup and a
//! push, never across an `.await`. Blobs are never freed: a simulator run
//! interns a bounded set (the flows of one policy history).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

const SHARD_BITS: u32 = 4;
const SHARDS: usize = 1 << SHARD_BITS;

/// Interned blobs; see the module docs.
#[derive(Debug, Default)]
pub struct Interner {
    shards: [Shard; SHARDS],
}

#[derive(Debug, Default)]
struct Shard {
    /// blob → index in `blobs`.
    index: Mutex<HashMap<Arc<[u8]>, u32>>,
    /// Read far more often than written (every flow-stats record), hence a
    /// separate `RwLock` from the index.
    blobs: RwLock<Vec<Arc<[u8]>>>,
}

fn shard_of(bytes: &[u8]) -> usize {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    (h.finish() as usize) & (SHARDS - 1)
}

impl Interner {
    pub fn new() -> Interner {
        Interner::default()
    }

    /// The id of `bytes`, storing it on first sight.
    pub fn intern(&self, bytes: &[u8]) -> u32 {
        let s = shard_of(bytes);
        let shard = &self.shards[s];
        let mut index = shard.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&i) = index.get(bytes) {
            return (i << SHARD_BITS) | s as u32;
        }
        let blob: Arc<[u8]> = Arc::from(bytes);
        let mut blobs = shard.blobs.write().unwrap_or_else(|p| p.into_inner());
        let i = blobs.len() as u32;
        blobs.push(blob.clone());
        index.insert(blob, i);
        (i << SHARD_BITS) | s as u32
    }

    /// The id of `bytes` if it was ever interned (no insertion).
    pub fn lookup(&self, bytes: &[u8]) -> Option<u32> {
        let s = shard_of(bytes);
        let index = self.shards[s].index.lock().unwrap_or_else(|p| p.into_inner());
        index.get(bytes).map(|&i| (i << SHARD_BITS) | s as u32)
    }

    /// The bytes of an id returned by [`Interner::intern`].
    ///
    /// # Panics
    /// For an id this interner never returned.
    pub fn get(&self, id: u32) -> Arc<[u8]> {
        let shard = &self.shards[(id as usize) & (SHARDS - 1)];
        let blobs = shard.blobs.read().unwrap_or_else(|p| p.into_inner());
        blobs[(id >> SHARD_BITS) as usize].clone()
    }

    /// Number of distinct blobs and their total size in bytes.
    pub fn stats(&self) -> (usize, usize) {
        let mut n = 0;
        let mut bytes = 0;
        for s in &self.shards {
            let b = s.blobs.read().unwrap_or_else(|p| p.into_inner());
            n += b.len();
            bytes += b.iter().map(|x| x.len()).sum::<usize>();
        }
        (n, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_same_id() {
        let i = Interner::new();
        let a = i.intern(b"abc");
        let b = i.intern(b"abd");
        assert_ne!(a, b);
        assert_eq!(i.intern(b"abc"), a);
        assert_eq!(&*i.get(a), b"abc");
        assert_eq!(i.lookup(b"abd"), Some(b));
        assert_eq!(i.lookup(b"zzz"), None);
        assert_eq!(i.stats(), (2, 6));
    }
}
