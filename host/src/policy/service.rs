//! The deployment's one policy state, kept in PostgreSQL and mirrored by
//! every instance.
//!
//! Swaps, rollbacks and reloads through any instance are written to
//! `policy_versions` (with the component's bytes in `policy_components`) and
//! announced with `NOTIFY`; every instance listens and installs the new
//! state, and re-reads it every few seconds in case a notification was lost
//! while its connection was down. A starting instance joins the state it
//! finds; the environment's manifest only fills slots that have none.
//! Shadows (see [`super::shadow`]) are deployment state the same way.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool, postgres::PgListener, types::Json};
use tokio_util::sync::CancellationToken;

use super::{
    LoadedPolicy, PolicyError, Registry, Slot,
    loaded::{Compiled, PolicyInfo},
    manifest::{self, Manifest},
    metadata,
    native::Native,
    registry::SlotState,
    shadow::Shadows,
};
use crate::{
    config::Settings,
    http::error::{ApiError, ApiResult},
};

/// The `NOTIFY` channel announcing a changed slot (the payload).
const CHANNEL: &str = "commerce_policy";
/// Advisory lock serializing changes to the policy state.
const CHANGE_LOCK: i64 = 0x706f_6c69_6379; // "policy"
/// How often each instance re-reads the state regardless of notifications.
const RESYNC_EVERY: Duration = Duration::from_secs(5);
/// How often each instance adds its shadow outcomes to the deployment's.
const SHADOW_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How long an upload waits for its compile: within the request timeout.
const COMPILE_WAIT: Duration = Duration::from_secs(20);

pub struct PolicyService {
    pub(super) db: PgPool,
    pub registry: Registry,
    /// Shared with uploads' background compiles (see `check_and_keep`).
    compiled: Arc<Mutex<HashMap<[u8; 32], Compiled>>>,
    /// Serializes installs, so an older read never replaces a newer one.
    pub(super) sync_lock: tokio::sync::Mutex<()>,
    pub(super) shadows: Shadows,
    settings: Arc<Settings>,
}

/// What a notification on [`CHANNEL`] announces: `<slot>` for the active
/// versions, `shadow:<slot>` for the shadow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Slot(Slot),
    Shadow(Slot),
}

impl Change {
    fn payload(self) -> String {
        match self {
            Change::Slot(slot) => slot.as_str().to_owned(),
            Change::Shadow(slot) => format!("shadow:{slot}"),
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        match payload.strip_prefix("shadow:") {
            Some(slot) => slot.parse().ok().map(Change::Shadow),
            None => payload.parse().ok().map(Change::Slot),
        }
    }

    fn everything() -> Vec<Self> {
        Slot::ALL
            .into_iter()
            .flat_map(|slot| [Change::Slot(slot), Change::Shadow(slot)])
            .collect()
    }
}

/// A row of `policy_versions`.
#[derive(Debug, sqlx::FromRow)]
struct Activation {
    id: i64,
    sha256: Vec<u8>,
    name: String,
    version: String,
    config: Json<Vec<(String, String)>>,
    source: String,
    activated_at: DateTime<Utc>,
}

impl PolicyService {
    /// Reads the manifest (a bad one stops start-up), fills the slots that
    /// have no version yet, and loads the deployment's active versions.
    pub async fn start(db: PgPool, settings: Arc<Settings>) -> anyhow::Result<Arc<Self>> {
        let manifest = read_manifest(&settings)?;
        let mut compiled = HashMap::new();
        for entry in &manifest.slots {
            let component = check(entry.slot, entry.bytes.clone())
                .await
                .map_err(|err| {
                    anyhow::anyhow!("{}: slot {}: {err}", manifest.path.display(), entry.slot)
                })?;
            compiled.insert(entry.sha256, component);
        }
        let mut tx = db.begin().await?;
        lock_changes(&mut tx).await?;
        let mut filled = Vec::new();
        for entry in &manifest.slots {
            if live(&mut tx, entry.slot, 1).await?.is_empty() {
                let row = NewActivation::from_manifest(&manifest, entry.slot);
                activate(&mut tx, entry.slot, &row).await?;
                filled.push(entry.slot.as_str());
            }
        }
        tx.commit().await?;
        if !filled.is_empty() {
            tracing::info!(slots = ?filled, manifest = %manifest.path.display(), "policy slots filled from the manifest");
        }

        let compiled = Arc::new(Mutex::new(compiled));
        let shadows = Shadows::start()?;
        let load = Loader {
            db: &db,
            compiled: &compiled,
            shadows: &shadows,
        };
        let pricing = load.slot(Slot::Pricing, None).await?;
        let coupon = load.slot(Slot::Coupon, None).await?;
        let order_rules = load.slot(Slot::OrderRules, None).await?;
        let registry = Registry::new(settings.environment.clone(), pricing, coupon, order_rules);
        for slot in Slot::ALL {
            let active = registry.active(slot);
            tracing::info!(%slot, policy = %active.label(), source = %active.info.source, "policy active");
        }
        let service = Arc::new(Self {
            db,
            registry,
            compiled,
            sync_lock: tokio::sync::Mutex::new(()),
            shadows,
            settings,
        });
        for slot in Slot::ALL {
            // A shadow is an experiment: one that cannot load never stops the server.
            if let Err(err) = service.sync_shadow(slot).await {
                tracing::warn!(%slot, error = %format!("{err:#}"), "cannot load the slot's shadow");
            }
        }
        Ok(service)
    }

    /// Installs the slot's state as PostgreSQL has it now.
    pub async fn sync(&self, slot: Slot) -> anyhow::Result<()> {
        let _one_at_a_time = self.sync_lock.lock().await;
        let current = self.registry.slot(slot);
        let loader = Loader {
            db: &self.db,
            compiled: &self.compiled,
            shadows: &self.shadows,
        };
        let state = loader.slot(slot, Some(&current)).await?;
        let unchanged = state.active.activation == current.active.activation
            && state.previous.as_ref().map(|p| p.activation)
                == current.previous.as_ref().map(|p| p.activation);
        if !unchanged {
            tracing::info!(%slot, policy = %state.active.label(), "policy installed");
            self.registry.install(slot, state);
        }
        Ok(())
    }

    /// Validates `bytes` against the slot's world, then makes them the
    /// deployment's active version, keeping the slot's configuration.
    pub async fn upload(&self, slot: Slot, bytes: Vec<u8>) -> ApiResult<PolicyInfo> {
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let (name, version) = metadata::label(&bytes, &sha256);
        self.check_and_keep(slot, &sha256, bytes.clone()).await?;
        let mut tx = self.db.begin().await?;
        lock_changes(&mut tx).await?;
        let config = live(&mut tx, slot, 1)
            .await?
            .into_iter()
            .next()
            .map(|row| row.config.0)
            .unwrap_or_default();
        let row = NewActivation {
            sha256,
            bytes,
            name,
            version,
            config,
            source: "upload".to_owned(),
        };
        activate(&mut tx, slot, &row).await?;
        tx.commit().await?;
        self.synced(slot).await
    }

    /// Returns the slot to the version before the active one.
    pub async fn rollback(&self, slot: Slot) -> ApiResult<PolicyInfo> {
        let mut tx = self.db.begin().await?;
        lock_changes(&mut tx).await?;
        let rows = live(&mut tx, slot, 2).await?;
        if rows.len() < 2 {
            return Err(ApiError::NoPreviousVersion(slot));
        }
        sqlx::query("update policy_versions set retired_at = now() where id = $1")
            .bind(rows[0].id)
            .execute(&mut *tx)
            .await?;
        notify(&mut tx, Change::Slot(slot)).await?;
        tx.commit().await?;
        self.synced(slot).await
    }

    /// Reads the environment's manifest again and activates every slot whose
    /// component or configuration changed. A bad manifest changes nothing.
    pub async fn reload(&self) -> ApiResult<()> {
        let manifest = read_manifest(&self.settings)
            .map_err(|err| ApiError::InvalidManifest(format!("{err:#}")))?;
        for entry in &manifest.slots {
            let component = check(entry.slot, entry.bytes.clone())
                .await
                .map_err(|err| {
                    ApiError::InvalidManifest(format!(
                        "{}: slot {}: {err}",
                        manifest.path.display(),
                        entry.slot
                    ))
                })?;
            lock(&self.compiled).insert(entry.sha256, component);
        }
        let mut tx = self.db.begin().await?;
        lock_changes(&mut tx).await?;
        let mut changed = Vec::new();
        for entry in &manifest.slots {
            let current = live(&mut tx, entry.slot, 1).await?.into_iter().next();
            let same = current
                .is_some_and(|row| row.sha256 == entry.sha256 && row.config.0 == entry.config);
            if !same {
                activate(
                    &mut tx,
                    entry.slot,
                    &NewActivation::from_manifest(&manifest, entry.slot),
                )
                .await?;
                changed.push(entry.slot);
            }
        }
        tx.commit().await?;
        for slot in changed {
            self.sync(slot).await.map_err(ApiError::Internal)?;
        }
        Ok(())
    }

    async fn synced(&self, slot: Slot) -> ApiResult<PolicyInfo> {
        self.sync(slot).await.map_err(ApiError::Internal)?;
        Ok(self.registry.active(slot).info.clone())
    }

    /// Compiles `bytes` and checks them against the slot's world, keeping
    /// the compiled component for when its version is installed.
    pub(super) async fn check_and_keep(
        &self,
        slot: Slot,
        sha256: &[u8; 32],
        bytes: Vec<u8>,
    ) -> Result<(), PolicyError> {
        if Native::named(&bytes).is_some() {
            return Err(PolicyError::InvalidComponent(
                "an upload is a component; a native policy is chosen in a manifest".to_owned(),
            ));
        }
        if lock(&self.compiled).contains_key(sha256) {
            return Ok(());
        }
        // Compiling a 12-18 MB TypeScript or Python component takes ~30 s of
        // one core. The request waits a bounded time; past it the compile
        // goes on in the background, keeps its result (and wasmtime's disk
        // cache has it), and the retried upload finds it done.
        let compiled = self.compiled.clone();
        let key = *sha256;
        let compiling = tokio::spawn(async move {
            let component = check(slot, bytes).await?;
            lock(&compiled).insert(key, component);
            Ok::<(), PolicyError>(())
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

    /// The compiled component with this digest, from PostgreSQL if this
    /// instance has not compiled it yet.
    pub(super) async fn component(&self, slot: Slot, sha256: &[u8]) -> anyhow::Result<Compiled> {
        let mut conn = self.db.acquire().await?;
        component(&mut conn, &self.compiled, slot, sha256).await
    }

    /// Follows changes made through other instances until `stop`, and adds
    /// this instance's shadow outcomes to the deployment's every second.
    pub async fn follow(self: Arc<Self>, stop: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut resync = tokio::time::interval(RESYNC_EVERY);
        let mut flush = tokio::time::interval(SHADOW_FLUSH_EVERY);
        loop {
            if listener.is_none() {
                listener = match PgListener::connect_with(&self.db).await {
                    Ok(mut new) => match new.listen(CHANNEL).await {
                        Ok(()) => Some(new),
                        Err(err) => {
                            tracing::warn!(%err, "cannot listen for policy changes");
                            None
                        }
                    },
                    Err(err) => {
                        tracing::warn!(%err, "cannot listen for policy changes");
                        None
                    }
                };
            }
            let notification = async {
                match listener.as_mut() {
                    Some(listener) => listener.recv().await.map(|n| Change::parse(n.payload())),
                    None => std::future::pending().await,
                }
            };
            let changes: Vec<Change> = tokio::select! {
                () = stop.cancelled() => {
                    self.flush_shadows().await;
                    return;
                }
                _ = flush.tick() => {
                    self.flush_shadows().await;
                    continue;
                }
                _ = resync.tick() => Change::everything(),
                received = notification => match received {
                    Ok(Some(change)) => vec![change],
                    Ok(None) => Vec::new(),
                    Err(err) => {
                        // Notifications may have been missed: read everything.
                        tracing::warn!(%err, "lost the policy change listener; re-reading");
                        listener = None;
                        Change::everything()
                    }
                },
            };
            for change in changes {
                let synced = match change {
                    Change::Slot(slot) => self.sync(slot).await,
                    Change::Shadow(slot) => self.sync_shadow(slot).await,
                };
                if let Err(err) = synced {
                    tracing::warn!(?change, error = %format!("{err:#}"), "cannot install the policy state");
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read_manifest(settings: &Settings) -> anyhow::Result<Manifest> {
    let manifest = manifest::load(
        &settings.manifest_dir,
        &settings.component_dir,
        &settings.environment,
    )
    .map_err(anyhow::Error::msg)?;
    // Limits are the deployment's, per slot: they hold for uploads too.
    manifest.apply_limits();
    Ok(manifest)
}

/// Compiles `bytes` and checks them against the slot's world, off the
/// async workers (compiling takes tens of milliseconds).
async fn check(slot: Slot, bytes: Vec<u8>) -> Result<Compiled, PolicyError> {
    tokio::task::spawn_blocking(move || {
        let component = Compiled::new(&bytes)?;
        let info = PolicyInfo {
            slot,
            name: String::new(),
            version: String::new(),
            sha256: String::new(),
            loaded_at: Utc::now(),
            source: String::new(),
            contract: String::new(),
        };
        LoadedPolicy::prepare(slot, component.clone(), info, Vec::new(), 0)?;
        Ok(component)
    })
    .await
    .map_err(|err| PolicyError::InvalidComponent(format!("validation did not finish: {err}")))?
}

/// Loads slot states from PostgreSQL, compiling what is not compiled yet.
struct Loader<'a> {
    db: &'a PgPool,
    compiled: &'a Mutex<HashMap<[u8; 32], Compiled>>,
    shadows: &'a Shadows,
}

impl Loader<'_> {
    async fn slot(&self, slot: Slot, current: Option<&SlotState>) -> anyhow::Result<SlotState> {
        let mut conn = self.db.acquire().await?;
        let rows = live(&mut conn, slot, 2).await?;
        let mut loaded = Vec::with_capacity(rows.len());
        for row in rows {
            loaded.push(self.policy(&mut conn, slot, row, current).await?);
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

    async fn policy(
        &self,
        conn: &mut PgConnection,
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
        let component = component(conn, self.compiled, slot, &row.sha256).await?;
        let info = PolicyInfo {
            slot,
            name: row.name,
            version: row.version,
            sha256: hex::encode(&row.sha256),
            loaded_at: row.activated_at,
            source: row.source,
            contract: String::new(),
        };
        Ok(LoadedPolicy::prepare_in(
            slot,
            component,
            info,
            row.config.0,
            row.id,
            Some(self.shadows.slot(slot).clone()),
        )?)
    }
}

/// The compiled component with this digest: compiled before by this
/// instance, or read from `policy_components` and compiled now.
async fn component(
    conn: &mut PgConnection,
    compiled: &Mutex<HashMap<[u8; 32], Compiled>>,
    slot: Slot,
    sha256: &[u8],
) -> anyhow::Result<Compiled> {
    let key: [u8; 32] = sha256.try_into()?;
    if let Some(component) = lock(compiled).get(&key).cloned() {
        return Ok(component);
    }
    let bytes: Vec<u8> =
        sqlx::query_scalar("select bytes from policy_components where sha256 = $1")
            .bind(sha256)
            .fetch_one(&mut *conn)
            .await?;
    let component = check(slot, bytes).await?;
    lock(compiled).insert(key, component.clone());
    Ok(component)
}

/// A version about to be activated.
struct NewActivation {
    sha256: [u8; 32],
    bytes: Vec<u8>,
    name: String,
    version: String,
    config: Vec<(String, String)>,
    source: String,
}

impl NewActivation {
    fn from_manifest(manifest: &Manifest, slot: Slot) -> Self {
        let entry = manifest.slot(slot);
        Self {
            sha256: entry.sha256,
            bytes: entry.bytes.clone(),
            name: entry.name.clone(),
            version: entry.version.clone(),
            config: entry.config.clone(),
            source: manifest.source(),
        }
    }
}

pub(super) async fn lock_changes(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(CHANGE_LOCK)
        .execute(tx)
        .await
        .map(drop)
}

/// The slot's live activations, newest first.
async fn live(conn: &mut PgConnection, slot: Slot, limit: i64) -> sqlx::Result<Vec<Activation>> {
    sqlx::query_as(
        "select id, sha256, name, version, config, source, activated_at
           from policy_versions
          where slot = $1 and retired_at is null
          order by id desc
          limit $2",
    )
    .bind(slot.as_str())
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Stores a component's bytes once per content.
pub(super) async fn store_component(
    tx: &mut PgConnection,
    sha256: &[u8; 32],
    bytes: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into policy_components (sha256, bytes) values ($1, $2) on conflict do nothing",
    )
    .bind(sha256.as_slice())
    .bind(bytes)
    .execute(tx)
    .await
    .map(drop)
}

async fn activate(tx: &mut PgConnection, slot: Slot, new: &NewActivation) -> sqlx::Result<()> {
    store_component(tx, &new.sha256, &new.bytes).await?;
    sqlx::query(
        "insert into policy_versions (slot, sha256, name, version, config, source)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(slot.as_str())
    .bind(new.sha256.as_slice())
    .bind(&new.name)
    .bind(&new.version)
    .bind(Json(&new.config))
    .bind(&new.source)
    .execute(&mut *tx)
    .await?;
    notify(tx, Change::Slot(slot)).await
}

/// Delivered to every listening instance when the transaction commits.
pub(super) async fn notify(tx: &mut PgConnection, change: Change) -> sqlx::Result<()> {
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(change.payload())
        .execute(tx)
        .await
        .map(drop)
}
