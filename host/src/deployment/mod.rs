//! The deployment's policy commands: swap a slot's component, change its
//! configuration, roll back, reload the manifest, start and stop shadows,
//! report on them. Each writes the [store](store) and installs the
//! result on this instance at once; every other instance follows within a
//! second (see [`follower`]).
//!
//! A starting instance joins the state it finds; the environment's manifest
//! only fills slots that have none.

use std::{collections::HashMap, sync::Arc};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

mod follower;
mod mirror;
mod store;
pub mod watch;

use self::{
    mirror::Mirror,
    store::{Activation, ActivationRecord, NewActivation, NewShadow, PolicyStore},
};
use crate::{
    audit::{self, Actor},
    config::Settings,
    error::{Error, Result},
    policy::{
        Registry, Slot,
        bindings::Config,
        loaded::{Compiled, PolicyInfo},
        manifest::{self, Manifest},
        metadata,
        shadow::{Shadow, ShadowInfo, ShadowReport},
    },
};

pub struct PolicyService {
    store: PolicyStore,
    /// A direct connection (not through a transaction pooler) for LISTEN.
    listen_db: sqlx::PgPool,
    mirror: Arc<Mirror>,
    /// The versions requests evaluate with (this instance's copy).
    pub registry: Arc<Registry>,
    settings: Arc<Settings>,
}

impl PolicyService {
    /// Reads the manifest (a bad one stops start-up), fills the slots that
    /// have no version yet, and loads the deployment's active versions.
    pub async fn start(
        db: sqlx::PgPool,
        listen_db: sqlx::PgPool,
        settings: Arc<Settings>,
    ) -> anyhow::Result<Arc<Self>> {
        let store = PolicyStore::new(db);
        let manifest = read_manifest(&settings)?;
        let compiled = compile_manifest(&manifest).await?;
        let mut change = store.change().await?;
        let mut filled = Vec::new();
        for entry in &manifest.slots {
            if change.live(entry.slot, 1).await?.is_empty() {
                let row = from_manifest(&manifest, entry.slot);
                change.activate(entry.slot, &row).await?;
                filled.push(entry.slot.as_str());
            }
        }
        change.commit().await?;
        if !filled.is_empty() {
            tracing::info!(slots = ?filled, manifest = %manifest.path.display(), "policy slots filled from the manifest");
        }
        let mirror =
            Arc::new(Mirror::load(store.clone(), settings.environment.clone(), compiled).await?);
        Ok(Arc::new(Self {
            store,
            listen_db,
            registry: mirror.registry.clone(),
            mirror,
            settings,
        }))
    }

    /// Follows changes made through other instances until `stop`.
    pub async fn follow(self: Arc<Self>, stop: CancellationToken) {
        let flush_every = std::time::Duration::from_millis(self.settings.shadow_flush_ms);
        follower::follow(
            self.listen_db.clone(),
            self.mirror.clone(),
            flush_every,
            stop,
        )
        .await;
    }

    /// What serves `slot` on this instance.
    pub fn info(&self, slot: Slot) -> PolicyInfo {
        self.registry.active(slot).info.clone()
    }

    /// Validates `bytes` against the slot's world, then makes them the
    /// deployment's active version, with `config`, or (`None`) keeping the
    /// slot's configuration.
    pub async fn upload(
        &self,
        actor: &Actor,
        slot: Slot,
        bytes: Vec<u8>,
        config: Option<Config>,
    ) -> Result<PolicyInfo> {
        self.upload_from(actor, slot, bytes, config, "upload").await
    }

    /// As [`PolicyService::upload`], recording where the bytes came from
    /// (`upload`, or `shadow` for a promoted candidate).
    async fn upload_from(
        &self,
        actor: &Actor,
        slot: Slot,
        bytes: Vec<u8>,
        config: Option<Config>,
        source: &str,
    ) -> Result<PolicyInfo> {
        let (sha256, name, version) = self.accept(slot, &bytes, config.as_ref()).await?;
        let mut change = self.store.change().await?;
        let before = change.live(slot, 1).await?.into_iter().next();
        let config = match config {
            Some(config) => config,
            None => before
                .as_ref()
                .map(|row| row.config.0.clone())
                .unwrap_or_default(),
        };
        let row = NewActivation {
            sha256,
            bytes: Some(bytes),
            name,
            version,
            config,
            source: source.to_owned(),
        };
        let action = if source == "shadow" {
            "shadow.promote"
        } else {
            "policy.swap"
        };
        change
            .audit(
                actor,
                audited(
                    action,
                    slot,
                    before.as_ref().map(Activation::described),
                    Some(row.described()),
                ),
            )
            .await?;
        change.activate(slot, &row).await?;
        change.commit().await?;
        self.synced(slot).await
    }

    /// Gives the slot's active component a new configuration: a new
    /// activation of the same component, so a rollback returns to the
    /// configuration before.
    pub async fn set_config(
        &self,
        actor: &Actor,
        slot: Slot,
        config: Config,
    ) -> Result<PolicyInfo> {
        let mut change = self.store.change().await?;
        let active = change
            .live(slot, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("the {slot} slot has no version")))?;
        let component = self.mirror.component(slot, &active.sha256).await?;
        component.validate(&config)?;
        let sha256: [u8; 32] = active
            .sha256
            .as_slice()
            .try_into()
            .map_err(|_| Error::Internal(anyhow::anyhow!("a stored digest is 32 bytes")))?;
        let before = active.described();
        let row = NewActivation {
            sha256,
            bytes: None,
            name: active.name,
            version: active.version,
            config,
            source: "config".to_owned(),
        };
        change
            .audit(
                actor,
                audited("policy.config", slot, Some(before), Some(row.described())),
            )
            .await?;
        change.activate(slot, &row).await?;
        change.commit().await?;
        self.synced(slot).await
    }

    /// Returns the slot to the version before the active one, with the
    /// configuration it had.
    pub async fn rollback(&self, actor: &Actor, slot: Slot) -> Result<PolicyInfo> {
        let mut change = self.store.change().await?;
        let rows = change.live(slot, 2).await?;
        if rows.len() < 2 {
            return Err(Error::NoPreviousVersion(slot));
        }
        let (before, after) = (rows[0].described(), rows[1].described());
        change
            .audit(
                actor,
                audited("policy.rollback", slot, Some(before), Some(after)),
            )
            .await?;
        change.retire(slot, rows[0].id).await?;
        change.commit().await?;
        self.synced(slot).await
    }

    /// Reads the environment's manifest again and activates every slot whose
    /// component or configuration changed. A bad manifest changes nothing.
    pub async fn reload(&self, actor: &Actor) -> Result<()> {
        let manifest = read_manifest(&self.settings)
            .map_err(|err| Error::InvalidManifest(format!("{err:#}")))?;
        let compiled = compile_manifest(&manifest)
            .await
            .map_err(|err| Error::InvalidManifest(format!("{err:#}")))?;
        for (sha256, component) in compiled {
            self.mirror.keep(sha256, component);
        }
        let mut change = self.store.change().await?;
        let mut changed = Vec::new();
        for entry in &manifest.slots {
            let current = change.live(entry.slot, 1).await?.into_iter().next();
            let same = current
                .as_ref()
                .is_some_and(|row| row.sha256 == entry.sha256 && row.config.0 == entry.config);
            if !same {
                let row = from_manifest(&manifest, entry.slot);
                let before = current.as_ref().map(Activation::described);
                change
                    .audit(
                        actor,
                        audited("policy.reload", entry.slot, before, Some(row.described())),
                    )
                    .await?;
                change.activate(entry.slot, &row).await?;
                changed.push(entry.slot);
            }
        }
        change.commit().await?;
        for slot in changed {
            self.mirror.sync(slot).await.map_err(Error::Internal)?;
        }
        Ok(())
    }

    /// Makes `bytes` the slot's shadow for the whole deployment, replacing
    /// any shadow it had (whose counts start again). With `config` the
    /// candidate runs with it; without, with the active version's.
    pub async fn start_shadow(
        &self,
        actor: &Actor,
        slot: Slot,
        bytes: Vec<u8>,
        config: Option<Config>,
    ) -> Result<ShadowInfo> {
        let (sha256, name, version) = self.accept(slot, &bytes, config.as_ref()).await?;
        let mut change = self.store.change().await?;
        let new = NewShadow {
            sha256,
            bytes,
            name,
            version,
            config,
        };
        let after = json!({
            "candidate": format!("{}@{}", new.name, new.version),
            "sha256": hex::encode(new.sha256),
            "config": new.config.as_ref().map(metadata::to_object),
        });
        change
            .audit(actor, audited("shadow.start", slot, None, Some(after)))
            .await?;
        change.replace_shadow(slot, &new).await?;
        change.commit().await?;
        self.mirror
            .sync_shadow(slot)
            .await
            .map_err(Error::Internal)?;
        let shadow = self
            .mirror
            .shadows
            .slot(slot)
            .current()
            .ok_or(Error::NoShadow(slot))?;
        Ok(self.shadow_info(slot, &shadow))
    }

    /// What the shadow is and the configuration it runs with.
    pub fn shadow_info(&self, slot: Slot, shadow: &Shadow) -> ShadowInfo {
        let info = &shadow.candidate.info;
        let ran_with = self.shadow_config(slot, shadow.own_config, &shadow.candidate.config);
        let (missing_config_keys, note) = missing(info.config_keys.as_deref(), &ran_with);
        ShadowInfo {
            slot,
            name: info.name.clone(),
            version: info.version.clone(),
            sha256: info.sha256.clone(),
            started_at: shadow.started_at,
            contract: info.contract.clone(),
            config: metadata::to_object(&ran_with),
            own_config: shadow.own_config,
            config_keys: info.config_keys.clone(),
            missing_config_keys,
            note,
        }
    }

    /// Stops the slot's shadow on every instance; its counts and examples go.
    pub async fn stop_shadow(&self, actor: &Actor, slot: Slot) -> Result<()> {
        self.end_shadow(Some(actor), slot).await
    }

    /// Stops the slot's shadow, recording it in the audit log when an
    /// `actor` stopped it (a promotion records itself).
    async fn end_shadow(&self, actor: Option<&Actor>, slot: Slot) -> Result<()> {
        let mut change = self.store.change().await?;
        if !change.delete_shadow(slot).await? {
            return Err(Error::NoShadow(slot));
        }
        if let Some(actor) = actor {
            change
                .audit(actor, audited("shadow.stop", slot, None, None))
                .await?;
        }
        change.commit().await?;
        self.mirror.sync_shadow(slot).await.map_err(Error::Internal)
    }

    /// The candidate shadowing the slot on this instance, if any.
    pub fn shadow(&self, slot: Slot) -> Option<Arc<Shadow>> {
        self.mirror.shadows.slot(slot).current()
    }

    /// Makes the slot's shadow candidate the active version, with the
    /// configuration it ran with, and stops the shadow.
    pub async fn promote_shadow(&self, actor: &Actor, slot: Slot) -> Result<PolicyInfo> {
        let row = self
            .store
            .shadow(slot)
            .await?
            .ok_or(Error::NoShadow(slot))?;
        let bytes = self.store.component(&row.sha256).await?;
        let config = row.config.map(|config| config.0);
        let info = self
            .upload_from(actor, slot, bytes, config, "shadow")
            .await?;
        match self.end_shadow(None, slot).await {
            // Stopped meanwhile through another instance: nothing left to do.
            Ok(()) | Err(Error::NoShadow(_)) => Ok(info),
            Err(err) => Err(err),
        }
    }

    /// The slot's activations, newest first, `limit` from `offset`, and how
    /// many there are: the history a console shows.
    pub async fn history(
        &self,
        slot: Slot,
        limit: i64,
        offset: i64,
    ) -> sqlx::Result<(Vec<ActivationRecord>, i64)> {
        self.store.history(slot, limit, offset).await
    }

    /// The slot's shadow across the deployment, with this instance's
    /// latest outcomes added first.
    pub async fn shadow_report(&self, slot: Slot) -> Result<ShadowReport> {
        let installed = self.mirror.shadows.slot(slot).current();
        if let Some(shadow) = &installed {
            self.store.flush(shadow).await?;
        }
        let row = self
            .store
            .shadow(slot)
            .await?
            .ok_or(Error::NoShadow(slot))?;
        let examples = self.store.examples(row.id).await?;
        let own_config = row.config.is_some();
        let ran_with = match &row.config {
            Some(config) => config.0.clone(),
            None => self.registry.active(slot).config.clone(),
        };
        // The keys come from the candidate's bytes, which this instance
        // compiled when the shadow was installed here.
        let config_keys = match installed.filter(|shadow| shadow.id == row.id) {
            Some(shadow) => shadow.candidate.info.config_keys.clone(),
            None => self
                .mirror
                .component(slot, &row.sha256)
                .await?
                .config_keys
                .clone(),
        };
        let (missing_config_keys, note) = missing(config_keys.as_deref(), &ran_with);
        Ok(ShadowReport {
            slot,
            candidate: format!("{}@{}", row.name, row.version),
            sha256: hex::encode(&row.sha256),
            started_at: row.started_at,
            evaluated: row.evaluated,
            diverged: row.diverged,
            failed: row.failed,
            dropped: row.dropped,
            stopped_at: row.stopped_at,
            stopped_reason: row.stopped_reason,
            config: metadata::to_object(&ran_with),
            own_config,
            missing_config_keys,
            note,
            examples,
        })
    }

    /// Compiles an uploaded component, checks it against the slot's world
    /// and `config` against the keys it declares, and keeps it compiled:
    /// its digest, name and version.
    async fn accept(
        &self,
        slot: Slot,
        bytes: &[u8],
        config: Option<&Config>,
    ) -> Result<([u8; 32], String, String)> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        metadata::check(bytes)
            .map_err(|why| Error::InvalidComponent(format!("the component is refused: {why}")))?;
        let (name, version) = metadata::label(bytes, &sha256);
        let component = self.mirror.compile(slot, &sha256, bytes.to_vec()).await?;
        if let Some(config) = config {
            component.validate(config)?;
        }
        Ok((sha256, name, version))
    }

    /// The configuration a shadow runs with: its own, or the active version's.
    fn shadow_config(&self, slot: Slot, own: bool, candidate: &Config) -> Config {
        if own {
            candidate.clone()
        } else {
            self.registry.active(slot).config.clone()
        }
    }

    async fn synced(&self, slot: Slot) -> Result<PolicyInfo> {
        self.mirror.sync(slot).await.map_err(Error::Internal)?;
        Ok(self.info(slot))
    }
}

/// The declared keys `config` leaves unset, and a sentence saying so.
fn missing(
    declared: Option<&[metadata::ConfigKey]>,
    config: &Config,
) -> (Vec<String>, Option<String>) {
    let missing = metadata::missing(declared, config);
    let note = metadata::missing_note(&missing);
    (missing.iter().map(|key| key.key.clone()).collect(), note)
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

/// Compiles every component the manifest names and checks its slot's world
/// and configuration; every error names the file and the slot.
async fn compile_manifest(manifest: &Manifest) -> anyhow::Result<HashMap<[u8; 32], Compiled>> {
    let mut compiled = HashMap::new();
    for entry in &manifest.slots {
        let at = || format!("{}: slot {}", manifest.path.display(), entry.slot);
        let component = mirror::check(entry.slot, entry.bytes.clone())
            .await
            .map_err(|err| anyhow::anyhow!("{}: {err}", at()))?;
        component
            .validate(&entry.config)
            .map_err(|err| anyhow::anyhow!("{}: config: {err}", at()))?;
        compiled.insert(entry.sha256, component);
    }
    Ok(compiled)
}

fn from_manifest(manifest: &Manifest, slot: Slot) -> NewActivation {
    let entry = manifest.slot(slot);
    NewActivation {
        sha256: entry.sha256,
        bytes: Some(entry.bytes.clone()),
        name: entry.name.clone(),
        version: entry.version.clone(),
        config: entry.config.clone(),
        source: manifest.source(),
    }
}

/// A change of `slot`'s policy as the audit log records it.
fn audited(
    action: &str,
    slot: Slot,
    before: Option<Value>,
    after: Option<Value>,
) -> audit::Change<'_> {
    audit::Change {
        action,
        target: format!("policy:{slot}"),
        before,
        after,
    }
}

/// A version as the audit log shows it: by name, version and digest, never
/// its bytes.
fn described(name: &str, version: &str, sha256: &[u8], config: &Config) -> Value {
    json!({
        "policy": format!("{name}@{version}"),
        "sha256": hex::encode(sha256),
        "config": metadata::to_object(config),
    })
}

impl Activation {
    fn described(&self) -> Value {
        described(&self.name, &self.version, &self.sha256, &self.config.0)
    }
}

impl NewActivation {
    fn described(&self) -> Value {
        described(&self.name, &self.version, &self.sha256, &self.config)
    }
}
