//! The standard policies' logic, shared so that a custom policy can change one
//! rule and keep the rest. The 1.1.0 SDK includes this file too: it names
//! only types every version has.

use alloc::string::String;
use alloc::vec::Vec;

use crate::{ApplyInput, CouponTerms, DiscountKind, Line, LinePrice, Money, Timestamp};

/// Every line at its list price, nothing taken off.
pub fn list_prices(lines: &[Line]) -> Vec<LinePrice> {
    lines
        .iter()
        .map(|line| LinePrice {
            product_id: line.product_id,
            unit_price: line.unit_price,
            discount: 0,
            reason: String::new(),
        })
        .collect()
}

/// Applies a coupon by its own terms:
/// - `NOT_VALID_NOW` unless `valid_from <= now < valid_until` (checked first:
///   a coupon outside its window says nothing about the cart);
/// - `BELOW_MIN_ORDER_AMOUNT` when `subtotal < min_order_amount`;
/// - otherwise [`coupon_discount`].
pub fn standard_apply(input: &ApplyInput) -> Result<Money, String> {
    apply_terms(&input.coupon, input.subtotal, input.now)
}

/// [`standard_apply`] on its parts: the coupon's terms, the subtotal, `now`.
pub fn apply_terms(terms: &CouponTerms, subtotal: Money, now: Timestamp) -> Result<Money, String> {
    if now < terms.valid_from || now >= terms.valid_until {
        return Err("NOT_VALID_NOW".into());
    }
    if subtotal < terms.min_order_amount {
        return Err("BELOW_MIN_ORDER_AMOUNT".into());
    }
    Ok(coupon_discount(terms, subtotal))
}

/// What the coupon takes off `subtotal`, always within `0..=subtotal`:
/// fixed takes `value`; percent takes `subtotal * value / 100` rounded toward
/// zero, at most `max_amount` when it is set.
pub fn coupon_discount(terms: &CouponTerms, subtotal: Money) -> Money {
    let subtotal = subtotal.max(0);
    let amount = match terms.kind {
        DiscountKind::Fixed => terms.value,
        DiscountKind::Percent => {
            // In i128 the product cannot overflow; integer `/` truncates toward zero.
            let percent = i128::from(subtotal) * i128::from(terms.value) / 100;
            let percent = percent.clamp(0, i128::from(subtotal));
            let percent = Money::try_from(percent).unwrap_or(subtotal);
            terms.max_amount.map_or(percent, |max| percent.min(max))
        }
    };
    amount.clamp(0, subtotal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(kind: DiscountKind, value: i64, max_amount: Option<i64>) -> CouponTerms {
        CouponTerms {
            coupon_id: 1,
            name: "test".into(),
            kind,
            value,
            max_amount,
            min_order_amount: 10_000,
            valid_from: 1_000,
            valid_until: 2_000,
        }
    }

    fn apply(terms: CouponTerms, subtotal: Money, now: i64) -> Result<Money, String> {
        apply_terms(&terms, subtotal, now)
    }

    #[test]
    fn percent_rounds_toward_zero() {
        assert_eq!(
            coupon_discount(&terms(DiscountKind::Percent, 10, None), 1_999),
            199
        );
        assert_eq!(
            coupon_discount(&terms(DiscountKind::Percent, 33, None), 10_001),
            3_300
        );
    }

    #[test]
    fn percent_is_capped_by_max_amount() {
        let t = terms(DiscountKind::Percent, 10, Some(5_000));
        assert_eq!(coupon_discount(&t, 49_999), 4_999);
        assert_eq!(coupon_discount(&t, 100_000), 5_000);
    }

    #[test]
    fn fixed_never_exceeds_the_subtotal() {
        let t = terms(DiscountKind::Fixed, 3_000, None);
        assert_eq!(coupon_discount(&t, 10_000), 3_000);
        assert_eq!(coupon_discount(&t, 2_500), 2_500);
    }

    #[test]
    fn nonsense_terms_stay_within_zero_and_subtotal() {
        assert_eq!(
            coupon_discount(&terms(DiscountKind::Fixed, -5, None), 100),
            0
        );
        assert_eq!(
            coupon_discount(&terms(DiscountKind::Percent, 150, None), 100),
            100
        );
        assert_eq!(
            coupon_discount(&terms(DiscountKind::Percent, i64::MAX, None), i64::MAX),
            i64::MAX
        );
        assert_eq!(
            coupon_discount(&terms(DiscountKind::Percent, 10, Some(-1)), 100),
            0
        );
    }

    #[test]
    fn validity_window_is_half_open() {
        let t = || terms(DiscountKind::Fixed, 1_000, None);
        assert_eq!(apply(t(), 10_000, 999), Err("NOT_VALID_NOW".into()));
        assert_eq!(apply(t(), 10_000, 1_000), Ok(1_000));
        assert_eq!(apply(t(), 10_000, 1_999), Ok(1_000));
        assert_eq!(apply(t(), 10_000, 2_000), Err("NOT_VALID_NOW".into()));
    }

    #[test]
    fn min_order_amount_is_inclusive() {
        let t = || terms(DiscountKind::Fixed, 1_000, None);
        assert_eq!(
            apply(t(), 9_999, 1_500),
            Err("BELOW_MIN_ORDER_AMOUNT".into())
        );
        assert_eq!(apply(t(), 10_000, 1_500), Ok(1_000));
    }

    #[test]
    fn list_prices_take_nothing_off() {
        let lines = [Line {
            product_id: 3,
            name: "pen".into(),
            category: "office".into(),
            unit_price: 1_500,
            quantity: 4,
        }];
        let priced = list_prices(&lines);
        assert_eq!(priced.len(), 1);
        assert_eq!(
            (
                priced[0].product_id,
                priced[0].unit_price,
                priced[0].discount
            ),
            (3, 1_500, 0)
        );
        assert!(priced[0].reason.is_empty());
    }
}
