//! Signed plugins (spec §8): signature checks (`verify`) and the signer's key handling (`keys`).

pub mod keys;
pub mod verify;
