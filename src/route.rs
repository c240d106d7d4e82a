//! Routing and the upstream request-target rewrite (spec §3, "Matching", "Upstream path",
//! "Query").
//!
//! This module owns the route table: [`Router::build`] compiles one [`Route`] per location on
//! the control thread, once per config generation; each worker then keeps its own
//! [`Router::clone`] (which gives it private regex caches) and calls [`Router::lookup`] on the
//! raw request path, then [`write_upstream_target`] with the winning [`Route`] to append the
//! upstream path and query to its request buffer. Paths and queries are bytes that are never
//! decoded, normalised or rejected here: percent-encoding, `//` and bytes ≥ 0x80 pass as sent.
//! Lookup and rewrite do not allocate (except `RegexSet::matches`' one small pattern set per
//! lookup when the table has more than [`SET_THRESHOLD`] locations), and never panic.

use regex::bytes::{Regex, RegexSet};

/// Above this many locations, [`Router::lookup`] asks a [`RegexSet`] which locations match
/// (one pass over the path) instead of trying each regex in turn.
pub const SET_THRESHOLD: usize = 8;

/// What a location contributes to routing (built from the validated config by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// The location's regex as written (already validated by the config loader).
    pub pattern: String,
    /// The target URL's path, raw (not decoded); may be empty.
    pub target_path: String,
    /// The target URL's query, raw, without the `?`.
    pub target_query: Option<String>,
    pub replace_path: bool,
}

/// One compiled location: its regex and the pieces of its target that the rewrite needs,
/// precomputed so that [`write_upstream_target`] only copies bytes.
#[derive(Debug, Clone)]
pub struct Route {
    regex: Regex,
    /// T, or `/` when T is empty: the whole path for `replace_path` or an empty remainder.
    path_or_root: Box<[u8]>,
    /// T without one trailing `/`: the prefix when a remainder is appended.
    path_trimmed: Box<[u8]>,
    /// T_q; empty when the target has no query (or a bare `?`).
    query: Box<[u8]>,
    replace_path: bool,
}

impl Route {
    fn compile(spec: &RouteSpec) -> Result<Route, String> {
        let regex = Regex::new(&spec.pattern).map_err(|e| e.to_string())?;
        let t = spec.target_path.as_bytes();
        let path_or_root: &[u8] = if t.is_empty() { b"/" } else { t };
        Ok(Route {
            regex,
            path_or_root: path_or_root.into(),
            path_trimmed: t.strip_suffix(b"/").unwrap_or(t).into(),
            query: spec.target_query.as_deref().unwrap_or("").as_bytes().into(),
            replace_path: spec.replace_path,
        })
    }

    /// The location's regex as written.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    /// Whether the location replaces the whole path with the target path.
    pub fn replace_path(&self) -> bool {
        self.replace_path
    }

    /// This location's match in `path` as a [`RouteMatch`] at `index`; when the pattern no
    /// longer matches (a plugin changed the path), an empty match, so the rewrite of spec §3
    /// appends the whole path to the target path.
    pub fn rematch(&self, index: usize, path: &[u8]) -> RouteMatch {
        let (match_start, match_end) = self
            .regex
            .find(effective_path(path))
            .map_or((0, 0), |m| (m.start(), m.end()));
        RouteMatch {
            index,
            match_start,
            match_end,
        }
    }
}

/// The winning location for a request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the location in config order (also the index into [`Router::get`]).
    pub index: usize,
    /// Byte offsets of the leftmost match of that location's regex in the path (an empty path
    /// is matched as `/`, so the offsets are into `/` then).
    pub match_start: usize,
    pub match_end: usize,
}

/// The compiled route table, built once per config generation on the control thread.
///
/// `Clone` is how each worker gets its copy, and it is deliberately a deep-enough clone: the
/// derived impl clones every `regex::bytes::Regex` (and the `RegexSet`), and cloning a regex
/// shares the compiled program (an `Arc`) but creates a fresh, empty cache pool. Each worker
/// therefore owns its search caches and takes the pool's uncontended owner-thread fast path,
/// instead of all workers contending on the pool of one shared regex.
#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<Route>,
    /// Present when there are more than [`SET_THRESHOLD`] routes (and the set compiled).
    set: Option<RegexSet>,
}

impl Router {
    /// Compiles every location in order. The config loader has already validated the
    /// patterns, but a pattern that still fails to compile is reported as `(index, error)`
    /// rather than panicking. If only the combined `RegexSet` fails (e.g. a size limit), the
    /// router works without it, trying each regex in turn.
    pub fn build(specs: &[RouteSpec]) -> Result<Router, (usize, String)> {
        let routes = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| Route::compile(spec).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let set = if routes.len() > SET_THRESHOLD {
            RegexSet::new(routes.iter().map(Route::pattern)).ok()
        } else {
            None
        };
        Ok(Router { routes, set })
    }

    /// The first location, in config order, whose regex matches anywhere in the raw path
    /// `path` (no query; an empty path is matched as `/`), with the leftmost match of that
    /// location's regex. `None` = no location matches (404).
    pub fn lookup(&self, path: &[u8]) -> Option<RouteMatch> {
        let path = effective_path(path);
        // With a set, one pass finds the lowest matching index; the scan below then starts
        // there and normally stops at its first regex.
        let first = match &self.set {
            Some(set) => set.matches(path).iter().next()?,
            None => 0,
        };
        let rest = self.routes.get(first..)?;
        rest.iter().enumerate().find_map(|(i, route)| {
            route.regex.find(path).map(|m| RouteMatch {
                index: first + i,
                match_start: m.start(),
                match_end: m.end(),
            })
        })
    }

    /// The compiled location at `index` (as in [`RouteMatch::index`]).
    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    /// Number of locations.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// No locations: every request is a 404.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// An absolute-form request-target may have an empty path; it means `/`.
fn effective_path(path: &[u8]) -> &[u8] {
    if path.is_empty() {
        b"/"
    } else {
        path
    }
}

/// Appends the upstream request-target (path, then `?query` if any) for a request to `out`.
///
/// A free function over the compiled route: the caller passes `router.get(m.index)` together
/// with the `m` that [`Router::lookup`] returned for the same `raw_path` (only `match_start`
/// and `match_end` are read here). `raw_path` is the request path without the query (empty is
/// treated as `/`); `client_query` is the raw query without the `?`: `None` when the target had
/// no `?`, `Some(b"")` for a bare `?`. Offsets outside the path are treated as "no prefix to
/// strip" rather than panicking.
pub fn write_upstream_target(
    route: &Route,
    raw_path: &[u8],
    client_query: Option<&[u8]>,
    m: &RouteMatch,
    out: &mut Vec<u8>,
) {
    write_path(route, effective_path(raw_path), m, out);
    write_query(&route.query, client_query, out);
}

fn write_path(route: &Route, path: &[u8], m: &RouteMatch, out: &mut Vec<u8>) {
    if route.replace_path {
        out.extend_from_slice(&route.path_or_root);
        return;
    }
    // R: the path after the match when the match is a non-empty prefix, else the whole path.
    let rest = if m.match_start == 0 && m.match_end > 0 {
        path.get(m.match_end..).unwrap_or(path)
    } else {
        path
    };
    if rest.is_empty() {
        out.extend_from_slice(&route.path_or_root);
    } else {
        out.extend_from_slice(&route.path_trimmed);
        out.push(b'/');
        out.extend_from_slice(rest.strip_prefix(b"/").unwrap_or(rest));
    }
}

fn write_query(target: &[u8], client: Option<&[u8]>, out: &mut Vec<u8>) {
    let client_bytes = client.unwrap_or(b"");
    match (target.is_empty(), client_bytes.is_empty()) {
        (false, false) => {
            out.push(b'?');
            out.extend_from_slice(target);
            out.push(b'&');
            out.extend_from_slice(client_bytes);
        }
        (false, true) => {
            out.push(b'?');
            out.extend_from_slice(target);
        }
        (true, false) => {
            out.push(b'?');
            out.extend_from_slice(client_bytes);
        }
        // A bare `?` from the client is kept.
        (true, true) if client.is_some() => out.push(b'?'),
        (true, true) => {}
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
