//! Features the config can describe but Dito cannot do yet (spec §2: "not supported yet").
//!
//! Using one is an error — never silently ignored. [`NOT_SUPPORTED_YET`] is the single list:
//! when a feature lands, delete its line here and the checks at the call sites become no-ops
//! (then delete those too).

use super::Report;

/// A feature that validation checks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feature {
    /// `locations[].enable_websocket: true`.
    WebSocket,
}

/// What is not supported yet, and how messages name it.
const NOT_SUPPORTED_YET: &[(Feature, &str)] = &[(Feature::WebSocket, "WebSocket")];

/// Records `path: not supported yet (NAME)` if `feature` is still on the list.
pub(crate) fn check(r: &mut Report, path: &str, feature: Feature) {
    if r.allow_unfinished {
        return;
    }
    if let Some((_, name)) = NOT_SUPPORTED_YET.iter().find(|(f, _)| *f == feature) {
        r.error(path, format!("not supported yet ({name})"));
    }
}
