//! The few socket options the standard library and monoio do not expose (design §4 allows
//! `unsafe` here). Each call works on a raw fd the caller owns and keeps open.

use std::os::fd::RawFd;

/// Sets SO_LINGER to {on, 0 s}: closing the socket then sends a reset instead of a FIN, so a
/// client can tell an aborted response from a complete one (spec §4).
pub fn set_linger_zero(fd: RawFd) -> bool {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call, and
    // `linger` is a valid, properly sized `struct linger` that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    rc == 0
}
