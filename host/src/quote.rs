//! Pricing a cart by the active policies: pricing, then the coupon, then the
//! order rules. Orders run exactly this before taking any row lock; `POST
//! /api/v1/quotes` runs it alone, so a client can show what an order would
//! cost without writing anything.

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::{
    catalog, coupons,
    error::{Error, Result, RuleViolation},
    policy::{
        LoadedPolicy, PolicyError,
        bindings::{
            ApplyInput, CouponTerms, Line, LinePrice, OrderInput, PricedLine, PricingInput,
            UserFacts, Violation,
        },
        recorded::RecordedInputs,
        registry::Policies,
    },
};

/// Most lines a cart may have before any policy sees it; the order rules
/// may allow fewer.
pub const MAX_LINES: usize = 100;
/// Most units of one line before any policy sees it.
pub const MAX_QUANTITY: i64 = 1_000_000;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CartItem {
    pub product_id: i64,
    pub quantity: i64,
}

/// A priced line, as orders show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotedLine {
    pub product_id: i64,
    pub name: String,
    pub category: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub discount: i64,
    pub line_total: i64,
    /// Why the pricing policy took something off; empty when it did not.
    pub reason: String,
    /// Who took what off this line.
    pub adjustments: Vec<Adjustment>,
}

/// What one rule took off one line, in the order the rules ran: the base
/// pricing policy first. A line's adjustments add up to its `discount`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Adjustment {
    /// `base` (the slot's active policy) or `promotion`.
    pub source: AdjustmentSource,
    /// The promotion's id; `null` for the base.
    pub promotion_id: Option<i64>,
    /// `name@version` of the rule's component.
    pub policy: String,
    pub discount: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentSource {
    Base,
}

impl Adjustment {
    /// The base policy's adjustment of a line: none when it took nothing off.
    pub fn of_base(policy: &str, discount: i64, reason: &str) -> Vec<Adjustment> {
        if discount == 0 {
            return Vec::new();
        }
        vec![Adjustment {
            source: AdjustmentSource::Base,
            promotion_id: None,
            policy: policy.to_owned(),
            discount,
            reason: reason.to_owned(),
        }]
    }
}

/// `name@version` of each policy that priced a cart.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersions {
    pub pricing: String,
    pub coupon: String,
    pub order_rules: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Quote {
    pub user_id: i64,
    pub items: Vec<QuotedLine>,
    /// Sum of the lines' totals.
    pub subtotal: i64,
    /// Taken off by the coupon.
    pub discount: i64,
    pub total: i64,
    pub user_coupon_id: Option<i64>,
    pub policies: PolicyVersions,
    /// Hex SHA-256 of each policy's component, as orders store them.
    #[serde(skip)]
    pub policy_sha256: serde_json::Value,
    /// Exactly what the policies were asked, as orders record it for replays.
    #[serde(skip)]
    pub inputs: RecordedInputs,
}

/// Checks the cart's shape; the order rules judge the rest.
pub fn validate(items: &[CartItem]) -> Result<()> {
    if items.is_empty() || items.len() > MAX_LINES {
        return Err(Error::invalid(format!(
            "items must have 1-{MAX_LINES} lines"
        )));
    }
    for item in items {
        if item.product_id < 1 {
            return Err(Error::invalid("product_id must be a positive id"));
        }
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(Error::invalid(format!("quantity must be 1-{MAX_QUANTITY}")));
        }
    }
    Ok(())
}

/// Everything the policies may know about a cart, read before pricing.
pub struct PolicyInputs {
    pub user: UserFacts,
    pub lines: Vec<Line>,
    pub coupon: Option<(i64, CouponTerms)>,
    names: Vec<(String, String)>,
}

pub async fn gather(
    db: &PgPool,
    user_id: i64,
    items: &[CartItem],
    user_coupon_id: Option<i64>,
) -> Result<PolicyInputs> {
    validate(items)?;
    let user = crate::users::facts(db, user_id).await?;
    let ids: Vec<i64> = items.iter().map(|item| item.product_id).collect();
    let products = catalog::priced(db, &ids).await?;
    let mut lines = Vec::with_capacity(items.len());
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        let product = products
            .get(&item.product_id)
            .ok_or(Error::ProductNotFound(item.product_id))?;
        lines.push(Line {
            product_id: product.id as u64,
            name: product.name.clone(),
            category: product.category.clone(),
            unit_price: product.price,
            quantity: item.quantity as u32,
        });
        names.push((product.name.clone(), product.category.clone()));
    }
    let coupon = match user_coupon_id {
        Some(held) => Some((held, coupons::usable(db, user_id, held).await?)),
        None => None,
    };
    Ok(PolicyInputs {
        user,
        lines,
        coupon,
        names,
    })
}

/// Runs the policies: here when they are fast, else on a blocking thread
/// (see [`crate::policy::evaluate`]).
pub async fn evaluate(policies: Policies, inputs: PolicyInputs) -> Result<Quote> {
    let inline = policies.are_fast(inputs.coupon.is_some());
    crate::policy::evaluate(inline, move || evaluate_now(&policies, inputs))
        .await
        .map_err(Error::Internal)?
}

fn evaluate_now(policies: &Policies, inputs: PolicyInputs) -> Result<Quote> {
    let now = Utc::now().timestamp();
    // Each input is built with the slot's configuration as the policy will
    // see it, so that the order records exactly what was asked.
    let pricing = PricingInput {
        lines: inputs.lines,
        user: inputs.user,
        now,
        config: policies.pricing.config.clone(),
    };
    let prices = policies.pricing.price(pricing.clone())?;
    let priced = priced_lines(&policies.pricing, &pricing.lines, &prices)?;
    // Checked: a policy's prices may each fit and still overflow together;
    // such an answer is the policy's failure, never a wrapped total.
    let subtotal = priced
        .iter()
        .try_fold(0i64, |sum, line| sum.checked_add(line.line_total))
        .ok_or_else(|| PolicyError::Unavailable {
            slot: policies.pricing.info.slot,
            policy: policies.pricing.label(),
            reason: "answered invalidly: the lines' totals overflow".into(),
        })?;
    let (discount, apply) = match &inputs.coupon {
        None => (0, None),
        Some((_, terms)) => {
            let apply = ApplyInput {
                lines: priced.clone(),
                subtotal,
                user: inputs.user,
                coupon: terms.clone(),
                now,
                config: policies.coupon.config.clone(),
            };
            let decision = policies.coupon.apply_coupon(apply.clone())?;
            match decision {
                Ok(amount) if (0..=subtotal).contains(&amount) => (amount, Some(apply)),
                Ok(amount) => {
                    return Err(PolicyError::Unavailable {
                        slot: policies.coupon.info.slot,
                        policy: policies.coupon.label(),
                        reason: format!("answered invalidly: a discount of {amount} on {subtotal}"),
                    }
                    .into());
                }
                Err(reason) => return Err(Error::CouponNotApplicable(reason)),
            }
        }
    };
    let order = OrderInput {
        lines: priced.clone(),
        subtotal,
        coupon_discount: discount,
        total: subtotal - discount,
        user: inputs.user,
        coupon: inputs.coupon.as_ref().map(|(_, terms)| terms.clone()),
        now,
        config: policies.order_rules.config.clone(),
    };
    let violations = policies.order_rules.check_order(order.clone())?;
    if !violations.is_empty() {
        return Err(Error::OrderRejected(
            violations.into_iter().map(Into::into).collect(),
        ));
    }
    let items = priced
        .into_iter()
        .zip(prices)
        .zip(inputs.names)
        .map(|((line, price), (name, category))| QuotedLine {
            product_id: line.product_id as i64,
            name,
            category,
            quantity: i64::from(line.quantity),
            unit_price: line.unit_price,
            discount: line.discount,
            line_total: line.line_total,
            adjustments: Adjustment::of_base(
                &policies.pricing.label(),
                line.discount,
                &price.reason,
            ),
            reason: price.reason,
        })
        .collect();
    Ok(Quote {
        user_id: inputs.user.id as i64,
        items,
        subtotal,
        discount,
        total: subtotal - discount,
        user_coupon_id: inputs.coupon.as_ref().map(|(id, _)| *id),
        policies: PolicyVersions {
            pricing: policies.pricing.label(),
            coupon: policies.coupon.label(),
            order_rules: policies.order_rules.label(),
        },
        policy_sha256: serde_json::json!({
            "pricing": policies.pricing.info.sha256,
            "coupon": policies.coupon.info.sha256,
            "order_rules": policies.order_rules.info.sha256,
        }),
        inputs: RecordedInputs::new(pricing, apply, order),
    })
}

/// Checks the pricing policy's answer line by line: a policy that answers
/// nonsense is as unavailable as one that traps.
fn priced_lines(
    policy: &Arc<LoadedPolicy>,
    lines: &[Line],
    prices: &[LinePrice],
) -> Result<Vec<PricedLine>> {
    let invalid = |why: String| {
        Error::from(PolicyError::Unavailable {
            slot: policy.info.slot,
            policy: policy.label(),
            reason: format!("answered invalidly: {why}"),
        })
    };
    if prices.len() != lines.len() {
        return Err(invalid(format!(
            "{} prices for {} lines",
            prices.len(),
            lines.len()
        )));
    }
    lines
        .iter()
        .zip(prices)
        .map(|(line, price)| {
            if price.product_id != line.product_id {
                return Err(invalid(format!(
                    "line for product {} priced as {}",
                    line.product_id, price.product_id
                )));
            }
            let gross = price
                .unit_price
                .checked_mul(i64::from(line.quantity))
                .filter(|_| price.unit_price >= 0)
                .ok_or_else(|| {
                    invalid(format!(
                        "unit price {} of product {}",
                        price.unit_price, line.product_id
                    ))
                })?;
            if !(0..=gross).contains(&price.discount) {
                return Err(invalid(format!(
                    "discount {} on a line of {gross}",
                    price.discount
                )));
            }
            Ok(PricedLine {
                product_id: line.product_id,
                name: line.name.clone(),
                category: line.category.clone(),
                unit_price: price.unit_price,
                quantity: line.quantity,
                discount: price.discount,
                line_total: gross - price.discount,
            })
        })
        .collect()
}

impl From<Violation> for RuleViolation {
    fn from(violation: Violation) -> Self {
        Self {
            code: violation.code,
            message: violation.message,
        }
    }
}
