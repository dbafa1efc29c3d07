//! The policy as one value: what the API publishes and every switch
//! session converges to.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{Exemption, ExemptionId};

/// Every exemption at one moment, with a version that grows by one per
/// change. Shared as `Arc<Snapshot>`; a change makes a new snapshot.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Grows by one with every published change; sessions report the
    /// version a switch has confirmed (barrier reply).
    pub version: u64,
    /// The exemptions, by id.
    pub exemptions: Arc<BTreeMap<ExemptionId, Exemption>>,
}

impl Snapshot {
    /// A snapshot of a list of exemptions at version 1.
    pub fn from_list(list: Vec<Exemption>) -> Snapshot {
        Snapshot { version: 1, exemptions: Arc::new(list.into_iter().map(|e| (e.id, e)).collect()) }
    }

    /// The next snapshot with one exemption added.
    pub fn with(&self, ex: Exemption) -> Snapshot {
        let mut map = (*self.exemptions).clone();
        map.insert(ex.id, ex);
        Snapshot { version: self.version + 1, exemptions: Arc::new(map) }
    }

    /// The next snapshot with one exemption removed.
    pub fn without(&self, id: ExemptionId) -> Snapshot {
        let mut map = (*self.exemptions).clone();
        map.remove(&id);
        Snapshot { version: self.version + 1, exemptions: Arc::new(map) }
    }
}
