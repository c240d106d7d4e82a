//! Trailer fields a trailer may not carry (#9, RFC 9110 §6.5.1) are dropped in both
//! directions, whichever protocol each side speaks; the others pass.

use bytes::Bytes;

use super::dito_before;
use crate::proxy_common::{echoed, find, loc, parse_chunked, yaml, Raw};
use crate::support::client::Client;
use crate::support::h2_upstream::H2Upstream;
use crate::support::h2client::{self, echo_line, read_reply, req};
use crate::support::upstream::{Reply, Upstream};
use crate::support::{Dito, Echo};

/// A trailer section with one field that may pass and several that may not.
const SMUGGLED: &[u8] = b"X-Checksum: abc\r\nContent-Length: 99\r\nHost: evil.example\r\n\
    Transfer-Encoding: chunked\r\nAuthorization: Bearer x\r\nX-Forwarded-For: 6.6.6.6\r\n\
    Set-Cookie: s=1\r\nContent-Type: text/evil\r\n";

/// An HTTP/1.1 chunked upload of `hello` with [`SMUGGLED`] trailers.
fn chunked_upload(path: &str) -> Vec<u8> {
    [
        format!(
            "POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n5\r\nhello\r\n0\r\n"
        )
        .as_bytes(),
        SMUGGLED,
        b"\r\n",
    ]
    .concat()
}

/// The HTTP/2 equivalent of [`SMUGGLED`] (h2 itself refuses connection-specific fields).
fn smuggled_h2() -> http::HeaderMap {
    let mut m = http::HeaderMap::new();
    for (n, v) in [
        ("x-checksum", "abc"),
        ("content-length", "99"),
        ("host", "evil.example"),
        ("authorization", "Bearer x"),
        ("x-forwarded-for", "6.6.6.6"),
        ("cookie", "c=1"),
    ] {
        m.append(n, v.parse().unwrap());
    }
    m
}

/// POSTs `hello` with [`smuggled_h2`] trailers over h2c to `path`; the reply's text.
async fn h2_upload(client: &h2::client::SendRequest<Bytes>, path: &str) -> String {
    let mut c = client.clone().ready().await.unwrap();
    let (resp, mut body) = c
        .send_request(req("POST", path).body(()).unwrap(), false)
        .unwrap();
    body.send_data(Bytes::from_static(b"hello"), false).unwrap();
    body.send_trailers(smuggled_h2()).unwrap();
    let r = read_reply(resp).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

#[test]
fn request_trailers_lose_forbidden_fields_to_http1_upstreams() {
    let e = Echo::start();
    let d = dito_before(&format!("http://{}", e.addr), "");
    let mut c = Client::connect(d.addr);
    c.send(&chunked_upload("/echo/t"));
    let ec = echoed(&c.read_response());
    assert_eq!(ec.body_length, 5);
    assert_eq!(ec.trailers, ["X-Checksum: abc"], "{ec:?}");
    h2client::run(async {
        let (client, _) = h2client::connect(d.addr).await;
        let text = h2_upload(&client, "/echo/h2").await;
        assert_eq!(echo_line(&text, "trailer: "), ["x-checksum: abc"], "{text}");
    });
}

#[test]
fn request_trailers_lose_forbidden_fields_to_http2_upstreams() {
    let up = H2Upstream::plain();
    let h2 = "    transport:\n      http:\n        force_http2: true\n";
    let d = Dito::start(&yaml("", &[loc("^/", &up.url(), h2)]));
    let mut c = Client::connect(d.addr);
    c.send(&chunked_upload("/echo/t"));
    let r = c.read_response();
    assert_eq!(r.status, 200, "{r:?}");
    let text = r.body_str();
    assert_eq!(echo_line(&text, "trailer: "), ["x-checksum: abc"], "{text}");
    h2client::run(async {
        let (client, _) = h2client::connect(d.addr).await;
        let text = h2_upload(&client, "/echo/h2").await;
        assert_eq!(echo_line(&text, "trailer: "), ["x-checksum: abc"], "{text}");
    });
}

#[test]
fn response_trailers_lose_forbidden_fields() {
    let up = Upstream::start(|_| {
        Reply::Keep(
            [
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\n"[..],
                SMUGGLED,
                b"\r\n",
            ]
            .concat(),
        )
    });
    let d = dito_before(&format!("http://{}", up.addr), "");
    // Held and sent whole (chunked, to keep the trailers), and streamed as it came.
    for path in ["/t", "/raw/t"] {
        let mut c = Raw::connect(d.addr);
        c.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        c.read_until("the trailer section", |b| {
            find(b, b"\r\n\r\n").is_some_and(|i| parse_chunked(&b[i + 4..]).is_some())
        });
        let (_, rest) = c.head_and_rest();
        let (data, trailers, _) = parse_chunked(&rest).unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(
            String::from_utf8_lossy(&trailers),
            "X-Checksum: abc\r\n",
            "{path}"
        );
    }
    h2client::run(async {
        let (client, _) = h2client::connect(d.addr).await;
        let mut c = client.clone().ready().await.unwrap();
        let (resp, _) = c
            .send_request(req("GET", "/t").body(()).unwrap(), true)
            .unwrap();
        let mut body = resp.await.unwrap().into_body();
        let mut data = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            body.flow_control().release_capacity(chunk.len()).unwrap();
            data.extend_from_slice(&chunk);
        }
        assert_eq!(data, b"hello");
        let trailers = body.trailers().await.unwrap().unwrap_or_default();
        let names: Vec<_> = trailers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-checksum"], "{trailers:?}");
    });
}
