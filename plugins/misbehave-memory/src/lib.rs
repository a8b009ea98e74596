//! Test component: a `pricing` policy that allocates until the host's memory
//! limit stops it (the failed allocation panics, which traps).
#![no_std]

use commerce_policy_sdk::prelude::*;

const CHUNK: usize = 1 << 20;
const PAGE: usize = 64 * 1024;

struct Memory;

impl Pricing for Memory {
    fn price(_input: PricingInput) -> Vec<LinePrice> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            // Write to every wasm page so the memory is really used, and keep
            // each chunk, so nothing can be freed or optimized away.
            for byte in chunk.iter_mut().step_by(PAGE) {
                *byte = 1;
            }
            hoard.push(core::hint::black_box(chunk));
        }
    }
}

export_pricing!(Memory);
