"""The load generators: wrk (default) or oha, one run -> one dict.

A run's dict: requests (completed), seconds, rps, p50_us, p99_us, non2xx, socket_errors,
errors (= non2xx + socket_errors) and the tool's raw counters.
"""

import json
import os
import subprocess

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


def run(tool, url, conns, seconds, threads, close, cpus, tools):
    if tool == "wrk":
        return wrk(url, conns, seconds, threads, close, cpus, tools.get("wrk", "wrk"))
    if tool == "oha":
        return oha(url, conns, seconds, threads, close, cpus, tools.get("oha", "oha"))
    raise ValueError(f"unknown load generator {tool!r} (wrk or oha)")
