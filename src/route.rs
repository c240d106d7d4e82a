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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn spec(pattern: &str, target: &str, replace_path: bool) -> RouteSpec {
        // Split a target URL of the form `http://host/path?query` the way the config loader
        // does: raw path (may be empty) and raw query without `?`.
        let rest = target.split_once("://").map_or(target, |(_, r)| r);
        let after_host = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
        let (path, query) = match after_host.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (after_host, None),
        };
        RouteSpec {
            pattern: pattern.to_string(),
            target_path: path.to_string(),
            target_query: query,
            replace_path,
        }
    }

    /// Routes a raw request-target (`path[?query]`) through `router` and returns the upstream
    /// request-target, or `None` when nothing matches.
    fn upstream_with(router: &Router, request: &[u8]) -> Option<Vec<u8>> {
        let (path, query) = match request.iter().position(|&b| b == b'?') {
            Some(i) => (&request[..i], Some(&request[i + 1..])),
            None => (request, None),
        };
        let m = router.lookup(path)?;
        let mut out = Vec::new();
        write_upstream_target(router.get(m.index).unwrap(), path, query, &m, &mut out);
        Some(out)
    }

    fn upstream(pattern: &str, target: &str, replace_path: bool, request: &str) -> String {
        let router = Router::build(&[spec(pattern, target, replace_path)]).unwrap();
        let out = upstream_with(&router, request.as_bytes()).expect("no match");
        String::from_utf8(out).unwrap()
    }

    // --- spec §3 table, one test per row ---

    #[test]
    fn table_prefix_stripped_query_kept() {
        let got = upstream("^/api", "http://u/base", false, "/api/users?x=1");
        assert_eq!(got, "/base/users?x=1");
    }

    #[test]
    fn table_whole_path_matched_gives_target() {
        assert_eq!(upstream("^/api", "http://u/base", false, "/api"), "/base");
    }

    #[test]
    fn table_whole_path_matched_empty_target_gives_root() {
        assert_eq!(upstream("^/api", "http://u", false, "/api"), "/");
    }

    #[test]
    fn table_double_slash_kept() {
        assert_eq!(
            upstream("^/api", "http://u/base", false, "/api//x"),
            "/base//x"
        );
    }

    #[test]
    fn table_partial_segment() {
        assert_eq!(
            upstream("^/api", "http://u/base", false, "/apiary"),
            "/base/ary"
        );
    }

    #[test]
    fn table_match_in_middle_keeps_whole_path() {
        assert_eq!(
            upstream("/v1", "http://u/base", false, "/x/v1"),
            "/base/x/v1"
        );
    }

    #[test]
    fn table_replace_path_merges_queries() {
        let got = upstream("^/rp", "http://u/echo/base?tq=1", true, "/rp/extra?a=1");
        assert_eq!(got, "/echo/base?tq=1&a=1");
    }

    #[test]
    fn table_percent_encoding_passes_through() {
        let got = upstream("^/s", "http://u/b%2Fc", false, "/s/a%2Fb");
        assert_eq!(got, "/b%2Fc/a%2Fb");
    }

    // --- matching ---

    #[test]
    fn first_match_in_config_order_wins() {
        let router = Router::build(&[
            spec("^/nope", "http://u/0", false),
            spec("/b", "http://u/1", false),
            spec("^/a", "http://u/2", false),
            spec("^/a/b", "http://u/3", false),
        ])
        .unwrap();
        // Location 2 would match earlier in the path, but location 1 comes first.
        let m = router.lookup(b"/a/b").unwrap();
        assert_eq!(
            m,
            RouteMatch {
                index: 1,
                match_start: 2,
                match_end: 4
            }
        );
        assert_eq!(router.lookup(b"/a/c").unwrap().index, 2);
        assert_eq!(router.len(), 4);
        assert!(!router.is_empty());
    }

    #[test]
    fn no_match_is_none() {
        let router = Router::build(&[spec("^/api", "http://u/base", false)]).unwrap();
        assert_eq!(router.lookup(b"/other"), None);
        assert_eq!(router.lookup(b"/ap"), None);
        let empty = Router::build(&[]).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert_eq!(empty.lookup(b"/"), None);
        assert!(empty.get(0).is_none());
    }

    #[test]
    fn leftmost_match_offsets_are_reported() {
        let router = Router::build(&[spec("v[0-9]", "http://u", false)]).unwrap();
        let m = router.lookup(b"/v1/v2").unwrap();
        assert_eq!((m.match_start, m.match_end), (1, 3));
    }

    #[test]
    fn empty_match_at_start_keeps_whole_path() {
        assert_eq!(upstream("^", "http://u/base", false, "/x/y"), "/base/x/y");
        assert_eq!(upstream("x*", "http://u/base", false, "/x/y"), "/base/x/y");
        let router = Router::build(&[spec("x*", "http://u", false)]).unwrap();
        let m = router.lookup(b"/x").unwrap();
        assert_eq!((m.match_start, m.match_end), (0, 0));
    }

    #[test]
    fn empty_path_is_root() {
        let router = Router::build(&[
            spec("^/api", "http://u/a", false),
            spec("^/$", "http://u/base", false),
        ])
        .unwrap();
        let m = router.lookup(b"").unwrap();
        assert_eq!(m.index, 1);
        let mut out = Vec::new();
        write_upstream_target(router.get(1).unwrap(), b"", Some(b"q"), &m, &mut out);
        assert_eq!(out, b"/base?q");
        // No prefix stripped: the whole (root) path is appended to the target.
        assert_eq!(upstream("^/api|^", "http://u/base", false, ""), "/base/");
        assert_eq!(upstream("/", "http://u", true, ""), "/");
    }

    #[test]
    fn target_trailing_slash_not_doubled() {
        assert_eq!(
            upstream("^/api", "http://u/base/", false, "/api/x"),
            "/base/x"
        );
        assert_eq!(upstream("^/api", "http://u/base/", false, "/api"), "/base/");
        assert_eq!(
            upstream("^/api", "http://u/base/", false, "/api/"),
            "/base/"
        );
        assert_eq!(upstream("^/api", "http://u/base", false, "/api/"), "/base/");
        // Only one slash is removed on each side.
        assert_eq!(
            upstream("^/api", "http://u/b//", false, "/api//x"),
            "/b///x"
        );
    }

    #[test]
    fn replace_path_ignores_request_path() {
        assert_eq!(upstream("^/rp", "http://u/t", true, "/rp/a/b"), "/t");
        assert_eq!(upstream("^/rp", "http://u", true, "/rp/a/b"), "/");
        assert_eq!(upstream("^/rp", "http://u/t/", true, "/rp"), "/t/");
    }

    #[test]
    fn non_utf8_bytes_pass_through() {
        let router = Router::build(&[spec("^/api", "http://u/base", false)]).unwrap();
        let got = upstream_with(&router, b"/api/\xff\xfe%zz/\xc3?k=\x80%GG").unwrap();
        assert_eq!(got, b"/base/\xff\xfe%zz/\xc3?k=\x80%GG");
        // A path that is not UTF-8 still matches a find-anywhere pattern.
        let router = Router::build(&[spec("/v1", "http://u", false)]).unwrap();
        let got = upstream_with(&router, b"/\xff/v1").unwrap();
        assert_eq!(got, b"/\xff/v1");
    }

    // --- query merge ---

    fn query(target_query: Option<&str>, client: Option<&[u8]>) -> Vec<u8> {
        let router = Router::build(&[RouteSpec {
            pattern: "^/p".into(),
            target_path: "/t".into(),
            target_query: target_query.map(str::to_string),
            replace_path: true,
        }])
        .unwrap();
        let m = router.lookup(b"/p").unwrap();
        let mut out = Vec::new();
        write_upstream_target(router.get(0).unwrap(), b"/p", client, &m, &mut out);
        out
    }

    #[test]
    fn query_merge() {
        assert_eq!(query(None, None), b"/t");
        assert_eq!(query(Some(""), None), b"/t");
        assert_eq!(query(Some("a=1"), None), b"/t?a=1");
        assert_eq!(query(None, Some(b"b=2")), b"/t?b=2");
        assert_eq!(query(Some("a=1"), Some(b"b=2")), b"/t?a=1&b=2");
        assert_eq!(query(Some(""), Some(b"b=2")), b"/t?b=2");
    }

    #[test]
    fn query_bytes_are_not_decoded() {
        assert_eq!(
            query(Some("q=a%20b"), Some(b"r=%20;s=1")),
            b"/t?q=a%20b&r=%20;s=1"
        );
        assert_eq!(query(None, Some(b"a=&b")), b"/t?a=&b");
        assert_eq!(query(Some("a=&b"), Some(b"&&c=")), b"/t?a=&b&&&c=");
        assert_eq!(query(None, Some(b"x=\xff+%zz")), b"/t?x=\xff+%zz");
        assert_eq!(query(None, Some(b"?")), b"/t??");
    }

    #[test]
    fn bare_client_question_mark_is_kept() {
        assert_eq!(query(None, Some(b"")), b"/t?");
        assert_eq!(query(Some(""), Some(b"")), b"/t?");
        assert_eq!(query(Some("tq=1"), Some(b"")), b"/t?tq=1");
        let router = Router::build(&[spec("^/api", "http://u/base", false)]).unwrap();
        assert_eq!(upstream_with(&router, b"/api/x?").unwrap(), b"/base/x?");
    }

    // --- RegexSet path, build errors, clone ---

    fn many(patterns: &[&str]) -> Router {
        let specs: Vec<_> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| spec(p, &format!("http://u/{i}"), false))
            .collect();
        Router::build(&specs).unwrap()
    }

    const MANY: [&str; 12] = [
        "^/a$", "^/b$", "^/c$", "/mid", "^/d", "^/e", "^/f", "^/g", "^/h", "^/mid", "^/", "z",
    ];

    #[test]
    fn regex_set_picks_first_in_config_order() {
        let router = many(&MANY);
        assert!(router.set.is_some());
        assert_eq!(router.len(), 12);
        // `^/mid` (9) and `^/` (10) match at 0, but `/mid` (3) comes first in config order.
        let m = router.lookup(b"/mid/x").unwrap();
        assert_eq!((m.index, m.match_start, m.match_end), (3, 0, 4));
        assert_eq!(router.lookup(b"/x/mid").unwrap().index, 3);
        assert_eq!(router.lookup(b"/h/z").unwrap().index, 8);
        assert_eq!(router.lookup(b"/zzz").unwrap().index, 10);
        assert_eq!(router.lookup(b"").unwrap().index, 10);
        assert_eq!(upstream_with(&router, b"/h/z?q").unwrap(), b"/8/z?q");
        let router = many(&MANY[..11]);
        assert_eq!(router.lookup(b"/x").unwrap().index, 10);
        let no_root = many(&MANY[..10]);
        assert_eq!(no_root.lookup(b"/x"), None);
        assert_eq!(no_root.lookup(b"/q/z"), None);
    }

    #[test]
    fn regex_set_agrees_with_linear_scan() {
        let with_set = many(&MANY);
        let linear = Router {
            set: None,
            ..with_set.clone()
        };
        let small = many(&MANY[..SET_THRESHOLD]);
        assert!(small.set.is_none());
        for path in [
            &b"/a"[..],
            b"/a/",
            b"/b",
            b"/c",
            b"/d/1",
            b"/mid",
            b"/x/mid",
            b"/e",
            b"/f",
            b"/gg",
            b"/h",
            b"/z",
            b"z",
            b"",
            b"/",
            b"nothing",
            b"/\xff",
        ] {
            assert_eq!(with_set.lookup(path), linear.lookup(path), "{path:?}");
        }
    }

    #[test]
    fn build_reports_the_bad_pattern() {
        let (i, e) = Router::build(&[
            spec("^/ok", "http://u", false),
            spec("(", "http://u", false),
        ])
        .unwrap_err();
        assert_eq!(i, 1);
        assert!(!e.is_empty());
        let mut patterns = MANY.to_vec();
        patterns[10] = "[z-a]";
        let specs: Vec<_> = patterns
            .iter()
            .map(|p| spec(p, "http://u", false))
            .collect();
        assert_eq!(Router::build(&specs).unwrap_err().0, 10);
    }

    #[test]
    fn clone_works_independently() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Router>();
        for router in [many(&MANY[..3]), many(&MANY)] {
            let clone = router.clone();
            let in_thread = router.clone();
            drop(router);
            assert_eq!(clone.lookup(b"/b").unwrap().index, 1);
            let got = std::thread::spawn(move || upstream_with(&in_thread, b"/a?x").unwrap())
                .join()
                .unwrap();
            assert_eq!(got, b"/0?x");
            assert_eq!(clone.get(2).unwrap().pattern(), "^/c$");
            assert!(!clone.get(2).unwrap().replace_path());
        }
    }

    #[test]
    fn bogus_match_offsets_do_not_panic() {
        let router = Router::build(&[spec("^/api", "http://u/base", false)]).unwrap();
        let route = router.get(0).unwrap();
        let m = RouteMatch {
            index: 0,
            match_start: 0,
            match_end: 99,
        };
        let mut out = Vec::new();
        write_upstream_target(route, b"/api/x", None, &m, &mut out);
        assert_eq!(out, b"/base/api/x");
    }
}
