//! Signed plugins as a client sees them (spec §8, issue 10): the real `dito` binary loads
//! `hello-plugin` and the `dito-test-plugin` fixture (built by `cargo build --workspace`),
//! signed in each test with a key pair made in the test in the Go version's formats. Checked:
//! where the hooks run and in which order, short-circuit answers, request edits, Dito's own
//! errors through the response hooks, panics and failures (500, counted), and the plugin
//! metrics. Refusals and reloads are in `plugin_loading.rs`.
//!
//! One library is copied (same bytes, same signature) into several plugin directories, each
//! with its own `config.yaml`: the directory names the plugin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod plugins_common;
mod support;

use plugins_common::*;

#[test]
fn hello_plugin_adds_its_header_where_listed_and_only_there() {
    let e = Echo::start();
    let tree = hello_tree();
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[
            location("^/hello", &echo_url(&e), &["hello-plugin"]),
            location("^/plain", &echo_url(&e), &[]),
        ],
    ));
    let r = get(d.addr, "/hello/x");
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(
        values(&r, "X-Hello-Plugin"),
        [DEFAULT_GREETING],
        "{}",
        show(&r)
    );
    assert_eq!(upstream_target(&r).as_deref(), Some("/echo/x"));
    let r = get(d.addr, "/plain/x");
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(r.header("X-Hello-Plugin"), None, "{}", show(&r));

    // Loaded, verified, and its instances made (one log line each at creation).
    assert!(!lines_with(&d, "plugin verified and loaded").is_empty());
    assert!(
        d.wait_for_output("hello-plugin ready", LIMIT),
        "hello-plugin did not log at creation; output:\n{}",
        d.output()
    );
}

#[test]
fn config_yaml_reaches_the_plugin() {
    let e = Echo::start();
    let tree = PluginTree::new();
    tree.add(
        "hello-plugin",
        HELLO,
        Some("greeting_message: 'Bonjour de Dito'\n"),
    );
    tree.add(
        "echo-config",
        TEST,
        Some("# the plugin gets this as JSON\necho_config: true\ntag: cfg\n"),
    );
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[location(
            "^/",
            &echo_url(&e),
            &["hello-plugin", "echo-config"],
        )],
    ));
    let r = get(d.addr, "/x");
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(
        values(&r, "X-Hello-Plugin"),
        ["Bonjour de Dito"],
        "{}",
        show(&r)
    );
    let got: serde_json::Value = serde_json::from_str(
        r.header("X-Config")
            .unwrap_or_else(|| panic!("{}", show(&r))),
    )
    .unwrap();
    assert_eq!(got, serde_json::json!({"echo_config": true, "tag": "cfg"}));
}

#[test]
fn hello_plugin_takes_the_go_versions_config_keys() {
    let e = Echo::start();
    let tree = PluginTree::new();
    // A Go user's plugins/hello-plugin/config.yaml, unchanged; and the same plugin switched off.
    tree.add(
        "hello-plugin",
        HELLO,
        Some(
            "greeting_message: \"Hi from Go\"\nplugin_enabled: true\nlog_level: \"debug\"\n\
             custom_header_name: \"X-Custom\"\n",
        ),
    );
    tree.add(
        "hello-off",
        HELLO,
        Some("greeting_message: \"unused\"\nplugin_enabled: false\n"),
    );
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[
            location("^/on", &echo_url(&e), &["hello-plugin"]),
            location("^/off", &echo_url(&e), &["hello-off"]),
        ],
    ));
    let r = get(d.addr, "/on");
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(values(&r, "X-Hello-Plugin"), ["Hi from Go"], "{}", show(&r));
    assert_eq!(r.header("X-Custom"), None, "{}", show(&r));
    let r = get(d.addr, "/off");
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(r.header("X-Hello-Plugin"), None, "{}", show(&r));
    // The two keys the Go plugin never used get one WARN naming them, not one per worker.
    assert!(
        d.wait_for_output("have no effect", LIMIT),
        "no WARN for the unused keys; output:\n{}",
        d.output()
    );
    let warned = lines_with(&d, "have no effect");
    assert_eq!(warned.len(), 1, "output:\n{}", d.output());
    assert!(
        warned[0].contains("log_level") && warned[0].contains("custom_header_name"),
        "{}",
        warned[0]
    );
}

// ---------------------------------------------------------------------------------------------
// The chain
// ---------------------------------------------------------------------------------------------

#[test]
fn two_plugins_run_in_order_on_request_and_in_reverse_on_response() {
    let e = Echo::start();
    let tree = PluginTree::new();
    tree.add("a", TEST, Some("tag: a\n"));
    tree.add("b", TEST, Some("tag: b\n"));
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[
            location("^/ab", &echo_url(&e), &["a", "b"]),
            location("^/ba", &echo_url(&e), &["b", "a"]),
        ],
    ));
    let r = get(d.addr, "/ab");
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(upstream_saw(&r, "X-Chain"), ["a", "b"], "{}", show(&r));
    assert_eq!(values(&r, "X-Chain-Out"), ["b", "a"], "{}", show(&r));

    let r = get(d.addr, "/ba");
    assert_eq!(upstream_saw(&r, "X-Chain"), ["b", "a"], "{}", show(&r));
    assert_eq!(values(&r, "X-Chain-Out"), ["a", "b"], "{}", show(&r));
}

#[test]
fn an_answering_plugin_short_circuits_and_the_plugins_before_it_see_the_answer() {
    let tree = PluginTree::new();
    tree.add("a", TEST, Some("tag: a\n"));
    tree.add(
        "answer",
        TEST,
        Some("answer:\n  status: 418\n  body: answered by a plugin\n"),
    );
    tree.add("c", TEST, Some("tag: c\n"));
    // Nothing listens upstream: a request that went there would get Dito's 502.
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[location("^/", &dead_url(), &["a", "answer", "c"])],
    ));
    for _ in 0..3 {
        let r = get(d.addr, "/teapot");
        assert_eq!(r.status, 418, "{}", show(&r));
        assert_eq!(r.body_str(), "answered by a plugin");
        assert_eq!(
            r.header("X-Answered-By"),
            Some("test-plugin"),
            "{}",
            show(&r)
        );
        // `a` (before) sees the answer on the way out; `c` (after) never ran.
        assert_eq!(values(&r, "X-Chain-Out"), ["a"], "{}", show(&r));
        assert!(r.header("X-Request-ID").is_some(), "{}", show(&r));
    }
}

#[test]
fn request_edits_reach_the_upstream() {
    let e = Echo::start();
    let tree = PluginTree::new();
    tree.add(
        "edit",
        TEST,
        Some("set_request_header: {name: X-Edited, value: by-plugin}\nset_path: /edit/changed\n"),
    );
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[location("^/edit", &echo_url(&e), &["edit"])],
    ));
    let r = support::client::request(
        d.addr,
        b"GET /edit/original?q=1 HTTP/1.1\r\nHost: t\r\nX-Edited: by-client\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", show(&r));
    assert_eq!(upstream_saw(&r, "X-Edited"), ["by-plugin"], "{}", show(&r));
    // The changed path is rewritten by the same location (`^/edit` → `/echo`); the query stays.
    assert_eq!(
        upstream_target(&r).as_deref(),
        Some("/echo/changed?q=1"),
        "{}",
        show(&r)
    );
}

#[test]
fn dito_s_own_502_passes_the_response_hooks() {
    let tree = PluginTree::new();
    tree.add("a", TEST, Some("tag: a\n"));
    tree.add("b", TEST, Some("tag: b\n"));
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[location("^/", &dead_url(), &["a", "b"])],
    ));
    let r = get(d.addr, "/x");
    assert_eq!(r.status, 502, "{}", show(&r));
    assert_eq!(values(&r, "X-Chain-Out"), ["b", "a"], "{}", show(&r));
}

// ---------------------------------------------------------------------------------------------
// Failures: panics and errors
// ---------------------------------------------------------------------------------------------

#[test]
fn a_panicking_plugin_gives_500_is_counted_and_the_worker_serves_on() {
    let e = Echo::start();
    let tree = PluginTree::new();
    tree.add("boom", TEST, Some("panic_on_request: true\n"));
    tree.add("a", TEST, Some("tag: a\n"));
    // One worker: the requests after the panic run on the worker that panicked.
    let yaml = yaml(
        &tree,
        "metrics:\n  enabled: true\n",
        &[
            location("^/boom", &echo_url(&e), &["a", "boom"]),
            location("^/ok", &echo_url(&e), &["a"]),
        ],
    )
    .replace("workers: 2\n", "workers: 1\n");
    let d = Dito::start(&yaml);
    let r = get(d.addr, "/boom");
    assert_eq!(r.status, 500, "{}", show(&r));
    assert!(
        r.header("Content-Type").is_some_and(|c| c.contains("json")),
        "{}",
        show(&r)
    );
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .unwrap_or_else(|e| panic!("the 500's body is not JSON ({e}): {}", show(&r)));
    for _ in 0..3 {
        let r = get(d.addr, "/ok");
        assert_eq!(r.status, 200, "{}", show(&r));
        assert_eq!(values(&r, "X-Chain-Out"), ["a"]);
    }
    assert!(
        d.wait_for_output("plugin panicked", LIMIT)
            && d.wait_for_output(
                "panicked: test plugin panics on request as configured",
                LIMIT
            ),
        "the panic was not logged; output:\n{}",
        d.output()
    );
    let filter = [("plugin", "boom")];
    let s = scrape_until(&d, "dito_plugin_panics_total{plugin=\"boom\"} 1", |s| {
        s.sum("dito_plugin_panics_total", &filter) == 1.0
    });
    assert_eq!(s.sum("dito_plugin_panics_total", &[("plugin", "a")]), 0.0);

    // A second panic counts again; the worker still serves.
    assert_eq!(get(d.addr, "/boom").status, 500);
    scrape_until(&d, "dito_plugin_panics_total{plugin=\"boom\"} 2", |s| {
        s.sum("dito_plugin_panics_total", &filter) == 2.0
    });
    assert_eq!(get(d.addr, "/ok").status, 200);
}

#[test]
fn a_plugin_error_gives_500() {
    let e = Echo::start();
    let tree = PluginTree::new();
    tree.add("fail", TEST, Some("fail_on_request: true\n"));
    tree.add("a", TEST, Some("tag: a\n"));
    let d = Dito::start(&yaml(
        &tree,
        "metrics:\n  enabled: true\n",
        &[location("^/", &echo_url(&e), &["a", "fail"])],
    ));
    let r = get(d.addr, "/x");
    assert_eq!(r.status, 500, "{}", show(&r));
    serde_json::from_slice::<serde_json::Value>(&r.body)
        .unwrap_or_else(|e| panic!("the 500's body is not JSON ({e}): {}", show(&r)));
    assert!(
        d.wait_for_output("plugin failed", LIMIT),
        "the failure was not logged; output:\n{}",
        d.output()
    );
    // Not a panic.
    let s = scrape(d.addr);
    assert_eq!(
        s.sum("dito_plugin_panics_total", &[("plugin", "fail")]),
        0.0
    );
}

#[test]
fn a_plugin_counter_is_exported() {
    let e = Echo::start();
    let tree = PluginTree::new();
    tree.add("counter", TEST, Some("count: hits\n"));
    let d = Dito::start(&yaml(
        &tree,
        "metrics:\n  enabled: true\n",
        &[location("^/", &echo_url(&e), &["counter"])],
    ));
    for _ in 0..3 {
        assert_eq!(get(d.addr, "/x").status, 200);
    }
    let filter = [("plugin", "counter"), ("name", "hits")];
    scrape_until(
        &d,
        "dito_plugin_counter_total{plugin=\"counter\",name=\"hits\"} 3",
        |s| s.sum("dito_plugin_counter_total", &filter) == 3.0,
    );
}
