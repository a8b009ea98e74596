//! One loaded version of a policy: compiled once, instantiated per call.

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use wasmtime::{Store, component::Component};

use super::{
    PolicyError, Slot,
    bindings::{self, ApplyInput, IssueInput, LinePrice, OrderInput, PricingInput, Violation},
    engine::{self, CallReport, CallState, PolicyEngine},
};

/// The component, pre-linked against the slot's world.
enum Prepared {
    Pricing(bindings::pricing::PricingPolicyPre<CallState>),
    Coupon(bindings::coupon::CouponPolicyPre<CallState>),
    OrderRules(bindings::order_rules::OrderRulesPolicyPre<CallState>),
}

/// What an operator sees of a loaded version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyInfo {
    pub slot: Slot,
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of the component's bytes.
    pub sha256: String,
    pub loaded_at: DateTime<Utc>,
    /// Where it came from: `manifest:<file>` or `upload`.
    pub source: String,
}

pub struct LoadedPolicy {
    pub info: PolicyInfo,
    /// The slot's configuration from the manifest.
    pub config: Vec<(String, String)>,
    /// Row id of this activation in `policy_versions`.
    pub activation: i64,
    pub component: Component,
    prepared: Prepared,
}

impl LoadedPolicy {
    /// Checks that `component` implements `slot`'s world and imports nothing
    /// but the host interface, and pre-links it.
    pub fn prepare(
        slot: Slot,
        component: Component,
        info: PolicyInfo,
        config: Vec<(String, String)>,
        activation: i64,
    ) -> Result<Arc<Self>, PolicyError> {
        let prepared = prepare(slot, &component)?;
        Ok(Arc::new(Self {
            info,
            config,
            activation,
            component,
            prepared,
        }))
    }

    /// `name@version`, as orders record it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.info.name, self.info.version)
    }

    /// Runs one call in a fresh store and records its metrics.
    fn call<T>(
        &self,
        function: &'static str,
        run: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<T>,
    ) -> Result<(T, CallReport), PolicyError> {
        let label = self.label();
        let mut store = PolicyEngine::get().store(&label);
        let started = Instant::now();
        let result = run(&mut store);
        let report = CallReport::of(&store, started);
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        let labels = [
            ("slot", self.info.slot.as_str().to_owned()),
            ("policy", label.clone()),
            ("function", function.to_owned()),
            ("outcome", outcome.to_owned()),
        ];
        metrics::counter!("policy_calls_total", &labels).increment(1);
        metrics::histogram!("policy_call_duration_seconds", &labels[..3])
            .record(report.elapsed.as_secs_f64());
        metrics::histogram!("policy_call_fuel", &labels[..3]).record(report.fuel as f64);
        match result {
            Ok(value) => Ok((value, report)),
            Err(err) => {
                let reason = engine::describe_failure(&err);
                tracing::warn!(policy = %label, slot = %self.info.slot, %reason, "policy call failed");
                Err(PolicyError::Unavailable {
                    slot: self.info.slot,
                    policy: label,
                    reason,
                })
            }
        }
    }

    fn wrong_slot(&self, wanted: Slot) -> PolicyError {
        PolicyError::Unavailable {
            slot: wanted,
            policy: self.label(),
            reason: format!("is loaded in the {} slot", self.info.slot),
        }
    }

    pub fn price(&self, mut input: PricingInput) -> Result<Vec<LinePrice>, PolicyError> {
        let Prepared::Pricing(pre) = &self.prepared else {
            return Err(self.wrong_slot(Slot::Pricing));
        };
        input.config = self.config.clone();
        let (prices, _) = self.call("price", |store| {
            let instance = pre.instantiate(&mut *store)?;
            instance
                .commerce_policy_pricing()
                .call_price(&mut *store, &input)
        })?;
        Ok(prices)
    }

    pub fn apply_coupon(&self, mut input: ApplyInput) -> Result<Result<i64, String>, PolicyError> {
        let Prepared::Coupon(pre) = &self.prepared else {
            return Err(self.wrong_slot(Slot::Coupon));
        };
        input.config = self.config.clone();
        let (decision, _) = self.call("apply", |store| {
            let instance = pre.instantiate(&mut *store)?;
            instance
                .commerce_policy_coupon()
                .call_apply(&mut *store, &input)
        })?;
        Ok(decision)
    }

    pub fn can_issue(&self, mut input: IssueInput) -> Result<Result<(), String>, PolicyError> {
        let Prepared::Coupon(pre) = &self.prepared else {
            return Err(self.wrong_slot(Slot::Coupon));
        };
        input.config = self.config.clone();
        let (decision, _) = self.call("can_issue", |store| {
            let instance = pre.instantiate(&mut *store)?;
            instance
                .commerce_policy_coupon()
                .call_can_issue(&mut *store, &input)
        })?;
        Ok(decision)
    }

    pub fn check_order(&self, mut input: OrderInput) -> Result<Vec<Violation>, PolicyError> {
        let Prepared::OrderRules(pre) = &self.prepared else {
            return Err(self.wrong_slot(Slot::OrderRules));
        };
        input.config = self.config.clone();
        let (violations, _) = self.call("check", |store| {
            let instance = pre.instantiate(&mut *store)?;
            instance
                .commerce_policy_order_rules()
                .call_check(&mut *store, &input)
        })?;
        Ok(violations)
    }
}

fn prepare(slot: Slot, component: &Component) -> Result<Prepared, PolicyError> {
    let engine = PolicyEngine::get();
    let invalid = |err: wasmtime::Error| {
        PolicyError::InvalidComponent(format!(
            "the component does not implement the {} world of commerce:policy@1.0.0: {err:#}",
            slot.world()
        ))
    };
    // Linking fails when the component imports anything besides `host`
    // (WASI, sockets, ...), since nothing else is defined.
    let pre = engine.linker.instantiate_pre(component).map_err(invalid)?;
    Ok(match slot {
        Slot::Pricing => {
            Prepared::Pricing(bindings::pricing::PricingPolicyPre::new(pre).map_err(invalid)?)
        }
        Slot::Coupon => {
            Prepared::Coupon(bindings::coupon::CouponPolicyPre::new(pre).map_err(invalid)?)
        }
        Slot::OrderRules => Prepared::OrderRules(
            bindings::order_rules::OrderRulesPolicyPre::new(pre).map_err(invalid)?,
        ),
    })
}
