"""The load generators: wrk (default) or oha, h2load for HTTP/2, and ws-load (bench/ws) for
the WebSocket echo scenario; one run -> one dict.

A run's dict: requests (completed), seconds, rps, p50_us, p99_us, non2xx, socket_errors,
errors (= non2xx + socket_errors) and the tool's raw counters.
"""

import json
import os
import re
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_SCRIPT = os.path.join(HERE, "wrk-report.lua")

# oha reports the requests still in flight when -z ends as this "error"; it is not one.
OHA_NOT_ERRORS = ("aborted due to deadline",)


class LoadFailed(RuntimeError):
    """The load generator failed or hung; the run is recorded as failed and the bench goes on."""


def _diagnose(pid, url):
    """Where a hung load generator's threads wait, and its connections' queues."""
    lines = []
    try:
        for tid in sorted(os.listdir(f"/proc/{pid}/task"))[:16]:
            base = f"/proc/{pid}/task/{tid}"
            with open(f"{base}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open(f"{base}/wchan") as f:
                wchan = f.read().strip()
            with open(f"{base}/syscall") as f:
                sysc = f.read().split()[:1]
            lines.append(f"thread {tid}: state {state}, wchan {wchan or '-'}, syscall {sysc}")
    except OSError as e:
        lines.append(f"(/proc/{pid}: {e})")
    port = url.split(":")[2].split("/")[0]
    try:
        ss = subprocess.run(["ss", "-tnH", "state", "all", f"( dport = :{port} )"],
                            capture_output=True, text=True, timeout=5).stdout.splitlines()
        states = {}
        for ln in ss:
            f = ln.split()
            st = states.setdefault(f[0], [0, 0, 0])
            st[0] += 1
            st[1] += int(f[1])
            st[2] += int(f[2])
        lines.append("client sockets to :%s: %s" % (port, ", ".join(
            f"{k} {v[0]} (recv-q {v[1]}, send-q {v[2]})" for k, v in states.items()) or "none"))
    except (OSError, subprocess.TimeoutExpired, IndexError, ValueError) as e:
        lines.append(f"(ss: {e})")
    return "\n".join(lines)


def _run(name, argv, cpus, timeout, url):
    """Run argv (under taskset when cpus), bounded by timeout; return its stdout."""
    if cpus:
        argv = ["taskset", "-c", cpus] + list(argv)
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LoadFailed(f"{name} still running {timeout} s after it started, killed:\n"
                         f"{_diagnose(child.pid, url)}") from None
    finally:
        if child.poll() is None:  # timeout, Ctrl-C or an error: end it by PID
            child.kill()
            child.wait(timeout=5)
    if child.returncode != 0:
        raise LoadFailed(f"{name} exited with {child.returncode}: "
                           f"{err.decode(errors='replace')[-800:]}")
    return out.decode(errors="replace")


def wrk(url, conns, seconds, threads, close, cpus, wrk_bin="wrk"):
    argv = [wrk_bin, "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s",
            "--timeout", "10s", "-s", WRK_SCRIPT]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append(url)
    out = _run("wrk", argv, cpus, seconds + 30, url)
    line = next((ln for ln in out.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise LoadFailed(f"wrk printed no WRKJSON line:\n{out[-800:]}")
    w = json.loads(line[len("WRKJSON "):])
    secs = w["duration_us"] / 1e6
    sock = w["connect"] + w["read"] + w["write"] + w["timeout"]
    return {
        "requests": w["requests"], "seconds": secs, "rps": w["requests"] / secs,
        "p50_us": w["p50_us"], "p99_us": w["p99_us"],
        "non2xx": w["status"], "socket_errors": sock, "errors": w["status"] + sock,
        "raw": w,
    }


def oha(url, conns, seconds, threads, close, cpus, oha_bin="oha"):
    del threads  # oha sizes its own runtime
    argv = [oha_bin, "-z", f"{seconds}s", "-c", str(conns), "--no-tui",
            "--output-format", "json"]
    if close:
        argv.append("--disable-keepalive")
    if url.startswith("https:"):
        argv.append("--insecure")  # as wrk, which never verifies (only the proxies must)
    argv.append(url)
    out = _run("oha", argv, cpus, seconds + 30, url)
    try:
        o = json.loads(out[out.index("{"):])
    except ValueError:
        raise LoadFailed(f"oha printed no JSON:\n{out[-800:]}") from None
    codes = {int(k): v for k, v in (o.get("statusCodeDistribution") or {}).items()}
    done = sum(codes.values())
    non2xx = sum(v for k, v in codes.items() if not 200 <= k < 300)
    errs = {k: v for k, v in (o.get("errorDistribution") or {}).items()
            if not k.startswith(OHA_NOT_ERRORS)}
    secs = o["summary"]["total"]
    lat = o.get("latencyPercentiles") or {}
    return {
        "requests": done, "seconds": secs, "rps": done / secs if secs else 0.0,
        "p50_us": (lat.get("p50") or 0) * 1e6, "p99_us": (lat.get("p99") or 0) * 1e6,
        "non2xx": non2xx, "socket_errors": sum(errs.values()),
        "errors": non2xx + sum(errs.values()),
        "raw": {"summary": o["summary"], "status": codes, "errors": errs},
    }


def _percentile(sorted_xs, q):
    """Nearest-rank percentile q (0-100) of a sorted list."""
    if not sorted_xs:
        return 0
    k = max(0, min(len(sorted_xs) - 1, -(-len(sorted_xs) * q // 100) - 1))
    return sorted_xs[int(k)]


def _h2load_times(path):
    """Per-request durations (µs) from h2load's --log-file: one line per completed request,
    `start (µs since the epoch) TAB status TAB µs until the end of the response`."""
    times = []
    with open(path) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) == 3:
                times.append(int(parts[2]))
    times.sort()
    return times


_H2_FIELDS = {
    "finished": re.compile(r"^finished in ([\d.]+)(s|ms), "),
    "requests": re.compile(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) "
                           r"succeeded, (\d+) failed, (\d+) errored, (\d+) timeout"),
    "status": re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx"),
    "request_time": re.compile(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)"),
}
_H2_TLS = ("TLS Protocol", "Cipher", "Server Temp Key", "Application protocol")


def _h2_us(text):
    """h2load's durations (`69us`, `13.23ms`, `1.02s`) in µs."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return None
    return round(float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)], 1)


def h2load(url, conns, streams, seconds, threads, cpus, h2load_bin="h2load"):
    """HTTP/2 over TLS: `conns` connections (spread over `threads` threads), each with up to
    `streams` requests in flight, for `seconds` (h2load -D). ALPN offers h2 only and the run
    fails unless h2 was negotiated, so it never silently measures HTTP/1.1.

    h2load itself prints min/max/mean/sd of request times, no percentiles; p50_us and p99_us
    come from its --log-file (one line per completed request) and are exact (nearest rank).
    Requests still in flight when -D ends (started - done) are not errors. requests = done -
    errored (every request answered, whatever its status, as wrk counts); non2xx = 3xx + 4xx +
    5xx; socket_errors = errored (stream or connection errors; h2load sets no request
    timeout)."""
    fd, log_path = tempfile.mkstemp(prefix="dito-bench-h2load-", suffix=".log")
    os.close(fd)
    try:
        argv = [h2load_bin, "-t", str(threads), "-c", str(conns), "-m", str(streams),
                "-D", str(seconds), "--npn-list=h2", f"--log-file={log_path}", url]
        out = _run("h2load", argv, cpus, seconds + 30, url)
        times = _h2load_times(log_path)
    finally:
        os.unlink(log_path)
    got, tls = {}, {}
    for line in out.splitlines():
        for key, rx in _H2_FIELDS.items():
            m = rx.match(line)
            if m:
                got[key] = m.groups()
        name, _, val = line.partition(": ")
        if name in _H2_TLS:
            tls[name] = val.strip()
    if "finished" not in got or "requests" not in got or "status" not in got:
        raise LoadFailed(f"h2load printed no summary:\n{out[-800:]}")
    if tls.get("Application protocol") != "h2":
        raise LoadFailed(f"h2load negotiated {tls.get('Application protocol') or 'nothing'}, "
                         f"not h2 (ALPN):\n"
                         f"{out[-800:]}")
    secs = float(got["finished"][0]) / (1000 if got["finished"][1] == "ms" else 1)
    total, started, done, ok, failed, errored, timeout = map(int, got["requests"])
    s2, s3, s4, s5 = map(int, got["status"])
    rt = [_h2_us(x) for x in got.get("request_time", ())[:4]]
    requests = done - errored
    return {
        "requests": requests, "seconds": secs, "rps": requests / secs if secs else 0.0,
        "p50_us": _percentile(times, 50), "p99_us": _percentile(times, 99),
        "non2xx": s3 + s4 + s5, "socket_errors": errored, "errors": s3 + s4 + s5 + errored,
        "raw": {"started": started, "done": done, "succeeded": ok, "failed": failed,
                "errored": errored, "timeout": timeout, "2xx": s2, "3xx": s3, "4xx": s4,
                "5xx": s5, "logged": len(times),
                "max_us": times[-1] if times else None,
                "request_time_us": dict(zip(("min", "max", "mean", "sd"), rt)),
                "tls": tls, "connections": conns, "streams": streams, "threads": threads},
    }


def ws_load(url, conns, seconds, threads, size, cpus, ws_load_bin):
    """WebSocket echo (bench/ws, `ws-load echo`): `conns` connections over `threads` threads,
    each with exactly one `size`-byte binary message in flight (send, wait for the echo,
    compare), for `seconds` after every connection is open. requests = messages echoed (a
    message is the "request" of this scenario: rps is messages/s, p50/p99 their round trips);
    non2xx = upgrades refused (no 101); socket_errors = connections that failed otherwise
    (connect, read/write, wrong echo, no echo within 10 s of the end)."""
    argv = [ws_load_bin, "echo", url, "--connections", str(conns), "--duration", str(seconds),
            "--threads", str(threads), "--size", str(size)]
    out = _run("ws-load", argv, cpus, seconds + 60, url)
    line = next((ln for ln in out.splitlines() if ln.startswith("WSJSON ")), None)
    if line is None:
        raise LoadFailed(f"ws-load printed no WSJSON line:\n{out[-800:]}")
    w = json.loads(line[len("WSJSON "):])
    if w["connected"] == 0:
        raise LoadFailed(f"ws-load: no connection opened ({w['first_error']})")
    kinds = w["error_kinds"]
    refused = kinds.get("handshake", 0)
    secs = w["seconds"]
    return {
        "requests": w["messages"], "seconds": secs,
        "rps": w["messages"] / secs if secs else 0.0,
        "p50_us": w["p50_us"], "p99_us": w["p99_us"],
        "non2xx": refused, "socket_errors": w["errors"] - refused, "errors": w["errors"],
        "raw": w,
    }


def run(tool, url, conns, seconds, threads, close, cpus, tools, streams=None):
    """One run of `tool`. For h2load, `conns` are its connections and `streams` the requests
    in flight on each (`close` does not apply); for ws-load, `streams` is the message size."""
    if tool == "wrk":
        return wrk(url, conns, seconds, threads, close, cpus, tools.get("wrk", "wrk"))
    if tool == "oha":
        return oha(url, conns, seconds, threads, close, cpus, tools.get("oha", "oha"))
    if tool == "h2load":
        if close:
            raise ValueError("h2load: no Connection: close scenario")
        return h2load(url, conns, streams, seconds, threads, cpus,
                      tools.get("h2load", "h2load"))
    if tool == "ws-load":
        return ws_load(url, conns, seconds, threads, streams, cpus, tools["ws-load"])
    raise ValueError(f"unknown load generator {tool!r} (wrk, oha, h2load or ws-load)")
