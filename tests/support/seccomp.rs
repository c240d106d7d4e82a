//! Make the kernel refuse io_uring to one child process, the way a container's seccomp
//! profile does: a filter installed between fork and exec answers `io_uring_setup` with EPERM.
//!
//! This is the only way to test the real fallback path (spec §2 `io_driver`) without changing
//! the machine's `kernel.io_uring_disabled` for everyone. Test code only.

use std::os::unix::process::CommandExt;
use std::process::Command;

const SYS_IO_URING_SETUP: u32 = 425;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// Makes `io_uring_setup` fail with EPERM in the process `cmd` starts.
pub fn refuse_io_uring(cmd: &mut Command) {
    // BPF: load arch; if not ours, allow. Load nr; if io_uring_setup, errno EPERM; else allow.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let filter: [libc::sock_filter; 6] = [
        stmt(LD_W_ABS, 4),
        jump(JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(RET_K, SECCOMP_RET_ALLOW),
        stmt(LD_W_ABS, 0),
        jump(JEQ_K, SYS_IO_URING_SETUP, 0, 1),
        stmt(RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32),
    ];
    let mut full = filter.to_vec();
    full.push(stmt(RET_K, SECCOMP_RET_ALLOW));
    // SAFETY: the closure runs in the forked child before exec and only calls prctl, which is
    // async-signal-safe; `full` is moved in and outlives both calls.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: full.len() as u16,
                filter: full.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}
