//! Proxying, routing and the path rewrite (spec §3, §4): the first matching location in config
//! order wins, no match is Dito's own 404, every row of the path table (`replace_path`, prefix
//! and regex locations, target paths), and the query merge keeping raw bytes.
//!
//! Upstreams are the demo `dito-echo`, whose `/echo` body describes the request it received.
//! Everything is real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod proxy_common;
mod support;

use proxy_common::{assert_dito_404, echoed, loc, yaml, REPLACE};
use support::client::get;
use support::{config, Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Routing and the path rewrite
// ---------------------------------------------------------------------------------------------

#[test]
fn routing_takes_the_first_match_in_config_order_else_404() {
    let e = Echo::start();
    let u = format!("http://{}", e.addr);
    let d = Dito::start(&yaml(
        "",
        &[
            loc("^/api/special", &format!("{u}/echo/special"), REPLACE),
            loc("^/api", &format!("{u}/echo/general"), REPLACE),
            loc("^/api/never", &format!("{u}/echo/never"), REPLACE),
            loc("v2", &format!("{u}/echo/anywhere"), REPLACE),
        ],
    ));
    for (path, target) in [
        ("/api/special/x", "/echo/special"),
        ("/api/never", "/echo/general"),
        ("/apix", "/echo/general"),
        ("/api/special?q", "/echo/special?q"),
        ("/x/v2/y", "/echo/anywhere"),
    ] {
        assert_eq!(echoed(&get(d.addr, path)).target, target, "{path}");
    }
    // The query is not part of what is matched.
    assert_dito_404(&get(d.addr, "/other?api"));
    assert_dito_404(&get(d.addr, "/x?v2"));
    assert_dito_404(&get(d.addr, "/"));
}

#[test]
fn no_locations_means_404_for_everything() {
    let d = Dito::start(&config(""));
    assert_dito_404(&get(d.addr, "/api/x"));
}

/// What the upstream request path should be.
enum Want {
    /// echo's `target:` line.
    Target(&'static str),
    /// An upstream path echo does not serve: its 404 text names the path it got.
    EchoNotFound(&'static str),
    /// No location matches.
    DitoNotFound,
}

#[test]
fn every_row_of_the_path_table() {
    // Spec §3's table with `/echo` prefixed to the target paths so echo answers; rows whose
    // target path is empty are checked through echo's 404 text ("no such endpoint: P").
    let rows: &[(&str, &str, bool, &str, Want)] = &[
        (
            "^/api",
            "/echo/base",
            false,
            "/api/users?x=1",
            Want::Target("/echo/base/users?x=1"),
        ),
        (
            "^/api",
            "/echo/base",
            false,
            "/api",
            Want::Target("/echo/base"),
        ),
        ("^/api", "", false, "/api", Want::EchoNotFound("/")),
        (
            "^/api",
            "/echo/base",
            false,
            "/api//x",
            Want::Target("/echo/base//x"),
        ),
        (
            "^/api",
            "/echo/base",
            false,
            "/apiary",
            Want::Target("/echo/base/ary"),
        ),
        (
            "^/api(/|$)",
            "/echo/base",
            false,
            "/apiary",
            Want::DitoNotFound,
        ),
        (
            "^/api(/|$)",
            "/echo/base",
            false,
            "/api/x",
            Want::Target("/echo/base/x"),
        ),
        (
            "/v1",
            "/echo/base",
            false,
            "/x/v1",
            Want::Target("/echo/base/x/v1"),
        ),
        (
            "^/rp",
            "/echo/base?tq=1",
            true,
            "/rp/extra?a=1",
            Want::Target("/echo/base?tq=1&a=1"),
        ),
        (
            "^/s",
            "/echo/b%2Fc",
            false,
            "/s/a%2Fb",
            Want::Target("/echo/b%2Fc/a%2Fb"),
        ),
        // Further cases of the same algorithm.
        (
            "^/api",
            "/echo/base/",
            false,
            "/api/x",
            Want::Target("/echo/base/x"),
        ),
        (
            "^/api",
            "/echo/base/",
            false,
            "/api",
            Want::Target("/echo/base/"),
        ),
        (
            "^/api",
            "/echo/base",
            false,
            "/api/",
            Want::Target("/echo/base/"),
        ),
        (
            "^/api",
            "/echo/base//",
            false,
            "/api//x",
            Want::Target("/echo/base///x"),
        ),
        ("^/api", "", false, "/api/x", Want::EchoNotFound("/x")),
        ("^/rp", "", true, "/rp/x?a=1", Want::EchoNotFound("/")),
        (
            "^/rp",
            "/echo/base",
            true,
            "/rp",
            Want::Target("/echo/base"),
        ),
        // An empty match at 0 leaves the whole path as the rest.
        (
            "^",
            "/echo/base",
            false,
            "/foo",
            Want::Target("/echo/base/foo"),
        ),
        (
            "a*",
            "/echo/base",
            false,
            "/xa",
            Want::Target("/echo/base/xa"),
        ),
        (
            "^/api",
            "/echo/base",
            false,
            "/api/%7Euser/a%20b",
            Want::Target("/echo/base/%7Euser/a%20b"),
        ),
    ];
    let e = Echo::start();
    for (pattern, tpath, replace, request, want) in rows {
        let target = format!("http://{}{tpath}", e.addr);
        let extra = if *replace { REPLACE } else { "" };
        let d = Dito::start(&yaml("", &[loc(pattern, &target, extra)]));
        let r = get(d.addr, request);
        let row = format!("{pattern} {target} replace={replace} {request}");
        match want {
            Want::Target(t) => assert_eq!(echoed(&r).target, *t, "{row}"),
            Want::EchoNotFound(p) => {
                assert_eq!(r.status, 404, "{row}: {r:?}");
                assert!(r.header("x-echo-conn").is_some(), "{row}: {r:?}");
                assert_eq!(r.body_str(), format!("no such endpoint: {p}\n"), "{row}");
            }
            Want::DitoNotFound => assert_dito_404(&r),
        }
    }
}

#[test]
fn query_merge_keeps_raw_bytes() {
    let e = Echo::start();
    let u = format!("http://{}", e.addr);
    let d = Dito::start(&yaml(
        "",
        &[
            loc("^/t", &format!("{u}/echo/t?tq=1"), REPLACE),
            loc("^/n", &format!("{u}/echo/n"), REPLACE),
            loc("^/e", &format!("{u}/echo/e?"), REPLACE),
        ],
    ));
    for (request, target) in [
        ("/n?a=%20b;c=d", "/echo/n?a=%20b;c=d"),
        ("/t?a=%20b;c=d", "/echo/t?tq=1&a=%20b;c=d"),
        ("/n?a=&&b=", "/echo/n?a=&&b="),
        ("/t?&", "/echo/t?tq=1&&"),
        ("/t?a=&&b", "/echo/t?tq=1&a=&&b"),
        ("/n?", "/echo/n?"),
        ("/t?", "/echo/t?tq=1"),
        ("/n", "/echo/n"),
        ("/t", "/echo/t?tq=1"),
        ("/e", "/echo/e"),
        ("/e?", "/echo/e?"),
        ("/e?x=1", "/echo/e?x=1"),
        ("/n?%zz%2", "/echo/n?%zz%2"),
        ("/n?a=1?b=2", "/echo/n?a=1?b=2"),
        ("/t?q=%E2%82%AC+x", "/echo/t?tq=1&q=%E2%82%AC+x"),
    ] {
        assert_eq!(echoed(&get(d.addr, request)).target, target, "{request}");
    }
}

#[test]
fn a_target_host_name_is_resolved_and_the_host_header_keeps_it() {
    // Spec §5: names are resolved off the worker; `localhost` needs no network.
    let e = Echo::start();
    let target = format!("http://localhost:{}/echo/named", e.addr.port());
    let d = Dito::start(&yaml("", &[loc("^/n", &target, REPLACE)]));
    for _ in 0..2 {
        // The second request is served from the DNS cache (and a pooled connection).
        let r = get(d.addr, "/n");
        assert_eq!(r.status, 200, "{}", r.body_str());
        let body = r.body_str();
        assert!(body.contains("target: /echo/named\n"), "{body}");
        assert!(
            body.contains(&format!("header: Host: localhost:{}\n", e.addr.port())),
            "{body}"
        );
    }
}
