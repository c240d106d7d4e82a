//! `plugin-signer` as its users see it (spec §1, §8): `generate-keys` (modes, sizes, no
//! overwrite without `--force`), `sign` + `verify` round trip, a flipped byte refused, `hash`,
//! usage errors, Go-style flags, and byte compatibility with the Go version's formats in both
//! directions (files made here as raw bytes with ed25519-dalek, as Go's `crypto/ed25519` would).
//!
//! Every process is the real binary (`CARGO_BIN_EXE_plugin-signer`), run in a temp directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use dito::plugin::verify;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("dito-plugin-signer-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plugin-signer"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn expect_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", shown(out));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

const SO: &[u8] = b"\x7fELF\x02\x01\x01 not really a shared object, but bytes to sign";

#[test]
fn generate_keys_writes_the_go_formats_with_their_modes() {
    let dir = TempDir::new("gen");
    let out = run(&dir.0, &["generate-keys"]);
    expect_exit(&out, 0);
    let (private, public) = (
        dir.path("ed25519_private.key"),
        dir.path("ed25519_public.key"),
    );
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&public), 0o644);
    let priv_bytes = std::fs::read(&private).unwrap();
    let pub_bytes = std::fs::read(&public).unwrap();
    assert_eq!((priv_bytes.len(), pub_bytes.len()), (64, 32));
    // seed ‖ public key, the public half derived from the seed.
    let seed: [u8; 32] = priv_bytes[..32].try_into().unwrap();
    let derived = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    assert_eq!(&priv_bytes[32..], &derived[..]);
    assert_eq!(pub_bytes, derived);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        printed.contains(&hex::encode(sha256(&pub_bytes))),
        "{printed}"
    );

    // A second run refuses, names the file, and changes nothing.
    let out = run(&dir.0, &["generate-keys"]);
    expect_exit(&out, 1);
    assert!(
        stderr(&out).contains("ed25519_private.key"),
        "{}",
        shown(&out)
    );
    assert!(stderr(&out).contains("--force"), "{}", shown(&out));
    assert_eq!(std::fs::read(&private).unwrap(), priv_bytes);
    assert_eq!(std::fs::read(&public).unwrap(), pub_bytes);

    // --force replaces both, and restores the private key's mode.
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&dir.0, &["generate-keys", "--force"]);
    expect_exit(&out, 0);
    assert_ne!(std::fs::read(&private).unwrap(), priv_bytes);
    assert_ne!(std::fs::read(&public).unwrap(), pub_bytes);
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&public), 0o644);
}

#[test]
fn generate_keys_takes_paths_in_go_and_gnu_spellings() {
    let dir = TempDir::new("gen-paths");
    let out = run(
        &dir.0,
        &[
            "generate-keys",
            "-private-key",
            "a.key",
            "--public-key=b.key",
        ],
    );
    expect_exit(&out, 0);
    assert_eq!(std::fs::read(dir.path("a.key")).unwrap().len(), 64);
    assert_eq!(std::fs::read(dir.path("b.key")).unwrap().len(), 32);

    // Only the public file exists: still refused, and no private key appears.
    std::fs::remove_file(dir.path("a.key")).unwrap();
    let out = run(
        &dir.0,
        &["generate-keys", "-privateKey=a.key", "-publicKey", "b.key"],
    );
    expect_exit(&out, 1);
    assert!(stderr(&out).contains("b.key"), "{}", shown(&out));
    assert!(!dir.path("a.key").exists());

    let out = run(
        &dir.0,
        &[
            "generate-keys",
            "-private-key=a.key",
            "-public-key=b.key",
            "-force",
        ],
    );
    expect_exit(&out, 0);
    assert_eq!(mode(&dir.path("a.key")), 0o600);
}

#[test]
fn sign_verify_round_trip_and_a_flipped_byte() {
    let dir = TempDir::new("round");
    expect_exit(&run(&dir.0, &["generate-keys"]), 0);
    let so = dir.path("p.so");
    std::fs::write(&so, SO).unwrap();
    expect_exit(&run(&dir.0, &["sign", "p.so"]), 0);

    let sig_text = std::fs::read_to_string(dir.path("p.so.sig")).unwrap();
    assert_eq!(sig_text.len(), 128, "no trailing newline: {sig_text:?}");
    assert!(sig_text
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(mode(&dir.path("p.so.sig")), 0o644);

    // Plain ed25519-dalek accepts it over the SHA-256 digest of the file.
    let public: [u8; 32] = std::fs::read(dir.path("ed25519_public.key"))
        .unwrap()
        .try_into()
        .unwrap();
    let key = VerifyingKey::from_bytes(&public).unwrap();
    let sig = Signature::from_slice(&hex::decode(&sig_text).unwrap()).unwrap();
    key.verify_strict(&sha256(SO), &sig).unwrap();

    let out = run(&dir.0, &["verify", "p.so"]);
    expect_exit(&out, 0);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(printed.starts_with("OK"), "{printed}");
    assert!(printed.contains(&hex::encode(sha256(SO))), "{printed}");

    let mut flipped = SO.to_vec();
    flipped[20] ^= 0x01;
    std::fs::write(&so, &flipped).unwrap();
    let out = run(&dir.0, &["verify", "p.so"]);
    expect_exit(&out, 1);
    assert!(
        stderr(&out).contains("p.so: plugin signature verification failed"),
        "{}",
        shown(&out)
    );

    std::fs::remove_file(dir.path("p.so.sig")).unwrap();
    let out = run(&dir.0, &["verify", "p.so"]);
    expect_exit(&out, 1);
    assert!(
        stderr(&out).contains("p.so.sig: cannot read"),
        "{}",
        shown(&out)
    );
}

#[test]
fn hash_prints_the_sha256_of_the_key_file() {
    let dir = TempDir::new("hash");
    expect_exit(&run(&dir.0, &["generate-keys"]), 0);
    let bytes = std::fs::read(dir.path("ed25519_public.key")).unwrap();
    let out = run(&dir.0, &["hash", "ed25519_public.key"]);
    expect_exit(&out, 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", hex::encode(sha256(&bytes)))
    );

    // Hashing the private key by mistake is an error, not a wrong hash.
    let out = run(&dir.0, &["hash", "ed25519_private.key"]);
    expect_exit(&out, 1);
    assert!(
        stderr(&out).contains("looks like a private key"),
        "{}",
        shown(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn wrong_keys_are_clear_errors() {
    let dir = TempDir::new("wrong");
    std::fs::write(dir.path("p.so"), SO).unwrap();
    std::fs::write(dir.path("short.key"), [1u8; 31]).unwrap();
    let out = run(&dir.0, &["verify", "p.so", "--public-key", "short.key"]);
    expect_exit(&out, 1);
    assert!(
        stderr(&out).contains("short.key: public key is 31 bytes"),
        "{}",
        shown(&out)
    );

    // A private key whose second half is not the seed's public key.
    let mut pair = SigningKey::from_bytes(&[3; 32]).to_keypair_bytes();
    pair[63] ^= 0x80;
    std::fs::write(dir.path("bad_private.key"), pair).unwrap();
    let out = run(
        &dir.0,
        &["sign", "p.so", "--private-key", "bad_private.key"],
    );
    expect_exit(&out, 1);
    assert!(
        stderr(&out).contains("bad_private.key: private key is damaged"),
        "{}",
        shown(&out)
    );
    assert!(!dir.path("p.so.sig").exists());

    let out = run(&dir.0, &["sign", "p.so", "--private-key", "missing.key"]);
    expect_exit(&out, 1);
    assert!(
        stderr(&out).contains("missing.key: cannot read"),
        "{}",
        shown(&out)
    );
}

#[test]
fn usage_errors_exit_2_with_a_usage_line() {
    let dir = TempDir::new("usage");
    for args in [
        &[][..],
        &["frobnicate"],
        &["sign"],
        &["verify", "a.so", "--private-key", "k"],
        &["hash"],
    ] {
        let out = run(&dir.0, args);
        expect_exit(&out, 2);
        assert!(
            stderr(&out).contains("Usage: plugin-signer"),
            "{args:?}\n{}",
            shown(&out)
        );
    }
    expect_exit(&run(&dir.0, &["--help"]), 0);
    expect_exit(&run(&dir.0, &["-help"]), 0);
}

/// Key files and a signature exactly as the Go signer writes them: `ed25519.GenerateKey` gives
/// a 64-byte private key (seed ‖ public) and a 32-byte public key written raw;
/// `hex.EncodeToString(ed25519.Sign(priv, sha256(file)))` is written without a newline.
#[test]
fn go_format_files_verify_and_signatures_match_byte_for_byte() {
    let dir = TempDir::new("go");
    let seed = [0x5au8; 32];
    let signing = SigningKey::from_bytes(&seed);
    let public = signing.verifying_key().to_bytes();
    let mut private = seed.to_vec();
    private.extend_from_slice(&public);
    std::fs::write(dir.path("go_private.key"), &private).unwrap();
    std::fs::write(dir.path("go_public.key"), public).unwrap();
    std::fs::write(dir.path("g.so"), SO).unwrap();
    let go_sig = hex::encode(signing.sign(&sha256(SO)).to_bytes());
    std::fs::write(dir.path("g.so.sig"), &go_sig).unwrap();

    // plugin-signer accepts the Go files (Go's `-publicKey` spelling too).
    let out = run(&dir.0, &["verify", "g.so", "-publicKey", "go_public.key"]);
    expect_exit(&out, 0);

    // The host's checks accept them, with the hash as `shasum -a 256` prints it, any case.
    let hash = hex::encode(sha256(&public)).to_uppercase();
    let key = verify::public_key_from_file(&dir.path("go_public.key"), &hash).unwrap();
    let sig = verify::signature_from_file(&dir.path("g.so.sig")).unwrap();
    assert_eq!(verify::verify_bytes(&key, SO, &sig).unwrap(), sha256(SO));

    // The other way: plugin-signer signing with the Go private key writes the very same
    // bytes (Ed25519 is deterministic), via the Go signer's `-plugin FILE -privateKey P` form.
    std::fs::remove_file(dir.path("g.so.sig")).unwrap();
    let out = run(
        &dir.0,
        &["sign", "-plugin", "g.so", "-privateKey", "go_private.key"],
    );
    expect_exit(&out, 0);
    assert_eq!(
        std::fs::read_to_string(dir.path("g.so.sig")).unwrap(),
        go_sig
    );
    let hash = run(&dir.0, &["hash", "go_public.key"]);
    assert_eq!(
        String::from_utf8_lossy(&hash.stdout).trim_end(),
        hex::encode(sha256(&public))
    );
}
