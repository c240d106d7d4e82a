"""Processes the harness starts, and what it reads about them from /proc.

Every process is started in its own session (so a Ctrl-C in the terminal reaches only the
harness, which then ends them in order), remembered with its start time, and ended by PID:
SIGTERM to the process, then SIGKILL to whatever is left of its tree. Nothing is ever
killed by name.
"""

import os
import signal
import socket
import ssl
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

_started = []  # every Proc, in start order; stop_all() ends them in reverse


def _stat_fields(pid):
    """Fields 3.. of /proc/PID/stat (after the parenthesised comm), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _start_time(pid):
    """Start time of a live (not zombie) process, or None."""
    f = _stat_fields(pid)
    return int(f[19]) if f and f[0] != "Z" else None


def descendants(root):
    """root and every process below it (nginx master -> workers)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f:
            children.setdefault(int(f[1]), []).append(int(name))
    out, todo = [], [root]
    while todo and len(out) < 10000:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids):
    """utime + stime of the processes (all their threads, live and exited), in seconds."""
    ticks = 0
    for pid in pids:
        f = _stat_fields(pid)
        if f:
            ticks += int(f[11]) + int(f[12])
    return ticks / CLK_TCK


def reset_peak_rss(pids):
    """Reset VmHWM to the current RSS (clear_refs 5); False if the kernel refused."""
    ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def peak_rss_kib(pids):
    """Sum of VmHWM over the processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def rss_kib(pids):
    """Sum of VmRSS (resident now) over the processes, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def pss_kib(pids):
    """Sum of Pss (shared pages split between their users) now, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


class Proc:
    """A started process; `cpus` wraps it in `taskset -c CPUS` (taskset execs, same PID)."""

    def __init__(self, name, argv, cpus=None, log_path=None):
        self.name = name
        self.log_path = log_path
        if cpus:
            argv = ["taskset", "-c", cpus] + list(argv)
        self.argv = argv
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        if log_path:
            out.close()
        self.pid = self.popen.pid
        self.known = {}  # pid -> start time, of the whole tree as last seen
        self._remember([self.pid])
        _started.append(self)

    def _remember(self, pids):
        for pid in pids:
            if pid not in self.known:
                st = _start_time(pid)
                if st is not None:
                    self.known[pid] = st

    def alive(self):
        return self.popen.poll() is None

    def pids(self):
        """The process and its descendants, now."""
        if not self.alive():
            return []
        tree = descendants(self.pid)
        self._remember(tree)
        return tree

    def log_tail(self, n=15):
        if not self.log_path:
            return ""
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self, grace=5.0):
        """SIGTERM the process, wait (bounded), then SIGKILL what is left of its tree."""
        if self.alive():
            self.pids()
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + grace
        for pid, st in self.known.items():
            if pid == self.pid and self.popen.poll() is not None:
                continue
            while _start_time(pid) == st and time.monotonic() < deadline:
                # Still the same process (the start time guards against PID reuse).
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        if self in _started:
            _started.remove(self)


def stop_all():
    for p in reversed(list(_started)):
        try:
            p.stop()
        except Exception as e:  # keep ending the others
            print(f"bench: could not stop {p.name} (pid {p.pid}): {e}")


def install_signal_handlers():
    """Ctrl-C, SIGTERM and SIGHUP unwind the harness (its finally ends every process)."""
    def handler(signum, _frame):
        signal.signal(signum, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_ports(base, count, tries=25, step=20):
    """`count` consecutive free ports from base, base+step, ... (bounded tries)."""
    for i in range(tries):
        first = base + i * step
        if first + count > 32767:
            break
        if all(port_free(first + k) for k in range(count)):
            return list(range(first, first + count))
    raise RuntimeError(f"no {count} free consecutive ports from {base} (tried {tries} blocks)")


def http_status(port, path, timeout=1.0, tls=None):
    """Status code of one GET on a fresh connection, or None. `tls`: an ssl.SSLContext to
    speak HTTPS with (the certificate is verified against it, for the name 127.0.0.1)."""
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s = raw
        try:
            if tls:  # wrap_socket takes over raw's descriptor: s is the one to close
                s = tls.wrap_socket(raw, server_hostname="127.0.0.1")
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                      .encode())
            head = s.recv(64).decode("latin-1")
        finally:
            s.close()
            raw.close()
        return int(head.split()[1]) if head.startswith("HTTP/1.") else None
    except (OSError, ValueError, IndexError):  # ssl.SSLError is an OSError
        return None


def tls_client(ca_file):
    """An SSL context that trusts only ca_file and checks the server's name."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def tls_handshake(port, ca_file, alpn, timeout=2.0):
    """One TLS handshake with the server on port, verified against ca_file for 127.0.0.1,
    offering the ALPN protocols `alpn`; returns what was negotiated:
    {"version", "cipher", "alpn"} (alpn None when the server chose none). Raises OSError
    (ssl.SSLError included) when the handshake fails."""
    ctx = tls_client(ca_file)
    ctx.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return {"version": s.version(), "cipher": s.cipher()[0],
                    "alpn": s.selected_alpn_protocol()}


def wait_ready(proc, port, path, timeout=20.0, tls=None):
    """Poll until GET path answers 200 (bounded); raise with the log tail if it never does.
    `tls`: as http_status."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n"
                               f"{proc.log_tail()}")
        status = http_status(port, path, tls=tls)
        if status == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready on :{port}{path}"
                       f"{' (https)' if tls else ''} after {timeout}s "
                       f"(last status {status}):\n{proc.log_tail()}")
