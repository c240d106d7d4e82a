//! Key and signature file contents (spec §8): the public key, private key and `.sig` parsers
//! never panic on any bytes; what they accept is exactly the documented format; a signature
//! made with a key verifies under it and under no other image.

use ed25519_dalek::{SigningKey, PUBLIC_KEY_LENGTH};

use crate::plugin::keys::{sign_bytes, signing_key_from_bytes};
use crate::plugin::verify::{parse_signature, public_key_from_bytes, verify_bytes};

/// The parsers on arbitrary file contents.
pub fn check_file_contents(bytes: &[u8]) {
    if let Ok(key) = public_key_from_bytes(bytes) {
        assert_eq!(bytes.len(), PUBLIC_KEY_LENGTH);
        assert_eq!(key.as_bytes(), bytes);
    }
    if let Ok(key) = signing_key_from_bytes(bytes) {
        assert_eq!(&key.to_keypair_bytes()[..], bytes);
    }
    if let Ok(sig) = parse_signature(bytes) {
        let hex = hex::encode(sig.to_bytes());
        let end = bytes
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .map_or(0, |i| i + 1);
        assert!(
            bytes[..end].eq_ignore_ascii_case(hex.as_bytes()),
            "accepted {bytes:?} as {hex}"
        );
        assert!(bytes[end..]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')));
    }
}

/// Sign `image` with the key from `seed`: the `.sig` text parses and verifies; the same
/// signature does not verify `image` with one bit flipped, nor under another key.
pub fn check_sign_verify(seed: [u8; 32], image: &[u8], flip: usize) {
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    let text = sign_bytes(&key, image);
    let sig = parse_signature(&text).expect("a signature we wrote parses");
    let loaded = match public_key_from_bytes(public.as_bytes()) {
        Ok(k) => k,
        Err(e) => panic!("a derived public key is refused: {e}"),
    };
    assert!(
        verify_bytes(&loaded, image, &sig).is_ok(),
        "own signature fails"
    );
    if !image.is_empty() {
        let mut other = image.to_vec();
        other[flip % image.len()] ^= 1 << (flip % 8);
        assert!(
            verify_bytes(&loaded, &other, &sig).is_err(),
            "flipped bit verifies"
        );
    }
    let mut other_seed = seed;
    other_seed[0] ^= 1;
    let other_key = SigningKey::from_bytes(&other_seed).verifying_key();
    assert!(
        verify_bytes(&other_key, image, &sig).is_err(),
        "another key verifies"
    );
    let mut pair = key.to_keypair_bytes();
    assert!(signing_key_from_bytes(&pair).is_ok());
    pair[63] ^= 1;
    assert!(
        signing_key_from_bytes(&pair).is_err(),
        "damaged key pair accepted"
    );
}

/// Fuzz entry: the bytes as file contents; with 32 or more bytes, also a seed and an image.
pub fn fuzz_one(data: &[u8]) {
    check_file_contents(data);
    if let Some((seed, image)) = data.split_first_chunk::<32>() {
        check_sign_verify(
            *seed,
            image,
            usize::from(image.first().copied().unwrap_or(0)),
        );
    }
}
