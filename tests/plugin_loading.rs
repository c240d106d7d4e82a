//! Loading signed plugins (spec §8, issue 10): every refused fixture stops startup and
//! `dito check` with a clear message (fail closed), the logged SHA-256 is the image that was
//! signed, and reloads (a swapped config applies, a tampered library is refused while the old
//! generation serves on, unchanged libraries are loaded once). Fixtures and keys as in
//! `plugins.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod plugins_common;
mod support;

use plugins_common::*;

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
