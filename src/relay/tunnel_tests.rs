//! The tunnel over real loopback sockets: bytes both ways (a large transfer that grows the
//! buffers), bytes read before the switch first, half-close passed on, the idle timeout, a
//! stop, and a failed side ending the tunnel.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};

use super::*;
use crate::worker::signal::LocalSignal;

fn rt() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
    monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap()
}

/// A connected pair: (the end the test holds, the end the tunnel gets).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let outside = TcpStream::connect_addr(addr).await.unwrap();
    let (inside, _) = listener.accept().await.unwrap();
    (outside, inside)
}

async fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let (r, buf) = s.read(Vec::with_capacity(64 * 1024)).await;
        let n = r.unwrap();
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

async fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut all = Vec::new();
    while all.len() < n {
        let (r, buf) = s.read(Vec::with_capacity(n - all.len())).await;
        let k = r.unwrap();
        assert!(k > 0, "EOF after {} of {n} bytes", all.len());
        all.extend_from_slice(&buf[..k]);
    }
    all
}

/// Runs a tunnel between the inside ends on a task of its own (which owns their halves);
/// yields the end, the counts, and the bytes the `moved` callback heard of.
fn spawn_tunnel(
    c_in: TcpStream,
    c_early: &[u8],
    u_in: TcpStream,
    u_early: &[u8],
    idle: Duration,
    stop: impl Future<Output = ()> + 'static,
) -> monoio::task::JoinHandle<(TunnelEnd, TunnelBytes, u64)> {
    let (c_early, u_early) = (c_early.to_vec(), u_early.to_vec());
    monoio::spawn(async move {
        let (mut crd, mut cwr) = c_in.into_split();
        let (mut urd, mut uwr) = u_in.into_split();
        let heard = Cell::new(0u64);
        let moved = |_: Direction, n: u64| heard.set(heard.get() + n);
        let client = Side {
            rd: &mut crd,
            wr: &mut cwr,
            early: c_early,
        };
        let upstream = Side {
            rd: &mut urd,
            wr: &mut uwr,
            early: u_early,
        };
        let (end, bytes) = run(client, upstream, idle, stop, &moved).await;
        (end, bytes, heard.get())
    })
}

#[test]
fn bytes_cross_both_ways_early_bytes_first_and_half_close_passes_on() {
    rt().block_on(async {
        let (mut client, c_in) = pair().await;
        let (mut upstream, u_in) = pair().await;
        let tunnel = spawn_tunnel(
            c_in,
            b"early-from-client:",
            u_in,
            b"early-from-upstream:",
            Duration::from_secs(10),
            std::future::pending(),
        );
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let (r, _) = client.write_all(big.clone()).await;
        r.unwrap();
        // The client is done sending; the upstream sees the end but can still answer.
        client.shutdown().await.unwrap();
        let got = read_to_end(&mut upstream).await;
        assert_eq!(&got[..18], b"early-from-client:");
        assert!(got[18..] == big[..], "the upstream got other bytes");

        let (r, _) = upstream.write_all(b"reply".to_vec()).await;
        r.unwrap();
        upstream.shutdown().await.unwrap();
        let back = read_to_end(&mut client).await;
        assert_eq!(back, b"early-from-upstream:reply");

        let (end, bytes, heard) = tunnel.await;
        assert_eq!(end, TunnelEnd::Closed);
        assert_eq!(bytes.client_to_upstream, 18 + 1_000_000);
        assert_eq!(bytes.upstream_to_client, 20 + 5);
        assert_eq!(
            heard,
            18 + 1_000_000 + 20 + 5,
            "every byte is reported as it moves"
        );
    });
}

#[test]
fn a_silent_tunnel_ends_at_the_idle_timeout() {
    rt().block_on(async {
        let (mut client, c_in) = pair().await;
        let (_upstream, u_in) = pair().await;
        let started = Instant::now();
        let tunnel = spawn_tunnel(
            c_in,
            b"",
            u_in,
            b"",
            Duration::from_millis(200),
            std::future::pending(),
        );
        let (end, _, _) = tunnel.await;
        assert_eq!(end, TunnelEnd::Idle);
        assert!(started.elapsed() >= Duration::from_millis(200));
        // The tunnel's sockets are gone: the client reads the end.
        assert!(read_to_end(&mut client).await.is_empty());
    });
}

#[test]
fn traffic_keeps_a_tunnel_alive_and_stop_ends_it() {
    rt().block_on(async {
        let (mut client, c_in) = pair().await;
        let (mut upstream, u_in) = pair().await;
        let stop = LocalSignal::default();
        let waiting = stop.clone();
        let tunnel = spawn_tunnel(
            c_in,
            b"",
            u_in,
            b"",
            Duration::from_millis(300),
            async move { waiting.wait().await },
        );
        // Five messages 100 ms apart: 500 ms in all, longer than the idle timeout.
        for i in 0..5u8 {
            let (r, _) = client.write_all(vec![i; 10]).await;
            r.unwrap();
            assert_eq!(read_exact(&mut upstream, 10).await, vec![i; 10]);
            monoio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.fire();
        let (end, bytes, heard) = tunnel.await;
        assert_eq!(end, TunnelEnd::Stopped);
        assert_eq!(bytes.client_to_upstream, 50);
        assert_eq!(heard, 50);
    });
}

#[test]
fn a_reset_side_ends_the_tunnel_as_failed() {
    rt().block_on(async {
        let (mut client, c_in) = pair().await;
        let (upstream, u_in) = pair().await;
        let tunnel = spawn_tunnel(
            c_in,
            b"",
            u_in,
            b"",
            Duration::from_secs(10),
            std::future::pending(),
        );
        // The upstream goes away with a reset, not a FIN.
        crate::sys::set_linger_zero(std::os::fd::AsRawFd::as_raw_fd(&upstream));
        drop(upstream);
        let (end, _, _) = tunnel.await;
        assert_eq!(end, TunnelEnd::Failed);
        // The client's connection ends too.
        let (r, _) = client.read(Vec::with_capacity(16)).await;
        assert!(matches!(r, Ok(0) | Err(_)));
    });
}
