//! Routing and the upstream target rewrite of spec §3, case by case.

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

#[test]
fn rematch_rewrites_a_changed_path_with_the_same_location() {
    let router = Router::build(&[spec("^/api", "http://up/v1", false)]).unwrap();
    let route = router.get(0).unwrap();
    let rewrite = |path: &[u8]| {
        let m = route.rematch(0, path);
        let mut out = Vec::new();
        write_upstream_target(route, path, None, &m, &mut out);
        String::from_utf8(out).unwrap()
    };
    // Still matching: the prefix is replaced as usual.
    assert_eq!(rewrite(b"/api/users"), "/v1/users");
    // No longer matching: the whole new path goes after the target path.
    assert_eq!(rewrite(b"/other/x"), "/v1/other/x");
    assert_eq!(route.rematch(0, b"/other/x").match_end, 0);
}
