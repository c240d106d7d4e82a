//! Panic containment (spec §12, issue 17 defect 0), with the faults of the `fault-injection`
//! feature, which the `dito` binary of `cargo test` carries (the package's dev-dependency on
//! itself): `x-dito-fault: panic` panics while serving that request, `panic-outside` panics in
//! a task outside every connection.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::{scrape, PROMPT};
use crate::proxy_common::{loc, one_worker, yaml};
use crate::support::client::{get, Client, Ending};
use crate::support::h2client;
use crate::support::tls::{provider, Pki};
use crate::support::{Dito, Echo};

/// The startup line of a binary with the faults compiled in (src/fault.rs).
const FAULTS_LINE: &str = "fault injection is compiled in";

/// One worker (so "the same worker" is certain), metrics on, `^/` → echo.
fn one_worker_dito(e: &Echo) -> Dito {
    let cfg = one_worker(yaml(
        "metrics:\n  enabled: true\n",
        &[loc("^/", &format!("http://{}", e.addr), "")],
    ));
    let d = Dito::start(&cfg);
    assert!(
        d.output().contains(FAULTS_LINE),
        "the dito binary under test has no fault injection: build it with the \
         `fault-injection` feature (`cargo test` does, through the dev-dependency on itself; \
         `make test` runs that). Output:\n{}",
        d.output()
    );
    d
}

fn panics_counted(d: &Dito) -> f64 {
    scrape(d)
        .value("dito_worker_panics_total", &[])
        .expect("dito_worker_panics_total is always rendered")
}

#[test]
fn a_panic_resets_its_connection_only_and_the_same_worker_serves_on() {
    let e = Echo::start();
    let d = one_worker_dito(&e);
    assert_eq!(panics_counted(&d), 0.0);

    // A keep-alive connection that served one request, then panics on the next.
    let mut c = Client::connect(d.addr);
    c.send(b"GET /bytes/3 HTTP/1.1\r\nHost: t\r\nX-Request-ID: fine-1\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    c.send(b"GET /bytes/3 HTTP/1.1\r\nHost: t\r\nX-Request-ID: doomed-7\r\nX-Dito-Fault: panic\r\n\r\n");
    assert_eq!(
        c.ending(PROMPT),
        Ending::Reset,
        "the panicking connection must end with a reset and no response; output:\n{}",
        d.output()
    );

    // The one worker still serves: a new connection, a proxied request, /healthz.
    let mut next = Client::connect(d.addr);
    next.stream.set_read_timeout(Some(PROMPT)).unwrap();
    next.send(b"GET /bytes/5 HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = next.read_response();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
    assert_eq!(get(d.addr, "/healthz").status, 200);
    assert_eq!(panics_counted(&d), 1.0, "output:\n{}", d.output());

    // Logged once, with the request's id and the panic's message; no stray panic output.
    assert!(d.wait_for_output("doomed-7", PROMPT), "{}", d.output());
    let out = d.output();
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("panic")).collect();
    assert_eq!(lines.len(), 1, "one line about the panic:\n{out}");
    assert!(
        lines[0].contains("ERROR")
            && lines[0].contains("doomed-7")
            && lines[0].contains("injected fault"),
        "{}",
        lines[0]
    );
    assert!(
        !lines[0].contains("fine-1"),
        "the earlier request's id is blamed: {}",
        lines[0]
    );
}

#[test]
fn a_panic_in_an_http2_stream_resets_that_connection_only() {
    let e = Echo::start();
    let d = one_worker_dito(&e);
    h2client::run(async {
        let (client, done) = h2client::connect(d.addr).await;
        assert_eq!(h2client::get(&client, "/bytes/3").await.status, 200);
        let mut c = client.clone().ready().await.unwrap();
        let doomed = h2client::req("GET", "/bytes/3")
            .header("x-dito-fault", "panic")
            .header("x-request-id", "h2-doomed-3")
            .body(())
            .unwrap();
        let (resp, _) = c.send_request(doomed, true).unwrap();
        assert!(
            h2client::read_reply(resp).await.is_err(),
            "the panicking stream got a response"
        );
        assert!(
            !done.await.unwrap(),
            "the connection must end in an error (reset)"
        );

        // A new connection on the same worker is served.
        let (client, _) = h2client::connect(d.addr).await;
        assert_eq!(h2client::get(&client, "/bytes/3").await.status, 200);
    });
    assert_eq!(panics_counted(&d), 1.0, "output:\n{}", d.output());
    assert!(d.wait_for_output("h2-doomed-3", PROMPT), "{}", d.output());
}

#[test]
fn a_panic_on_a_tls_connection_resets_it_and_the_worker_serves_on() {
    let e = Echo::start();
    let pki = Pki::new();
    let tls = format!(
        "tls:\n  cert_file: '{}'\n  key_file: '{}'\n",
        pki.server.cert.display(),
        pki.server.key.display()
    );
    let d = Dito::start(&one_worker(yaml(
        &tls,
        &[loc("^/", &format!("http://{}", e.addr), "")],
    )));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let exchange = |fault: bool| -> std::io::Result<Vec<u8>> {
        let tcp = TcpStream::connect(d.addr).unwrap();
        tcp.set_read_timeout(Some(PROMPT)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let mut s = StreamOwned::new(ClientConnection::new(config.clone(), name).unwrap(), tcp);
        let extra = if fault { "X-Dito-Fault: panic\r\n" } else { "" };
        write!(
            s,
            "GET /bytes/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n"
        )?;
        s.flush()?;
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            // Dito ends a `Connection: close` exchange without close_notify.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof && !got.is_empty() => Ok(got),
            r => r.map(|_| got),
        }
    };
    match exchange(true) {
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the panicking TLS connection must be reset: {other:?}"),
    }
    let served = exchange(false).unwrap();
    assert!(
        served.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&served)
    );
    // Dito's port speaks TLS only: the log tells the panic was counted once.
    assert!(
        d.wait_for_output("a connection task panicked", PROMPT),
        "{}",
        d.output()
    );
    assert_eq!(
        d.count_output("a connection task panicked"),
        1,
        "{}",
        d.output()
    );
}

#[test]
fn a_panic_outside_every_connection_task_exits_the_process_non_zero() {
    let e = Echo::start();
    let mut d = one_worker_dito(&e);
    let mut c = Client::connect(d.addr);
    c.stream
        .write_all(b"GET /bytes/3 HTTP/1.1\r\nHost: t\r\nX-Dito-Fault: panic-outside\r\n\r\n")
        .unwrap();
    let code = d.wait_exit(PROMPT);
    assert_eq!(
        code,
        Some(70),
        "a dead worker must end the process at once (EX_SOFTWARE); output:\n{}",
        d.output()
    );
    assert!(
        d.wait_for_output("worker 0 died", Duration::from_secs(1)),
        "{}",
        d.output()
    );
}
