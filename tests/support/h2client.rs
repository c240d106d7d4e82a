//! An HTTP/2 test client: the `h2` crate on a current-thread tokio runtime, over plain TCP
//! (prior knowledge) or rustls (ALPN `h2`, through `tokio-rustls`), with helpers to send a
//! request and read a whole reply.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

/// How long one test's client side may take in all.
pub const WAIT: Duration = Duration::from_secs(20);

/// Runs `f` on a fresh current-thread runtime, failing the test after [`WAIT`].
pub fn run<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move { tokio::time::timeout(WAIT, f).await.expect("test timed out") })
}

/// The client and a handle to the connection task, which tells whether it ended cleanly.
pub type Client = (SendRequest<Bytes>, tokio::task::JoinHandle<bool>);

/// Starts HTTP/2 on `io` and drives the connection on its own task.
pub async fn handshake<T>(io: T) -> Client
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, conn) = h2::client::handshake(io).await.unwrap();
    let done = tokio::spawn(async move { conn.await.is_ok() });
    (client, done)
}

/// An h2 connection with prior knowledge (h2c).
pub async fn connect(addr: SocketAddr) -> Client {
    handshake(tokio::net::TcpStream::connect(addr).await.unwrap()).await
}

/// A TLS connection to `addr` for the name `localhost`, offering `config`'s ALPN list; the
/// protocol the server chose comes back with the stream.
pub async fn connect_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Option<Vec<u8>>,
)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    Ok((tls, alpn))
}

/// A response read to its end.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads a response head and its whole body, releasing flow-control capacity as it goes.
pub async fn read_reply(resp: h2::client::ResponseFuture) -> Result<Reply, h2::Error> {
    let (parts, mut body) = resp.await?.into_parts();
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len()).unwrap();
        out.extend_from_slice(&chunk);
    }
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: out,
    })
}

/// A request to `front.example` (the `:authority` Dito turns into Host).
pub fn req(method: &str, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("http://front.example{path}"))
}

/// `GET path` with no body, read whole.
pub async fn get(client: &SendRequest<Bytes>, path: &str) -> Reply {
    let mut c = client.clone().ready().await.unwrap();
    let (resp, _) = c
        .send_request(req("GET", path).body(()).unwrap(), true)
        .unwrap();
    read_reply(resp).await.unwrap()
}

/// The bytes `dito-echo` serves for `/bytes/n`.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// The values of the `dito-echo` report lines starting with `key`.
pub fn echo_line<'a>(reply: &'a str, key: &str) -> Vec<&'a str> {
    reply.lines().filter_map(|l| l.strip_prefix(key)).collect()
}

/// SIGTERM to `dito` while a slow stream is in flight on `client`: GOAWAY refuses a new
/// stream, the stream in flight still gets its 200, and the connection ends cleanly.
pub async fn check_goaway_on_sigterm((client, done): Client, dito: &super::Dito) {
    let mut c = client.clone().ready().await.unwrap();
    let (resp, _) = c
        .send_request(req("GET", "/slow-head?ms=1500").body(()).unwrap(), true)
        .unwrap();
    let in_flight = tokio::spawn(read_reply(resp));
    tokio::time::sleep(Duration::from_millis(300)).await;
    dito.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = match c.clone().ready().await {
        Ok(mut c) => match c.send_request(req("GET", "/bytes/1").body(()).unwrap(), true) {
            Ok((resp, _)) => read_reply(resp).await.is_err(),
            Err(_) => true,
        },
        Err(_) => true,
    };
    assert!(refused, "a stream opened after GOAWAY was served");
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status, 200);
    assert!(done.await.unwrap(), "the connection did not end cleanly");
}
