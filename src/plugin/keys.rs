//! Private-key side of plugin signing, for `plugin-signer` (spec §1, §8).
//!
//! The Go version's formats: private key = raw 64 bytes (seed ‖ public key), public key = raw
//! 32 bytes, `.sig` = 128 lowercase hex characters of Ed25519 over SHA-256(file), no newline.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey, KEYPAIR_LENGTH, PUBLIC_KEY_LENGTH, SECRET_KEY_LENGTH};

use super::verify::{read_small_file, sha256, VerifyError};

/// Mode of a written private key.
pub const PRIVATE_KEY_MODE: u32 = 0o600;
/// Mode of a written public key and of a `.sig`.
pub const PUBLIC_FILE_MODE: u32 = 0o644;

/// A failure of key handling, naming the file.
#[derive(Debug)]
pub struct KeyError {
    /// The file concerned.
    pub file: PathBuf,
    /// What went wrong, as a sentence fragment.
    pub problem: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.problem)
    }
}

impl std::error::Error for KeyError {}

impl From<VerifyError> for KeyError {
    fn from(e: VerifyError) -> Self {
        KeyError {
            file: e.file.unwrap_or_default(),
            problem: e.cause.to_string(),
        }
    }
}

fn key_error(file: &Path, problem: impl Into<String>) -> KeyError {
    KeyError {
        file: file.to_owned(),
        problem: problem.into(),
    }
}

/// A new key pair from the operating system's random source.
pub fn generate() -> Result<SigningKey, getrandom::Error> {
    let mut seed = [0u8; SECRET_KEY_LENGTH];
    getrandom::getrandom(&mut seed)?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// Reads a 64-byte private key (seed ‖ public key); refuses another length and a second
/// half that is not the public key derived from the seed.
pub fn signing_key_from_file(path: &Path) -> Result<SigningKey, KeyError> {
    let mut bytes = read_small_file(path)?;
    let result = signing_key_from_bytes(&bytes).map_err(|p| key_error(path, p));
    bytes.fill(0);
    result
}

/// [`signing_key_from_file`] on bytes already read (the parsing, without the file).
pub fn signing_key_from_bytes(bytes: &[u8]) -> Result<SigningKey, String> {
    if bytes.len() != KEYPAIR_LENGTH {
        let hint = if bytes.len() == PUBLIC_KEY_LENGTH {
            " (this looks like a public key)"
        } else {
            ""
        };
        return Err(format!(
            "private key is {} bytes, an Ed25519 private key is {KEYPAIR_LENGTH} raw bytes \
             (seed and public key){hint}",
            bytes.len()
        ));
    }
    let mut seed = [0u8; SECRET_KEY_LENGTH];
    seed.copy_from_slice(&bytes[..SECRET_KEY_LENGTH]);
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    if key.verifying_key().as_bytes()[..] != bytes[SECRET_KEY_LENGTH..] {
        return Err(
            "private key is damaged: its last 32 bytes are not the public key \
                    derived from its first 32 (the seed)"
                .to_owned(),
        );
    }
    Ok(key)
}

/// Signs SHA-256(`file_bytes`); returns the `.sig` contents (128 lowercase hex, no newline).
pub fn sign_bytes(key: &SigningKey, file_bytes: &[u8]) -> String {
    hex::encode(key.sign(&sha256(file_bytes)).to_bytes())
}

/// Refuses to go on if `path` exists (any kind of file, even a dangling symlink).
pub fn refuse_existing(path: &Path) -> Result<(), KeyError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Err(key_error(
            path,
            "already exists; not overwriting it (use --force to replace it)",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(key_error(path, format!("cannot check: {e}"))),
    }
}

/// Writes `bytes` to `path` with `mode`. Without `overwrite` the file must not exist
/// (`O_EXCL`); with it, the mode is set before any byte is written, whatever the old mode.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32, overwrite: bool) -> Result<(), KeyError> {
    let mut opts = OpenOptions::new();
    opts.write(true).mode(mode);
    if overwrite {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let io = |what: &str, e: std::io::Error| key_error(path, format!("cannot {what}: {e}"));
    let mut file: File = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            key_error(
                path,
                "already exists; not overwriting it (use --force to replace it)",
            )
        } else {
            io("create", e)
        }
    })?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("set the mode of", e))?;
    file.write_all(bytes).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("write", e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn keypair_bytes_checks() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let good = key.to_keypair_bytes();
        assert_eq!(
            signing_key_from_bytes(&good).unwrap().to_bytes(),
            key.to_bytes()
        );
        let mut bad = good;
        bad[40] ^= 1;
        assert!(signing_key_from_bytes(&bad)
            .unwrap_err()
            .contains("damaged"));
        assert!(signing_key_from_bytes(&good[..32])
            .unwrap_err()
            .contains("looks like a public key"));
        assert!(signing_key_from_bytes(&good[..63])
            .unwrap_err()
            .contains("63 bytes"));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            generate().unwrap().to_bytes(),
            generate().unwrap().to_bytes()
        );
    }
}
