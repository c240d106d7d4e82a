//! Signed plugins (spec §8, design §6): loading verified libraries on the control thread,
//! one instance per plugin per worker, and the middleware chain a location runs them in.

pub mod chain;
pub mod exchange;
pub mod host_api;
pub mod instance;
pub mod loader;
