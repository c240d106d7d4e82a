//! The CPU profiler as users see it (spec §1 `-enable-profiler`, §2 `profiler.listen`): off by
//! default; with the flag, `/debug/pprof/profile?seconds=N` answers Go's pprof protobuf and
//! `/debug/pprof/flamegraph?seconds=N` an SVG; bad `seconds` is 400, other paths 404, a second
//! profile while one runs 409; a held `profiler.listen` is a startup error naming the key; a
//! reload that changes `profiler.listen` warns that it needs a restart.
//!
//! Every process is the real `dito` binary; the profiler's address comes from its startup line
//! `profiler listening on ADDR` (the config asks for port 0).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pprof::protos::Message;
use support::client::{get, request, Client, Resp};
use support::Dito;

const LINE: &str = "profiler listening on ";

/// A config whose profiler listens on `listen`.
fn config(listen: &str) -> String {
    support::config(&format!("profiler:\n  listen: {listen}\n"))
}

/// Starts Dito on `yaml` with the extra command-line `flags`.
fn start_with(yaml: &str, flags: &[&str]) -> Result<Dito, support::StartFailure> {
    Dito::try_start_with(yaml, |cmd| {
        cmd.args(flags);
    })
}

/// A Dito with `-enable-profiler` on an ephemeral profiler port, and that port's address.
fn profiled() -> (Dito, SocketAddr) {
    profiled_with("-enable-profiler")
}

/// As [`profiled`], with the flag spelled `flag`.
fn profiled_with(flag: &str) -> (Dito, SocketAddr) {
    let d = start_with(&config("127.0.0.1:0"), &[flag])
        .unwrap_or_else(|f| panic!("dito {flag} did not start: {f:?}"));
    let out = d.output();
    let addr = out
        .lines()
        .find_map(|l| l.split(LINE).nth(1))
        .unwrap_or_else(|| panic!("no {LINE:?} line before the ready line:\n{out}"))
        .trim()
        .parse()
        .expect("profiler address");
    (d, addr)
}

fn refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn assert_status(r: &Resp, status: u16, what: &str, d: &Dito) {
    assert_eq!(
        r.status,
        status,
        "{what}: body {:?}\n{}",
        r.body_str(),
        d.output()
    );
}

#[test]
fn profile_answers_go_pprof_protobuf() {
    let (d, addr) = profiled();
    let r = get(addr, "/debug/pprof/profile?seconds=1");
    assert_status(&r, 200, "profile", &d);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    // Uncompressed protobuf (go tool pprof reads it as well as gzip): field 1, sample_type,
    // a length-delimited message, comes first.
    assert!(!r.body.is_empty(), "empty profile");
    assert_eq!(
        r.body[0],
        0x0a,
        "not a protobuf Profile start: {:02x?}",
        &r.body[..8.min(r.body.len())]
    );
    let profile = pprof::protos::Profile::parse_from_bytes(&r.body).expect("a pprof Profile");
    let strings: Vec<&str> = profile.string_table.iter().map(String::as_str).collect();
    assert_eq!(strings.first(), Some(&""), "string table: {strings:?}");
    for s in ["samples", "cpu", "nanoseconds"] {
        assert!(
            strings.contains(&s),
            "string table lacks {s:?}: {strings:?}"
        );
    }
    assert_eq!(profile.sample_type.len(), 2);
    assert!(d.wait_for_output("CPU profile", Duration::from_secs(5)));
}

#[test]
fn profiling_under_load_samples_the_workers_and_disturbs_no_request() {
    let (d, addr) = profiled();
    let proxy = d.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(proxy);
            let mut answered = 0u64;
            while !stop.load(Ordering::Relaxed) {
                c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                assert_eq!(c.read_response().status, 200, "request {answered}");
                answered += 1;
            }
            answered
        })
    };
    let r = get(addr, "/debug/pprof/profile?seconds=1");
    stop.store(true, Ordering::Relaxed);
    let answered = load.join().expect("every request answered 200");
    assert_status(&r, 200, "profile", &d);
    let profile = pprof::protos::Profile::parse_from_bytes(&r.body).expect("a pprof Profile");
    assert!(answered > 0);
    assert!(
        !profile.sample.is_empty(),
        "no samples while {answered} requests ran"
    );
    assert!(
        profile.string_table.iter().any(|s| s.starts_with("dito::")),
        "no dito function in the profile: {:?}",
        profile.string_table
    );
}

#[test]
fn flamegraph_answers_svg() {
    let (d, addr) = profiled();
    let r = get(addr, "/debug/pprof/flamegraph?seconds=1");
    assert_status(&r, 200, "flamegraph", &d);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert!(
        r.body_str().contains("<svg"),
        "not an SVG: {:?}",
        r.body_str()
    );
}

#[test]
fn bad_requests_get_400_404_405() {
    let (d, addr) = profiled();
    for q in ["0", "301", "abc", "-1", "1.5", ""] {
        let r = get(addr, &format!("/debug/pprof/profile?seconds={q}"));
        assert_status(&r, 400, &format!("seconds={q}"), &d);
        assert!(
            r.body_str()
                .starts_with("seconds: must be a whole number from 1 to 300"),
            "seconds={q}: {:?}",
            r.body_str()
        );
    }
    for path in ["/", "/debug/pprof/", "/debug/pprof/heap", "/metrics"] {
        assert_status(&get(addr, path), 404, path, &d);
    }
    let r = request(
        addr,
        b"POST /debug/pprof/profile HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert_status(&r, 405, "POST", &d);
    assert_eq!(r.header("allow"), Some("GET"));
}

#[test]
fn a_second_profile_while_one_runs_gets_409() {
    let (d, addr) = profiled();
    // The server is serial: it has read the first request and claimed the sampler before it
    // accepts the second connection, so the order is certain without waiting.
    let mut first = Client::connect(addr);
    first.send(b"GET /debug/pprof/profile?seconds=2 HTTP/1.1\r\nHost: x\r\n\r\n");
    let second = get(addr, "/debug/pprof/flamegraph?seconds=1");
    assert_status(&second, 409, "second profile", &d);
    assert_status(&first.read_response(), 200, "first profile", &d);
    // Once the first ends the sampler is free again.
    assert_status(
        &get(addr, "/debug/pprof/profile?seconds=1"),
        200,
        "third",
        &d,
    );
}

#[test]
fn every_spelling_of_the_flag_starts_the_profiler() {
    for flag in [
        "--enable-profiler",
        "-enable-profiler=true",
        "--enable-profiler=true",
    ] {
        let (d, addr) = profiled_with(flag);
        assert_status(&get(addr, "/nowhere"), 404, flag, &d);
    }
}

#[test]
fn without_the_flag_nothing_listens() {
    for flags in [&[][..], &["-enable-profiler=false"][..]] {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let d = start_with(&config(&addr.to_string()), flags)
            .unwrap_or_else(|f| panic!("dito {flags:?} did not start: {f:?}"));
        assert!(refused(addr), "{flags:?}: something listens on {addr}");
        assert!(!d.output().contains(LINE), "{flags:?}:\n{}", d.output());
    }
}

#[test]
fn a_held_profiler_port_is_a_startup_error() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    match start_with(&config(&addr.to_string()), &["-enable-profiler"]) {
        Ok(d) => panic!("dito started although {addr} is held:\n{}", d.output()),
        Err(f) => {
            assert_eq!(f.code, Some(1), "{f:?}");
            let line = f
                .output
                .lines()
                .find(|l| l.starts_with("dito: profiler.listen:"))
                .unwrap_or_else(|| panic!("no error naming profiler.listen:\n{}", f.output));
            assert!(
                line.contains(&addr.to_string()) && line.contains("Address already in use"),
                "the error does not name the address and the OS error: {line:?}"
            );
        }
    }
}

#[test]
fn reloading_a_new_profiler_listen_warns_and_keeps_the_old_one() {
    let (d, addr) = profiled();
    let next = SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(d.dir.join("config.yaml"), config(&next.to_string())).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_output("config reloaded", Duration::from_secs(10)),
        "no reload:\n{}",
        d.output()
    );
    assert!(
        d.output()
            .contains("profiler.listen: changed, but applies only after a restart"),
        "no restart warning:\n{}",
        d.output()
    );
    assert!(
        refused(next),
        "the new profiler address listens after a reload"
    );
    assert_status(&get(addr, "/nowhere"), 404, "old address after reload", &d);
}
