//! Hardening tests: the client request side and its limits (issue 17).
//!
//! - `chunk_extensions`: whitespace before a chunk extension's `;` (item 4);
//! - `te_trailers`: `TE: trailers` named in `Connection` toward an HTTP/1.1 upstream, alone or
//!   with a WebSocket upgrade's `upgrade` token (item 5);
//! - `underscores`: header names with `_` dropped, kept or refused (item 8), over HTTP/1.1,
//!   HTTP/2 and WebSocket upgrades, through reloads and `dito check`;
//! - `deadline`: `request_timeout` as a hard deadline during a slow upload (item 16);
//! - `ceilings`: the maxima of the request limits and a config at them (item 17).

mod chunk_extensions;
