//! The echo server: each accepted connection reads one request head; a
//! WebSocket upgrade gets its 101 and then every data frame back unmasked
//! (same opcode and FIN), pings get pongs, a close is answered and ends the
//! connection. Any other request gets `200 ok` and a close, which is what the
//! harness's readiness check needs. `threads` OS threads each run a
//! single-threaded tokio runtime accepting on the same listener.

use std::io;
use std::net::TcpListener as StdListener;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::frame::{self, OP_CLOSE, OP_PING, OP_PONG};
use crate::handshake::{self, Request, MAX_HEAD};

/// Serves `listener` on `threads` threads; returns only if none could start.
pub fn run(listener: StdListener, threads: usize) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let l = listener.try_clone()?;
        let h = std::thread::Builder::new()
            .name(format!("ws-echo-{i}"))
            .spawn(move || accept_thread(l))?;
        handles.push(h);
    }
    for h in handles {
        match h.join() {
            Ok(Err(e)) => eprintln!("ws-echo: a thread stopped: {e}"),
            Err(_) => eprintln!("ws-echo: a thread panicked"),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}

fn accept_thread(l: StdListener) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = TcpListener::from_std(l)?;
        loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(async move {
                        let _ = serve(s).await;
                    });
                }
                Err(e) => {
                    // Out of descriptors or memory: back off instead of spinning.
                    eprintln!("ws-echo: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    })
}

/// One connection, until either side closes it.
pub async fn serve(mut s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 4096];
    let mut filled = 0;
    let (key, head_len) = loop {
        if filled == buf.len() {
            if buf.len() >= MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        match handshake::parse_request(&buf[..filled]) {
            Ok(None) => continue,
            Ok(Some(Request::Upgrade { key, head_len })) => break (key, head_len),
            Ok(Some(Request::Plain { .. })) => {
                s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                )
                .await?;
                return s.shutdown().await;
            }
            Err(e) => {
                s.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await?;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    };
    s.write_all(handshake::switching_protocols(&key).as_bytes())
        .await?;
    buf.copy_within(head_len..filled, 0);
    filled -= head_len;
    echo(s, buf, filled).await
}

/// The echo loop; `buf[..filled]` holds bytes already read after the head.
async fn echo(mut s: TcpStream, mut buf: Vec<u8>, mut filled: usize) -> io::Result<()> {
    let mut out = Vec::with_capacity(4096);
    loop {
        let mut pos = 0;
        let mut closing = false;
        out.clear();
        while let Some(h) = frame::parse_header(&buf[pos..filled])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?
        {
            let total = h.frame_len();
            if filled - pos < total {
                if total > buf.len() {
                    buf.resize(total, 0);
                }
                break;
            }
            let payload = &mut buf[pos + h.header_len..pos + total];
            if let Some(m) = h.mask {
                frame::apply_mask(payload, m);
            }
            match h.opcode {
                OP_PING => frame::encode(&mut out, true, OP_PONG, payload, None),
                OP_PONG => {}
                OP_CLOSE => {
                    frame::encode(&mut out, true, OP_CLOSE, payload, None);
                    closing = true;
                }
                op => frame::encode(&mut out, h.fin, op, payload, None),
            }
            pos += total;
            if closing {
                break;
            }
        }
        if !out.is_empty() {
            s.write_all(&out).await?;
        }
        if closing {
            return s.shutdown().await;
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if filled == buf.len() {
            // A frame longer than the buffer: resized above once its header was read.
            buf.resize(buf.len() * 2, 0);
        }
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            return s.shutdown().await;
        }
        filled += n;
    }
}
