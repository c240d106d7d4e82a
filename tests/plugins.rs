//! Signed plugins as an operator sees them (spec §8, issue 10): the real `dito` binary loads
//! `hello-plugin` and the `dito-test-plugin` / `dito-abi-two-plugin` fixtures (built by
//! `cargo build --workspace`), signed in each test with a key pair made in the test in the Go
//! version's formats. Checked: where the hooks run and in which order, short-circuit answers,
//! request edits, Dito's own errors through the response hooks, panics and failures (500,
//! counted), every refused fixture (startup and `dito check` stop with a clear message),
//! reloads (a swapped config applies, a tampered library is refused while the old generation
//! serves on, unchanged libraries are loaded once), the logged SHA-256 of the loaded image,
//! and the plugin metrics.
//!
//! One library is copied (same bytes, same signature) into several plugin directories, each
//! with its own `config.yaml`: the directory names the plugin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use support::client::{get, Resp};
use support::plugins::{library, location, sha256_hex, PluginTree, ABI_TWO, HELLO, TEST};
use support::prom::{self, Scrape};
use support::{config, run_dito, Dito, Echo};

/// How long a reload or a metric may take to show.
const LIMIT: Duration = Duration::from_secs(10);
/// Pause between two polls.
const POLL: Duration = Duration::from_millis(20);

const DEFAULT_GREETING: &str = "Hello from Dito plugin!";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A config with the tree's `plugins` section, `top` keys and the locations.
fn yaml(tree: &PluginTree, top: &str, locs: &[String]) -> String {
    config(&format!(
        "{top}{}locations:\n{}",
        tree.section(),
        locs.concat()
    ))
}

/// `http://<echo>/echo`.
fn echo_url(e: &Echo) -> String {
    format!("http://{}/echo", e.addr)
}

/// An upstream URL nothing listens on (a port bound a moment ago, then released): any
/// request that reaches it gets Dito's 502.
fn dead_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/echo")
}

/// The values of request header `name` as `dito-echo` received them, in order.
fn upstream_saw(resp: &Resp, name: &str) -> Vec<String> {
    resp.body_str()
        .lines()
        .filter_map(|l| l.strip_prefix("header: "))
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
        .collect()
}

/// The request target `dito-echo` received.
fn upstream_target(resp: &Resp) -> Option<String> {
    resp.body_str()
        .lines()
        .find_map(|l| l.strip_prefix("target: "))
        .map(str::to_string)
}

/// Every value of response header `name`, in order.
fn values(resp: &Resp, name: &str) -> Vec<String> {
    resp.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

fn show(resp: &Resp) -> String {
    format!(
        "{} {:?}\n{}",
        resp.status,
        resp.headers,
        String::from_utf8_lossy(&resp.body)
    )
}

/// Polls `ok` every [`POLL`] until it holds, at most [`LIMIT`].
fn poll(mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + LIMIT;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{}", show(&r));
    prom::parse(&r.body_str()).unwrap_or_else(|e| panic!("{e}\n{}", r.body_str()))
}

/// Scrapes until `ok` holds (bounded); the last scrape.
fn scrape_until(d: &Dito, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = scrape(d.addr);
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen in the metrics within {LIMIT:?}; scrape: {:?}\noutput:\n{}",
            s.families.keys().collect::<Vec<_>>(),
            d.output()
        );
        std::thread::sleep(POLL);
    }
}

/// The config file of a running `dito` (written by the harness).
fn cfg_path(d: &Dito) -> std::path::PathBuf {
    d.dir.join("config.yaml")
}

/// Sends SIGHUP and waits until the `n`th reload by SIGHUP is applied or rejected; whether it
/// was applied.
fn sighup(d: &Dito, n: usize) -> bool {
    let (ok, bad) = (
        "config reloaded (SIGHUP)",
        "still serving the running config",
    );
    let before_bad = d.count_output(bad);
    d.signal(libc::SIGHUP);
    assert!(
        poll(|| d.count_output(ok) >= n || d.count_output(bad) > before_bad),
        "SIGHUP #{n} was neither applied nor rejected; output:\n{}",
        d.output()
    );
    d.count_output(ok) >= n
}

/// The value of `key=` on a log line (text or JSON format).
fn log_field(line: &str, key: &str) -> Option<String> {
    for pat in [format!("{key}="), format!("\"{key}\":")] {
        if let Some(rest) = line.split(&pat).nth(1) {
            let v: String = rest
                .trim_start_matches('"')
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ',' && *c != '}')
                .collect();
            return Some(v);
        }
    }
    None
}

/// The output lines containing `needle`.
fn lines_with(d: &Dito, needle: &str) -> Vec<String> {
    d.output()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// A config that must be refused: `dito check -f` exits 1 and startup stops (exit 1), each
/// saying every one of `needles` on one line.
fn assert_refused(tree: &PluginTree, yaml: &str, needles: &[&str]) {
    let path = tree.write_config(yaml);
    let out = run_dito(&["check", "-f", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "dito check said:\n{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| needles.iter().all(|n| l.contains(n))),
        "dito check has no line with all of {needles:?}:\n{stderr}"
    );
    match Dito::try_start(yaml) {
        Ok(d) => panic!("dito started with a config it must refuse:\n{}", d.output()),
        Err(f) => {
            assert_eq!(f.code, Some(1), "{f:?}");
            assert!(
                f.output
                    .lines()
                    .any(|l| needles.iter().all(|n| l.contains(n))),
                "startup output has no line with all of {needles:?}:\n{}",
                f.output
            );
        }
    }
}

/// A tree with hello-plugin (its shipped `config.yaml`) and a location that lists it.
fn hello_tree() -> PluginTree {
    let tree = PluginTree::new();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/hello-plugin/config.yaml"),
    )
    .unwrap();
    tree.add("hello-plugin", HELLO, Some(&shipped));
    tree
}

// ---------------------------------------------------------------------------------------------
// hello-plugin and configs
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Refused fixtures (fail closed, spec §8)
// ---------------------------------------------------------------------------------------------

fn hello_yaml(tree: &PluginTree) -> String {
    yaml(
        tree,
        "",
        &[location("^/", "http://127.0.0.1:1/", &["hello-plugin"])],
    )
}

#[test]
fn a_flipped_byte_in_the_library_is_refused() {
    let tree = hello_tree();
    let so = tree.so("hello-plugin");
    let mut bytes = std::fs::read(&so).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&so, bytes).unwrap();
    assert_refused(
        &tree,
        &hello_yaml(&tree),
        &[
            "plugins.directory",
            "plugin hello-plugin:",
            "hello-plugin.so: plugin signature verification failed",
        ],
    );
}

#[test]
fn a_missing_signature_is_refused() {
    let tree = hello_tree();
    std::fs::remove_file(tree.sig("hello-plugin")).unwrap();
    assert_refused(
        &tree,
        &hello_yaml(&tree),
        &[
            "plugins.directory",
            "plugin hello-plugin:",
            "hello-plugin.so.sig: cannot read",
        ],
    );
}

#[test]
fn a_wrong_public_key_hash_is_refused() {
    let tree = hello_tree();
    let good = tree.public_key_hash();
    let wrong = sha256_hex(b"another key");
    let yaml = hello_yaml(&tree).replace(&good, &wrong);
    assert_refused(
        &tree,
        &yaml,
        &[
            "plugins.public_key_hash",
            "public key integrity validation failed",
        ],
    );
}

#[test]
fn a_31_byte_public_key_is_refused() {
    let tree = hello_tree();
    let key = std::fs::read(tree.public_key_path()).unwrap();
    std::fs::write(tree.public_key_path(), &key[..31]).unwrap();
    // The hash matches the short file: the length itself is the problem.
    let yaml = hello_yaml(&tree);
    assert_refused(
        &tree,
        &yaml,
        &["plugins.public_key_path", "public key is 31 bytes"],
    );
}

#[test]
fn a_library_of_another_abi_major_is_refused() {
    let tree = PluginTree::new();
    tree.add("abi-two", ABI_TWO, None);
    let yaml = yaml(
        &tree,
        "",
        &[location("^/", "http://127.0.0.1:1/", &["abi-two"])],
    );
    assert_refused(
        &tree,
        &yaml,
        &[
            "plugins.directory",
            "plugin abi-two:",
            "built for plugin ABI 2.0, this Dito speaks 1.x",
        ],
    );
}

#[test]
fn an_unknown_middleware_name_is_refused() {
    let tree = hello_tree();
    let yaml = yaml(
        &tree,
        "",
        &[location(
            "^/",
            "http://127.0.0.1:1/",
            &["hello-plugin", "nope"],
        )],
    );
    assert_refused(
        &tree,
        &yaml,
        &[
            "locations[0].middlewares[1]: unknown middleware \"nope\"",
            "no such plugin",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// The loaded image and reloads
// ---------------------------------------------------------------------------------------------

#[test]
fn the_logged_sha256_is_the_signed_file_s() {
    let e = Echo::start();
    let tree = hello_tree();
    tree.add("a", TEST, Some("tag: a\n"));
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[location("^/", &echo_url(&e), &["hello-plugin", "a"])],
    ));
    for (name, krate) in [("hello-plugin", HELLO), ("a", TEST)] {
        let signed = sha256_hex(&std::fs::read(tree.so(name)).unwrap());
        assert_eq!(signed, sha256_hex(&std::fs::read(library(krate)).unwrap()));
        let plugin = format!("plugin={name}");
        for what in [
            "plugin verified and loaded",
            "plugin library loaded from a sealed memfd",
        ] {
            let line = lines_with(&d, what)
                .into_iter()
                .find(|l| l.contains(&plugin) || l.contains(&format!("\"plugin\":\"{name}\"")))
                .unwrap_or_else(|| panic!("no {what:?} line for {name}; output:\n{}", d.output()));
            assert_eq!(
                log_field(&line, "sha256").as_deref(),
                Some(signed.as_str()),
                "{line}"
            );
        }
    }
}

#[test]
fn a_library_replaced_on_disk_is_refused_at_reload_and_the_old_generation_serves_on() {
    let e = Echo::start();
    let tree = hello_tree();
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[location("^/", &echo_url(&e), &["hello-plugin"])],
    ));
    assert_eq!(
        get(d.addr, "/x").header("X-Hello-Plugin"),
        Some(DEFAULT_GREETING)
    );
    // Other bytes (a real library, even), with the old signature beside them.
    std::fs::copy(library(TEST), tree.so("hello-plugin")).unwrap();
    let path = cfg_path(&d);
    let check = run_dito(&["check", "-f", path.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(1));

    assert!(
        !sighup(&d, 1),
        "the reload was applied; output:\n{}",
        d.output()
    );
    assert!(
        lines_with(&d, "reload rejected (SIGHUP)")
            .iter()
            .any(|l| l.contains("plugin hello-plugin:")
                && l.contains("plugin signature verification failed")),
        "the rejection does not name the plugin and the cause; output:\n{}",
        d.output()
    );
    for _ in 0..3 {
        let r = get(d.addr, "/x");
        assert_eq!(r.status, 200, "{}", show(&r));
        assert_eq!(r.header("X-Hello-Plugin"), Some(DEFAULT_GREETING));
    }
    // The new bytes were never loaded.
    assert_eq!(
        d.count_output("plugin library loaded from a sealed memfd"),
        1,
        "{}",
        d.output()
    );
}

#[test]
fn a_reload_swaps_a_plugin_s_config() {
    let e = Echo::start();
    let tree = PluginTree::new();
    tree.add("hello-plugin", HELLO, Some("greeting_message: one\n"));
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[location("^/", &echo_url(&e), &["hello-plugin"])],
    ));
    assert_eq!(get(d.addr, "/x").header("X-Hello-Plugin"), Some("one"));
    std::fs::write(tree.config_path("hello-plugin"), "greeting_message: two\n").unwrap();
    assert!(
        sighup(&d, 1),
        "the reload was rejected; output:\n{}",
        d.output()
    );
    assert!(
        poll(|| get(d.addr, "/x").header("X-Hello-Plugin") == Some("two")),
        "the new greeting did not show after the reload; output:\n{}",
        d.output()
    );
    // Same library: loaded once.
    assert_eq!(
        d.count_output("plugin library loaded from a sealed memfd"),
        1,
        "{}",
        d.output()
    );
}

#[test]
fn ten_reloads_with_unchanged_plugins_load_each_library_once() {
    let e = Echo::start();
    let tree = hello_tree();
    tree.add("a", TEST, Some("tag: a\n"));
    tree.add("b", TEST, Some("tag: b\n"));
    let d = Dito::start(&yaml(
        &tree,
        "",
        &[location("^/", &echo_url(&e), &["hello-plugin", "a", "b"])],
    ));
    for n in 1..=10 {
        assert!(
            sighup(&d, n),
            "reload #{n} was rejected; output:\n{}",
            d.output()
        );
    }
    let r = get(d.addr, "/x");
    assert_eq!(r.header("X-Hello-Plugin"), Some(DEFAULT_GREETING));
    assert_eq!(values(&r, "X-Chain-Out"), ["b", "a"]);
    // Three plugins verified at each of the 11 loads, from two libraries (a and b share one).
    assert_eq!(
        d.count_output("plugin verified and loaded"),
        33,
        "{}",
        d.output()
    );
    let memfd = lines_with(&d, "plugin library loaded from a sealed memfd");
    assert_eq!(memfd.len(), 2, "{}", d.output());
    let mut logged: Vec<String> = memfd
        .iter()
        .map(|l| log_field(l, "sha256").unwrap())
        .collect();
    logged.sort();
    let mut built = vec![
        sha256_hex(&std::fs::read(library(HELLO)).unwrap()),
        sha256_hex(&std::fs::read(library(TEST)).unwrap()),
    ];
    built.sort();
    assert_eq!(logged, built);
}
