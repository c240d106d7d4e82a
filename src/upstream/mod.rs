//! Upstreams: the per-worker connection pool, connecting (DNS off the worker, then TLS when
//! the target is https/wss), the upstream request head, and the HTTP/1.1 exchange that forwards a request and relays its answer.
//! Worker threads only (the `UpstreamTarget`s are built on the control thread).

pub mod connect;
pub mod final_response;
pub mod forward;
pub mod http2;
pub mod pool;
pub mod request_head;
pub mod route;
pub mod stream;
pub mod tls;
pub mod upgrade;
pub mod upload;
