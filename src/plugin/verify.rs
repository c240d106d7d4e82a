//! Plugin signature checks (spec §8), byte-compatible with the Go version's formats.
//!
//! - public key: a file of exactly 32 raw bytes, a valid Ed25519 point; the config's
//!   `public_key_hash` is the hex SHA-256 of that file (compared case-insensitively);
//! - `.sig`: 128 hex characters (lowercase as written; uppercase accepted as Go's
//!   `hex.DecodeString` did), trailing whitespace tolerated;
//! - signature: Ed25519 over the 32-byte SHA-256 digest of the `.so` bytes (not over the bytes
//!   themselves), checked with `verify_strict`.
//!
//! Pure functions: no IO beyond reading the files they are given, each file read once. The
//! caller keeps the `.so` bytes it verified and loads those (never the path again).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH};
use sha2::{Digest, Sha256};

/// Characters in a `.sig` file (hex of a 64-byte signature), trailing whitespace aside.
pub const SIGNATURE_HEX_LEN: usize = SIGNATURE_LENGTH * 2;

/// Key and signature files are tiny; reading stops past this many bytes so a path pointing at
/// a huge file or a device (`/dev/zero`) is an error, not an unbounded read.
pub const SMALL_FILE_LIMIT: u64 = 64 * 1024;

/// Why a check failed.
#[derive(Debug)]
pub enum Cause {
    /// The file could not be read.
    Read(std::io::Error),
    /// A key or signature file larger than [`SMALL_FILE_LIMIT`].
    TooLarge,
    /// The key file's SHA-256 is not the configured `public_key_hash`.
    KeyHashMismatch { actual: String, expected: String },
    /// The key file is not 32 bytes long.
    KeyLength(usize),
    /// 32 bytes that do not decode to an Ed25519 point.
    KeyNotAPoint,
    /// A small-order point: `verify_strict` would refuse every signature.
    KeyWeak,
    /// A character that is not a hex digit (trailing whitespace aside).
    SignatureChar { offset: usize, byte: u8 },
    /// Not 128 hex characters.
    SignatureLength(usize),
    /// The signature does not match the digest under this key.
    SignatureMismatch { sha256: String },
}

/// A failed check: the file it concerns (when known) and the cause.
#[derive(Debug)]
pub struct VerifyError {
    /// The file the error is about; `None` when the input was not read from a file.
    pub file: Option<PathBuf>,
    /// What was wrong.
    pub cause: Cause,
}

impl VerifyError {
    /// An error not (yet) tied to a file.
    pub fn new(cause: Cause) -> Self {
        VerifyError { file: None, cause }
    }

    /// Names the file the error is about.
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Read(e) => write!(f, "cannot read: {e}"),
            Cause::TooLarge => write!(
                f,
                "larger than {SMALL_FILE_LIMIT} bytes: not a key or signature file"
            ),
            Cause::KeyHashMismatch { actual, expected } => write!(
                f,
                "public key integrity validation failed: the file's SHA-256 is {actual}, \
                 public_key_hash is {expected}"
            ),
            Cause::KeyLength(n) => write!(
                f,
                "public key is {n} bytes, an Ed25519 public key is {PUBLIC_KEY_LENGTH} raw bytes"
            ),
            Cause::KeyNotAPoint => {
                write!(f, "public key is not a valid Ed25519 point")
            }
            Cause::KeyWeak => write!(
                f,
                "public key is a small-order Ed25519 point: no signature can verify"
            ),
            Cause::SignatureChar { offset, byte } => {
                let shown = if byte.is_ascii_graphic() {
                    format!("{:?}", char::from(*byte))
                } else {
                    format!("0x{byte:02x}")
                };
                write!(
                    f,
                    "signature has a non-hex byte {shown} at offset {offset}; \
                     expected {SIGNATURE_HEX_LEN} hex characters"
                )
            }
            Cause::SignatureLength(n) => write!(
                f,
                "signature is {n} hex characters, expected {SIGNATURE_HEX_LEN}"
            ),
            Cause::SignatureMismatch { sha256 } => write!(
                f,
                "plugin signature verification failed: the signature does not match \
                 SHA-256 {sha256} under this public key"
            ),
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}: {}", p.display(), self.cause),
            None => self.cause.fmt(f),
        }
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.cause {
            Cause::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads a key or signature file once, refusing more than [`SMALL_FILE_LIMIT`] bytes.
pub fn read_small_file(path: &Path) -> Result<Vec<u8>, VerifyError> {
    let err = |cause| VerifyError::new(cause).in_file(path);
    let file = std::fs::File::open(path).map_err(|e| err(Cause::Read(e)))?;
    let mut buf = Vec::new();
    file.take(SMALL_FILE_LIMIT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| err(Cause::Read(e)))?;
    if buf.len() as u64 > SMALL_FILE_LIMIT {
        return Err(err(Cause::TooLarge));
    }
    Ok(buf)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex SHA-256 of `bytes` (the form of `public_key_hash`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// Decodes raw public key bytes: exactly 32 bytes, a valid, not small-order, Ed25519 point.
pub fn public_key_from_bytes(bytes: &[u8]) -> Result<VerifyingKey, VerifyError> {
    let raw: &[u8; PUBLIC_KEY_LENGTH] = bytes
        .try_into()
        .map_err(|_| VerifyError::new(Cause::KeyLength(bytes.len())))?;
    let key = VerifyingKey::from_bytes(raw).map_err(|_| VerifyError::new(Cause::KeyNotAPoint))?;
    if key.is_weak() {
        return Err(VerifyError::new(Cause::KeyWeak));
    }
    Ok(key)
}

/// Reads the public key file once; its SHA-256 must equal `expected_hash_hex` (any case),
/// else `public key integrity validation failed`; then it must be a 32-byte Ed25519 key.
pub fn public_key_from_file(
    path: &Path,
    expected_hash_hex: &str,
) -> Result<VerifyingKey, VerifyError> {
    let bytes = read_small_file(path)?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(expected_hash_hex) {
        return Err(VerifyError::new(Cause::KeyHashMismatch {
            actual,
            expected: expected_hash_hex.to_owned(),
        })
        .in_file(path));
    }
    public_key_from_bytes(&bytes).map_err(|e| e.in_file(path))
}

/// Parses the contents of a `.sig` file: 128 hex characters (either case), then optional
/// trailing spaces, tabs, `\n` or `\r\n`. Anything else, leading whitespace included, is refused.
pub fn parse_signature(text: impl AsRef<[u8]>) -> Result<Signature, VerifyError> {
    let text = text.as_ref();
    let end = text
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    let hex_part = &text[..end];
    if let Some(offset) = hex_part.iter().position(|b| !b.is_ascii_hexdigit()) {
        return Err(VerifyError::new(Cause::SignatureChar {
            offset,
            byte: hex_part[offset],
        }));
    }
    let mut raw = [0u8; SIGNATURE_LENGTH];
    if hex_part.len() != SIGNATURE_HEX_LEN || hex::decode_to_slice(hex_part, &mut raw).is_err() {
        return Err(VerifyError::new(Cause::SignatureLength(hex_part.len())));
    }
    Ok(Signature::from_bytes(&raw))
}

/// Reads and parses a `.sig` file; errors name the file.
pub fn signature_from_file(path: &Path) -> Result<Signature, VerifyError> {
    let bytes = read_small_file(path)?;
    parse_signature(bytes).map_err(|e| e.in_file(path))
}

/// Checks `sig` against the SHA-256 digest of `so_bytes` with `verify_strict`; returns the
/// digest (the identity of the verified image, to log and to key the library cache).
pub fn verify_bytes(
    key: &VerifyingKey,
    so_bytes: &[u8],
    sig: &Signature,
) -> Result<[u8; 32], VerifyError> {
    let digest = sha256(so_bytes);
    key.verify_strict(&digest, sig).map_err(|_| {
        VerifyError::new(Cause::SignatureMismatch {
            sha256: hex::encode(digest),
        })
    })?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    const SEED: [u8; 32] = [7; 32];

    fn tmpdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dito-verify-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn signed(so: &[u8]) -> (VerifyingKey, String) {
        let sk = SigningKey::from_bytes(&SEED);
        let sig = sk.sign(&sha256(so));
        (sk.verifying_key(), hex::encode(sig.to_bytes()))
    }

    #[test]
    fn round_trip_and_flipped_so_byte() {
        let so = b"\x7fELF pretend shared object".to_vec();
        let (key, sig_hex) = signed(&so);
        let sig = parse_signature(&sig_hex).unwrap();
        assert_eq!(verify_bytes(&key, &so, &sig).unwrap(), sha256(&so));
        let mut bad = so.clone();
        bad[3] ^= 1;
        let e = verify_bytes(&key, &bad, &sig).unwrap_err();
        assert!(e
            .to_string()
            .contains("plugin signature verification failed"));
    }

    #[test]
    fn signature_is_over_the_digest_not_the_bytes() {
        let so = b"bytes".to_vec();
        let sk = SigningKey::from_bytes(&SEED);
        let over_bytes = sk.sign(&so);
        assert!(verify_bytes(&sk.verifying_key(), &so, &over_bytes).is_err());
    }

    #[test]
    fn flipped_signature_hex_is_refused() {
        let so = b"abc".to_vec();
        let (key, sig_hex) = signed(&so);
        for pos in [0, 63, 64, 127] {
            let mut h = sig_hex.clone().into_bytes();
            h[pos] = if h[pos] == b'0' { b'1' } else { b'0' };
            // A changed S half may stop being canonical; either way it must not verify.
            if let Ok(sig) = parse_signature(&h) {
                assert!(verify_bytes(&key, &so, &sig).is_err(), "pos {pos}");
            }
        }
    }

    #[test]
    fn hex_length_and_characters() {
        let (_, sig_hex) = signed(b"x");
        assert!(parse_signature(&sig_hex[..127]).is_err());
        let e = parse_signature(format!("{sig_hex}0")).unwrap_err();
        assert!(e.to_string().contains("129 hex characters"), "{e}");
        let e = parse_signature(&sig_hex[..126]).unwrap_err();
        assert!(e.to_string().contains("126 hex characters"), "{e}");
        let e = parse_signature("").unwrap_err();
        assert!(e.to_string().contains("0 hex characters"), "{e}");
        let e = parse_signature(format!(" {sig_hex}")).unwrap_err();
        assert!(e.to_string().contains("byte 0x20 at offset 0"), "{e}");
        let mut g = sig_hex.clone();
        g.replace_range(10..11, "g");
        let e = parse_signature(&g).unwrap_err();
        assert!(e.to_string().contains("'g' at offset 10"), "{e}");
        assert!(parse_signature(format!("{sig_hex}\n{sig_hex}")).is_err());
    }

    #[test]
    fn trailing_whitespace_and_uppercase_are_accepted() {
        let so = b"so".to_vec();
        let (key, sig_hex) = signed(&so);
        for tail in ["", "\n", "\r\n", " ", "\t", " \t\r\n\n"] {
            let sig = parse_signature(format!("{sig_hex}{tail}")).unwrap();
            verify_bytes(&key, &so, &sig).unwrap();
        }
        let sig = parse_signature(sig_hex.to_uppercase()).unwrap();
        verify_bytes(&key, &so, &sig).unwrap();
    }

    #[test]
    fn public_key_file_checks() {
        let dir = tmpdir("keys");
        let key = SigningKey::from_bytes(&SEED).verifying_key().to_bytes();
        let path = dir.join("pub.key");
        std::fs::write(&path, key).unwrap();
        let hash = sha256_hex(&key);
        assert_eq!(public_key_from_file(&path, &hash).unwrap().to_bytes(), key);
        assert!(public_key_from_file(&path, &hash.to_uppercase()).is_ok());

        let e = public_key_from_file(&path, &"0".repeat(64)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("public key integrity validation failed"),
            "{msg}"
        );
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");

        for len in [31usize, 33, 0, 64] {
            let bytes = vec![1u8; len];
            std::fs::write(&path, &bytes).unwrap();
            let e = public_key_from_file(&path, &sha256_hex(&bytes)).unwrap_err();
            assert!(matches!(e.cause, Cause::KeyLength(n) if n == len), "{e}");
            assert!(e.to_string().contains(&format!("{len} bytes")), "{e}");
        }

        // The identity point (small order) and a y with no point on the curve.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        std::fs::write(&path, identity).unwrap();
        let e = public_key_from_file(&path, &sha256_hex(&identity)).unwrap_err();
        assert!(matches!(e.cause, Cause::KeyWeak), "{e}");
        let not_a_point = [
            2u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0,
        ];
        std::fs::write(&path, not_a_point).unwrap();
        let e = public_key_from_file(&path, &sha256_hex(&not_a_point)).unwrap_err();
        assert!(matches!(e.cause, Cause::KeyNotAPoint), "{e}");

        let e = public_key_from_file(&dir.join("missing"), &hash).unwrap_err();
        assert!(e.to_string().contains("missing: cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn signature_file_names_the_file() {
        let dir = tmpdir("sig");
        let path = dir.join("p.so.sig");
        std::fs::write(&path, "abc").unwrap();
        let e = signature_from_file(&path).unwrap_err();
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
