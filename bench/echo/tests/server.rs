//! Black-box test of the `dito-echo` binary: start it on `127.0.0.1:0`,
//! learn the port from its single stdout line, and check `/echo`,
//! `/chunked/N`, pipelining, connection serials and `/abort` over real
//! sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The running binary; killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Result<Server, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dito-echo"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim_end()
        .strip_prefix("dito-echo listening on ")
        .ok_or_else(|| format!("unexpected line {line:?}"))?
        .to_string();
    Ok(Server { child, addr })
}

/// A parsed response: status, headers, decoded body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_line(r: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    line.strip_suffix("\r\n")
        .map(str::to_string)
        .ok_or_else(|| format!("bad line {line:?}"))
}

/// Reads one response (Content-Length or chunked) off `r`.
fn read_response(r: &mut impl BufRead) -> Result<Response, String> {
    let status_line = read_line(r)?;
    let status = status_line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(": ").ok_or("bad header")?;
        headers.push((n.to_string(), v.to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| "bad length")?;
        resp.body.resize(len, 0);
        r.read_exact(&mut resp.body).map_err(|e| e.to_string())?;
    } else if resp.header("transfer-encoding") == Some("chunked") {
        loop {
            let size = usize::from_str_radix(&read_line(r)?, 16).map_err(|e| e.to_string())?;
            if size == 0 {
                while !read_line(r)?.is_empty() {}
                break;
            }
            let start = resp.body.len();
            resp.body.resize(start + size, 0);
            r.read_exact(&mut resp.body[start..])
                .map_err(|e| e.to_string())?;
            if !read_line(r)?.is_empty() {
                return Err("chunk not followed by CRLF".into());
            }
        }
    }
    Ok(resp)
}

fn connect(server: &Server) -> Result<(TcpStream, BufReader<TcpStream>), String> {
    let s = TcpStream::connect(&server.addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let r = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    Ok((s, r))
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn echo_chunked_pipelining_and_abort() -> Result<(), String> {
    let server = start()?;
    let (mut s, mut r) = connect(&server)?;

    // /echo with a Content-Length body, then /chunked/N, pipelined.
    let body = b"hello, upstream";
    let mut req = format!(
        "POST /echo/a?b=c HTTP/1.1\r\nHost: test\r\nX-Case: Keep\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req.extend_from_slice(b"GET /chunked/100000?chunk=7777 HTTP/1.1\r\nHost: test\r\n\r\n");
    s.write_all(&req).map_err(|e| e.to_string())?;

    let echo = read_response(&mut r)?;
    assert_eq!(echo.status, 200);
    assert_eq!(echo.header("x-echo-conn"), Some("1"));
    assert_eq!(echo.header("x-echo-seq"), Some("1"));
    let want = format!(
        "method: POST\ntarget: /echo/a?b=c\nversion: HTTP/1.1\nheader: Host: test\n\
         header: X-Case: Keep\nheader: Content-Length: {}\nbody-length: {}\nbody-fnv64: {:016x}\n",
        body.len(),
        body.len(),
        fnv1a64(body)
    );
    assert_eq!(String::from_utf8_lossy(&echo.body), want);

    let chunked = read_response(&mut r)?;
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert_eq!(chunked.header("x-echo-seq"), Some("2"));
    assert_eq!(chunked.body.len(), 100_000);
    assert!(chunked
        .body
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + (i % 26) as u8));

    // A second connection gets the next serial.
    let (mut s2, mut r2) = connect(&server)?;
    s2.write_all(b"GET /bytes/70000 HTTP/1.1\r\nHost: test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let bytes = read_response(&mut r2)?;
    assert_eq!(bytes.header("x-echo-conn"), Some("2"));
    assert_eq!(bytes.body.len(), 70_000);
    assert_eq!(bytes.body[69_999], b'a' + (69_999 % 26) as u8);

    // /abort: 10 bytes of a 20-byte body, then a reset.
    s2.write_all(b"GET /abort?bytes=10 HTTP/1.1\r\nHost: test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    let err = r2.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("Content-Length: 20\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nabcdefghij"), "{text}");
    assert!(
        matches!(&err, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    Ok(())
}
