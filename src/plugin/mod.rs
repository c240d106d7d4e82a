//! Signed plugins (spec §8): signature checks (`verify`).

pub mod verify;
