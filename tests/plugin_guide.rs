//! The plugin author guide (`plugins/README.md`) kept honest: its example plugin
//! `plugins/header-guard` is built by `cargo build --workspace`, then this test walks the
//! guide's steps — `plugin-signer generate-keys`, `sign`, `verify`, `hash`, the plugin
//! directory layout with the crate's own `config.yaml`, a `plugins:` block and `middlewares:` —
//! starts Dito with it in front of `dito-echo`, and checks what the guide promises: 401 and no
//! upstream call without the header, pass-through plus `X-Guarded: yes` with it, the response
//! hook on Dito's own 502, the plugin's counter, and the troubleshooting messages it quotes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::client::{get, request};
use support::prom::{parse, Scrape};
use support::{config, run_dito, temp_dir, write_file, Dito, Echo};

/// The plugin's name: its directory, its file names and what `middlewares` lists.
const NAME: &str = "header-guard";

/// `target/<profile>/libheader_guard.so`, built by `cargo build --workspace` beside the
/// test binary (`target/<profile>/deps/plugin_guide-HASH`).
fn built_library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary sits in target/<profile>/deps");
    let lib = profile_dir.join("libheader_guard.so");
    assert!(
        lib.exists(),
        "{} is missing: run `cargo build --workspace` first",
        lib.display()
    );
    lib
}

/// The crate's `config.yaml`, as the guide shows it.
fn documented_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/header-guard/config.yaml");
    std::fs::read_to_string(path).unwrap()
}

fn signer(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_plugin-signer"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plugin-signer {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A signed plugin directory laid out as the guide says.
struct Signed {
    dir: PathBuf,
    plugins: PathBuf,
    public_key: PathBuf,
    hash: String,
    sha256: String,
}

impl Drop for Signed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Keys, the copied `.so`, its `.sig` and `config.yaml`, made with `plugin-signer`.
fn sign_plugin(plugin_config: &str) -> Signed {
    let dir = temp_dir();
    let keys = dir.join("keys");
    let plugin_dir = dir.join("plugins").join(NAME);
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::create_dir_all(&plugin_dir).unwrap();

    signer(
        &keys,
        &[
            "generate-keys",
            "--private-key",
            "dev_private.key",
            "--public-key",
            "dev_public.key",
        ],
    );
    let so = plugin_dir.join(format!("{NAME}.so"));
    std::fs::copy(built_library(), &so).unwrap();
    let so_arg = so.to_str().unwrap();
    signer(&keys, &["sign", so_arg, "--private-key", "dev_private.key"]);
    let verified = signer(&keys, &["verify", so_arg, "--public-key", "dev_public.key"]);
    assert!(String::from_utf8_lossy(&verified.stdout).starts_with("OK "));
    let hash = signer(&keys, &["hash", "dev_public.key"]);
    let hash = String::from_utf8(hash.stdout)
        .unwrap()
        .trim_end()
        .to_owned();
    assert_eq!(hash.len(), 64, "{hash:?}");
    write_file(&plugin_dir, "config.yaml", plugin_config);

    let sha256 = hex::encode(Sha256::digest(std::fs::read(&so).unwrap()));
    Signed {
        plugins: dir.join("plugins"),
        public_key: keys.join("dev_public.key"),
        dir,
        hash,
        sha256,
    }
}

/// A loopback port nothing listens on (for Dito's own 502).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn yaml(signed: &Signed, upstream: SocketAddr, dead: u16) -> String {
    config(&format!(
        "metrics:\n  enabled: true\n\
         plugins:\n  directory: {plugins}\n  public_key_path: {key}\n  public_key_hash: \"{hash}\"\n\
         locations:\n\
         - path: \"^/guarded(/|$)\"\n  target_url: \"http://{upstream}/echo\"\n  middlewares: [{NAME}]\n\
         - path: \"^/down(/|$)\"\n  target_url: \"http://127.0.0.1:{dead}\"\n  middlewares: [{NAME}]\n\
         - path: \"^/open(/|$)\"\n  target_url: \"http://{upstream}/echo\"\n",
        plugins = signed.plugins.display(),
        key = signed.public_key.display(),
        hash = signed.hash,
    ))
}

fn refused_total(addr: SocketAddr) -> f64 {
    let resp = get(addr, "/metrics");
    assert_eq!(resp.status, 200, "{}", resp.body_str());
    let scrape: Scrape = parse(&resp.body_str()).unwrap();
    scrape.sum(
        "dito_plugin_counter_total",
        &[("plugin", NAME), ("name", "refused")],
    )
}

#[test]
fn header_guard_is_built_signed_loaded_and_behaves_as_the_guide_says() {
    let echo = Echo::start();
    let signed = sign_plugin(&documented_config());
    let dito = Dito::start(&yaml(&signed, echo.addr, closed_port()));

    // One instance per worker, each made on its worker (the plugin logs from `create`).
    assert!(
        dito.wait_for_output("guarding with header X-Api-Key", Duration::from_secs(5)),
        "{}",
        dito.output()
    );

    // Without the header: the plugin answers 401 itself; nothing goes upstream, and its own
    // response hook does not run on its own answer (no X-Guarded).
    let resp = get(dito.addr, "/guarded/x");
    assert_eq!(resp.status, 401, "{resp:?}");
    assert_eq!(resp.header("Content-Type"), Some("application/json"));
    assert_eq!(
        resp.body_str(),
        "{\"error\":\"missing or wrong X-Api-Key header\"}\n"
    );
    assert_eq!(resp.header("X-Guarded"), None, "{resp:?}");

    // With it: passed through unchanged, and the response is marked.
    let resp = request(
        dito.addr,
        b"GET /guarded/x?q=1 HTTP/1.1\r\nHost: t\r\nX-Api-Key: k1\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("X-Guarded"), Some("yes"), "{resp:?}");
    let body = resp.body_str();
    assert!(body.contains("target: /echo/x?q=1"), "{body}");
    assert!(body.contains("header: X-Api-Key: k1"), "{body}");

    // An empty value is no value.
    let resp = request(
        dito.addr,
        b"GET /guarded HTTP/1.1\r\nHost: t\r\nX-Api-Key:\r\n\r\n",
    );
    assert_eq!(resp.status, 401, "{resp:?}");

    // Dito's own errors pass through the response hooks too.
    let resp = request(
        dito.addr,
        b"GET /down HTTP/1.1\r\nHost: t\r\nX-Api-Key: k1\r\n\r\n",
    );
    assert_eq!(resp.status, 502, "{resp:?}");
    assert_eq!(resp.header("X-Guarded"), Some("yes"), "{resp:?}");

    // A location that does not list the plugin is untouched.
    let resp = get(dito.addr, "/open/x");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("X-Guarded"), None, "{resp:?}");

    // SIGHUP re-reads, re-verifies and logs the SHA-256 of the verified image; the library
    // (same SHA-256) is reused, not loaded a second time.
    dito.signal(libc::SIGHUP);
    assert!(
        dito.wait_for_output("config reloaded (SIGHUP)", Duration::from_secs(10)),
        "{}",
        dito.output()
    );
    let out = dito.output();
    let loaded = out
        .lines()
        .find(|l| l.contains("plugin verified and loaded"))
        .unwrap_or_else(|| panic!("no load line:\n{out}"));
    assert!(loaded.contains(&signed.sha256), "{loaded}");
    assert!(
        dito.count_output("plugin library loaded from a sealed memfd") <= 1,
        "{out}"
    );
    let resp = get(dito.addr, "/guarded");
    assert_eq!(resp.status, 401, "{resp:?}");

    // The plugin's counter: three refusals so far.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = refused_total(dito.addr);
        if n == 3.0 {
            break;
        }
        assert!(Instant::now() < deadline, "refused counter is {n}, not 3");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_optional_value_is_enforced() {
    let echo = Echo::start();
    let signed = sign_plugin("header: X-Api-Key\nvalue: let-me-in\n");
    let dito = Dito::start(&yaml(&signed, echo.addr, closed_port()));
    for (value, status) in [("let-me-in", 200), ("let-me-out", 401), ("LET-ME-IN", 401)] {
        let resp = request(
            dito.addr,
            format!("GET /guarded HTTP/1.1\r\nHost: t\r\nx-api-key: {value}\r\n\r\n").as_bytes(),
        );
        assert_eq!(resp.status, status, "{value}: {resp:?}");
    }
}

/// `dito check` on a config; returns (exit code, output).
fn check(dir: &Path, yaml: &str) -> (Option<i32>, String) {
    let cfg = write_file(dir, "dito.yaml", yaml);
    let out = run_dito(&["check", "-f", cfg.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The guide's troubleshooting table quotes these messages.
#[test]
fn refusals_quoted_in_the_troubleshooting_section() {
    let signed = sign_plugin(&documented_config());
    let upstream: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let good = yaml(&signed, upstream, 9);
    let (code, out) = check(&signed.dir, &good);
    assert_eq!(code, Some(0), "{out}");

    // The plugin's own validate() refusing its config.yaml.
    let plugin_dir = signed.plugins.join(NAME);
    write_file(&plugin_dir, "config.yaml", "header: \"X Api Key\"\n");
    let (code, out) = check(&signed.dir, &good);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("plugin header-guard: plugin config rejected: header: \"X Api Key\" is not a header name"),
        "{out}"
    );
    // serde refusing it (a missing field).
    write_file(&plugin_dir, "config.yaml", "value: x\n");
    let (code, out) = check(&signed.dir, &good);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("plugin config rejected: invalid config: missing field `header`"),
        "{out}"
    );
    write_file(&plugin_dir, "config.yaml", &documented_config());

    // A wrong public_key_hash.
    let wrong = good.replace(&signed.hash, &"0".repeat(64));
    let (code, out) = check(&signed.dir, &wrong);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("public key integrity validation failed"),
        "{out}"
    );

    // The .so changed after signing (a rebuild without re-signing).
    let so = plugin_dir.join(format!("{NAME}.so"));
    let mut bytes = std::fs::read(&so).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&so, &bytes).unwrap();
    let (code, out) = check(&signed.dir, &good);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("plugin signature verification failed"),
        "{out}"
    );

    // No .sig at all.
    std::fs::remove_file(plugin_dir.join(format!("{NAME}.so.sig"))).unwrap();
    let (code, out) = check(&signed.dir, &good);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("header-guard.so.sig: cannot read"), "{out}");

    // A location naming a plugin that is not in the directory.
    std::fs::remove_dir_all(&plugin_dir).unwrap();
    let (code, out) = check(&signed.dir, &good);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("locations[0].middlewares[0]: unknown middleware \"header-guard\""),
        "{out}"
    );
}

/// The guide shows the example crate's files as they are.
#[test]
fn the_guide_shows_the_example_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("plugins/README.md")).unwrap();
    for file in ["Cargo.toml", "config.yaml", "src/lib.rs"] {
        let text = std::fs::read_to_string(root.join("plugins/header-guard").join(file)).unwrap();
        let fence = if file.ends_with(".rs") {
            "rust"
        } else if file.ends_with(".toml") {
            "toml"
        } else {
            "yaml"
        };
        let block = format!("```{fence}\n{text}```\n");
        assert!(
            guide.contains(&block),
            "plugins/README.md no longer shows plugins/header-guard/{file} as it is"
        );
    }
    // The workspace lists the example explicitly, so `cargo build --workspace` builds it.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("\"plugins/header-guard\""), "{manifest}");
}
