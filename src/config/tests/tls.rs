//! Upstream TLS files (spec §2 "TLS files exist and parse", §5): what loads, every error at
//! its key path, and the content hash that keys pools and per-worker client configs.

use super::*;
use crate::config::tls_files::SystemRoots;
use crate::test_certs::{TempDir, TestCa};

/// The "system store" of these tests: one fixed CA, never the machine's.
pub(super) fn stand_in_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    thread_local! {
        static CA: TestCa = TestCa::new("stand-in system root");
    }
    CA.with(|ca| vec![ca.der()])
}

fn no_roots() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    Vec::new()
}

pub(super) fn parse_with_roots(
    yaml: &str,
    roots: fn() -> Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<Loaded, LoadError> {
    let report = Report {
        system_roots: SystemRoots::with_loader(roots),
        ..Report::default()
    };
    parse_with("c.yaml", yaml, report)
}

fn load_tls(yaml: &str) -> Config {
    parse_with_roots(yaml, stand_in_roots)
        .unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
        .config
}

fn tls_errors(yaml: &str) -> Vec<String> {
    let err = parse_with_roots(yaml, stand_in_roots).expect_err("expected errors");
    err.errors.iter().map(|d| d.render("c.yaml")).collect()
}

/// A CA file, a client certificate and key signed by another CA, and a second client pair.
struct Files {
    dir: TempDir,
    ca: String,
    cert: String,
    key: String,
    other_cert: String,
    other_key: String,
}

fn files() -> Files {
    let dir = TempDir::new();
    let server_ca = TestCa::new("server ca");
    let client_ca = TestCa::new("client ca");
    let client = client_ca.leaf(&["client-a"]);
    let other = client_ca.leaf(&["client-b"]);
    Files {
        ca: dir.file("ca.pem", &server_ca.pem()),
        cert: dir.file("client.pem", &client.cert_pem),
        key: dir.file("client.key", &client.key_pem),
        other_cert: dir.file("other.pem", &other.cert_pem),
        other_key: dir.file("other.key", &other.key_pem),
        dir,
    }
}

#[test]
fn https_and_wss_targets_get_tls_plain_ones_do_not() {
    let c = load_tls(
        "locations:\n  - path: ^/a\n    target_url: https://h\n  - path: ^/b\n    target_url: wss://h\n  - path: ^/c\n    target_url: http://h\n  - path: ^/d\n    target_url: ws://h\n",
    );
    let tls: Vec<bool> = c.locations.iter().map(|l| l.tls.is_some()).collect();
    assert_eq!(tls, [true, true, false, false]);
    // No ca_file: the system roots, no client certificate.
    let t = c.locations[0].tls.as_ref().unwrap();
    assert_eq!(t.roots.certs, stand_in_roots());
    assert!(t.identity.is_none());
    assert_eq!(c.locations[0].tls, c.locations[1].tls);
}

#[test]
fn global_ca_and_per_location_client_certificates() {
    let f = files();
    let yaml = format!(
        "transport:\n  http:\n    ca_file: {ca}\n    dial_timeout: 2s\nlocations:\n  - path: ^/a\n    target_url: https://h\n    transport:\n      http:\n        cert_file: {cert}\n        key_file: {key}\n  - path: ^/b\n    target_url: https://h\n    transport:\n      http:\n        cert_file: {other_cert}\n        key_file: {other_key}\n  - path: ^/c\n    target_url: https://h\n",
        ca = f.ca,
        cert = f.cert,
        key = f.key,
        other_cert = f.other_cert,
        other_key = f.other_key,
    );
    let c = load_tls(&yaml);
    let [a, b, plain_ca] = [0, 1, 2].map(|i| c.locations[i].tls.clone().unwrap());
    // The global ca_file applies everywhere; the per-location keys kept the global timeout.
    for t in [&a, &b, &plain_ca] {
        assert_eq!(t.roots.certs.len(), 1);
        assert_ne!(t.roots.certs, stand_in_roots());
    }
    assert_eq!(
        c.locations[0].transport.dial_timeout,
        Duration::from_secs(2)
    );
    assert!(a.identity.is_some() && b.identity.is_some() && plain_ca.identity.is_none());
    // Different client certificates never share pools or configs.
    assert_ne!(a.settings, b.settings);
    assert_ne!(a.settings, plain_ca.settings);
    assert_ne!(b.settings, plain_ca.settings);
    drop(f.dir);
}

#[test]
fn same_content_same_settings_even_across_loads() {
    let f = files();
    let yaml = format!(
        "transport:\n  http:\n    ca_file: {ca}\n    cert_file: {cert}\n    key_file: {key}\nlocations:\n  - path: ^/a\n    target_url: https://h\n  - path: ^/b\n    target_url: https://other\n",
        ca = f.ca,
        cert = f.cert,
        key = f.key,
    );
    let first = load_tls(&yaml);
    let again = load_tls(&yaml);
    let s = |c: &Config, i: usize| c.locations[i].tls.as_ref().unwrap().settings;
    assert_eq!(s(&first, 0), s(&first, 1));
    assert_eq!(
        s(&first, 0),
        s(&again, 0),
        "a reload with unchanged files keeps the key"
    );
    assert_ne!(s(&first, 0), 0, "0 is reserved for plain HTTP");

    // The same bytes under another file name: same content, same key.
    let copy = f
        .dir
        .file("copy.pem", &std::fs::read_to_string(&f.cert).unwrap());
    let renamed = load_tls(&yaml.replace(&f.cert, &copy));
    assert_eq!(s(&renamed, 0), s(&first, 0));

    // A CA file replaced on disk (what SIGHUP picks up) changes the key.
    std::fs::write(&f.ca, TestCa::new("rotated").pem()).unwrap();
    let rotated = load_tls(&yaml);
    assert_ne!(s(&rotated, 0), s(&first, 0));
}

#[test]
fn a_location_overrides_only_the_tls_keys_it_sets() {
    let f = files();
    let other_ca = f.dir.file("other-ca.pem", &TestCa::new("other").pem());
    let yaml = format!(
        "transport:\n  http:\n    ca_file: {ca}\n    cert_file: {cert}\n    key_file: {key}\nlocations:\n  - path: ^/a\n    target_url: https://h\n    transport:\n      http:\n        ca_file: {other_ca}\n  - path: ^/b\n    target_url: https://h\n",
        ca = f.ca,
        cert = f.cert,
        key = f.key,
    );
    let c = load_tls(&yaml);
    let a = c.locations[0].tls.clone().unwrap();
    let b = c.locations[1].tls.clone().unwrap();
    assert_ne!(a.roots, b.roots);
    assert_eq!(
        a.identity, b.identity,
        "the global client certificate is kept"
    );
    assert!(a.identity.is_some());
    assert_eq!(
        c.locations[0].transport.ca_file.as_deref(),
        Some(std::path::Path::new(&other_ca))
    );
}

#[test]
fn ca_file_errors_name_the_key() {
    let f = files();
    let empty = f.dir.file("empty.pem", "# nothing here\n");
    let garbage = f.dir.file(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    );
    let missing = f.dir.path().join("missing.pem").display().to_string();
    let yaml = format!(
        "transport:\n  http:\n    ca_file: {empty}\nlocations:\n  - path: ^/a\n    target_url: https://h\n    transport:\n      http:\n        ca_file: {missing}\n  - path: ^/b\n    target_url: https://h\n    transport:\n      http:\n        ca_file: {garbage}\n"
    );
    let errs = tls_errors(&yaml);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_eq!(
        errs[0],
        format!("c.yaml: transport.http.ca_file: no certificates found in {empty} (an empty CA bundle is an error)")
    );
    assert!(
        errs[1].starts_with(&format!(
            "c.yaml: locations[0].transport.http.ca_file: cannot read {missing}: "
        )),
        "{}",
        errs[1]
    );
    assert_eq!(
        errs[2],
        format!("c.yaml: locations[1].transport.http.ca_file: {garbage} is not a valid PEM file: invalid base64 inside a section")
    );
}

#[test]
fn an_endless_file_is_refused_without_reading_it_all() {
    // `/dev/zero` never ends: read whole, it would fill the control thread's memory.
    let errs = tls_errors("transport:\n  http:\n    ca_file: /dev/zero\n");
    assert_eq!(
        errs,
        ["c.yaml: transport.http.ca_file: /dev/zero is larger than 16 MiB: not a PEM file"]
    );
}

#[test]
fn a_private_key_is_not_a_ca_bundle() {
    let f = files();
    let errs = tls_errors(&format!("transport:\n  http:\n    ca_file: {}\n", f.key));
    assert_eq!(
        errs,
        [format!(
            "c.yaml: transport.http.ca_file: no certificates found in {} (an empty CA bundle is an error)",
            f.key
        )]
    );
}

#[test]
fn client_certificate_errors_name_the_key() {
    let f = files();
    let no_key = f.dir.file("no-key.pem", "just text\n");
    let at = |yaml_block: &str| {
        tls_errors(&format!(
            "locations:\n  - path: ^/a\n    target_url: https://h\n    transport:\n      http:\n{yaml_block}"
        ))
    };
    // One alone: the other is required.
    assert_eq!(
        at(&format!("        cert_file: {}\n", f.cert)),
        ["c.yaml: locations[0].transport.http.key_file: required when cert_file is set"]
    );
    assert_eq!(
        at(&format!("        key_file: {}\n", f.key)),
        ["c.yaml: locations[0].transport.http.cert_file: required when key_file is set"]
    );
    // The key of another certificate.
    assert_eq!(
        at(&format!("        cert_file: {}\n        key_file: {}\n", f.cert, f.other_key)),
        [format!(
            "c.yaml: locations[0].transport.http.key_file: the private key in {} does not match the certificate in {}",
            f.other_key, f.cert
        )]
    );
    // A key file without a key, a certificate file without a certificate.
    assert_eq!(
        at(&format!("        cert_file: {}\n        key_file: {no_key}\n", f.cert)),
        [format!(
            "c.yaml: locations[0].transport.http.key_file: no private key found in {no_key} (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section)"
        )]
    );
    assert_eq!(
        at(&format!(
            "        cert_file: {}\n        key_file: {}\n",
            f.key, f.key
        )),
        [format!(
            "c.yaml: locations[0].transport.http.cert_file: no certificates found in {}",
            f.key
        )]
    );
    let missing = f.dir.path().join("nope.key").display().to_string();
    let errs = at(&format!(
        "        cert_file: {}\n        key_file: {missing}\n",
        f.cert
    ));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(&format!(
            "c.yaml: locations[0].transport.http.key_file: cannot read {missing}: "
        )),
        "{}",
        errs[0]
    );
}

#[test]
fn files_are_checked_on_plain_locations_too() {
    let errs = tls_errors("transport:\n  http:\n    ca_file: /nonexistent/ca.pem\nlocations:\n  - path: ^/a\n    target_url: http://h\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("c.yaml: transport.http.ca_file: cannot read /nonexistent/ca.pem: "),
        "{}",
        errs[0]
    );
}

#[test]
fn no_system_roots_is_an_error_at_the_target() {
    let err = parse_with_roots(
        "locations:\n  - path: ^/a\n    target_url: http://h\n  - path: ^/b\n    target_url: https://h\n",
        no_roots,
    )
    .expect_err("no roots");
    let errs: Vec<_> = err.errors.iter().map(|d| d.render("c.yaml")).collect();
    assert_eq!(
        errs,
        ["c.yaml: locations[1].target_url: no system CA certificates found; set transport.http.ca_file"]
    );
    // A ca_file needs no system roots.
    let f = files();
    let yaml = format!(
        "transport:\n  http:\n    ca_file: {}\nlocations:\n  - path: ^/b\n    target_url: https://h\n",
        f.ca
    );
    assert!(parse_with_roots(&yaml, no_roots).is_ok());
}

#[test]
fn tls_targets_need_a_valid_server_name() {
    assert_eq!(
        tls_errors("locations:\n  - path: ^/a\n    target_url: https://a..b\n"),
        ["c.yaml: locations[0].target_url: host \"a..b\" is not a valid TLS server name"]
    );
    let c = load_tls("locations:\n  - path: ^/a\n    target_url: https://127.0.0.1:8443\n  - path: ^/b\n    target_url: https://[::1]:8443\n");
    assert!(c.locations.iter().all(|l| l.tls.is_some()));
}

#[test]
fn debug_output_never_shows_the_private_key() {
    let f = files();
    let yaml = format!(
        "transport:\n  http:\n    ca_file: {ca}\n    cert_file: {cert}\n    key_file: {key}\nlocations:\n  - path: ^/a\n    target_url: https://h\n",
        ca = f.ca,
        cert = f.cert,
        key = f.key,
    );
    let c = load_tls(&yaml);
    let shown = format!("{:?}", c.locations[0].tls);
    assert!(shown.contains("<redacted>"), "{shown}");
}
