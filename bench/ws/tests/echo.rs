//! `ws-echo`'s server and `ws-load`'s client against each other: small and
//! large messages echo intact, a plain GET gets `200 ok` (the harness's
//! readiness check), a non-101 answer is a handshake failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use dito_ws_bench::client::{Conn, Failure, Target};
use dito_ws_bench::server;

fn start_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || server::run(l, 2));
    port
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn echoes_small_and_large_messages() {
    let port = start_server();
    let t = Target::parse(&format!("ws://127.0.0.1:{port}/ws?x=1")).unwrap();
    rt().block_on(async {
        let mut c = Conn::open(&t, 1).await.unwrap();
        for size in [0usize, 32, 125, 126, 70_000, 1 << 20] {
            let payload: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
            c.round_trip(&payload).await.unwrap();
        }
        let mut many: Vec<Conn> = Vec::new();
        for i in 0..50 {
            many.push(Conn::open(&t, i).await.unwrap());
        }
        for c in &mut many {
            c.round_trip(b"hello").await.unwrap();
        }
    });
}

#[test]
fn plain_get_is_ok_and_a_refusal_fails_the_handshake() {
    let port = start_server();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /bytes/13 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(got.ends_with("\r\n\r\nok\n"), "{got}");

    // A server that answers 200 to the upgrade: the client reports a handshake failure.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let t = Target::parse(&format!("ws://127.0.0.1:{port}/")).unwrap();
    let r = rt().block_on(Conn::open(&t, 2));
    assert!(matches!(r, Err(Failure::Handshake(_))));
}
