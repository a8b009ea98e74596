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

use super::service::PolicyService;
use crate::config::Settings;

/// How long the files must stay unchanged before they are read.
pub const QUIET: Duration = Duration::from_millis(200);

/// Follows the policy files until `stop`; logs and returns when the
/// platform offers no file watch.
pub async fn follow(service: Arc<PolicyService>, settings: Arc<Settings>, stop: CancellationToken) {
    let (changed, mut changes) = mpsc::channel::<()>(1);
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
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!(%err, "cannot watch the policy files; use POST /api/v1/admin/policies/reload");
            return;
        }
    };
    let mut folders = HashSet::new();
    watch(&mut watcher, &mut folders, &files, &settings);
    tracing::info!(folders = ?folders, "following edits to the policy manifest and components");
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            received = changes.recv() => if received.is_none() { return },
        }
        // Wait for the writes to settle.
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(QUIET) => break,
                _ = changes.recv() => {}
            }
        }
        match service.reload().await {
            Ok(()) => tracing::info!("policy files changed; reloaded the manifest"),
            Err(err) => {
                tracing::error!(error = %err, "policy files changed but cannot be loaded; the running policies stay");
            }
        }
        // The manifest may now name other components.
        watch(&mut watcher, &mut folders, &files, &settings);
    }
}

/// Watches the folders of the manifest and of the components it names, and
/// makes those files the ones whose events count. Folders already watched
/// stay watched.
fn watch(
    watcher: &mut RecommendedWatcher,
    folders: &mut HashSet<PathBuf>,
    files: &Mutex<HashSet<PathBuf>>,
    settings: &Settings,
) {
    let wanted = policy_files(settings);
    for file in &wanted {
        let Some(folder) = file.parent() else {
            continue;
        };
        if folders.contains(folder) {
            continue;
        }
        match watcher.watch(folder, RecursiveMode::NonRecursive) {
            Ok(()) => {
                folders.insert(folder.to_path_buf());
            }
            Err(err) => tracing::warn!(folder = %folder.display(), %err, "cannot watch"),
        }
    }
    let mut files = lock(files);
    // Keep what was followed before: a broken manifest names nothing, and
    // the component files it named may come back with its fix.
    files.extend(wanted);
}

/// The manifest and every component file it names, as absolute paths (as
/// the watch reports them).
fn policy_files(settings: &Settings) -> Vec<PathBuf> {
    let manifest = settings
        .manifest_dir
        .join(format!("{}.toml", settings.environment));
    let mut files = vec![absolute(&manifest)];
    match super::manifest::load(
        &settings.manifest_dir,
        &settings.component_dir,
        &settings.environment,
    ) {
        Ok(loaded) => files.extend(loaded.slots.iter().map(|slot| absolute(&slot.component))),
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
