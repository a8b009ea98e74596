//! The standard `coupon` policy: a coupon takes off what its terms say, and
//! anyone may be issued one (the host checks quantity and validity itself).
#![no_std]

use commerce_policy_sdk::prelude::*;

struct Standard;

impl Coupon for Standard {
    fn apply(input: ApplyInput) -> Result<Money, String> {
        standard_apply(&input)
    }

    fn can_issue(_input: IssueInput) -> Result<(), String> {
        Ok(())
    }
}

export_coupon!(Standard);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk::testing::coupon_cases::<Standard>(env!("CARGO_MANIFEST_DIR"));
}
