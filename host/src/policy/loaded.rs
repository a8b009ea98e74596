//! One loaded version of a policy: compiled once, instantiated per call (or
//! a native policy, called directly).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use wasmtime::component::Component;

use super::{
    PolicyError, Slot,
    bindings::{
        ApplyInput, Contract, IssueInput, LinePrice, OrderInput, Prepared, PricingInput, Violation,
    },
    call::{Call, Output},
    engine::{self, CallReport, PolicyEngine},
    metadata::{self, ConfigKey},
    native::Native,
    shadow::ShadowSlot,
};

/// What a policy's bytes became: a compiled component, or the native policy
/// they name, and the configuration keys it declares.
#[derive(Clone)]
pub struct Compiled {
    code: Code,
    /// `None` when it declares none (see [`metadata::config_keys`]).
    pub config_keys: Option<Vec<ConfigKey>>,
}

#[derive(Clone)]
enum Code {
    Component(Component),
    Native(Native),
}

impl Compiled {
    /// Compiles `bytes`, or finds the native policy they name (not yet
    /// checked against any slot).
    pub fn new(bytes: &[u8]) -> Result<Self, PolicyError> {
        let code = match Native::named(bytes) {
            Some(native) => native.map(Code::Native)?,
            None => PolicyEngine::get().compile(bytes).map(Code::Component)?,
        };
        Ok(Self {
            code,
            config_keys: metadata::config_keys(bytes),
        })
    }

    /// Bytes of machine code it holds: what keeping it compiled costs.
    pub fn code_bytes(&self) -> usize {
        match &self.code {
            Code::Component(component) => {
                let image = component.image_range();
                image.end.addr().saturating_sub(image.start.addr())
            }
            Code::Native(_) => 0,
        }
    }

    /// Checks `config` against the keys the component declares.
    pub fn validate(&self, config: &super::bindings::Config) -> Result<(), PolicyError> {
        metadata::validate(self.config_keys.as_deref(), config).map_err(PolicyError::InvalidConfig)
    }
}

/// How a loaded version answers.
enum Implementation {
    Component(Prepared),
    Native(Native),
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
    /// Where this activation came from: `manifest:<file>`, `upload`, or
    /// `config` (a configuration change through the API).
    pub source: String,
    /// The `commerce:policy` version the component was built against, e.g. `1.1.0`.
    pub contract: String,
    /// The configuration it runs with.
    pub config: BTreeMap<String, String>,
    /// The configuration keys it reads, with their defaults; null when it
    /// declares none (then any configuration is accepted).
    pub config_keys: Option<Vec<ConfigKey>>,
}

impl PolicyInfo {
    /// What is known before loading; the contract and the configuration are
    /// filled in by [`LoadedPolicy::prepare`].
    pub fn new(
        slot: Slot,
        name: String,
        version: String,
        sha256: String,
        loaded_at: DateTime<Utc>,
        source: String,
    ) -> Self {
        Self {
            slot,
            name,
            version,
            sha256,
            loaded_at,
            source,
            contract: String::new(),
            config: BTreeMap::new(),
            config_keys: None,
        }
    }
}

pub struct LoadedPolicy {
    pub info: PolicyInfo,
    /// The slot's configuration, handed to every call.
    pub config: Vec<(String, String)>,
    /// Row id of this activation in `policy_versions`.
    pub activation: i64,
    /// The component, `None` for a native policy.
    pub component: Option<Component>,
    implementation: Implementation,
    /// The slot's shadow, offered every call this version serves; none for
    /// a version loaded outside a deployment (the runner, a candidate).
    shadow: Option<Arc<ShadowSlot>>,
    /// Whether its last call succeeded within [`super::INLINE_CALL`], so
    /// that the next may run on the asking task's own thread (see
    /// [`super::evaluate`]). A component starts out unproven; a native
    /// policy is always fast.
    fast: AtomicBool,
    /// `name@version`, made once.
    label: String,
    /// The call metrics' handles, one set per function of the slot,
    /// registered at the function's first call (a version that never serves
    /// one, a checked upload say, shows none), not looked up by their labels
    /// on every call.
    metrics: Vec<(&'static str, OnceLock<CallMetrics>)>,
}

/// The metrics of one function of one loaded version.
struct CallMetrics {
    succeeded: metrics::Counter,
    failed: metrics::Counter,
    duration: metrics::Histogram,
    fuel: metrics::Histogram,
}

impl CallMetrics {
    fn new(slot: Slot, policy: &str, function: &'static str) -> Self {
        let labels = |outcome: Option<&'static str>| {
            let mut labels = vec![
                metrics::Label::new("slot", slot.as_str()),
                metrics::Label::new("policy", policy.to_owned()),
                metrics::Label::new("function", function),
            ];
            labels.extend(outcome.map(|outcome| metrics::Label::new("outcome", outcome)));
            labels
        };
        Self {
            succeeded: metrics::counter!("policy_calls_total", labels(Some("ok"))),
            failed: metrics::counter!("policy_calls_total", labels(Some("failed"))),
            duration: metrics::histogram!("policy_call_duration_seconds", labels(None)),
            fuel: metrics::histogram!("policy_call_fuel", labels(None)),
        }
    }
}

impl LoadedPolicy {
    /// Checks that `component` implements `slot`'s world in a served version
    /// of the contract and imports nothing but the host interface, and
    /// pre-links it. `info.contract` is filled in.
    pub fn prepare(
        slot: Slot,
        component: Compiled,
        info: PolicyInfo,
        config: Vec<(String, String)>,
        activation: i64,
    ) -> Result<Arc<Self>, PolicyError> {
        Self::prepare_in(slot, component, info, config, activation, None)
    }

    /// As [`LoadedPolicy::prepare`], for a version that serves `shadow`'s slot.
    pub(crate) fn prepare_in(
        slot: Slot,
        compiled: Compiled,
        info: PolicyInfo,
        config: Vec<(String, String)>,
        activation: i64,
        shadow: Option<Arc<ShadowSlot>>,
    ) -> Result<Arc<Self>, PolicyError> {
        let (component, implementation) = match compiled.code {
            Code::Component(component) => {
                let prepared = prepare(slot, &component)?;
                (Some(component), Implementation::Component(prepared))
            }
            Code::Native(native) if native.slot() == slot => (None, Implementation::Native(native)),
            Code::Native(native) => {
                return Err(PolicyError::InvalidComponent(format!(
                    "the native policy {} fills the {} slot, not {slot}",
                    native.name(),
                    native.slot()
                )));
            }
        };
        let mut info = info;
        info.config = metadata::to_object(&config);
        info.config_keys = compiled.config_keys;
        let label = format!("{}@{}", info.name, info.version);
        let metrics = slot
            .functions()
            .iter()
            .map(|function| (*function, OnceLock::new()))
            .collect();
        let fast = AtomicBool::new(matches!(implementation, Implementation::Native(_)));
        let mut policy = Self {
            info,
            config,
            activation,
            component,
            implementation,
            shadow,
            fast,
            label,
            metrics,
        };
        policy.info.contract = policy.contract().version().to_owned();
        Ok(Arc::new(policy))
    }

    /// `name@version`, as orders record it.
    pub fn label(&self) -> String {
        self.label.clone()
    }

    /// The contract version the component was built against; a native
    /// policy works in the host's own types, the newest.
    pub fn contract(&self) -> Contract {
        match &self.implementation {
            Implementation::Component(prepared) => prepared.contract(),
            Implementation::Native(_) => Contract::LATEST,
        }
    }

    /// Whether its calls may run on the asking task's thread: its last call
    /// succeeded within [`super::INLINE_CALL`].
    pub fn is_fast(&self) -> bool {
        self.fast.load(Ordering::Relaxed)
    }

    /// Runs `call` exactly as given (its config included) in a fresh store,
    /// and records the call's metrics. Nothing is logged and no shadow runs:
    /// shadows and replays use this to run a candidate.
    pub fn evaluate(&self, call: &Call) -> Result<(Output, CallReport), PolicyError> {
        if call.slot() != self.info.slot {
            return Err(self.wrong_slot(call.slot()));
        }
        let limits = engine::Limits::of(self.info.slot);
        let (result, report) = match &self.implementation {
            Implementation::Component(prepared) => {
                let mut store = PolicyEngine::get().store_with(&self.label, limits);
                let started = Instant::now();
                let result = prepared.call(&mut store, call);
                (result, CallReport::of(&store, started))
            }
            Implementation::Native(native) => {
                let started = Instant::now();
                let output = native.answer(call);
                (Ok(output), CallReport::native(started))
            }
        };
        self.fast.store(
            result.is_ok() && report.elapsed <= super::INLINE_CALL,
            Ordering::Relaxed,
        );
        if let Some((function, metrics)) = self
            .metrics
            .iter()
            .find(|(function, _)| *function == call.function())
        {
            let metrics =
                metrics.get_or_init(|| CallMetrics::new(self.info.slot, &self.label, function));
            if result.is_ok() {
                metrics.succeeded.increment(1);
            } else {
                metrics.failed.increment(1);
            }
            metrics.duration.record(report.elapsed.as_secs_f64());
            metrics.fuel.record(report.fuel as f64);
        }
        match result {
            Ok(output) => Ok((output, report)),
            Err(err) => Err(PolicyError::Unavailable {
                slot: self.info.slot,
                policy: self.label(),
                reason: engine::describe_failure_within(&err, limits),
            }),
        }
    }

    /// Serves `call` with the slot's configuration, then offers it and the
    /// answer to the slot's shadow, if one runs.
    fn serve(&self, mut call: Call) -> Result<Output, PolicyError> {
        *call.config_mut() = self.config.clone();
        let output = match self.evaluate(&call) {
            Ok((output, _)) => output,
            Err(err) => {
                if let PolicyError::Unavailable { policy, reason, .. } = &err {
                    tracing::warn!(%policy, slot = %self.info.slot, %reason, "policy call failed");
                }
                return Err(err);
            }
        };
        if let Some(shadow) = &self.shadow {
            shadow.offer(call, &output);
        }
        Ok(output)
    }

    fn wrong_slot(&self, wanted: Slot) -> PolicyError {
        PolicyError::Unavailable {
            slot: wanted,
            policy: self.label(),
            reason: format!("is loaded in the {} slot", self.info.slot),
        }
    }

    /// An answer of another shape than the call's; `prepared.call` never gives one.
    fn mismatched(&self) -> PolicyError {
        PolicyError::Unavailable {
            slot: self.info.slot,
            policy: self.label(),
            reason: "answered a different call".to_owned(),
        }
    }

    pub fn price(&self, input: PricingInput) -> Result<Vec<LinePrice>, PolicyError> {
        match self.serve(Call::Price(input))? {
            Output::Prices(prices) => Ok(prices),
            _ => Err(self.mismatched()),
        }
    }

    pub fn apply_coupon(&self, input: ApplyInput) -> Result<Result<i64, String>, PolicyError> {
        match self.serve(Call::Apply(input))? {
            Output::Applied(decision) => Ok(decision),
            _ => Err(self.mismatched()),
        }
    }

    pub fn can_issue(&self, input: IssueInput) -> Result<Result<(), String>, PolicyError> {
        match self.serve(Call::CanIssue(input))? {
            Output::Issuable(decision) => Ok(decision),
            _ => Err(self.mismatched()),
        }
    }

    pub fn check_order(&self, input: OrderInput) -> Result<Vec<Violation>, PolicyError> {
        match self.serve(Call::Check(input))? {
            Output::Violations(violations) => Ok(violations),
            _ => Err(self.mismatched()),
        }
    }
}

fn prepare(slot: Slot, component: &Component) -> Result<Prepared, PolicyError> {
    let engine = PolicyEngine::get();
    let served = Contract::SERVED.map(Contract::version).join(" or @");
    let Some(contract) = Contract::of(&engine.engine, component, slot) else {
        let exports: Vec<String> = component
            .component_type()
            .exports(&engine.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        return Err(PolicyError::InvalidComponent(format!(
            "the component does not implement the {} world of commerce:policy@{served}: \
             it exports {exports:?}, not {}",
            slot.world(),
            Contract::LATEST.export(slot),
        )));
    };
    let invalid = |err: wasmtime::Error| {
        PolicyError::InvalidComponent(format!(
            "the component does not implement the {} world of commerce:policy@{contract}: {err:#}",
            slot.world()
        ))
    };
    // Linking fails when the component imports anything besides `host`
    // (WASI, sockets, ...), since nothing else is defined.
    let pre = engine.linker.instantiate_pre(component).map_err(invalid)?;
    Prepared::new(contract, slot, pre).map_err(invalid)
}
