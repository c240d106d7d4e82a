//! The byte tunnel behind an upgraded connection (spec §13, issue 11): after the upstream's
//! 101, every byte flows unchanged both ways until both sides are done.
//!
//! Two copy loops run side by side, one per direction, each with one owned buffer that starts
//! at [`START`] and doubles after a read that filled it, up to [`MAX`] — an idle tunnel costs
//! little memory, a busy one moves 64 KiB per read. A read hands its buffer to the write (no
//! copy, no frame parsing) and gets it back. Bytes that arrived before the switch (read past a
//! head) are sent first. EOF on one side half-closes the other side's write direction, so a
//! peer that finishes sending can still receive. The tunnel ends when both directions have
//! ended, when either fails, when nothing moved either way for the idle timeout, or when
//! `stop` resolves (shutdown). Worker thread only.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::time::Duration;

use monoio::buf::{IoBufMut, SliceMut};
use monoio::time::Instant;

use crate::http::conn::ReadSource;
use crate::http::response::WriteSink;

/// First buffer size of each direction.
pub const START: usize = 4 * 1024;
/// The most a buffer grows to.
pub const MAX: usize = 64 * 1024;

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    /// Both sides finished sending.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// `stop` fired (the worker is shutting down).
    Stopped,
    /// A read or write failed on one side.
    Failed,
}

/// Bytes moved each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TunnelBytes {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// One side of the tunnel: its read half, its write half, and what was already read from it
/// before the switch.
pub struct Side<'a, R, W> {
    pub rd: &'a mut R,
    pub wr: &'a mut W,
    pub early: Vec<u8>,
}

/// A direction of the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToUpstream,
    UpstreamToClient,
}

/// Relays between `client` and `upstream` until the tunnel ends; `moved` hears of every chunk
/// as it is written (live byte counts).
pub async fn run<CR, CW, UR, UW>(
    client: Side<'_, CR, CW>,
    upstream: Side<'_, UR, UW>,
    idle: Duration,
    stop: impl Future<Output = ()>,
    moved: &dyn Fn(Direction, u64),
) -> (TunnelEnd, TunnelBytes)
where
    CR: ReadSource,
    CW: WriteSink,
    UR: ReadSource,
    UW: WriteSink,
{
    let last = Cell::new(Instant::now());
    let (up_count, down_count) = (Cell::new(0u64), Cell::new(0u64));
    let Side {
        rd: crd,
        wr: cwr,
        early: c_early,
    } = client;
    let Side {
        rd: urd,
        wr: uwr,
        early: u_early,
    } = upstream;
    let up = Meter {
        last: &last,
        count: &up_count,
        dir: Direction::ClientToUpstream,
        moved,
    };
    let down = Meter {
        last: &last,
        count: &down_count,
        dir: Direction::UpstreamToClient,
        moved,
    };
    let both = async {
        let mut to_upstream = pin!(copy(crd, uwr, c_early, &up));
        let mut to_client = pin!(copy(urd, cwr, u_early, &down));
        let (mut up_done, mut down_done) = (false, false);
        // Ends at the first failure; a clean end of one direction waits for the other.
        while !(up_done && down_done) {
            let ok = monoio::select! {
                r = &mut to_upstream, if !up_done => { up_done = true; r.is_ok() }
                r = &mut to_client, if !down_done => { down_done = true; r.is_ok() }
            };
            if !ok {
                return TunnelEnd::Failed;
            }
        }
        TunnelEnd::Closed
    };
    let end = monoio::select! {
        end = both => end,
        _ = idle_for(&last, idle) => TunnelEnd::Idle,
        _ = stop => TunnelEnd::Stopped,
    };
    let bytes = TunnelBytes {
        client_to_upstream: up_count.get(),
        upstream_to_client: down_count.get(),
    };
    (end, bytes)
}

/// Where one direction reports what it moved.
struct Meter<'a> {
    /// When a byte last moved either way (shared by both directions).
    last: &'a Cell<Instant>,
    count: &'a Cell<u64>,
    dir: Direction,
    moved: &'a dyn Fn(Direction, u64),
}

impl Meter<'_> {
    fn wrote(&self, n: usize) {
        self.last.set(Instant::now());
        self.count.set(self.count.get() + n as u64);
        (self.moved)(self.dir, n as u64);
    }
}

/// Copies `rd` to `wr` until EOF (then half-closes `wr`) or an error.
async fn copy<R: ReadSource, W: WriteSink>(
    rd: &mut R,
    wr: &mut W,
    early: Vec<u8>,
    meter: &Meter<'_>,
) -> io::Result<()> {
    if !early.is_empty() {
        let n = early.len();
        let (r, _) = wr.write_all_owned(early).await;
        r?;
        meter.wrote(n);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(START);
    loop {
        buf.clear();
        let room = buf.capacity();
        let (r, back): (io::Result<usize>, SliceMut<Vec<u8>>) =
            rd.read_some(buf.slice_mut(0..room)).await;
        buf = back.into_inner();
        let n = r?;
        if n == 0 {
            // The peer finished sending: pass the end on, keep the other direction open.
            return wr.close_write().await;
        }
        meter.last.set(Instant::now());
        let filled = n == room;
        let (r, back) = wr.write_all_owned(buf).await;
        buf = back;
        r?;
        meter.wrote(n);
        if filled && room < MAX {
            buf.reserve((room * 2).min(MAX).saturating_sub(buf.len()));
        }
    }
}

/// Resolves once nothing moved for `idle` (0 = never).
async fn idle_for(last: &Cell<Instant>, idle: Duration) {
    if idle.is_zero() {
        return std::future::pending().await;
    }
    loop {
        let due = last.get() + idle;
        let now = Instant::now();
        if now >= due {
            return;
        }
        monoio::time::sleep(due - now).await;
    }
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
