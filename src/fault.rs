//! Faults a test build injects on purpose (cargo feature `fault-injection`).
//!
//! Compiled only with the feature, which `cargo test` turns on (the package's dev-dependency
//! on itself) and no release build has: a shipped binary contains none of this. A request
//! with the header `x-dito-fault: panic` makes its connection task panic (contained, spec
//! §12); `x-dito-fault: panic-outside` makes the worker panic outside every connection task
//! (the process must exit); `x-dito-fault: stall` blocks the worker thread for
//! [`STALL`] (a test lines up events behind it). `DITO_TEST_FAIL_PREPARE_WORKER=N` makes
//! worker N refuse to prepare every reload. The startup WARN line says the build carries these
//! faults.

use std::time::Duration;

use crate::http::request::RequestHead;

/// The request header that injects a fault.
pub const HEADER: &str = "x-dito-fault";
/// Worker N refuses every reload's prepare.
const FAIL_PREPARE_ENV: &str = "DITO_TEST_FAIL_PREPARE_WORKER";

/// What the startup line says (tests look for it to know the binary carries the faults).
pub const STARTUP_WARNING: &str =
    "fault injection is compiled in (feature fault-injection): a test build, not for production";

/// How long `x-dito-fault: stall` blocks the worker thread.
pub const STALL: Duration = Duration::from_millis(2500);

/// Acts on a request's fault header, if any.
pub fn on_request(head: &RequestHead) {
    match head.header(HEADER) {
        Some(b"panic") => panic!("injected fault: a panic while serving a request"),
        Some(b"panic-outside") => {
            // A task outside every connection's scope, as the accept or command loop is.
            monoio::spawn(async {
                panic!("injected fault: a panic outside any connection task");
            });
        }
        Some(b"stall") => {
            tracing::warn!("injected fault: the worker thread stalls for {STALL:?}");
            std::thread::sleep(STALL);
        }
        _ => {}
    }
}

/// Whether worker `id` must refuse to prepare reloads.
pub fn fails_prepare(id: usize) -> bool {
    std::env::var(FAIL_PREPARE_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        == Some(id)
}
