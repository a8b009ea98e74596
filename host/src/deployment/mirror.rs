//! This instance's copy of the deployment's policy state: the loaded
//! versions of each slot (the [`Registry`] requests read), the shadows, and
//! the components compiled so far. [`Mirror::sync`] and
//! [`Mirror::sync_shadow`] install what the [store](super::store) says now;
//! the [follower](super::follower) calls them on every change.

use std::{collections::HashMap, sync::Arc};

use super::store::{Activation, PolicyStore};
use crate::policy::{
    LoadedPolicy, PolicyError, Registry, Slot,
    loaded::{Compiled, PolicyInfo},
    native::Native,
    registry::SlotState,
    shadow::{Shadow, Shadows},
};

/// Machine code kept compiled by digest, to install a version again (a
/// rollback, a promoted shadow, a repeated upload) without compiling it:
/// room for a dozen TypeScript or Python interpreters or thousands of Rust
/// policies. The least recently used goes first; the versions in use are
/// held by the registry and the shadows whatever this forgets, and
/// wasmtime's disk cache (1 GiB by default) still has their code.
const COMPILED_KEPT_BYTES: u64 = 512 << 20;

/// Compiled components by digest, shared with uploads' background compiles.
type CompiledCache = moka::sync::Cache<[u8; 32], Compiled>;

/// An empty cache of at most `capacity` bytes of machine code. A native
/// policy weighs one byte: it is code the server already has.
fn compiled_cache(capacity: u64) -> CompiledCache {
    CompiledCache::builder()
        .max_capacity(capacity)
        // What was compiled last is what is installed next (an upload
        // compiles before it activates), so recency, not frequency, decides.
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .weigher(|_, compiled: &Compiled| {
            u32::try_from(compiled.code_bytes().max(1)).unwrap_or(u32::MAX)
        })
        .build()
}

/// How long an upload waits for its compile: within the request timeout.
const COMPILE_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

pub struct Mirror {
    store: PolicyStore,
    pub registry: Arc<Registry>,
    pub shadows: Shadows,
    /// Shared with uploads' background compiles (see [`Mirror::compile`]).
    compiled: CompiledCache,
    /// Serializes installs, so an older read never replaces a newer one.
    sync_lock: tokio::sync::Mutex<()>,
}

impl Mirror {
    /// Loads the deployment's active versions and shadows. `compiled` holds
    /// what the caller compiled already (the manifest's components).
    pub async fn load(
        store: PolicyStore,
        environment: String,
        compiled: HashMap<[u8; 32], Compiled>,
    ) -> anyhow::Result<Self> {
        let shadows = Shadows::start()?;
        let cache = compiled_cache(COMPILED_KEPT_BYTES);
        for (sha256, component) in compiled {
            cache.insert(sha256, component);
        }
        let compiled = cache;
        let mut states = Vec::with_capacity(Slot::ALL.len());
        for slot in Slot::ALL {
            states.push(load_slot(&store, &compiled, &shadows, slot, None).await?);
        }
        let [pricing, coupon, order_rules]: [SlotState; 3] = states
            .try_into()
            .map_err(|_| anyhow::anyhow!("one state per slot"))?;
        let registry = Arc::new(Registry::new(environment, pricing, coupon, order_rules));
        for slot in Slot::ALL {
            let active = registry.active(slot);
            tracing::info!(%slot, policy = %active.label(), source = %active.info.source, "policy active");
        }
        let mirror = Self {
            store,
            registry,
            shadows,
            compiled,
            sync_lock: tokio::sync::Mutex::new(()),
        };
        for slot in Slot::ALL {
            // A shadow is an experiment: one that cannot load never stops the server.
            if let Err(err) = mirror.sync_shadow(slot).await {
                tracing::warn!(%slot, error = %format!("{err:#}"), "cannot load the slot's shadow");
            }
        }
        Ok(mirror)
    }

    /// Installs the slot's active versions as PostgreSQL has them now.
    pub async fn sync(&self, slot: Slot) -> anyhow::Result<()> {
        let _one_at_a_time = self.sync_lock.lock().await;
        let current = self.registry.slot(slot);
        let state = load_slot(
            &self.store,
            &self.compiled,
            &self.shadows,
            slot,
            Some(&current),
        )
        .await?;
        let unchanged = state.active.activation == current.active.activation
            && state.previous.as_ref().map(|p| p.activation)
                == current.previous.as_ref().map(|p| p.activation);
        if !unchanged {
            tracing::info!(%slot, policy = %state.active.label(), config = ?state.active.info.config, "policy installed");
            self.registry.install(slot, state);
        }
        Ok(())
    }

    /// Installs the slot's shadow as PostgreSQL has it now.
    pub async fn sync_shadow(&self, slot: Slot) -> anyhow::Result<()> {
        let _one_at_a_time = self.sync_lock.lock().await;
        let cell = self.shadows.slot(slot);
        let current = cell.current();
        // A shadow that stopped itself stays reported, but runs no more.
        let row = self
            .store
            .shadow(slot)
            .await?
            .filter(|row| row.stopped_at.is_none());
        match (row, current) {
            (None, None) => {}
            (None, Some(stopped)) => {
                tracing::info!(%slot, candidate = %stopped.candidate.label(), "shadow stopped");
                cell.install(None);
            }
            (Some(row), Some(current)) if row.id == current.id => {}
            (Some(row), _) => {
                let component = compiled(&self.store, &self.compiled, slot, &row.sha256).await?;
                let info = PolicyInfo::new(
                    slot,
                    row.name,
                    row.version,
                    hex::encode(&row.sha256),
                    row.started_at,
                    "shadow".to_owned(),
                );
                let own_config = row.config.is_some();
                let config = row.config.map(|config| config.0).unwrap_or_default();
                let candidate = LoadedPolicy::prepare(slot, component, info, config, 0)?;
                tracing::info!(%slot, candidate = %candidate.label(), own_config, "shadow started");
                cell.install(Some(Arc::new(Shadow::new(
                    row.id,
                    candidate,
                    own_config,
                    row.started_at,
                ))));
            }
        }
        Ok(())
    }

    /// Compiles `bytes` and checks them against the slot's world, keeping
    /// the compiled component for when its version is installed.
    pub async fn compile(
        &self,
        slot: Slot,
        sha256: &[u8; 32],
        bytes: Vec<u8>,
    ) -> Result<Compiled, PolicyError> {
        if Native::named(&bytes).is_some() {
            return Err(PolicyError::InvalidComponent(
                "an upload is a component; a native policy is chosen in a manifest".to_owned(),
            ));
        }
        let cached = self.compiled.get(sha256);
        let component = match cached {
            Some(component) => component,
            None => self.compile_bounded(slot, sha256, bytes).await?,
        };
        // Compiled for another slot's use is not checked against this
        // slot's world: check it, whether it was just compiled or not.
        fits(slot, component.clone()).await?;
        Ok(component)
    }

    /// Compiles `bytes`, waiting at most [`COMPILE_WAIT`].
    ///
    /// Compiling a 12-18 MB TypeScript or Python component takes ~30 s of
    /// one core. The request waits a bounded time; past it the compile goes
    /// on in the background, keeps its result (and wasmtime's disk cache has
    /// it), and the retried upload finds it done.
    async fn compile_bounded(
        &self,
        slot: Slot,
        sha256: &[u8; 32],
        bytes: Vec<u8>,
    ) -> Result<Compiled, PolicyError> {
        let compiled = self.compiled.clone();
        let key = *sha256;
        let compiling = tokio::spawn(async move {
            let component = compile(bytes).await?;
            compiled.insert(key, component.clone());
            Ok::<Compiled, PolicyError>(component)
        });
        match tokio::time::timeout(COMPILE_WAIT, compiling).await {
            Ok(Ok(result)) => result,
            Ok(Err(err)) => Err(PolicyError::InvalidComponent(format!(
                "validation did not finish: {err}"
            ))),
            Err(_) => Err(PolicyError::Unavailable {
                slot,
                policy: format!("upload sha256:{}", &hex::encode(sha256)[..12]),
                reason: format!(
                    "is still compiling after {} s; it goes on in the background: send the same upload again in a minute",
                    COMPILE_WAIT.as_secs()
                ),
            }),
        }
    }

    /// Keeps a component compiled elsewhere (a manifest's).
    pub fn keep(&self, sha256: [u8; 32], component: Compiled) {
        self.compiled.insert(sha256, component);
    }

    /// The compiled component with this digest, from PostgreSQL if this
    /// instance has not compiled it yet.
    pub async fn component(&self, slot: Slot, sha256: &[u8]) -> anyhow::Result<Compiled> {
        compiled(&self.store, &self.compiled, slot, sha256).await
    }

    /// Adds every slot's shadow outcomes since the last flush to the deployment's.
    pub async fn flush_shadows(&self) {
        for slot in Slot::ALL {
            if let Some(shadow) = self.shadows.slot(slot).current()
                && let Err(err) = self.store.flush(&shadow).await
            {
                tracing::warn!(%slot, %err, "cannot record the shadow's outcomes; retrying");
            }
        }
    }
}

/// Compiles `bytes` and checks them against the slot's world, off the
/// async workers (compiling takes tens of milliseconds).
pub async fn check(slot: Slot, bytes: Vec<u8>) -> Result<Compiled, PolicyError> {
    let component = compile(bytes).await?;
    fits(slot, component.clone()).await?;
    Ok(component)
}

/// Compiles `bytes` on a blocking thread: CPU work of up to tens of seconds.
async fn compile(bytes: Vec<u8>) -> Result<Compiled, PolicyError> {
    tokio::task::spawn_blocking(move || Compiled::new(&bytes))
        .await
        .map_err(|err| PolicyError::InvalidComponent(format!("validation did not finish: {err}")))?
}

/// Whether a compiled component implements the slot's world.
async fn fits(slot: Slot, component: Compiled) -> Result<(), PolicyError> {
    tokio::task::spawn_blocking(move || {
        let info = PolicyInfo::new(
            slot,
            String::new(),
            String::new(),
            String::new(),
            chrono::Utc::now(),
            String::new(),
        );
        LoadedPolicy::prepare(slot, component, info, Vec::new(), 0)?;
        Ok(())
    })
    .await
    .map_err(|err| PolicyError::InvalidComponent(format!("validation did not finish: {err}")))?
}

/// The slot's state as PostgreSQL has it, reusing the versions `current`
/// has loaded already.
async fn load_slot(
    store: &PolicyStore,
    cache: &CompiledCache,
    shadows: &Shadows,
    slot: Slot,
    current: Option<&SlotState>,
) -> anyhow::Result<SlotState> {
    let rows = store.live(slot, 2).await?;
    let mut loaded = Vec::with_capacity(rows.len());
    for row in rows {
        loaded.push(load_version(store, cache, shadows, slot, row, current).await?);
    }
    let mut loaded = loaded.into_iter();
    let active = loaded
        .next()
        .ok_or_else(|| anyhow::anyhow!("the deployment has no {slot} policy"))?;
    Ok(SlotState {
        active,
        previous: loaded.next(),
    })
}

async fn load_version(
    store: &PolicyStore,
    cache: &CompiledCache,
    shadows: &Shadows,
    slot: Slot,
    row: Activation,
    current: Option<&SlotState>,
) -> anyhow::Result<Arc<LoadedPolicy>> {
    let known = current
        .into_iter()
        .flat_map(|state| std::iter::once(&state.active).chain(state.previous.as_ref()))
        .find(|policy| policy.activation == row.id);
    if let Some(policy) = known {
        return Ok(policy.clone());
    }
    let component = compiled(store, cache, slot, &row.sha256).await?;
    let info = PolicyInfo::new(
        slot,
        row.name,
        row.version,
        hex::encode(&row.sha256),
        row.activated_at,
        row.source,
    );
    Ok(LoadedPolicy::prepare_in(
        slot,
        component,
        info,
        row.config.0,
        row.id,
        Some(shadows.slot(slot).clone()),
    )?)
}

/// The compiled component with this digest: compiled before by this
/// instance, or read from `policy_components` and compiled now.
async fn compiled(
    store: &PolicyStore,
    cache: &CompiledCache,
    slot: Slot,
    sha256: &[u8],
) -> anyhow::Result<Compiled> {
    let key: [u8; 32] = sha256.try_into()?;
    if let Some(component) = cache.get(&key) {
        return Ok(component);
    }
    let bytes = store.component(sha256).await?;
    let component = check(slot, bytes).await?;
    cache.insert(key, component.clone());
    Ok(component)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_components_are_kept_up_to_a_weight_of_machine_code() {
        // The smallest component there is: its compiled image still has a
        // size, which is what the cache weighs.
        let empty = Compiled::new(b"\0asm\x0d\0\x01\0").expect("an empty component");
        let weight = empty.code_bytes() as u64;
        assert!(weight > 0, "a compiled component has machine code");
        let cache = compiled_cache(3 * weight);
        for digest in 0..10_u8 {
            cache.insert([digest; 32], empty.clone());
            cache.run_pending_tasks();
        }
        assert!(
            cache.weighted_size() <= 3 * weight,
            "{} bytes",
            cache.weighted_size()
        );
        assert!(cache.entry_count() <= 3, "{} kept", cache.entry_count());
        assert!(cache.contains_key(&[9; 32]), "the latest is kept");
    }
}
