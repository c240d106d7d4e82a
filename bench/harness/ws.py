"""The WebSocket scenarios (issue 11): `python3 bench/run.py --ws` (`make bench-ws`).

    ws-echo  messages/s: CONNECTIONS WebSocket connections, each with exactly one WS_SIZE-byte
             binary message in flight (send, wait for the echo, compare, repeat), measured by
             `ws-load echo` (bench/ws) like any other scenario (run.py's rounds and tables;
             a message is its "request": req/s is messages/s, CPU µs/req is per message)
    ws-idle  memory per open idle tunnel: IDLE_TUNNELS tunnels opened through a freshly
             started proxy, each checked with one echo and then silent; (RSS with them open −
             RSS before) ÷ tunnels, RSS summed over every process of the proxy (this module)

The backend is `ws-echo` (bench/ws): BACKEND_WORKERS threads, each a single-threaded tokio
runtime; a plain GET gets `200 ok`, which is all the readiness check needs. The proxies get
processes of their own (in ws/ and ws-idle/ under the run's temp dir), the same config as in
the other scenarios plus what WebSocket proxying takes:

    dito     the location with `enable_websocket: true`, target `ws://127.0.0.1:PORT`
    nginx    peers/nginx-ws.conf.tmpl: proxy_http_version 1.1, `Upgrade $http_upgrade`,
             `Connection "upgrade"`, proxy_read_timeout / proxy_send_timeout 3600s
    haproxy  `mode http` tunnels upgrades by default; `timeout tunnel 1h`
"""

import json
import os
import select
import statistics
import subprocess
import time

from . import procs, targets

WS_ECHO = "ws-echo"
WS_IDLE = "ws-idle"
PATH = "/ws"
WARM_TUNNELS = 32  # opened and closed before the "before" reading (lazy setup, first dials)
SETTLE = 1.0  # seconds between the last tunnel opened (or the warm-up) and an RSS reading
OPEN_TIMEOUT = 120  # seconds for ws-load to open and check every tunnel

# name -> placeholders of its config (see the module doc)
EXTRA = {
    "dito": {"UPSTREAM_SCHEME": "ws", "LOCATION_EXTRA": "    enable_websocket: true"},
    "nginx": {},
    "haproxy": {"LOCATION_EXTRA": "    timeout tunnel 1h"},
}


def extra(name):
    return EXTRA["dito" if name.startswith("dito") else name]


def start_backend(cfg, tmp, tools):
    """ws-echo on a free port, ready once a plain GET answers 200; returns a Target."""
    os.makedirs(tmp, exist_ok=True)
    port = procs.pick_ports(cfg.port_base, 1)[0]
    proc = procs.Proc("ws-echo", [tools["ws-echo"], "--listen", f"127.0.0.1:{port}",
                                  "--threads", str(cfg.backend_workers)],
                      cpus=cfg.backend_cpus, log_path=os.path.join(tmp, "ws-echo.log"))
    procs.wait_ready(proc, port, "/bytes/13")
    return targets.Target("ws-echo", port, proc)


def start_proxy(name, backend, cfg, d, tools):
    """One proxy for the WebSocket scenarios in d; RuntimeError (with its log) if it fails."""
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    port = procs.pick_ports(cfg.port_base, 1)[0]
    return targets.start_target(name, port, backend.port, cfg, d, tools, extra(name),
                                nginx_kind="ws")


class Holder:
    """`ws-load idle`: opens n tunnels, checks each with one echo, prints WSIDLE {...} and
    holds them silent until release() (a line on its stdin); ended by PID if it hangs."""

    def __init__(self, url, n, cfg, tools):
        argv = [tools["ws-load"], "idle", url, "--connections", str(n), "--size",
                str(cfg.ws_size)]
        if cfg.loadgen_cpus:
            argv = ["taskset", "-c", cfg.loadgen_cpus] + argv
        self.child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)

    def wait_open(self, timeout=OPEN_TIMEOUT):
        """The WSIDLE summary once every tunnel is open (or failed); RuntimeError if none."""
        deadline = time.monotonic() + timeout
        out = self.child.stdout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = out.readline().decode(errors="replace")
            if not line:
                err = self.child.stderr.read().decode(errors="replace")
                raise RuntimeError(f"ws-load idle exited: {err[-600:]}")
            if line.startswith("WSIDLE "):
                return json.loads(line[len("WSIDLE "):])
        raise RuntimeError(f"ws-load idle: tunnels not open after {timeout} s")

    def release(self):
        """Close every tunnel: a line on stdin, then wait (bounded), then SIGKILL by PID."""
        try:
            self.child.stdin.write(b"\n")
            self.child.stdin.close()
        except OSError:
            pass
        try:
            self.child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait(timeout=5)


def measure_idle(target, cfg, tools):
    """Memory per idle tunnel through target (its processes: nginx master and workers)."""
    url = f"ws://127.0.0.1:{target.port}{PATH}"
    warm = Holder(url, WARM_TUNNELS, cfg, tools)
    try:
        warm.wait_open()
    finally:
        warm.release()
    time.sleep(SETTLE)
    pids = target.proc.pids()
    rss0, pss0 = procs.rss_kib(pids), procs.pss_kib(pids)
    h = Holder(url, cfg.idle_tunnels, cfg, tools)
    try:
        info = h.wait_open()
        time.sleep(SETTLE)
        pids = target.proc.pids()
        rss1, pss1 = procs.rss_kib(pids), procs.pss_kib(pids)
    finally:
        h.release()
    time.sleep(SETTLE)
    rss2 = procs.rss_kib(target.proc.pids())
    if not target.proc.alive():
        return {"failed": "died: " + target.proc.log_tail(5)}
    n = info["open"]
    if n == 0:
        return {"failed": f"no tunnel opened ({info['first_error']})"}
    return {
        "open": n, "errors": info["errors"], "error_kinds": info["error_kinds"],
        "first_error": info["first_error"], "open_seconds": info["seconds"],
        "rss_before_kib": rss0, "rss_open_kib": rss1, "rss_closed_kib": rss2,
        "pss_before_kib": pss0, "pss_open_kib": pss1, "pids": len(pids),
        "bytes_per_tunnel": (rss1 - rss0) * 1024 / n,
        "pss_bytes_per_tunnel": (pss1 - pss0) * 1024 / n,
    }


def idle_rounds(names, backend, cfg, tmp, tools):
    """ws-idle, interleaved rounds; each proxy freshly started for each of its runs (so what
    an earlier load left in its allocator does not absorb the tunnels); `direct` is a fresh
    ws-echo of its own each run (the backend's memory per connection, for scale)."""
    d = os.path.join(tmp, "ws-idle")
    runs = {n: [] for n in names}
    total, done = cfg.rounds * len(names), 0
    for rnd in range(cfg.rounds):
        k = rnd % len(names)
        for name in names[k:] + names[:k]:
            done += 1
            t = None
            try:
                t = (start_backend(cfg, d, tools) if name == "direct" else
                     start_proxy(name, backend, cfg, d, tools))
                r = measure_idle(t, cfg, tools)
            except RuntimeError as e:
                print(f"bench: {name}, {WS_IDLE}: {e}", flush=True)
                r = {"failed": str(e)[-600:]}
            finally:
                if t is not None:
                    t.proc.stop()
            runs[name].append(r)
            msg = "FAILED" if "failed" in r else (
                f"{r['open']:>6} open  RSS {r['rss_before_kib'] / 1024:6.1f} → "
                f"{r['rss_open_kib'] / 1024:6.1f} MiB  {r['bytes_per_tunnel']:8,.0f} B/tunnel"
                f"  (PSS {r['pss_bytes_per_tunnel']:8,.0f})  errors {r['errors']}")
            print(f"[{done:>3}/{total}] {WS_IDLE:<9} round {rnd + 1} {name:<12} {msg}",
                  flush=True)
    return runs


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarise(runs, subject="dito", peers=("nginx", "haproxy")):
    out = {}
    for name, rs in runs.items():
        ok = [r for r in rs if "failed" not in r]
        s = {k: _med([r[k] for r in ok]) for k in (
            "open", "bytes_per_tunnel", "pss_bytes_per_tunnel", "rss_before_kib",
            "rss_open_kib", "rss_closed_kib")}
        s.update(rounds=len(ok), failed_rounds=len(rs) - len(ok),
                 errors=sum(r["errors"] for r in ok), ratios={})
        out[name] = s
    for peer in peers:
        if subject in runs and peer in runs:
            per = [a["bytes_per_tunnel"] / b["bytes_per_tunnel"]
                   for a, b in zip(runs[subject], runs[peer])
                   if "failed" not in a and "failed" not in b and b["bytes_per_tunnel"] > 0]
            out[subject]["ratios"][peer] = {"median": _med(per), "per_round": per,
                                            "min": min(per) if per else None,
                                            "max": max(per) if per else None}
    return out


def markdown(summary, cfg, subject="dito"):
    def b(x):
        return "–" if x is None else f"{x:,.0f} B"

    def mib(x):
        return "–" if x is None else f"{x / 1024:.1f} MiB"

    lines = [f"#### Memory per open idle WebSocket tunnel ({WS_IDLE})", "",
             f"{cfg.idle_tunnels} tunnels opened through a freshly started proxy ("
             f"{WARM_TUNNELS} opened and closed first), each checked with one {cfg.ws_size} B "
             f"echo, then silent; RSS = VmRSS summed over the proxy's processes "
             f"{SETTLE:.0f} s after the last tunnel opened; per tunnel = (RSS open − RSS "
             "before) ÷ tunnels open; PSS the same with Pss. Medians over "
             f"{cfg.rounds} interleaved rounds. `direct` is a fresh ws-echo (the backend) itself. "
             "Kernel socket buffers are not in RSS.", "",
             "| target | tunnels open | RSS before | RSS open | RSS after closing | "
             "per tunnel (RSS) | per tunnel (PSS) | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        err = str(s["errors"]) + (f"; FAILED in {s['failed_rounds']} round(s)"
                                  if s["failed_rounds"] else "")
        opened = "–" if s["open"] is None else f"{s['open']:,.0f}"
        lines.append(f"| {name} | {opened} | {mib(s['rss_before_kib'])} | "
                     f"{mib(s['rss_open_kib'])} | {mib(s['rss_closed_kib'])} | "
                     f"{b(s['bytes_per_tunnel'])} | {b(s['pss_bytes_per_tunnel'])} | {err} |")
    rat = summary.get(subject, {}).get("ratios", {})
    cells = [f"÷ {p}: {r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f}), per round " +
             ", ".join(f"{x:.2f}" for x in r["per_round"])
             for p, r in rat.items() if r["median"] is not None]
    if cells:
        lines += ["", f"{subject} per-tunnel RSS " + "; ".join(cells) +
                  " (lower is better; goal ≤ 1 against nginx)."]
    return "\n".join(lines) + "\n"
