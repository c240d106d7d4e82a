//! Upstream TLS settings as config errors (spec §2, §5): `dito check -f` loads the TLS files
//! and fails with exit 1 and a `FILE: KEY_PATH: problem` line for a missing or empty CA
//! bundle, a certificate without its key (and the reverse), and a key that does not match the
//! certificate; a good set passes; `dito -f` refuses to start on a bad one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Output;

use support::tls::Pki;
use support::{config, run_dito, Dito};

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A `transport.http` block with these keys, each line prefixed by `indent`.
fn block(indent: &str, keys: &[(&str, &Path)]) -> String {
    let mut s = format!("{indent}transport:\n{indent}  http:\n");
    for (k, p) in keys {
        s.push_str(&format!("{indent}    {k}: '{}'\n", p.display()));
    }
    s
}

/// A config with a global block and one https location with its own block.
fn yaml(global: &[(&str, &Path)], location: &[(&str, &Path)]) -> String {
    let mut top = String::new();
    if !global.is_empty() {
        top = block("", global);
    }
    let mut loc =
        "locations:\n  - path: '^/api'\n    target_url: 'https://localhost:9'\n".to_owned();
    if !location.is_empty() {
        loc.push_str(&block("    ", location));
    }
    config(&format!("{top}{loc}"))
}

/// Runs `dito check -f` on `yaml` (written into the PKI's directory).
fn check(pki: &Pki, yaml: &str) -> (String, Output) {
    let file = pki.file("config.yaml", yaml);
    let file = file.to_str().unwrap().to_owned();
    let out = run_dito(&["check", "-f", &file]);
    (file, out)
}

/// `dito check` exits 1 with an error line for one of `keys` (key paths).
#[track_caller]
fn assert_fails_naming(pki: &Pki, yaml: &str, keys: &[&str]) {
    let (file, out) = check(pki, yaml);
    assert_eq!(out.status.code(), Some(1), "{}\n{yaml}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("not supported yet"),
        "upstream TLS is not implemented: {}",
        text(&out)
    );
    assert!(
        err.lines().any(|l| keys
            .iter()
            .any(|k| l.starts_with(&format!("{file}: {k}: ")))),
        "no line names {keys:?}\n{}\n{yaml}",
        text(&out)
    );
    assert!(!err.contains("panicked"), "{}", text(&out));
}

#[test]
fn a_complete_tls_transport_passes_check() {
    let pki = Pki::new();
    let one = &pki.client_one;
    let two = &pki.client_two;
    let y = yaml(
        &[
            ("ca_file", &pki.ca),
            ("cert_file", &one.cert),
            ("key_file", &one.key),
        ],
        &[("cert_file", &two.cert), ("key_file", &two.key)],
    );
    let (file, out) = check(&pki, &y);
    assert_eq!(out.status.code(), Some(0), "{}\n{y}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{file}: configuration OK\n"),
        "{}",
        text(&out)
    );
}

#[test]
fn missing_ca_file_is_an_error_naming_the_key() {
    let pki = Pki::new();
    let missing = pki.dir.join("no-such-ca.pem");
    let y = yaml(&[("ca_file", &missing)], &[]);
    assert_fails_naming(&pki, &y, &["transport.http.ca_file"]);
    let y = yaml(&[], &[("ca_file", &missing)]);
    assert_fails_naming(&pki, &y, &["locations[0].transport.http.ca_file"]);
}

#[test]
fn empty_or_certificate_free_ca_bundle_is_an_error() {
    let pki = Pki::new();
    let y = yaml(&[("ca_file", &pki.empty)], &[]);
    assert_fails_naming(&pki, &y, &["transport.http.ca_file"]);
    // A file with no certificate in it (here: a private key) is an empty bundle too.
    let y = yaml(&[], &[("ca_file", &pki.client_one.key)]);
    assert_fails_naming(&pki, &y, &["locations[0].transport.http.ca_file"]);
}

#[test]
fn cert_file_without_key_file_and_the_reverse_are_errors() {
    let pki = Pki::new();
    let one = &pki.client_one;
    let either = ["transport.http.cert_file", "transport.http.key_file"];
    assert_fails_naming(&pki, &yaml(&[("cert_file", &one.cert)], &[]), &either);
    assert_fails_naming(&pki, &yaml(&[("key_file", &one.key)], &[]), &either);
    let in_loc = [
        "locations[0].transport.http.cert_file",
        "locations[0].transport.http.key_file",
    ];
    assert_fails_naming(&pki, &yaml(&[], &[("cert_file", &one.cert)]), &in_loc);
}

#[test]
fn key_that_does_not_match_the_certificate_names_key_file() {
    let pki = Pki::new();
    let mismatched = [
        ("cert_file", pki.client_one.cert.as_path()),
        ("key_file", &pki.client_two.key),
    ];
    assert_fails_naming(&pki, &yaml(&mismatched, &[]), &["transport.http.key_file"]);
    assert_fails_naming(
        &pki,
        &yaml(&[], &mismatched),
        &["locations[0].transport.http.key_file"],
    );
}

#[test]
fn unreadable_key_or_certificate_files_are_errors() {
    let pki = Pki::new();
    let missing = pki.dir.join("no-such.key");
    let y = yaml(
        &[("cert_file", &pki.client_one.cert), ("key_file", &missing)],
        &[],
    );
    assert_fails_naming(&pki, &y, &["transport.http.key_file"]);
    // A certificate file holding no certificate.
    let y = yaml(
        &[("cert_file", &pki.empty), ("key_file", &pki.client_one.key)],
        &[],
    );
    assert_fails_naming(&pki, &y, &["transport.http.cert_file"]);
}

#[test]
fn dito_refuses_to_start_with_an_empty_ca_bundle() {
    let pki = Pki::new();
    let y = yaml(&[("ca_file", &pki.empty)], &[]);
    let f = match Dito::try_start(&y) {
        Ok(_) => panic!("started with an empty CA bundle"),
        Err(f) => f,
    };
    assert_eq!(f.code, Some(1), "{}", f.output);
    assert!(f.output.contains("transport.http.ca_file"), "{}", f.output);
    assert!(!f.output.contains("not supported yet"), "{}", f.output);
}
