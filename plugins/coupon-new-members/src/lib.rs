//! Example `coupon` policy: only users who joined within the last `days` days
//! (config, default 7) may be issued the coupon. Applying it follows the
//! coupon's own terms, as the standard policy does.
#![no_std]

use commerce_policy_sdk::prelude::*;

declare_config! {
    /// How many days after joining a user may be issued the coupon (a whole number).
    days = "7",
}

/// When `days` is not a whole number.
const DEFAULT_DAYS: u32 = 7;
const SECONDS_PER_DAY: i64 = 86_400;

struct NewMembers;

impl Coupon for NewMembers {
    fn apply(input: ApplyInput) -> Result<Money, String> {
        standard_apply(&input)
    }

    /// A user who joined exactly `days` days ago still counts as new.
    fn can_issue(input: IssueInput) -> Result<(), String> {
        let window = i64::from(window_days(&input.config)) * SECONDS_PER_DAY;
        if input.now.saturating_sub(input.user.created_at) <= window {
            Ok(())
        } else {
            Err("NEW_MEMBERS_ONLY".into())
        }
    }
}

/// `days` from the config. A bad value must not lock everyone out, so it falls
/// back to the default, and the log tells the operator.
fn window_days(config: &Config) -> u32 {
    let text = CONFIG.get(config, "days");
    text.trim().parse().unwrap_or_else(|_| {
        log(
            LogLevel::Warn,
            &format!(
                "config days = \"{text}\" is not a whole number of days; using {DEFAULT_DAYS}"
            ),
        );
        DEFAULT_DAYS
    })
}

export_coupon!(NewMembers);

#[cfg(test)]
#[test]
fn cases() {
    commerce_policy_sdk::testing::coupon_cases::<NewMembers>(env!("CARGO_MANIFEST_DIR"));
}
