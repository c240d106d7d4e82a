//! The io driver of the worker runtimes: the choice (spec §2 `io_driver`) and the build.
//!
//! The choice is made once, on the control thread, by setting up a small io_uring instance:
//! `auto` falls back to epoll with one WARN naming the errno when the kernel refuses io_uring
//! (EPERM from seccomp or `io_uring_disabled`, ENOSYS), `uring` makes that a startup error,
//! `epoll` never tries. Each worker then builds its own monoio runtime with that driver, the
//! timer enabled and the shared blocking pool attached.

use std::future::Future;
use std::io;

use monoio::blocking::DefaultThreadPool;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::config::IoDriver;

/// Submission queue size of each worker's ring.
const URING_ENTRIES: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    Uring,
    Epoll,
}

impl DriverKind {
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Uring => "io_uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

/// The driver every worker will use, and why it is not io_uring when `auto` fell back.
#[derive(Debug, Clone)]
pub struct DriverChoice {
    pub kind: DriverKind,
    pub fallback_reason: Option<String>,
}

/// Decides the driver for `configured`; `Err` is a startup error message.
pub fn choose_driver(configured: IoDriver) -> Result<DriverChoice, String> {
    match configured {
        IoDriver::Epoll => Ok(DriverChoice {
            kind: DriverKind::Epoll,
            fallback_reason: None,
        }),
        IoDriver::Uring => match probe_uring() {
            Ok(()) => Ok(DriverChoice {
                kind: DriverKind::Uring,
                fallback_reason: None,
            }),
            Err(e) => Err(format!(
                "io_driver: uring: the kernel refused io_uring: {}",
                describe_errno(&e)
            )),
        },
        IoDriver::Auto => Ok(match probe_uring() {
            Ok(()) => DriverChoice {
                kind: DriverKind::Uring,
                fallback_reason: None,
            },
            Err(e) => DriverChoice {
                kind: DriverKind::Epoll,
                fallback_reason: Some(format!("io_uring refused: {}", describe_errno(&e))),
            },
        }),
    }
}

fn probe_uring() -> io::Result<()> {
    io_uring::IoUring::new(8).map(drop)
}

/// `EPERM (Operation not permitted)` style text for an OS error.
pub fn describe_errno(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOSYS) => "ENOSYS",
        Some(libc::EACCES) => "EACCES",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EMFILE) => "EMFILE",
        _ => return e.to_string(),
    };
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    format!("{name} ({text})")
}

/// Builds this thread's runtime with `kind` and runs the future that `make` creates on it.
pub fn block_on<F, Fut>(
    kind: DriverKind,
    pool: DefaultThreadPool,
    make: F,
) -> io::Result<Fut::Output>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    match kind {
        DriverKind::Uring => {
            let mut rt = match uring_runtime(pool.clone(), true) {
                Ok(rt) => rt,
                // Older kernels refuse the task-run flags; run with the defaults there.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => uring_runtime(pool, false)?,
                Err(e) => return Err(e),
            };
            Ok(rt.block_on(make()))
        }
        DriverKind::Epoll => {
            let mut rt = RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .attach_thread_pool(Box::new(pool))
                .build()?;
            Ok(rt.block_on(make()))
        }
    }
}

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<IoUringDriver>>;

/// Benchmark knob (bench/README.md): `default` builds the ring without the task-run flags,
/// `sqpoll` adds a kernel polling thread. Not a config key: `io_driver` is the user's choice.
const URING_SETUP_ENV: &str = "DITO_BENCH_URING_SETUP";

fn uring_runtime(pool: DefaultThreadPool, taskrun_flags: bool) -> io::Result<UringRuntime> {
    let mut urb = io_uring::IoUring::builder();
    match std::env::var(URING_SETUP_ENV).as_deref() {
        Ok("default") => {}
        Ok("sqpoll") => {
            urb.setup_sqpoll(1000);
        }
        _ if taskrun_flags => {
            // Measured here (monoio-notes): cooperative, single-issuer, deferred task running
            // brings io_uring from well below epoll to at or above it.
            urb.setup_coop_taskrun()
                .setup_single_issuer()
                .setup_defer_taskrun();
        }
        _ => {}
    }
    RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(URING_ENTRIES)
        .uring_builder(urb)
        .enable_timer()
        .attach_thread_pool(Box::new(pool))
        .build()
}
