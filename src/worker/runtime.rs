//! The io driver of the worker runtimes: the choice (spec §2 `io_driver`) and the build.
//!
//! The choice is made in two steps. First, on the control thread, a small io_uring instance
//! tells whether the kernel refuses io_uring at all (EPERM from seccomp or
//! `io_uring_disabled`, ENOSYS). Then each worker builds its own monoio runtime with that
//! driver (the timer enabled, the shared blocking pool attached) and reports; the control
//! thread answers every worker with one [`Verdict`], so all run one driver. A worker's real
//! ring can fail where the probe passed: the rings are locked memory, and a process without
//! `CAP_IPC_LOCK` must fit them all under `RLIMIT_MEMLOCK` (about 400 KiB each). `auto` then
//! moves every worker to epoll with one WARN naming the errno and the cause; `uring` makes any
//! refusal a startup error saying what to change; `epoll` never tries.

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
                "io_driver: uring: the kernel refused io_uring: {}; {URING_REMEDY}",
                describe_ring_failure(&e)
            )),
        },
        IoDriver::Auto => Ok(match probe_uring() {
            Ok(()) => DriverChoice {
                kind: DriverKind::Uring,
                fallback_reason: None,
            },
            Err(e) => DriverChoice {
                kind: DriverKind::Epoll,
                fallback_reason: Some(format!("io_uring refused: {}", describe_ring_failure(&e))),
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

/// A worker's runtime, built on its thread before it runs: io_uring or epoll.
pub enum WorkerRuntime {
    Uring(UringRuntime),
    Epoll(EpollRuntime),
}

impl WorkerRuntime {
    /// Builds this thread's runtime with `kind`, the timer enabled and `pool` attached.
    pub fn build(kind: DriverKind, pool: &DefaultThreadPool) -> io::Result<WorkerRuntime> {
        match kind {
            DriverKind::Uring => match uring_runtime(pool.clone(), true) {
                Ok(rt) => Ok(WorkerRuntime::Uring(rt)),
                // Older kernels refuse the task-run flags; run with the defaults there.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    uring_runtime(pool.clone(), false).map(WorkerRuntime::Uring)
                }
                Err(e) => Err(e),
            },
            DriverKind::Epoll => RuntimeBuilder::<LegacyDriver>::new()
                .enable_timer()
                .attach_thread_pool(Box::new(pool.clone()))
                .build()
                .map(WorkerRuntime::Epoll),
        }
    }

    /// Runs `fut` to its end on this runtime.
    pub fn block_on<F: Future>(&mut self, fut: F) -> F::Output {
        match self {
            WorkerRuntime::Uring(rt) => rt.block_on(fut),
            WorkerRuntime::Epoll(rt) => rt.block_on(fut),
        }
    }
}

/// The control thread's answer once every worker has tried to build its runtime: all
/// workers run one driver, so one worker that cannot set up io_uring moves them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run the runtime just built.
    Run,
    /// Drop it and build an epoll runtime (`io_driver: auto` after a refused ring).
    Epoll,
    /// Do not start: startup failed.
    Stop,
}

/// Why a worker could not create its runtime, with the likely cause: the errno, and for
/// `ENOMEM` the memlock limit the rings must fit.
pub fn describe_ring_failure(e: &io::Error) -> String {
    let errno = describe_errno(e);
    match e.raw_os_error() {
        Some(libc::ENOMEM) => {
            let limit = match crate::sys::memlock_limit() {
                Some(bytes) if bytes < 1024 => format!("{bytes} bytes"),
                Some(bytes) => format!("{} KiB", bytes / 1024),
                None => "unlimited".to_owned(),
            };
            format!(
                "{errno}: the rings do not fit RLIMIT_MEMLOCK ({limit}) of a process without \
                 CAP_IPC_LOCK; each worker's ring needs about {} KiB",
                RING_BYTES / 1024
            )
        }
        Some(libc::EPERM) => {
            format!("{errno}: io_uring is refused (a seccomp profile or kernel.io_uring_disabled)")
        }
        Some(libc::ENOSYS) => format!("{errno}: this kernel has no io_uring"),
        _ => errno,
    }
}

/// What to change when `io_driver: uring` cannot be honoured (spec §12).
pub const URING_REMEDY: &str = "raise the locked-memory limit (systemd: LimitMEMLOCK=; docker, \
     podman: --ulimit memlock=-1:-1; or grant CAP_IPC_LOCK) or allow io_uring in the seccomp \
     profile, or set io_driver: auto (falls back to epoll) or epoll";

/// Locked memory one worker's ring takes: 64-byte submission entries, twice as many 16-byte
/// completion entries, and the ring headers (measured: 384–416 KiB for 4096 entries).
const RING_BYTES: u32 = URING_ENTRIES * (64 + 2 * 16) + 8 * 1024;

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<IoUringDriver>>;
type EpollRuntime = monoio::Runtime<monoio::time::TimeDriver<LegacyDriver>>;

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
