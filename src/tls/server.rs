//! The TLS listener on a worker (spec §2 `tls`): its rustls server config, the handshake, and
//! the hand-off to HTTP/1.1 or (after ALPN `h2`) HTTP/2.
//!
//! Each worker builds its own `ServerConfig` from the snapshot's loaded material (design §1: a
//! rustls config holds its session cache behind a lock, so it is never shared between cores)
//! and keeps it while the material's content hash stays the same. A reload (SIGHUP re-reads
//! the files) with a new certificate gives new connections a new config; open connections keep
//! the session they were built with. ALPN offers the protocols of `tls.alpn` in their order. With
//! `client_ca_file`, client certificates are required and verified against it. The handshake
//! runs under the header read timeout; failures are logged at debug and end only their
//! connection. Worker thread only.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use super::io::{self, HandshakeError, TlsReader, TlsWriter};
use crate::config::ListenerTls;
use crate::h2;
use crate::http::session::{self, Served};
use crate::relay::websocket::Tunnel;
use crate::sys::{self, AbortHandle, ClientStream};
use crate::worker::state::WorkerState;

/// One worker's server config for the current listener material.
#[derive(Default)]
pub struct ServerConfigs {
    last: RefCell<Option<(u64, Arc<ServerConfig>)>>,
}

impl ServerConfigs {
    /// The config for `tls`: the previous one when the content is unchanged, else a new one.
    pub fn get_or_build(&self, tls: &ListenerTls) -> Result<Arc<ServerConfig>, String> {
        if let Some((settings, config)) = &*self.last.borrow() {
            if *settings == tls.settings {
                return Ok(config.clone());
            }
        }
        let config = Arc::new(build_server_config(tls).map_err(|e| format!("tls: {e}"))?);
        *self.last.borrow_mut() = Some((tls.settings, config.clone()));
        Ok(config)
    }
}

/// A server config from loaded material, with the ring provider chosen explicitly.
pub fn build_server_config(tls: &ListenerTls) -> Result<ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(bundle) => {
            let mut roots = RootCertStore::empty();
            for cert in &bundle.certs {
                roots.add(cert.clone())?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config =
        builder.with_single_cert(tls.identity.chain.clone(), tls.identity.key.clone_key())?;
    // In the configured order: rustls picks the first of ours the client also offers. A client
    // offering none of them is refused (`no_application_protocol`); one offering no ALPN at
    // all gets HTTP/1.1.
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(config)
}

/// Handshakes on an accepted connection, then serves HTTP/2 over it when ALPN chose `h2`,
/// else HTTP/1.1. An HTTP/1.1 connection that became a WebSocket tunnel is returned, to run
/// once this function's state is freed.
pub async fn serve(
    stream: ClientStream,
    abort: AbortHandle,
    peer: SocketAddr,
    worker: Rc<WorkerState>,
    config: Arc<ServerConfig>,
) -> Option<Box<Tunnel<TlsReader<ClientStream>, TlsWriter<ClientStream>>>> {
    let conn = match ServerConnection::new(config) {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(client = %peer, error = %e, "TLS session not created");
            return None;
        }
    };
    let timeout = worker.session_limits().header_read_timeout;
    let work = io::handshake(stream, conn);
    let done = if timeout.is_zero() {
        Ok(work.await)
    } else {
        monoio::time::timeout(timeout, work).await
    };
    match done {
        Ok(Ok((rd, wr))) if rd.negotiated_h2() => {
            // Each h2 write is a frame the client waits for: no Nagle.
            sys::set_nodelay(abort.fd());
            let io = h2::Prefixed::new(Vec::new(), h2::RentIo::new(rd, wr));
            h2::serve(io, peer, true, worker).await;
        }
        Ok(Ok((rd, wr))) => match session::serve(rd, wr, abort, peer, true, worker).await {
            Served::Closed => {}
            Served::Http2 { .. } => {
                // Over TLS, HTTP/2 needs ALPN h2 (RFC 9113 §3.2): a client that sends the
                // preface without having agreed to it is not speaking the protocol. Close.
                tracing::debug!(client = %peer, "HTTP/2 preface on a TLS connection without ALPN h2");
            }
            Served::Tunnel(tunnel) => return Some(tunnel),
        },
        Ok(Err(HandshakeError::Tls { error, .. })) => {
            tracing::debug!(client = %peer, error = %error, "TLS handshake refused");
        }
        Ok(Err(HandshakeError::Io(e))) => {
            tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            tracing::debug!(client = %peer, "TLS handshake timed out");
        }
    }
    None
}
