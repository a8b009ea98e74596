//! Test component: a `pricing` policy whose answer is small in its own
//! memory and huge when copied: every line's `reason` points at the same
//! 8 MiB buffer. A host that copied each string while reading the answer
//! would allocate 8 MiB per line before it could check anything; the host
//! must measure the answer where it lies and refuse it
//! (`POLICY_UNAVAILABLE`) without copying.
#![no_std]
// Aliasing one buffer between strings takes `String::from_raw_parts`.
#![allow(unsafe_code)]

extern crate alloc;

use alloc::vec;
use commerce_policy_sdk::prelude::*;

const REASON_BYTES: usize = 8 << 20;

struct AliasedReasons;

impl Pricing for AliasedReasons {
    fn price(input: PricingInput) -> Vec<LinePrice> {
        let mut buffer = core::mem::ManuallyDrop::new(vec![b'x'; REASON_BYTES]);
        let ptr = buffer.as_mut_ptr();
        input
            .lines
            .iter()
            .map(|line| LinePrice {
                product_id: line.product_id,
                unit_price: line.unit_price,
                discount: 0,
                // SAFETY: the buffer is never freed (ManuallyDrop) and holds
                // ASCII. The strings alias it, which is the point: the
                // answer is lowered as so many (pointer, length) pairs into
                // one buffer, and the host never hands it back to be freed
                // (no post-return for a store it drops).
                reason: unsafe { String::from_raw_parts(ptr, REASON_BYTES, REASON_BYTES) },
            })
            .collect()
    }
}

export_pricing!(AliasedReasons);
