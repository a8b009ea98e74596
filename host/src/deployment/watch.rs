//! In `dev`, edits to the environment's manifest or to a component file it
//! names are picked up as `POST /api/v1/admin/policies/reload` would pick
//! them up, so rebuilding a plugin is enough to try it.
//!
//! The folders holding those files are watched (editors and cargo replace
//! files rather than write them in place, which a watch on the file itself
//! would lose). Events are debounced: a reload follows [`QUIET`] without
//! further events, so a build that rewrites several components reloads once.
//! A manifest that does not load is logged and changes nothing.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::PolicyService;
use crate::audit::Actor;
use crate::config::Settings;
use crate::policy::lock;

/// How long the files must stay unchanged before they are read.
pub const QUIET: Duration = Duration::from_millis(200);

/// A watch on the policy files, registered and ready to follow.
pub struct PolicyWatch {
    watcher: RecommendedWatcher,
    folders: HashSet<PathBuf>,
    files: Arc<Mutex<HashSet<PathBuf>>>,
    changes: mpsc::Receiver<()>,
    service: Arc<PolicyService>,
    settings: Arc<Settings>,
}

impl PolicyWatch {
    /// Watches the manifest and its components from now on; `None`, logged,
    /// when the platform offers no file watch.
    pub fn start(service: Arc<PolicyService>, settings: Arc<Settings>) -> Option<Self> {
        let (changed, changes) = mpsc::channel::<()>(1);
        let files: Arc<Mutex<HashSet<PathBuf>>> = Arc::default();
        let interesting = files.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
                return;
            }
            let files = lock(&interesting);
            if event.paths.iter().any(|path| files.contains(path)) {
                // A full channel already holds a change to act on.
                let _ = changed.try_send(());
            }
        });
        let watcher = match watcher {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::warn!(%err, "cannot watch the policy files; use POST /api/v1/admin/policies/reload");
                return None;
            }
        };
        let mut watch = Self {
            watcher,
            folders: HashSet::new(),
            files,
            changes,
            service,
            settings,
        };
        watch.watch();
        tracing::info!(folders = ?watch.folders, "following edits to the policy manifest and components");
        Some(watch)
    }

    /// Reloads after each settled change, until `stop`.
    pub async fn follow(mut self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                received = self.changes.recv() => if received.is_none() { return },
            }
            // Wait for the writes to settle.
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(QUIET) => break,
                    _ = self.changes.recv() => {}
                }
            }
            match self.service.reload(&Actor::system()).await {
                Ok(()) => tracing::info!("policy files changed; reloaded the manifest"),
                Err(err) => {
                    tracing::error!(error = %err, "policy files changed but cannot be loaded; the running policies stay");
                }
            }
            // The manifest may now name other components.
            self.watch();
        }
    }

    /// Watches the folders of the manifest and of the components it names,
    /// and makes those files the ones whose events count. Folders already
    /// watched stay watched.
    fn watch(&mut self) {
        let wanted = policy_files(&self.settings);
        for file in &wanted {
            let Some(folder) = file.parent() else {
                continue;
            };
            if self.folders.contains(folder) {
                continue;
            }
            match self.watcher.watch(folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.folders.insert(folder.to_path_buf());
                }
                Err(err) => tracing::warn!(folder = %folder.display(), %err, "cannot watch"),
            }
        }
        // Keep what was followed before: a broken manifest names nothing, and
        // the component files it named may come back with its fix.
        lock(&self.files).extend(wanted);
    }
}

/// The manifest and every component file it names, as absolute paths (as
/// the watch reports them).
fn policy_files(settings: &Settings) -> Vec<PathBuf> {
    let manifest = settings
        .manifest_dir
        .join(format!("{}.toml", settings.environment));
    let mut files = vec![absolute(&manifest)];
    match crate::policy::manifest::load(
        &settings.manifest_dir,
        &settings.component_dir,
        &settings.environment,
    ) {
        Ok(loaded) => files.extend(
            loaded
                .slots
                .iter()
                .filter_map(|slot| slot.component.as_deref())
                .map(absolute),
        ),
        Err(err) => tracing::debug!(%err, "the manifest names no components to follow"),
    }
    files
}

/// `path` made absolute with its folder resolved, so that it compares equal
/// to what the watch reports.
fn absolute(path: &Path) -> PathBuf {
    let (Some(folder), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_path_buf();
    };
    let folder = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    std::fs::canonicalize(folder)
        .map(|folder| folder.join(name))
        .unwrap_or_else(|_| path.to_path_buf())
}
