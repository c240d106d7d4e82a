//! Puts diagnostics in the order their keys appear in the file.
//!
//! Problems are found in several passes (YAML types first, then values), so the raw list is
//! grouped by pass. Sorting by each path's first appearance in the document (pre-order over
//! the [`Raw`] tree) gives the reader one top-to-bottom list; a path that is not in the file
//! (a missing required key) sorts with its nearest parent that is. The sort is stable, so
//! several problems on one key keep their order.

use std::collections::HashMap;

use super::raw::Raw;
use super::{index, join, Diagnostic};

/// Sorts `list` by the position of each diagnostic's path in `root`.
pub(crate) fn sort_by_position(root: &Raw, list: &mut [Diagnostic]) {
    let mut ranks = HashMap::new();
    collect(root, "", &mut ranks);
    list.sort_by_cached_key(|d| rank(&ranks, &d.path));
}

/// Numbers every path in document order (the root is 0).
fn collect(node: &Raw, path: &str, ranks: &mut HashMap<String, usize>) {
    let next = ranks.len();
    ranks.entry(path.to_string()).or_insert(next);
    match node {
        Raw::Map(entries) => {
            for (key, value) in entries {
                collect(value, &join(path, key), ranks);
            }
        }
        Raw::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, &index(path, i), ranks);
            }
        }
        _ => {}
    }
}

/// The rank of `path`, or of its longest prefix (cut at `.` or `[`) that has one.
fn rank(ranks: &HashMap<String, usize>, path: &str) -> usize {
    let mut current = path;
    loop {
        if let Some(&rank) = ranks.get(current) {
            return rank;
        }
        match current.rfind(['.', '[']) {
            Some(cut) => current = &current[..cut],
            None => return 0,
        }
    }
}
