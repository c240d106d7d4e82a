//! Hot-reload triggers as a client sees them (spec §9): an in-place write, an atomic rename,
//! a Kubernetes ConfigMap symlink swap, SIGHUP, same bytes versus a forced reload, an A-B-A
//! revert, and `hot_reload` switched on or off by a reload.
//!
//! Every wait is a bounded poll for the observable change; the only fixed waits are the ones
//! that check that something does *not* happen within a stated time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod reload_common;
mod support;

use std::thread;
use std::time::{Duration, Instant};

use reload_common::{
    cfg_path, echo_and_dito, echo_yaml, poll, status, target, write_atomic, RELOAD_LIMIT,
};
use support::{temp_dir, Dito, Echo};

// ---------------------------------------------------------------------------------------------
// Triggers (spec §9)
// ---------------------------------------------------------------------------------------------

#[test]
fn in_place_write_serves_a_new_location_within_a_second() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    assert_eq!(status(d.addr, "/old"), Some(200));
    assert_eq!(status(d.addr, "/new"), Some(404));

    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    // std::fs::write truncates and rewrites the same inode: an in-place write.
    std::fs::write(cfg_path(&d), next).unwrap();
    let took = poll(Duration::from_secs(1), || {
        status(d.addr, "/new") == Some(200)
    });
    assert!(
        took.is_some(),
        "/new not served within 1 s of the write; output:\n{}",
        d.output()
    );
    assert_eq!(target(d.addr, "/new").as_deref(), Some("/echo/new"));
    assert_eq!(target(d.addr, "/old").as_deref(), Some("/echo/old"));
}

#[test]
fn a_busy_neighbour_file_does_not_hold_back_a_reload() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    assert_eq!(status(d.addr, "/new"), Some(404));

    // `dito -f cfg.yaml > dito.log` in one directory: another file there changes every 50 ms.
    let dir = cfg_path(&d).parent().unwrap().to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        thread::spawn(move || {
            let log = dir.join("dito.log");
            for i in 0..400 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let _ = std::fs::write(&log, format!("access line {i}\n"));
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Let the neighbour's writes get going before the config changes.
    thread::sleep(Duration::from_millis(200));
    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(cfg_path(&d), next).unwrap();
    let took = poll(Duration::from_secs(1), || {
        status(d.addr, "/new") == Some(200)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        took.is_some(),
        "/new not served within 1 s while a neighbour file kept changing; output:\n{}",
        d.output()
    );
}

#[test]
fn atomic_rename_over_the_file_applies() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    assert_eq!(status(d.addr, "/new"), Some(404));

    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    write_atomic(&cfg_path(&d), &next);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "/new not served after an atomic rename; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(200));

    // A second rename-over: the watch survives the first (the watched inode was replaced).
    let third = echo_yaml(&e, top, &[("^/third$", "/echo/third")]);
    write_atomic(&cfg_path(&d), &third);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/third") == Some(200)).is_some(),
        "second rename not applied; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(404));
}

#[test]
fn configmap_symlink_swap_applies() {
    use std::os::unix::fs::symlink;

    let e = Echo::start();
    let top = "hot_reload: true\n";
    // The kubelet's layout: config.yaml -> ..data/config.yaml, ..data -> ..v1.
    let dir = temp_dir();
    std::fs::create_dir(dir.join("..v1")).unwrap();
    std::fs::write(
        dir.join("..v1/config.yaml"),
        echo_yaml(&e, top, &[("^/old$", "/echo/old")]),
    )
    .unwrap();
    symlink("..v1", dir.join("..data")).unwrap();
    symlink("..data/config.yaml", dir.join("config.yaml")).unwrap();
    let d = Dito::start_file(dir.clone(), &dir.join("config.yaml"));
    assert_eq!(status(d.addr, "/old"), Some(200));
    assert_eq!(status(d.addr, "/new"), Some(404));

    // The kubelet's update: write ..v2, point ..data_tmp at it, rename it over ..data, then
    // remove the old version.
    let swap = |from: &str, to: &str, text: String| {
        std::fs::create_dir(dir.join(to)).unwrap();
        std::fs::write(dir.join(to).join("config.yaml"), text).unwrap();
        symlink(to, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        std::fs::remove_dir_all(dir.join(from)).unwrap();
    };
    swap(
        "..v1",
        "..v2",
        echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]),
    );
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "/new not served after the ..data swap; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(200));

    // A second update works too.
    swap(
        "..v2",
        "..v3",
        echo_yaml(&e, top, &[("^/new$", "/echo/new")]),
    );
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/old") == Some(404)).is_some(),
        "second swap not applied; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/new"), Some(200));
}

#[test]
fn without_hot_reload_only_sighup_applies_a_change() {
    let top = "hot_reload: false\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    let next = echo_yaml(&e, top, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(cfg_path(&d), next).unwrap();

    // Not watched: still the old config a second later (checked throughout).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert_eq!(
            status(d.addr, "/new"),
            Some(404),
            "a file change was applied with hot_reload: false"
        );
        thread::sleep(Duration::from_millis(100));
    }

    d.signal(libc::SIGHUP);
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "SIGHUP did not apply the new file; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(200));
}

#[test]
fn same_bytes_do_not_reload_but_sighup_always_does() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/old$", "/echo/old")]);
    let same = echo_yaml(&e, top, &[("^/old$", "/echo/old")]);
    std::fs::write(cfg_path(&d), &same).unwrap();
    write_atomic(&cfg_path(&d), &same);
    thread::sleep(Duration::from_secs(1));
    assert_eq!(
        d.count_output("config reloaded"),
        0,
        "a watch event with unchanged bytes reloaded; output:\n{}",
        d.output()
    );

    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("config reloaded", RELOAD_LIMIT),
        "SIGHUP with an unchanged file did not reload; output:\n{}",
        d.output()
    );
    assert_eq!(status(d.addr, "/old"), Some(200));
}

#[test]
fn reverting_a_b_a_applies() {
    let top = "hot_reload: true\n";
    let (e, d) = echo_and_dito(top, &[("^/p$", "/echo/a")]);
    let a = echo_yaml(&e, top, &[("^/p$", "/echo/a")]);
    let b = echo_yaml(&e, top, &[("^/p$", "/echo/b")]);
    assert_eq!(target(d.addr, "/p").as_deref(), Some("/echo/a"));
    for (text, want) in [
        (&b, "/echo/b"),
        (&a, "/echo/a"),
        (&b, "/echo/b"),
        (&a, "/echo/a"),
    ] {
        std::fs::write(cfg_path(&d), text).unwrap();
        assert!(
            poll(RELOAD_LIMIT, || target(d.addr, "/p").as_deref()
                == Some(want))
            .is_some(),
            "config routing /p to {want} not applied; output:\n{}",
            d.output()
        );
    }
}

#[test]
fn hot_reload_turned_on_by_sighup_starts_watching() {
    let (e, d) = echo_and_dito("hot_reload: false\n", &[("^/old$", "/echo/old")]);
    let on = "hot_reload: true\n";
    std::fs::write(cfg_path(&d), echo_yaml(&e, on, &[("^/old$", "/echo/old")])).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("config reloaded", RELOAD_LIMIT),
        "SIGHUP did not reload; output:\n{}",
        d.output()
    );
    // Spec §2: every key but the restart-only ones applies on reload, hot_reload included.
    let next = echo_yaml(&e, on, &[("^/old$", "/echo/old"), ("^/new$", "/echo/new")]);
    std::fs::write(cfg_path(&d), next).unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/new") == Some(200)).is_some(),
        "a file write after a reload turned hot_reload on was not applied; output:\n{}",
        d.output()
    );
}

#[test]
fn hot_reload_turned_off_by_a_reload_stops_watching() {
    let on = "hot_reload: true\n";
    let off = "hot_reload: false\n";
    let (e, d) = echo_and_dito(on, &[("^/old$", "/echo/old")]);
    std::fs::write(
        cfg_path(&d),
        echo_yaml(&e, off, &[("^/old$", "/echo/old"), ("^/b$", "/echo/b")]),
    )
    .unwrap();
    assert!(
        poll(RELOAD_LIMIT, || status(d.addr, "/b") == Some(200)).is_some(),
        "the write that turns hot_reload off was not applied; output:\n{}",
        d.output()
    );
    std::fs::write(
        cfg_path(&d),
        echo_yaml(&e, off, &[("^/old$", "/echo/old"), ("^/c$", "/echo/c")]),
    )
    .unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert_eq!(
            status(d.addr, "/c"),
            Some(404),
            "a file change was applied after a reload set hot_reload: false; output:\n{}",
            d.output()
        );
        thread::sleep(Duration::from_millis(100));
    }
}
