//! `io_driver` under a small `RLIMIT_MEMLOCK` (spec §2, §12; issue 17 defect 11). A process
//! without `CAP_IPC_LOCK` must fit its io_uring rings (about 400 KiB per worker) under the
//! limit. The child is made such a process the way a non-root container is: between fork and
//! exec it sets the limit and, when the tests run as root (CI), drops to a uid of its own
//! (which drops every capability; the kernel counts locked memory per user, so each test has
//! its own uid). Without root, lowering the limit is enough: the tests never skip.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::scrape;
use crate::support::client::get;
use crate::support::Dito;

const KIB: u64 = 1024;

/// Two workers on `driver`.
fn two_workers(driver: &str) -> String {
    format!("port: 0\nlisten: 127.0.0.1\nworkers: 2\nio_driver: {driver}\n")
}

/// Makes the process `cmd` starts one with `RLIMIT_MEMLOCK` = `limit` and no `CAP_IPC_LOCK`,
/// running as `uid` when the tests run as root.
fn limit_memlock(cmd: &mut Command, limit: u64, uid: u32) {
    // SAFETY: the closure runs in the forked child before exec and calls only setrlimit,
    // geteuid, setgroups, setgid and setuid, which are async-signal-safe; `lim` lives on the
    // closure's stack for the call.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::geteuid() == 0
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// How many io_uring instances the process holds open.
fn uring_fds(d: &Dito) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("io_uring"))
        .count()
}

fn driver_gauge(d: &Dito) -> Vec<(String, f64)> {
    scrape(d)
        .samples("dito_io_driver")
        .map(|s| (s.labels.get("driver").cloned().unwrap_or_default(), s.value))
        .collect()
}

#[test]
fn auto_moves_every_worker_to_epoll_when_a_ring_does_not_fit_the_memlock_limit() {
    // 512 KiB: one worker's ring fits, the second one's does not (the case that used to exit
    // 1). 64 bytes: even the startup probe's ring fails.
    for (limit, uid) in [(512 * KIB, 64101), (64, 64102)] {
        let d = Dito::try_start_with(
            &format!("{}metrics:\n  enabled: true\n", two_workers("auto")),
            |cmd| limit_memlock(cmd, limit, uid),
        )
        .unwrap_or_else(|f| panic!("memlock {limit}: dito did not start: {f:?}"));
        let out = d.output();
        let warns: Vec<&str> = out.lines().filter(|l| l.contains("ENOMEM")).collect();
        assert_eq!(
            warns.len(),
            1,
            "memlock {limit}: one line names ENOMEM:\n{out}"
        );
        assert!(
            warns[0].contains("WARN")
                && warns[0].contains("io driver: epoll")
                && warns[0].contains("RLIMIT_MEMLOCK"),
            "memlock {limit}: {}",
            warns[0]
        );
        assert_eq!(
            driver_gauge(&d),
            [("epoll".to_owned(), 1.0)],
            "memlock {limit}: dito_io_driver"
        );
        assert_eq!(
            uring_fds(&d),
            0,
            "memlock {limit}: a worker still runs io_uring"
        );
        // Many connections, so both workers' sockets take some.
        for i in 0..20 {
            assert_eq!(
                get(d.addr, "/healthz").status,
                200,
                "memlock {limit}: request {i}"
            );
        }
    }
}

#[test]
fn uring_fails_at_startup_saying_what_to_raise_when_the_rings_do_not_fit() {
    let f = match Dito::try_start_with(&two_workers("uring"), |cmd| {
        limit_memlock(cmd, 512 * KIB, 64103);
    }) {
        Ok(d) => panic!(
            "started with io_driver: uring under 512 KiB:\n{}",
            d.output()
        ),
        Err(f) => f,
    };
    assert_eq!(f.code, Some(1), "{}", f.output);
    for needle in [
        "io_driver: uring",
        "ENOMEM",
        "RLIMIT_MEMLOCK",
        "LimitMEMLOCK",
        "--ulimit memlock",
        "CAP_IPC_LOCK",
    ] {
        assert!(f.output.contains(needle), "no {needle:?} in:\n{}", f.output);
    }
}

#[test]
fn auto_keeps_io_uring_when_every_ring_fits() {
    let d = Dito::try_start_with(
        &format!("{}metrics:\n  enabled: true\n", two_workers("auto")),
        |cmd| limit_memlock(cmd, 4096 * KIB, 64104),
    )
    .unwrap_or_else(|f| panic!("dito did not start: {f:?}"));
    assert!(d.output().contains("io driver: io_uring"), "{}", d.output());
    assert_eq!(driver_gauge(&d), [("io_uring".to_owned(), 1.0)]);
    assert_eq!(uring_fds(&d), 2, "one ring per worker");
    assert_eq!(get(d.addr, "/healthz").status, 200);
}
