//! Signed plugins (spec §8, design §6): signature checks (`verify`) and the signer's key
//! handling (`keys`), loading verified libraries on the control thread (`loader`), one
//! instance per plugin per worker (`instance`), the host table plugins call (`host_api`,
//! `exchange`), and the middleware chain a location runs them in (`chain`).

pub mod chain;
pub mod exchange;
pub mod host_api;
pub mod instance;
pub mod keys;
pub mod loader;
pub mod verify;
