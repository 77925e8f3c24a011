//! The table of the coordinators one shard hosts, by the index of the
//! internal log partition each coordinates: the group coordinators
//! ([`crate::groups::table::GroupTable`]) and the transaction coordinators
//! ([`crate::txn::table::TxnTable`]) are each one of these.
//!
//! Lives on: the shard that owns the partitions; the shard holds the
//! tables. This module names nothing of the shard. Methods other than
//! [`CoordinatorTable::get_or_open`] are synchronous, so no borrow of the
//! table is held across an await.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;

use corelog_coordination::codes;

/// Coordinators of type `C` by partition index.
pub struct CoordinatorTable<C> {
    open: RefCell<HashMap<u32, Rc<C>>>,
    /// Admits one coordinator opening at a time, so two first requests for
    /// one partition do not open its log twice.
    opening: glommio::sync::Semaphore,
}

impl<C> Default for CoordinatorTable<C> {
    fn default() -> Self {
        CoordinatorTable {
            open: RefCell::new(HashMap::new()),
            opening: glommio::sync::Semaphore::new(1),
        }
    }
}

impl<C> CoordinatorTable<C> {
    pub fn get(&self, index: u32) -> Option<Rc<C>> {
        self.open.borrow().get(&index).cloned()
    }

    pub fn insert(&self, index: u32, coordinator: Rc<C>) {
        self.open.borrow_mut().insert(index, coordinator);
    }

    pub fn remove(&self, index: u32) -> Option<Rc<C>> {
        self.open.borrow_mut().remove(&index)
    }

    /// The indexes of the open coordinators.
    pub fn indexes(&self) -> Vec<u32> {
        self.open.borrow().keys().copied().collect()
    }

    /// Empties the table (the shard stops), handing back its coordinators
    /// for the caller to close.
    pub fn take_all(&self) -> Vec<Rc<C>> {
        self.open.borrow_mut().drain().map(|(_, c)| c).collect()
    }

    /// The sum of `count` over the open coordinators.
    pub fn sum_by(&self, count: impl Fn(&C) -> usize) -> usize {
        self.open.borrow().values().map(|c| count(c)).sum()
    }

    /// The coordinator of partition `index`, opened by `open` and kept
    /// unless it is open already. One opening at a time per table: a
    /// request that waited for another's opening finds its coordinator.
    /// COORDINATOR_NOT_AVAILABLE if the shard is stopping (the semaphore
    /// closed), else `open`'s error code.
    pub async fn get_or_open<F, Fut>(&self, index: u32, open: F) -> Result<Rc<C>, i16>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Rc<C>, i16>>,
    {
        if let Some(c) = self.get(index) {
            return Ok(c);
        }
        let _permit = self
            .opening
            .acquire_permit(1)
            .await
            .map_err(|_| codes::COORDINATOR_NOT_AVAILABLE)?;
        if let Some(c) = self.get(index) {
            return Ok(c);
        }
        let c = open().await?;
        self.insert(index, c.clone());
        Ok(c)
    }
}
