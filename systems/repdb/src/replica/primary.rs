//! Primary-copy: the Zab leader executes every update transaction, one after another, and
//! propagates each result (its write set) through the total order.
//!
//! The primary must execute against everything it has already proposed, not only what is
//! committed, or two transactions proposed back to back would both read the older state.
//! The overlay holds its proposed but uncommitted values, each tagged with its proposal's
//! zxid; a commit retires the entries it covers, and losing leadership drops the overlay
//! (the proposals may be lost: their clients learn it as an unknown outcome).

use crate::exec::View;
use crate::proto::{AbortReason, Key, TxnId, Val};
use crate::store::{elements_of, Store};
use std::collections::BTreeMap;
use zab::Zxid;

#[derive(Debug, Default)]
pub(crate) struct Overlay {
    values: BTreeMap<Key, (Val, Zxid)>,
    /// Transactions proposed and not yet committed, so a duplicate id is refused before it
    /// taints the overlay.
    proposed: BTreeMap<TxnId, Zxid>,
}

impl Overlay {
    pub fn is_proposed(&self, id: TxnId) -> bool {
        self.proposed.contains_key(&id)
    }

    pub fn record(&mut self, id: TxnId, zxid: Zxid, finals: BTreeMap<Key, Val>) {
        for (key, val) in finals {
            self.values.insert(key, (val, zxid));
        }
        self.proposed.insert(id, zxid);
    }

    /// Everything through `zxid` is committed and in the store.
    pub fn committed_through(&mut self, zxid: Zxid) {
        self.values.retain(|_, (_, z)| *z > zxid);
        self.proposed.retain(|_, z| *z > zxid);
    }

    pub fn clear(&mut self) {
        self.values.clear();
        self.proposed.clear();
    }

    pub fn view<'a>(&'a self, store: &'a Store) -> OverlayView<'a> {
        OverlayView {
            store,
            overlay: self,
        }
    }
}

/// The committed store with the primary's proposals on top.
pub(crate) struct OverlayView<'a> {
    store: &'a Store,
    overlay: &'a Overlay,
}

impl View for OverlayView<'_> {
    fn get(&self, key: Key) -> Result<Option<&Val>, AbortReason> {
        Ok(match self.overlay.values.get(&key) {
            Some((val, _)) => Some(val),
            None => self.store.latest(key),
        })
    }

    fn key_count(&self) -> usize {
        let new = self
            .overlay
            .values
            .keys()
            .filter(|k| !self.store.contains(**k))
            .count();
        self.store.len() + new
    }

    fn elements(&self) -> usize {
        let growth: usize = self
            .overlay
            .values
            .iter()
            .map(|(k, (val, _))| {
                let before = self.store.latest(*k).map_or(0, elements_of);
                elements_of(val).saturating_sub(before)
            })
            .sum();
        self.store.elements() + growth
    }
}
