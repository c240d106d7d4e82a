//! Helpers shared by the plugin test files (`plugins`: the chain as a client sees it;
//! `plugin_loading`: refused fixtures, the loaded image, reloads): config builders, what
//! `dito-echo` reports, polling, metric scrapes, SIGHUP reloads and log-line lookups.
//!
//! A directory module so cargo does not build it as a test of its own; not every file uses
//! every helper, hence `dead_code` is allowed.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub use std::net::{SocketAddr, TcpListener};
pub use std::path::Path;
pub use std::time::{Duration, Instant};

pub use crate::support::client::{get, Resp};
pub use crate::support::plugins::{
    library, location, sha256_hex, PluginTree, ABI_TWO, HELLO, TEST,
};
pub use crate::support::prom::{self, Scrape};
pub use crate::support::{config, run_dito, Dito, Echo};

/// How long a reload or a metric may take to show.
pub const LIMIT: Duration = Duration::from_secs(10);
/// Pause between two polls.
pub const POLL: Duration = Duration::from_millis(20);

pub const DEFAULT_GREETING: &str = "Hello from Dito plugin!";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A config with the tree's `plugins` section, `top` keys and the locations.
pub fn yaml(tree: &PluginTree, top: &str, locs: &[String]) -> String {
    config(&format!(
        "{top}{}locations:\n{}",
        tree.section(),
        locs.concat()
    ))
}

/// `http://<echo>/echo`.
pub fn echo_url(e: &Echo) -> String {
    format!("http://{}/echo", e.addr)
}

/// An upstream URL nothing listens on (a port bound a moment ago, then released): any
/// request that reaches it gets Dito's 502.
pub fn dead_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/echo")
}

/// The values of request header `name` as `dito-echo` received them, in order.
pub fn upstream_saw(resp: &Resp, name: &str) -> Vec<String> {
    resp.body_str()
        .lines()
        .filter_map(|l| l.strip_prefix("header: "))
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
        .collect()
}

/// The request target `dito-echo` received.
pub fn upstream_target(resp: &Resp) -> Option<String> {
    resp.body_str()
        .lines()
        .find_map(|l| l.strip_prefix("target: "))
        .map(str::to_string)
}

/// Every value of response header `name`, in order.
pub fn values(resp: &Resp, name: &str) -> Vec<String> {
    resp.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

pub fn show(resp: &Resp) -> String {
    format!(
        "{} {:?}\n{}",
        resp.status,
        resp.headers,
        String::from_utf8_lossy(&resp.body)
    )
}

/// Polls `ok` every [`POLL`] until it holds, at most [`LIMIT`].
pub fn poll(mut ok: impl FnMut() -> bool) -> bool {
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

pub fn scrape(addr: SocketAddr) -> Scrape {
    let r = get(addr, "/metrics");
    assert_eq!(r.status, 200, "{}", show(&r));
    prom::parse(&r.body_str()).unwrap_or_else(|e| panic!("{e}\n{}", r.body_str()))
}

/// Scrapes until `ok` holds (bounded); the last scrape.
pub fn scrape_until(d: &Dito, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
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
pub fn cfg_path(d: &Dito) -> std::path::PathBuf {
    d.dir.join("config.yaml")
}

/// Sends SIGHUP and waits until the `n`th reload by SIGHUP is applied or rejected; whether it
/// was applied.
pub fn sighup(d: &Dito, n: usize) -> bool {
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
pub fn log_field(line: &str, key: &str) -> Option<String> {
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
pub fn lines_with(d: &Dito, needle: &str) -> Vec<String> {
    d.output()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// A config that must be refused: `dito check -f` exits 1 and startup stops (exit 1), each
/// saying every one of `needles` on one line.
pub fn assert_refused(tree: &PluginTree, yaml: &str, needles: &[&str]) {
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
pub fn hello_tree() -> PluginTree {
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
