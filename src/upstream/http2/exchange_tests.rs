//! The failed upload of a request body to an HTTP/2 upstream, beside the code: a real h2
//! client and server over loopback TCP (on tokio, which the h2 crate is written for; the
//! upload and the settling of the response future use no monoio IO). The trigger is a
//! trailer section h2 refuses to send (`connection` is connection-specific, RFC 9113
//! §8.2.2): the proxy filters such fields before they reach the upload, so no client can
//! cause it any more, which is why this is tested here and not black-box. What must hold for
//! any failure of the upload: the upstream sees the stream cancelled, the response future
//! settles at once (not at `response_header_timeout`), and a head the upstream sent before
//! the failure (an early 413) is still the answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::{Request, Response};
use tokio::net::{TcpListener, TcpStream};

use super::{settled, upload_body};
use crate::downstream::BodySource;
use crate::http::body::BodyError;
use crate::upstream::upload::Upload;

/// The most any step here waits: a response future left pending fails the test in this.
const WAIT: Duration = Duration::from_secs(2);

/// A request body handed out in pieces, then its trailer section.
struct Body {
    pieces: Vec<Vec<u8>>,
    trailers: Vec<u8>,
    received: u64,
}

impl Body {
    fn new(pieces: &[&[u8]], trailers: &[u8]) -> Body {
        Body {
            pieces: pieces.iter().rev().map(|p| p.to_vec()).collect(),
            trailers: trailers.to_vec(),
            received: 0,
        }
    }
}

impl BodySource for Body {
    async fn read_body(&mut self, out: &mut Vec<u8>, _max: usize) -> Result<usize, BodyError> {
        let Some(piece) = self.pieces.pop() else {
            return Ok(0);
        };
        out.extend_from_slice(&piece);
        self.received += piece.len() as u64;
        Ok(piece.len())
    }

    fn received(&self) -> u64 {
        self.received
    }

    fn is_complete(&self) -> bool {
        self.pieces.is_empty()
    }

    fn trailers(&self) -> &[u8] {
        &self.trailers
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move { tokio::time::timeout(WAIT * 5, f).await.expect("test hung") })
}

/// A connected h2 client and the server's side of its first stream.
async fn connected() -> (SendRequest<Bytes>, h2::server::Connection<TcpStream, Bytes>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        h2::server::handshake(tcp).await.unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = h2::client::handshake(tcp).await;
    let (send, conn) = client.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, server.await.unwrap())
}

/// Opens a POST stream with a body to come, and the server's view of it.
async fn post(
    send: &mut SendRequest<Bytes>,
    server: &mut h2::server::Connection<TcpStream, Bytes>,
) -> (
    ResponseFuture,
    SendStream<Bytes>,
    Request<RecvStream>,
    SendResponse<Bytes>,
) {
    let req = Request::post("http://up.test/upload").body(()).unwrap();
    let (response, out) = send
        .clone()
        .ready()
        .await
        .unwrap()
        .send_request(req, false)
        .unwrap();
    let (req, respond) = server.accept().await.unwrap().unwrap();
    (response, out, req, respond)
}

/// The request body as the server reads it: the bytes, and how the stream ended.
async fn drain(req: Request<RecvStream>) -> (Vec<u8>, Result<(), h2::Error>) {
    let mut body = req.into_body();
    let mut got = Vec::new();
    while let Some(piece) = body.data().await {
        match piece {
            Ok(b) => {
                let _ = body.flow_control().release_capacity(b.len());
                got.extend_from_slice(&b);
            }
            Err(e) => return (got, Err(e)),
        }
    }
    let end = body.trailers().await.map(|_| ());
    (got, end)
}

/// Sets its flag when woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Waits until h2 has buffered the response head, without taking it: the future, polled once
/// while the head is still on its way, is woken when the head arrives.
async fn head_buffered(response: Pin<&mut ResponseFuture>) {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let first = response.poll(&mut Context::from_waker(&waker));
    assert!(
        first.is_pending(),
        "the head arrived before the check began"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !flag.0.load(Ordering::SeqCst) {
        assert!(tokio::time::Instant::now() < deadline, "no response head");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[test]
fn a_refused_end_of_request_cancels_the_stream_and_settles_the_response_at_once() {
    run(async {
        let (mut send, mut server) = connected().await;
        let (response, out, req, _respond) = post(&mut send, &mut server).await;
        // The server's connection is driven beside the client's.
        tokio::spawn(async move { while server.accept().await.is_some() {} });
        let mut body = Body::new(&[b"part one, ", b"part two"], b"Connection: close\r\n");
        let upload = upload_body(&mut body, out, u64::MAX).await;
        assert!(
            matches!(upload, Upload::UpstreamFailed),
            "the trailers were sent"
        );

        // The upstream is not left waiting for the rest of the request.
        let (got, end) = tokio::time::timeout(WAIT, drain(req))
            .await
            .expect("the upstream still waits for the end of the request");
        // (Body bytes h2 had queued but not written yet are dropped with the reset.)
        assert!(b"part one, part two".starts_with(&got), "{got:?}");
        let e = end.expect_err("the request looked complete to the upstream");
        assert_eq!(e.reason(), Some(Reason::CANCEL), "{e:?}");

        // No response head can come: the response future settles now, with the reset (it
        // would otherwise be awaited until `response_header_timeout`).
        let r = tokio::time::timeout(WAIT, response)
            .await
            .expect("the response future did not settle");
        let e = r.expect_err("a response head out of nowhere");
        assert_eq!(e.reason(), Some(Reason::CANCEL), "{e:?}");
    });
}

#[test]
fn an_early_response_stays_the_answer_when_the_upload_then_fails() {
    run(async {
        let (mut send, mut server) = connected().await;
        let (response, out, req, mut respond) = post(&mut send, &mut server).await;
        // The upstream answers 413 before reading the body (and keeps the stream open).
        let head = Response::builder().status(413).body(()).unwrap();
        let mut early = respond.send_response(head, false).unwrap();
        early
            .send_data(Bytes::from_static(b"too big"), true)
            .unwrap();
        tokio::spawn(async move {
            let _req = req;
            while server.accept().await.is_some() {}
        });
        let mut response = std::pin::pin!(response);
        head_buffered(response.as_mut()).await;
        let mut body = Body::new(&[b"x"], b"Connection: close\r\n");
        let upload = upload_body(&mut body, out, u64::MAX).await;
        assert!(
            matches!(upload, Upload::UpstreamFailed),
            "the trailers were sent"
        );
        let r = tokio::time::timeout(WAIT, settled(response.as_mut()))
            .await
            .expect("the response future did not settle");
        assert_eq!(r.expect("the early response was lost").status(), 413);
    });
}
