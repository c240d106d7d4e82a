//! Item 4: a chunk extension may have whitespace (RFC 9112 §7.1.1 BWS) before its `;` and
//! around its `=`; whitespace after a chunk size without an extension is still refused.

use crate::proxy_common::{echoed, fnv64, through_echo};
use crate::support::client::{request, Client};

fn chunked_post(body: &str) -> Vec<u8> {
    format!("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{body}")
        .into_bytes()
}

#[test]
fn chunk_extensions_may_have_whitespace_around_semicolon_and_equals() {
    let (_echo, d) = through_echo("");
    for (first, second, last) in [
        ("5 ;a=b", "6\t;b=c", "0 ;end"),
        ("5 \t ;a", "6 ; b = \"c d\"", "0"),
        ("5; a=b", "6;b", "0;x=y"),
    ] {
        let body = format!("{first}\r\nhello\r\n{second}\r\n world\r\n{last}\r\n\r\n");
        let r = request(d.addr, &chunked_post(&body));
        let e = echoed(&r);
        assert_eq!(e.body_length, 11, "{body:?}");
        assert_eq!(e.body_fnv64, fnv64(b"hello world"), "{body:?}");
    }
}

#[test]
fn whitespace_after_a_chunk_size_without_an_extension_is_still_refused() {
    let (_echo, d) = through_echo("");
    for body in [
        "5 \r\nhello\r\n0\r\n\r\n",
        "5 x\r\nhello\r\n0\r\n\r\n",
        " 5\r\nhello\r\n0\r\n\r\n",
    ] {
        let mut c = Client::connect(d.addr);
        c.send(&chunked_post(body));
        let r = c.read_response();
        assert_eq!(r.status, 400, "{body:?}: {r:?}");
        assert_eq!(r.header("connection"), Some("close"), "{body:?}");
    }
}
