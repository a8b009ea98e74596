//! The loaded versions of each slot, swapped atomically.
//!
//! A request takes the `Arc` of the version it starts with and finishes on
//! it, whatever is swapped meanwhile; the previous version stays loaded so a
//! rollback is instant.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{LoadedPolicy, Slot};

/// One slot's active version and the one a rollback returns to.
#[derive(Clone)]
pub struct SlotState {
    pub active: Arc<LoadedPolicy>,
    pub previous: Option<Arc<LoadedPolicy>>,
}

pub struct Registry {
    pub environment: String,
    slots: [ArcSwap<SlotState>; 3],
}

/// The versions one request evaluates with, taken once at its start.
#[derive(Clone)]
pub struct Policies {
    pub pricing: Arc<LoadedPolicy>,
    pub coupon: Arc<LoadedPolicy>,
    pub order_rules: Arc<LoadedPolicy>,
}

impl Policies {
    /// Whether the policies an order asks (the coupon's only when it uses
    /// one) may all be called on the asking task's thread.
    pub fn are_fast(&self, with_coupon: bool) -> bool {
        self.pricing.is_fast()
            && self.order_rules.is_fast()
            && (!with_coupon || self.coupon.is_fast())
    }
}

impl Registry {
    pub fn new(
        environment: String,
        pricing: SlotState,
        coupon: SlotState,
        order_rules: SlotState,
    ) -> Self {
        Self {
            environment,
            slots: [
                ArcSwap::from_pointee(pricing),
                ArcSwap::from_pointee(coupon),
                ArcSwap::from_pointee(order_rules),
            ],
        }
    }

    pub fn slot(&self, slot: Slot) -> Arc<SlotState> {
        self.slots[slot.index()].load_full()
    }

    pub fn active(&self, slot: Slot) -> Arc<LoadedPolicy> {
        self.slots[slot.index()].load().active.clone()
    }

    pub fn snapshot(&self) -> Policies {
        Policies {
            pricing: self.active(Slot::Pricing),
            coupon: self.active(Slot::Coupon),
            order_rules: self.active(Slot::OrderRules),
        }
    }

    pub fn install(&self, slot: Slot, state: SlotState) {
        self.slots[slot.index()].store(Arc::new(state));
    }
}
