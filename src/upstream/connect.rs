//! Opening upstream connections: DNS off the worker with a 30 s per-worker cache, then TCP
//! connect under `dial_timeout`, trying the resolved addresses in order (spec §5).
//!
//! Resolution runs on the blocking pool (`spawn_blocking`), never on the worker; IP literals
//! skip it. Failures map to the spec §7 vocabulary: `dns`, `connect_refused`,
//! `connect_timeout`. Worker thread only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use monoio::net::TcpStream;
use monoio::time::Instant;

use crate::error::UpstreamErrorKind;

/// How long a resolved address list is reused.
const DNS_TTL: Duration = Duration::from_secs(30);
/// Cached names per worker before the cache is cleared.
const DNS_CACHE_MAX: usize = 1024;

/// Resolved addresses of one `(host, port)` and when they were looked up.
type CacheEntry = (Rc<[SocketAddr]>, Instant);

/// One worker's DNS cache.
#[derive(Default)]
pub struct Resolver {
    cache: RefCell<HashMap<(Rc<str>, u16), CacheEntry>>,
}

impl Resolver {
    /// Addresses for `host:port`, from the cache when fresh.
    pub async fn resolve(
        &self,
        host: &Rc<str>,
        port: u16,
    ) -> Result<Rc<[SocketAddr]>, UpstreamErrorKind> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Rc::from([SocketAddr::new(ip, port)]));
        }
        let key = (host.clone(), port);
        if let Some((addrs, at)) = self.cache.borrow().get(&key) {
            if at.elapsed() < DNS_TTL {
                return Ok(addrs.clone());
            }
        }
        let name = host.to_string();
        let looked_up = monoio::spawn_blocking(move || {
            (name.as_str(), port)
                .to_socket_addrs()
                .map(|it| it.collect::<Vec<_>>())
        })
        .await;
        let addrs: Rc<[SocketAddr]> = match looked_up {
            Ok(Ok(v)) if !v.is_empty() => v.into(),
            _ => return Err(UpstreamErrorKind::Dns),
        };
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= DNS_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (addrs.clone(), Instant::now()));
        Ok(addrs)
    }
}

/// Connects to the first address that accepts, each try bounded by `dial_timeout`.
pub async fn connect(
    addrs: &[SocketAddr],
    dial_timeout: Duration,
    keep_alive: Duration,
) -> Result<TcpStream, UpstreamErrorKind> {
    let mut last = UpstreamErrorKind::ConnectRefused;
    for &addr in addrs {
        match monoio::time::timeout(dial_timeout, TcpStream::connect_addr(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                if !keep_alive.is_zero() {
                    let _ = stream.set_tcp_keepalive(Some(keep_alive), Some(keep_alive), None);
                }
                return Ok(stream);
            }
            Ok(Err(e)) => last = classify_connect_error(&e),
            Err(_) => last = UpstreamErrorKind::ConnectTimeout,
        }
    }
    Err(last)
}

fn classify_connect_error(e: &io::Error) -> UpstreamErrorKind {
    match e.kind() {
        io::ErrorKind::TimedOut => UpstreamErrorKind::ConnectTimeout,
        _ => UpstreamErrorKind::ConnectRefused,
    }
}
