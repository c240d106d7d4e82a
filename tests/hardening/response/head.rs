//! The response head: reason phrases httparse reports as a static `""` (#0: a worker
//! panicked on them) and framing fields on 204 and 1xx (#6).

use crate::proxy_common::{find, head_field, loc, one_worker, yaml, Raw};
use crate::support::client::get;
use crate::support::h2client;
use crate::support::upstream::{ok, Reply, Upstream};
use crate::support::Dito;

/// One worker in front of `up`: a worker that died would leave nothing to serve the next
/// request.
fn one_worker_before(up: &Upstream) -> Dito {
    Dito::start(&one_worker(yaml(
        "",
        &[loc("^/", &format!("http://{}", up.addr), "")],
    )))
}

/// Sends `GET path` on `c` and reads the response heads until `heads` of them arrived, plus
/// `body` bytes after the last one; returns the bytes.
fn exchange(c: &mut Raw, path: &str, heads: usize, body: usize) -> Vec<u8> {
    c.buf.clear();
    c.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    c.read_until(path, |b| {
        let mut at = 0;
        for _ in 0..heads {
            match find(&b[at..], b"\r\n\r\n") {
                Some(i) => at += i + 4,
                None => return false,
            }
        }
        b.len() >= at + body
    });
    c.buf.clone()
}

#[test]
fn a_missing_or_obs_text_reason_phrase_is_relayed_and_the_worker_goes_on() {
    let up = Upstream::start(|r| match r.target() {
        "/no-reason" => Reply::Keep(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        "/obs-text" => Reply::Keep(b"HTTP/1.1 200 \xfc\r\nContent-Length: 2\r\n\r\nok".to_vec()),
        _ => ok("next"),
    });
    let d = one_worker_before(&up);
    let mut c = Raw::connect(d.addr);
    for (path, status_line) in [
        ("/no-reason", &b"HTTP/1.1 200 \r\n"[..]),
        ("/obs-text", b"HTTP/1.1 200 \xfc\r\n"),
    ] {
        let got = exchange(&mut c, path, 1, 2);
        assert!(
            got.starts_with(status_line),
            "{path}: {:?}",
            String::from_utf8_lossy(&got)
        );
        let (head, rest) = c.head_and_rest();
        assert_eq!(head_field(&head, "content-length"), ["2"], "{path}: {head}");
        assert_eq!(rest, b"ok", "{path}");
    }
    // The same connection, and a new one on the only worker, are served.
    assert!(exchange(&mut c, "/next", 1, 4).ends_with(b"next"));
    let r = get(d.addr, "/next");
    assert_eq!((r.status, r.body_str().as_str()), (200, "next"), "{r:?}");
    // HTTP/2 clients (no reason phrase on their side) get the responses too.
    h2client::run(async {
        let (client, _) = h2client::connect(d.addr).await;
        for path in ["/no-reason", "/obs-text"] {
            let r = h2client::get(&client, path).await;
            assert_eq!((r.status, r.text().as_str()), (200, "ok"), "{path}");
        }
    });
}

#[test]
fn no_framing_field_is_relayed_on_a_204_or_an_interim_response() {
    let up = Upstream::start(|r| {
        Reply::Keep(match r.target() {
            "/204" => b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n".to_vec(),
            "/204-te" => {
                b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n".to_vec()
            }
            "/103" => {
                b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\nContent-Length: 0\r\n\r\n\
                        HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n"
                    .to_vec()
            }
            "/304" => {
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"e\"\r\n\r\n".to_vec()
            }
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext".to_vec(),
        })
    });
    let d = one_worker_before(&up);
    let mut c = Raw::connect(d.addr);
    for path in ["/204", "/204-te"] {
        exchange(&mut c, path, 1, 0);
        let (head, rest) = c.head_and_rest();
        assert!(head.starts_with("HTTP/1.1 204 No Content\r\n"), "{head}");
        assert_eq!(head_field(&head, "x-a"), ["1"], "{head}");
        assert!(head_field(&head, "content-length").is_empty(), "{head}");
        assert!(head_field(&head, "transfer-encoding").is_empty(), "{head}");
        assert!(rest.is_empty());
    }
    let got = String::from_utf8_lossy(&exchange(&mut c, "/103", 2, 0)).into_owned();
    let (interim, last) = got.split_once("\r\n\r\n").unwrap();
    assert!(interim.starts_with("HTTP/1.1 103 Early Hints\r\n"), "{got}");
    assert_eq!(head_field(interim, "link"), ["</a>; rel=preload"], "{got}");
    assert!(head_field(interim, "content-length").is_empty(), "{got}");
    assert!(last.starts_with("HTTP/1.1 204 No Content\r\n"), "{got}");
    assert!(head_field(last, "content-length").is_empty(), "{got}");
    // A 304 may carry the length its 200 would have (RFC 9110 §8.6): kept.
    exchange(&mut c, "/304", 1, 0);
    let (head, _) = c.head_and_rest();
    assert!(head.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{head}");
    assert_eq!(head_field(&head, "content-length"), ["5"], "{head}");
    // The connection's framing is intact.
    assert!(exchange(&mut c, "/next", 1, 4).ends_with(b"\r\n\r\nnext"));

    h2client::run(async {
        let (client, _) = h2client::connect(d.addr).await;
        for path in ["/204", "/204-te", "/103"] {
            let r = h2client::get(&client, path).await;
            assert_eq!(r.status, 204, "{path}");
            assert_eq!(r.headers.get("x-a").unwrap(), "1", "{path}");
            assert!(
                r.headers.get("content-length").is_none(),
                "{path}: {:?}",
                r.headers
            );
        }
    });
}
