//! Watching the config file for `hot_reload: true` (spec §9).
//!
//! The file's *directory* is watched, not the file: editors and tools replace files by atomic
//! rename, and Kubernetes ConfigMaps swap a `..data` symlink, both of which a watch on the file
//! itself would miss. Every event except plain reads is forwarded; the control thread
//! debounces them and reloads only when the bytes differ from the running config.

use std::path::Path;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::Event;

/// Starts watching the directory of `config_path`; events go to `events` until the returned
/// watcher is dropped.
pub fn watch(
    config_path: &Path,
    events: crossbeam_channel::Sender<Event>,
) -> notify::Result<RecommendedWatcher> {
    let dir = match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !matches!(ev.kind, EventKind::Access(_)) {
                let _ = events.send(Event::FileChanged);
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}
