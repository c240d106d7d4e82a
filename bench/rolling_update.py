#!/usr/bin/env python3
"""Rolling update under load (issue 17, defect 12; spec §12): do clients of a replica that is
being rolled see failed requests?

Two Dito "pods" (A, the old one, and B, the new one) with `shutdown_delay`, behind an L4
balancer that stands in for kube-proxy: it sends each NEW connection to a replica whose
`/readyz` answered 200 at its last check (every 100 ms) and never touches established ones.
Load runs throughout (wrk, or the built-in client without wrk); part way through, A gets
SIGTERM and must drain and exit 0 while every request still succeeds. Two load modes:

    keepalive   each client connection carries many requests (the mode that lost requests:
                a request arrived on a connection Dito closed as idle)
    newconn     `Connection: close`: one connection per request

Usage (from the repository root, after `make build` or `cargo build --release`):

    python3 bench/rolling_update.py                   # both modes, release binaries
    python3 bench/rolling_update.py --dito target/debug/dito --echo target/debug/dito-echo
    python3 bench/rolling_update.py --modes keepalive --duration 20 --connections 64

Prints one line per mode (requests, errors by kind, A's exit status) and exits 1 when any
request failed or A did not exit 0. Everything listens on 127.0.0.1; every process started
here is ended by its PID.
"""

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WRK_SCRIPT = os.path.join(HERE, "harness", "wrk-report.lua")
PATH = "/bytes/13"
READY_RE = re.compile(r"Dito is ready on (\S+)")
CHECK_EVERY = 0.1  # seconds between two /readyz checks of one replica

# Connections cut while the balancer shuts down between two modes are no news.
logging.getLogger("asyncio").setLevel(logging.CRITICAL)


# ---- processes ---------------------------------------------------------------------------

class Proc:
    """A child process in its own session, its output in a file, ended by PID."""

    def __init__(self, argv, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, start_new_session=True)

    def wait_line(self, pattern, timeout=20.0):
        """The first match of `pattern` in the output, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, errors="replace") as f:
                m = pattern.search(f.read())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.log_path}: no {pattern.pattern!r}:\n{self.tail()}")

    def tail(self, n=15):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=10)
        self.log.close()


def start_echo(echo_bin, tmp):
    p = Proc([echo_bin, "--listen", "127.0.0.1:0"], os.path.join(tmp, "echo.log"))
    m = p.wait_line(re.compile(r"dito-echo listening on (\S+)"))
    return p, m.group(1)


def start_dito(dito_bin, tmp, name, origin, delay):
    cfg = os.path.join(tmp, f"dito-{name}.yaml")
    with open(cfg, "w") as f:
        f.write(f"port: 0\nlisten: 127.0.0.1\nworkers: 1\nshutdown_delay: {delay}s\n"
                "shutdown_timeout: 10s\nlogging:\n  enabled: false\n  level: warn\n"
                f"locations:\n  - path: '^/'\n    target_url: 'http://{origin}'\n")
    p = Proc([dito_bin, "-f", cfg], os.path.join(tmp, f"dito-{name}.log"))
    addr = p.wait_line(READY_RE).group(1)
    host, port = addr.rsplit(":", 1)
    return p, (host, int(port))


# ---- the readiness-gated L4 balancer -----------------------------------------------------

class Balancer:
    """TCP proxy on its own thread and event loop. New connections go round-robin to the
    replicas whose last `/readyz` check said 200; a reset on one side is passed on as a reset
    (SO_LINGER 0) on the other, a clean close as a half-close."""

    def __init__(self, replicas):
        self.replicas = replicas  # name -> (host, port)
        self.ready = {name: False for name in replicas}
        self.counts = {name: 0 for name in replicas}
        self.refused = 0  # connections that found no ready replica
        self.loop = asyncio.new_event_loop()
        self.server = None
        self.addr = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        if not started.wait(10):
            raise RuntimeError("the balancer did not start")

    def _run(self, started):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0, backlog=1024))
        self.addr = self.server.sockets[0].getsockname()
        for name in self.replicas:
            self.loop.create_task(self._check(name))
        started.set()
        self.loop.run_forever()

    async def _check(self, name):
        host, port = self.replicas[name]
        while True:
            self.ready[name] = await self._readyz(host, port)
            await asyncio.sleep(CHECK_EVERY)

    @staticmethod
    async def _readyz(host, port):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
            w.write(b"GET /readyz HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
            line = await asyncio.wait_for(r.readline(), 0.5)
            w.close()
            return line.startswith(b"HTTP/1.1 200")
        except (OSError, asyncio.TimeoutError):
            return False

    def _pick(self):
        ready = [n for n in self.replicas if self.ready[n]]
        if not ready:
            return None
        name = min(ready, key=lambda n: self.counts[n])  # least connections so far
        self.counts[name] += 1
        return name

    async def _client(self, cr, cw):
        name = self._pick()
        if name is None:
            self.refused += 1
            cw.close()
            return
        try:
            ur, uw = await asyncio.open_connection(*self.replicas[name])
        except OSError:
            self.refused += 1
            reset(cw)
            return
        await asyncio.gather(pipe(cr, uw, cw), pipe(ur, cw, uw))
        uw.close()
        cw.close()

    def stop(self):
        """Closes the listener, cancels every connection and check, and ends the thread."""
        async def shutdown():
            # What the cancelled tasks raise on their way out is of no interest now.
            self.loop.set_exception_handler(lambda loop, context: None)
            self.server.close()
            for _ in range(10):  # tasks may start while others end; bounded
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                if not tasks:
                    break
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def reset(writer):
    """Close with RST: SO_LINGER {on, 0}."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.close()


async def pipe(reader, writer, back):
    """Copies reader → writer; EOF half-closes writer, a failure resets both sides."""
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        reset(writer)
        reset(back)


# ---- load --------------------------------------------------------------------------------

def run_wrk(url, conns, seconds, close):
    argv = ["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", "-s", WRK_SCRIPT, url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"no WRKJSON line in wrk's output:\n{out}")
    raw = json.loads(m.group(1))
    errors = {k: raw[k] for k in ("connect", "read", "write", "timeout", "status")}
    return raw["requests"], errors


def run_builtin(addr, conns, seconds, close):
    """A threaded HTTP/1.1 client (when wrk is missing): GET PATH in a loop per connection,
    reconnecting after `Connection: close`; counts failures by kind as wrk does."""
    host, port = addr
    stop = time.monotonic() + seconds
    totals = {"requests": 0, "connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    lock = threading.Lock()
    req = (f"GET {PATH} HTTP/1.1\r\nHost: lb\r\n"
           + ("Connection: close\r\n" if close else "") + "\r\n").encode()

    def one():
        mine = dict.fromkeys(totals, 0)
        sock, buf = None, b""
        while time.monotonic() < stop:
            if sock is None:
                try:
                    sock = socket.create_connection((host, port), timeout=5)
                    buf = b""
                except OSError:
                    mine["connect"] += 1
                    time.sleep(0.01)
                    continue
            try:
                sock.sendall(req)
            except OSError:
                mine["write"] += 1
                sock.close()
                sock = None
                continue
            try:
                while b"\r\n\r\n" not in buf:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("closed before a response")
                    buf += chunk
                head, rest = buf.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                while len(rest) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("body truncated")
                    rest += chunk
                buf = rest[length:]
            except socket.timeout:
                mine["timeout"] += 1
                sock.close()
                sock = None
                continue
            except (OSError, ConnectionError, AttributeError, ValueError):
                mine["read"] += 1
                sock.close()
                sock = None
                continue
            mine["requests"] += 1
            if not head.startswith(b"HTTP/1.1 200"):
                mine["status"] += 1
            if re.search(rb"(?i)\r\nconnection:\s*close", head):
                sock.close()
                sock = None
        if sock is not None:
            sock.close()
        with lock:
            for k, v in mine.items():
                totals[k] += v

    threads = [threading.Thread(target=one) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    requests = totals.pop("requests")
    return requests, totals


# ---- one scenario ------------------------------------------------------------------------

def scenario(mode, args, tmp, origin):
    close = mode == "newconn"
    a, a_addr = start_dito(args.dito, tmp, f"{mode}-a", origin, args.shutdown_delay)
    b, b_addr = start_dito(args.dito, tmp, f"{mode}-b", origin, args.shutdown_delay)
    lb = Balancer({"A": a_addr, "B": b_addr})
    try:
        deadline = time.monotonic() + 5
        while not all(lb.ready.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the balancer never saw both replicas ready")
            time.sleep(0.05)
        url = f"http://{lb.addr[0]}:{lb.addr[1]}{PATH}"
        result = {}

        def load():
            if args.loadgen == "wrk":
                result["load"] = run_wrk(url, args.connections, args.duration, close)
            else:
                result["load"] = run_builtin(lb.addr, args.connections, args.duration, close)

        loader = threading.Thread(target=load)
        loader.start()
        time.sleep(args.term_at)
        a_before = dict(lb.counts)
        a.p.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        try:
            a_code = a.p.wait(timeout=args.shutdown_delay + 15)
        except subprocess.TimeoutExpired:
            a_code = None
        a_took = time.monotonic() - signalled
        loader.join(args.duration + 60)
        if "load" not in result:
            raise RuntimeError("the load generator failed")
        requests, errors = result["load"]
        return {
            "mode": mode, "requests": requests, "errors": errors,
            "failed": sum(errors.values()), "a_exit": a_code, "a_took_s": round(a_took, 2),
            "conns_to_a_before_term": a_before["A"], "conns": dict(lb.counts),
            "refused_by_lb": lb.refused,
        }
    finally:
        lb.stop()
        for p in (a, b):
            p.stop()


def find(path, name):
    """`path`, or the release build of `name`; exits when it is not an executable."""
    path = path or os.path.join(ROOT, "target", "release", name)
    if not os.access(path, os.X_OK):
        sys.exit(f"rolling_update: {path} not found: run `make build`, or pass its path")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dito", help="dito binary (default target/release/dito)")
    ap.add_argument("--echo", help="dito-echo binary (default target/release/dito-echo)")
    ap.add_argument("--modes", default="keepalive,newconn")
    ap.add_argument("--duration", type=int, default=12, help="seconds of load per mode")
    ap.add_argument("--term-at", type=float, default=3.0, help="SIGTERM to A after N s of load")
    ap.add_argument("--shutdown-delay", type=int, default=3, help="shutdown_delay, seconds")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--loadgen", choices=("wrk", "builtin"),
                    default="wrk" if shutil.which("wrk") else "builtin")
    args = ap.parse_args()
    args.dito = find(args.dito, "dito")
    args.echo = find(args.echo, "dito-echo")
    if args.term_at + args.shutdown_delay + 1 >= args.duration:
        sys.exit("rolling_update: --duration must outlast --term-at + --shutdown-delay + 1")

    tmp = tempfile.mkdtemp(prefix="dito-rolling-")
    echo, origin = start_echo(args.echo, tmp)
    results = []
    try:
        for mode in args.modes.split(","):
            r = scenario(mode, args, tmp, origin)
            results.append(r)
            errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items())
            print(f"{mode:>9}: {r['requests']:>8,} requests, {r['failed']} failed ({errs}); "
                  f"A exited {r['a_exit']} {r['a_took_s']} s after SIGTERM; "
                  f"connections A/B {r['conns']['A']}/{r['conns']['B']} "
                  f"({r['conns_to_a_before_term']} to A before SIGTERM); "
                  f"load {args.loadgen}, {args.connections} connections, {args.duration} s, "
                  f"shutdown_delay {args.shutdown_delay} s", flush=True)
    finally:
        echo.stop()
    bad = [r for r in results if r["failed"] or r["a_exit"] != 0]
    if bad:
        print(f"rolling_update: FAILED ({tmp} keeps the logs)")
        sys.exit(1)
    shutil.rmtree(tmp, ignore_errors=True)
    print("rolling_update: 0 failed requests")


if __name__ == "__main__":
    main()
