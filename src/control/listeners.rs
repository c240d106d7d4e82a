//! Binding the listening sockets on the control thread (spec §12, monoio-notes "Sockets").
//!
//! One `SO_REUSEPORT` socket per worker, all on the same address, so the kernel spreads new
//! connections across cores. Because a second `SO_REUSEPORT` bind succeeds silently on a port
//! that another such socket holds, a fixed port is first probed with an exclusive bind: a port
//! held by another process is a startup error. With `port: 0` the first socket picks the port
//! and the others join it.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Accept queue length of each socket.
const BACKLOG: i32 = 4096;

/// Binds `count` listeners on `addr`; returns them and the real address (port resolved).
pub fn bind_all(addr: SocketAddr, count: usize) -> Result<(Vec<TcpListener>, SocketAddr), String> {
    if addr.port() != 0 {
        // Exclusive probe: fails when any other socket holds the port.
        TcpListener::bind(addr).map_err(|e| describe_bind_error(addr, &e))?;
    }
    let first = reuseport_listener(addr).map_err(|e| describe_bind_error(addr, &e))?;
    let real = first
        .local_addr()
        .map_err(|e| format!("listen {addr}: {e}"))?;
    let mut all = Vec::with_capacity(count);
    all.push(first);
    for _ in 1..count {
        all.push(reuseport_listener(real).map_err(|e| describe_bind_error(real, &e))?);
    }
    Ok((all, real))
}

fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // `::` serves IPv4 clients too, as the Go version's listener did.
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn describe_bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            format!("listen {addr}: address already in use (another process holds the port)")
        }
        io::ErrorKind::AddrNotAvailable => {
            format!("listen {addr}: address not available on this host")
        }
        io::ErrorKind::PermissionDenied => format!("listen {addr}: permission denied"),
        _ => format!("listen {addr}: {e}"),
    }
}
