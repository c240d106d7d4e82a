//! Watching the config file for `hot_reload: true` (spec §9).
//!
//! The file's *directory* is watched, not the file: editors and tools replace files by atomic
//! rename, and Kubernetes ConfigMaps swap a `..data` symlink, both of which a watch on the file
//! itself would miss. Only events that concern the config file are forwarded — its own name,
//! a name its symlink chain passes through inside the directory, and the ConfigMap's `..data`
//! link — so a log file or anything else written beside it cannot keep the control thread's
//! debounce from ever ending. The control thread debounces what is forwarded and reloads only
//! when the bytes differ from the running config.

use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::Event;

/// Symlinks followed when listing the names the config file resolves through.
const MAX_LINK_HOPS: usize = 8;

/// Starts watching the directory of `config_path`; events go to `events` until the returned
/// watcher is dropped.
pub fn watch(
    config_path: &Path,
    events: crossbeam_channel::Sender<Event>,
) -> notify::Result<RecommendedWatcher> {
    let dir = match config_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let config_path = config_path.to_path_buf();
    let watched_dir = dir.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        // An event without paths (a rescan after a queue overflow) may hide a change.
        let names = relevant_names(&config_path, &watched_dir);
        let concerns_config = ev.paths.is_empty()
            || ev
                .paths
                .iter()
                .filter_map(|p| p.file_name())
                .any(|n| is_relevant(n, &names));
        if concerns_config {
            let _ = events.send(Event::FileChanged);
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Whether a changed entry named `name` in the watched directory can change the config's bytes.
fn is_relevant(name: &OsStr, names: &[OsString]) -> bool {
    // Kubernetes' atomic writer creates `..data_tmp` and renames it over `..data`.
    let configmap_link = name.as_encoded_bytes().starts_with(b"..data");
    configmap_link || names.iter().any(|n| n == name)
}

/// The names in `dir` the config file resolves through: its own name, then each symlink on
/// the way to the real file that lives in `dir` — a ConfigMap mounts `config.yaml ->
/// ..data/config.yaml` with `..data -> ..2026_01_01_…`, and a hand-made `config.yaml -> v2.yaml`
/// changes when `v2.yaml` does. Read afresh for each event, since a swap changes the links.
fn relevant_names(config_path: &Path, dir: &Path) -> Vec<OsString> {
    let mut names = Vec::with_capacity(3);
    let Some(name) = config_path.file_name() else {
        return names;
    };
    // A path relative to `dir` whose first component is an entry of `dir`.
    let mut rel = PathBuf::from(name);
    for _ in 0..MAX_LINK_HOPS {
        let mut parts = rel.components();
        let Some(Component::Normal(first)) = parts.next() else {
            break;
        };
        let rest = parts.as_path().to_path_buf();
        if !names.iter().any(|n| n == first) {
            names.push(first.to_os_string());
        }
        let Ok(target) = std::fs::read_link(dir.join(first)) else {
            break;
        };
        rel = if target.is_absolute() {
            match target.strip_prefix(dir) {
                Ok(inside) => inside.join(rest),
                Err(_) => break,
            }
        } else {
            target.join(rest)
        };
    }
    names
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_follow_a_configmap_style_link_chain() {
        let dir = std::env::temp_dir().join(format!("dito-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("..2026_01")).unwrap();
        std::fs::write(dir.join("..2026_01/dito.yaml"), "port: 0\n").unwrap();
        std::os::unix::fs::symlink("..2026_01", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/dito.yaml", dir.join("dito.yaml")).unwrap();
        let names = relevant_names(&dir.join("dito.yaml"), &dir);
        assert!(names.contains(&OsString::from("dito.yaml")), "{names:?}");
        assert!(names.contains(&OsString::from("..data")), "{names:?}");
        assert!(names.contains(&OsString::from("..2026_01")), "{names:?}");
        assert!(!is_relevant(OsStr::new("dito.log"), &names));
        assert!(is_relevant(OsStr::new("..data_tmp"), &names));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plain_file_concerns_only_its_own_name() {
        let names = relevant_names(
            Path::new("/nonexistent/dir/cfg.yaml"),
            Path::new("/nonexistent/dir"),
        );
        assert_eq!(names, [OsString::from("cfg.yaml")]);
        assert!(!is_relevant(OsStr::new("cfg.yaml.swp"), &names));
    }
}
