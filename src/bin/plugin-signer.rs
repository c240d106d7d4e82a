//! `plugin-signer` (spec §1, §8): makes Ed25519 key pairs, signs plugin `.so` files, verifies
//! them and prints the `public_key_hash` for Dito's config, in the Go version's formats (raw
//! 64/32-byte keys, `.sig` = lowercase hex of a signature over SHA-256 of the file, no newline).
//!
//! Go-style flags (`-private-key X`, `-privateKey X`, `--private-key=X`, `-force`, and the old
//! `-plugin FILE`) are rewritten before clap parses argv. Exit codes: 0 ok, 1 failure, 2 usage.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use dito::plugin::keys::{self, KeyError, PRIVATE_KEY_MODE, PUBLIC_FILE_MODE};
use dito::plugin::verify::{self, Cause, VerifyError};

const DEFAULT_PRIVATE: &str = "ed25519_private.key";
const DEFAULT_PUBLIC: &str = "ed25519_public.key";

#[derive(Debug, Parser)]
#[command(
    name = "plugin-signer",
    version,
    about = "Sign Dito plugins with Ed25519 (key and signature formats of the Go version)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a new key pair (private 64 raw bytes, mode 0600; public 32 raw bytes, mode 0644).
    GenerateKeys {
        #[arg(long, value_name = "P", default_value = DEFAULT_PRIVATE)]
        private_key: PathBuf,
        #[arg(long, value_name = "P", default_value = DEFAULT_PUBLIC)]
        public_key: PathBuf,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Sign FILE.so: write FILE.so.sig (hex Ed25519 signature over SHA-256 of the file).
    Sign {
        #[arg(value_name = "FILE.so")]
        file: PathBuf,
        #[arg(long, value_name = "P", default_value = DEFAULT_PRIVATE)]
        private_key: PathBuf,
    },
    /// Verify FILE.so against FILE.so.sig; exit 0 (OK) or 1.
    Verify {
        #[arg(value_name = "FILE.so")]
        file: PathBuf,
        #[arg(long, value_name = "P", default_value = DEFAULT_PUBLIC)]
        public_key: PathBuf,
    },
    /// Print the public key's `public_key_hash` (hex SHA-256 of the file) for Dito's config.
    Hash {
        #[arg(value_name = "PUBLIC_KEY")]
        public_key: PathBuf,
    },
}

/// Rewrites Go-style flags into clap's spelling; `-plugin FILE` (the Go signer's flag) becomes
/// the positional FILE. Nothing after `--` is touched.
fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut literal = false;
    for (i, arg) in args.into_iter().enumerate() {
        let s = match arg.to_str() {
            Some(s) if i > 0 && !literal => s.to_owned(),
            _ => {
                out.push(arg);
                continue;
            }
        };
        if s == "--" {
            literal = true;
            out.push(arg);
            continue;
        }
        let (flag, value) = match s.split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (s.as_str(), None),
        };
        let canonical = match flag.trim_start_matches('-') {
            _ if !flag.starts_with('-') => None,
            "private-key" | "privateKey" => Some("--private-key"),
            "public-key" | "publicKey" => Some("--public-key"),
            "force" => Some("--force"),
            "help" => Some("--help"),
            "version" => Some("--version"),
            "plugin" => {
                out.extend(value.map(OsString::from));
                continue;
            }
            _ => None,
        };
        let Some(canonical) = canonical else {
            out.push(arg);
            continue;
        };
        match (canonical, value) {
            (_, None) => out.push(canonical.into()),
            // Go's boolean flags take `=true`/`=false`.
            ("--force", Some("true" | "1" | "t" | "T" | "TRUE" | "True")) => {
                out.push(canonical.into());
            }
            ("--force", Some("false" | "0" | "f" | "F" | "FALSE" | "False")) => {}
            (_, Some(v)) => out.push(format!("{canonical}={v}").into()),
        }
    }
    out
}

fn main() {
    let cli = match Cli::try_parse_from(normalize_args(std::env::args_os())) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::GenerateKeys {
            private_key,
            public_key,
            force,
        } => generate_keys(&private_key, &public_key, force),
        Command::Sign { file, private_key } => sign(&file, &private_key),
        Command::Verify { file, public_key } => verify_cmd(&file, &public_key),
        Command::Hash { public_key } => hash(&public_key),
    };
    if let Err(msg) = result {
        eprintln!("plugin-signer: {msg}");
        std::process::exit(1);
    }
}

fn sig_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

fn generate_keys(private: &Path, public: &Path, force: bool) -> Result<(), String> {
    if private == public {
        return Err(format!(
            "{}: the private and public key paths are the same file",
            private.display()
        ));
    }
    if !force {
        // Both checked before either is written: a refused run leaves no half pair.
        keys::refuse_existing(private).map_err(|e| e.to_string())?;
        keys::refuse_existing(public).map_err(|e| e.to_string())?;
    }
    let key = keys::generate().map_err(|e| format!("no randomness from the OS: {e}"))?;
    let mut pair = key.to_keypair_bytes();
    let written = keys::write_file(private, &pair, PRIVATE_KEY_MODE, force);
    pair.fill(0);
    written.map_err(|e| e.to_string())?;
    let public_bytes = key.verifying_key().to_bytes();
    keys::write_file(public, &public_bytes, PUBLIC_FILE_MODE, force).map_err(|e| e.to_string())?;
    println!(
        "wrote {} (private, mode 0600) and {} (public, mode 0644)",
        private.display(),
        public.display()
    );
    println!("public_key_hash: {}", verify::sha256_hex(&public_bytes));
    Ok(())
}

fn sign(file: &Path, private: &Path) -> Result<(), String> {
    let key = keys::signing_key_from_file(private).map_err(|e: KeyError| e.to_string())?;
    let bytes = read_file(file)?;
    let sig = keys::sign_bytes(&key, &bytes);
    let out = sig_path(file);
    keys::write_file(&out, sig.as_bytes(), PUBLIC_FILE_MODE, true).map_err(|e| e.to_string())?;
    println!(
        "wrote {} (SHA-256 of {}: {})",
        out.display(),
        file.display(),
        verify::sha256_hex(&bytes)
    );
    Ok(())
}

/// Reads the public key file once; returns the key and the file's bytes.
fn public_key(path: &Path) -> Result<(ed25519_dalek::VerifyingKey, Vec<u8>), String> {
    let bytes = verify::read_small_file(path).map_err(|e| e.to_string())?;
    let key = verify::public_key_from_bytes(&bytes).map_err(|e: VerifyError| {
        let hint = match e.cause {
            Cause::KeyLength(64) => " (this looks like a private key)",
            _ => "",
        };
        format!("{}{hint}", e.in_file(path))
    })?;
    Ok((key, bytes))
}

fn verify_cmd(file: &Path, public: &Path) -> Result<(), String> {
    let (key, _) = public_key(public)?;
    let bytes = read_file(file)?;
    let sig = verify::signature_from_file(&sig_path(file)).map_err(|e| e.to_string())?;
    let digest =
        verify::verify_bytes(&key, &bytes, &sig).map_err(|e| e.in_file(file).to_string())?;
    println!("OK {} sha256 {}", file.display(), hex::encode(digest));
    Ok(())
}

fn hash(public: &Path) -> Result<(), String> {
    // Validated first, so hashing the private key by mistake is an error, not a wrong hash.
    let (_, bytes) = public_key(public)?;
    println!("{}", verify::sha256_hex(&bytes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &[&str]) -> Vec<String> {
        normalize_args(v.iter().map(OsString::from))
            .into_iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn go_style_flags_are_rewritten() {
        let n = norm(&["ps", "sign", "a.so", "-private-key", "k"]);
        assert_eq!(n, ["ps", "sign", "a.so", "--private-key", "k"]);
        let n = norm(&["ps", "sign", "-privateKey=k", "-plugin", "a.so"]);
        assert_eq!(n, ["ps", "sign", "--private-key=k", "a.so"]);
        let n = norm(&["ps", "verify", "--plugin=a.so", "-publicKey", "p"]);
        assert_eq!(n, ["ps", "verify", "a.so", "--public-key", "p"]);
        let n = norm(&["ps", "generate-keys", "-force", "-force=false", "--force=1"]);
        assert_eq!(n, ["ps", "generate-keys", "--force", "--force"]);
        let n = norm(&["ps", "hash", "--", "-force"]);
        assert_eq!(n, ["ps", "hash", "--", "-force"]);
        assert_eq!(norm(&["ps", "-help"]), ["ps", "--help"]);
    }

    #[test]
    fn clap_accepts_normalised_forms() {
        let args = [
            "ps",
            "generate-keys",
            "-private-key=a",
            "-public-key",
            "b",
            "-force",
        ];
        let cli = Cli::try_parse_from(normalize_args(args.map(OsString::from)));
        assert!(matches!(
            cli,
            Ok(Cli {
                command: Command::GenerateKeys { force: true, .. }
            })
        ));
    }
}
