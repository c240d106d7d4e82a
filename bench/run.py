#!/usr/bin/env python3
"""Dito's benchmark: Dito beside nginx and HAProxy, in front of the same backend, on the same
cores, in the same run. See bench/README.md. Every option also reads an environment variable
(the name in capitals, e.g. LAYOUT=pinned), so `make bench LAYOUT=pinned` works.

    python3 bench/run.py                 # full run (make bench)
    python3 bench/run.py --quick         # ka-small, ka-16k, ka-small-tls-up, ka-small-tls,
                                         # 2 rounds (make bench-quick)
    python3 bench/run.py --compare-backends   # dito-echo vs nginx as the origin (the floor)
    python3 bench/run.py --reload        # failed requests while reloading (make bench-reload)
    python3 bench/run.py --ws            # WebSocket echo messages/s and memory per idle
                                         # tunnel (make bench-ws)
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import load, procs, reload, report, targets, tls, ws  # noqa: E402

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)

# name -> (path, close the connection after each request, description)
SCENARIOS = {
    "ka-small": ("/bytes/13", False, "keep-alive, 13 B body"),
    "ka-16k": ("/bytes/16384", False, "keep-alive, 16 KiB body"),
    "ka-1m": ("/bytes/1048576", False, "keep-alive, 1 MiB body"),
    "new-conn": ("/bytes/13", True, "one new connection per request (Connection: close), 13 B"),
    "ka-small-tls-up": ("/bytes/13", False,
                        "keep-alive, 13 B body, client → proxy plain HTTP, proxy → origin "
                        "HTTPS (TLS 1.3, the run's own CA, verified; pooled connections, "
                        "sessions reused); `direct` is wrk over HTTPS to the origin's TLS port"),
    "ka-small-tls": ("/bytes/13", False,
                     "keep-alive, 13 B body, client → proxy HTTPS HTTP/1.1 (TLS 1.3, the "
                     "run's EC P-256 certificate on every proxy), proxy → origin plain HTTP; "
                     "`direct` is wrk over HTTPS to the origin's TLS port"),
    "ka-small-h2": ("/bytes/13", False,
                    "13 B body, client → proxy HTTPS HTTP/2 (ALPN h2, TLS 1.3, the run's EC "
                    "P-256 certificate), h2load -c {h2c} -m {h2m} -t {thr} (p50/p99 from its "
                    "per-request log), proxy → origin plain HTTP/1.1; `direct` is h2load to the "
                    "origin's HTTP/2 TLS port"),
    ws.WS_ECHO: ("/ws", False,
                 "WebSocket echo through the proxy's tunnel to ws-echo (bench/ws): {c} "
                 "connections, each with exactly one {size} B binary message in flight (send, "
                 "wait for the echo, repeat); req/s = messages/s, CPU µs/req = per message, "
                 "p50/p99 = round trip of one message"),
}
# Scenarios whose proxies reach the origin over HTTPS: they get proxies of their own (in
# tls-up/ under the temp dir) and need the nginx origin, which then also listens with TLS.
TLS_UP = ("ka-small-tls-up",)
# Scenarios whose proxies terminate TLS (LISTEN_TLS) and reach the origin over plain HTTP: they
# get proxies of their own too (tls-down/), and the nginx origin, whose TLS ports are `direct`.
TLS_DOWN = ("ka-small-tls", "ka-small-h2")
H2 = ("ka-small-h2",)  # measured with h2load (HTTP/2), whatever LOADGEN says
# WebSocket scenarios (harness/ws.py): their own backend (ws-echo) and proxies; ws-echo is
# measured with ws-load, ws-idle is the memory per idle tunnel. Not in the default list.
WS = (ws.WS_ECHO,)
WS_SCENARIOS = f"{ws.WS_ECHO},{ws.WS_IDLE}"
TLS_ANY = TLS_UP + TLS_DOWN
QUICK_SCENARIOS = "ka-small,ka-16k,ka-small-tls-up,ka-small-tls"
RELOAD = "reload"  # the reload-under-load scenario (harness/reload.py); not in the default list
DEFAULT_BACKEND = "nginx"  # faster than dito-echo as the origin here: bench/README.md
LAYOUTS = {  # LAYOUT -> (load generator cpus, proxy cpus, backend cpus); "" = float
    "unpinned": ("", "", ""),
    "pinned": ("0", "1", "1"),
}


HARNESS_FILES = ("run.py", "setup.sh", "harness", "peers", "*.md", ".gitignore")
ENV_NAMES = []  # every environment variable an option reads


def env(name, default):
    ENV_NAMES.append(name.upper())
    return os.environ.get(name.upper(), default)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--quick", action="store_true", default=env("bench_quick", "") not in ("", "0"),
      help=f"{QUICK_SCENARIOS}, 2 rounds, shorter runs (BENCH_QUICK=1)")
    a("--compare-backends", action="store_true",
      help="measure dito-echo and nginx as origins (direct, no proxy) instead")
    a("--reload", action="store_true", default=env("bench_reload", "") not in ("", "0"),
      help="the reload scenario only: dito,nginx,haproxy, 1 round of 10 s (BENCH_RELOAD=1)")
    a("--observe-cost", action="store_true",
      default=env("bench_observe", "") not in ("", "0"),
      help="what metrics + access lines cost: dito vs dito-observed, ka-small, 10 rounds "
           "(BENCH_OBSERVE=1)")
    a("--ws", action="store_true", default=env("bench_ws", "") not in ("", "0"),
      help=f"the WebSocket scenarios only: {WS_SCENARIOS} (BENCH_WS=1)")
    a("--scenarios", default=env("scenarios", ""),
      help=f"comma list of {','.join(SCENARIOS)},{ws.WS_IDLE},{RELOAD} (default all but "
           f"{RELOAD} and the WebSocket ones; quick: {QUICK_SCENARIOS}; --reload: {RELOAD}; "
           f"--ws: {WS_SCENARIOS})")
    a("--targets", default=env("targets", ""),
      help="default direct,dito,nginx,haproxy (--reload: dito,nginx,haproxy)")
    a("--rounds", type=int, default=int(env("rounds", 0)) or None,
      help="default 3, quick 2, --reload 1")
    a("--duration", type=int, default=int(env("duration", 0)) or None,
      help="seconds measured per run (default 8, quick 5, --reload 10)")
    a("--reload-interval", type=float, default=float(env("reload_interval", 1.0)),
      help="seconds between reloads in the reload scenario (default 1)")
    a("--warmup", type=int, default=int(env("warmup", -1)), help="seconds (default 2, quick 1)")
    a("--connections", type=int, default=int(env("connections", 64)),
      help="client connections (wrk, oha); not ka-small-h2's, see --h2-connections")
    a("--ws-size", type=int, default=int(env("ws_size", 32)),
      help="ws-echo, ws-idle: WebSocket message payload in bytes")
    a("--idle-tunnels", type=int, default=int(env("idle_tunnels", 2000)),
      help="ws-idle: tunnels held open through each proxy")
    a("--h2-connections", type=int, default=int(env("h2_connections", 16)),
      help="ka-small-h2: h2load connections (-c)")
    a("--h2-streams", type=int, default=int(env("h2_streams", 8)),
      help="ka-small-h2: requests in flight per connection (h2load -m)")
    a("--layout", default=env("layout", "unpinned"), choices=sorted(LAYOUTS))
    a("--loadgen-cpus", default=env("loadgen_cpus", None), help="taskset list, overrides layout")
    a("--proxy-cpus", default=env("proxy_cpus", None))
    a("--backend-cpus", default=env("backend_cpus", None))
    a("--workers", type=int, default=int(env("workers", 2)), help="every proxy's workers")
    a("--backend-workers", type=int, default=int(env("backend_workers", 1)))
    a("--backend", default=env("backend", DEFAULT_BACKEND), choices=("echo", "nginx"))
    a("--io-driver", default=env("io_driver", "auto"), choices=("auto", "uring", "epoll"))
    a("--pin-workers", default=env("dito_pin_workers", "false"),
      choices=("auto", "true", "false"), help="Dito's pin_workers (DITO_PIN_WORKERS)")
    a("--loadgen", default=env("loadgen", "wrk"), choices=("wrk", "oha"))
    a("--wrk-threads", type=int, default=int(env("wrk_threads", 1)))
    a("--port-base", type=int, default=int(env("port_base", 20400)))
    a("--bin-dir", default=env("bin_dir", os.path.join(ROOT, "target", "release")))
    a("--base-bin-dir", default=env("base_bin_dir", None),
      help="another build's directory for the target dito-base (the same config), to measure "
           "a change against the build before it in the same rounds (BASE_BIN_DIR)")
    a("--out", default=env("bench_out", os.path.join(BENCH, "out")))
    a("--keep-tmp", action="store_true", help="keep the rendered configs and logs")
    c = p.parse_args(argv)
    if c.ws and (c.quick or c.reload or c.compare_backends or c.observe_cost):
        p.error("--ws runs alone (SCENARIOS=ka-small,ws-echo combines them)")
    if c.ws:
        c.scenarios = c.scenarios or WS_SCENARIOS
    if c.reload and c.quick:
        p.error("--reload and --quick do not combine (SCENARIOS=ka-small,reload does)")
    if c.observe_cost and (c.quick or c.reload or c.compare_backends):
        p.error("--observe-cost runs alone")
    if c.observe_cost:
        c.scenarios = c.scenarios or "ka-small"
        c.targets = c.targets or "dito,dito-observed"
        c.rounds = c.rounds or 10
    c.rounds = c.rounds or (2 if c.quick else 1 if c.reload else 3)
    c.duration = c.duration or (5 if c.quick else 10 if c.reload else 8)
    c.warmup = c.warmup if c.warmup >= 0 else (1 if c.quick else 2)
    explicit = bool(c.scenarios)
    c.scenarios = [s for s in (c.scenarios or (
        QUICK_SCENARIOS if c.quick else RELOAD if c.reload else
        ",".join(s for s in SCENARIOS if s not in WS))
    ).split(",") if s]
    for s in c.scenarios:
        if s not in SCENARIOS and s not in (RELOAD, ws.WS_IDLE):
            p.error(f"unknown scenario {s!r}")
    if c.compare_backends and any(s in WS or s == ws.WS_IDLE for s in c.scenarios):
        p.error("--compare-backends has no WebSocket scenario")
    if not (0 <= c.ws_size <= 1 << 20 and 1 <= c.idle_tunnels <= 20000):
        p.error("--ws-size: 0 to 1048576 bytes; --idle-tunnels: 1 to 20000")
    if RELOAD in c.scenarios and c.compare_backends:
        p.error(f"--compare-backends has no {RELOAD} scenario")
    tls_sc = [s for s in c.scenarios if s in TLS_ANY]
    if tls_sc and (c.compare_backends or c.backend != "nginx"):
        why = "--compare-backends" if c.compare_backends else f"BACKEND={c.backend}"
        if explicit:
            p.error(f"{tls_sc[0]} needs the nginx origin (its TLS ports): not with {why}")
        print(f"bench: {', '.join(tls_sc)} skipped with {why} (they need the nginx origin)")
        c.scenarios = [s for s in c.scenarios if s not in TLS_ANY]
    if not (1 <= c.h2_connections <= 10000 and 1 <= c.h2_streams <= 100):
        p.error("--h2-connections: 1 to 10000; --h2-streams: 1 to 100 (HAProxy's default "
                "concurrent-stream limit; Dito's and nginx's is 128)")
    if not 0.1 <= c.reload_interval <= 60:
        p.error("--reload-interval: 0.1 to 60 seconds")
    default_targets = "dito,nginx,haproxy" if c.reload else "direct,dito,nginx,haproxy"
    if c.base_bin_dir and not (c.reload or c.observe_cost or c.ws):
        default_targets += ",dito-base"
    c.targets = [t for t in (c.targets or default_targets).split(",") if t]
    if "dito-base" in c.targets and not c.base_bin_dir:
        p.error("the target dito-base needs --base-bin-dir (BASE_BIN_DIR)")
    if c.base_bin_dir and not os.access(os.path.join(c.base_bin_dir, "dito"), os.X_OK):
        p.error(f"--base-bin-dir: no executable {c.base_bin_dir}/dito")
    lg, px, be = LAYOUTS[c.layout]
    c.loadgen_cpus = c.loadgen_cpus if c.loadgen_cpus is not None else lg
    c.proxy_cpus = c.proxy_cpus if c.proxy_cpus is not None else px
    c.backend_cpus = c.backend_cpus if c.backend_cpus is not None else be
    c.rounds = max(1, min(c.rounds, 20))  # every loop bounded
    return c


def sh(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                              cwd=ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def find_tools(cfg):
    tools_dir = os.path.join(BENCH, ".tools")
    ws_only = all(sc in WS or sc == ws.WS_IDLE for sc in cfg.scenarios)
    need = ["taskset"] + ([] if ws_only else [cfg.loadgen])  # ws-load is checked below
    if cfg.backend == "nginx" or "nginx" in cfg.targets or cfg.compare_backends:
        need.append("nginx")
    if "haproxy" in cfg.targets and not cfg.compare_backends:
        need.append("haproxy")
    if any(sc in TLS_ANY for sc in cfg.scenarios):
        need.append("openssl")  # the run's CA and the server certificate (harness/tls.py)
    if any(sc in H2 for sc in cfg.scenarios):
        need.append("h2load")
    tools = {}
    if any(sc in WS or sc == ws.WS_IDLE for sc in cfg.scenarios):
        for exe in ("ws-echo", "ws-load"):  # bench/ws
            tools[exe] = os.path.join(cfg.bin_dir, exe)
            if not os.access(tools[exe], os.X_OK):
                sys.exit(f"bench: {tools[exe]} missing; run cargo build --release --workspace")
    for name in need:
        tools[name] = targets.find_tool(name, tools_dir)
        if not tools[name]:
            sys.exit(f"bench: {name} not found; run bench/setup.sh")
    for exe in ("dito", "dito-echo"):
        if not os.access(os.path.join(cfg.bin_dir, exe), os.X_OK):
            sys.exit(f"bench: {cfg.bin_dir}/{exe} missing; run cargo build --release --workspace")
    return tools


def versions(cfg, tools):
    v = {"dito": targets.version([os.path.join(cfg.bin_dir, "dito"), "--version"])}
    for name, argv in (("wrk", ["-v"]), ("oha", ["--version"]), ("nginx", ["-v"]),
                       ("haproxy", ["-v"]), ("openssl", ["version"]),
                       ("h2load", ["--version"])):
        if name in tools:
            v[name] = targets.version([tools[name]] + argv)
    return v


def measure(target, sc, cfg, tools):
    """One run of scenario sc against target: warm-up, then the measured run."""
    path, close, _ = SCENARIOS[sc]
    backend = target.backend
    if not target.proc.alive() or not backend.proc.alive():
        return {"failed": "process not running"}
    pids, bpids = target.proc.pids(), backend.proc.pids()
    rss_reset = procs.reset_peak_rss(pids)
    url = target.url(path)
    tool, conns, streams = (("h2load", cfg.h2_connections, cfg.h2_streams) if sc in H2 else
                            ("ws-load", cfg.connections, cfg.ws_size) if sc in WS else
                            (cfg.loadgen, cfg.connections, None))
    if sc in WS:
        url = "ws" + url[len("http"):]
    try:
        if cfg.warmup:
            load.run(tool, url, conns, cfg.warmup, cfg.wrk_threads, close, cfg.loadgen_cpus,
                     tools, streams)
        c0, b0 = procs.cpu_seconds(pids), procs.cpu_seconds(bpids)
        r = load.run(tool, url, conns, cfg.duration, cfg.wrk_threads, close, cfg.loadgen_cpus,
                     tools, streams)
        c1, b1 = procs.cpu_seconds(pids), procs.cpu_seconds(bpids)
    except load.LoadFailed as e:
        print(f"bench: {target.name}, {sc}: {e}")
        return {"failed": str(e)}
    if not target.proc.alive():
        print(f"bench: {target.name} died during {sc}:\n{target.proc.log_tail()}")
        return {"failed": "died during the run: " + target.proc.log_tail(5)}
    n = max(r["requests"], 1)
    r.update(cpu_s=c1 - c0, cpu_us_per_req=(c1 - c0) / n * 1e6,
             backend_cpu_s=b1 - b0, backend_cpu_us_per_req=(b1 - b0) / n * 1e6,
             rss_kib=procs.peak_rss_kib(pids), pss_kib=procs.pss_kib(pids),
             rss_reset=rss_reset, pids=len(pids))
    return r


def run_rounds(tlist, cfg, tools, scenarios):
    """Interleaved rounds: round k starts at the k-th target (A B C D, B C D A, ...)."""
    runs = {sc: {t.name: [] for t in tlist} for sc in scenarios}
    total = len(scenarios) * cfg.rounds * len(tlist)
    done = 0
    for sc in scenarios:
        for rnd in range(cfg.rounds):
            k = rnd % len(tlist)
            for t in tlist[k:] + tlist[:k]:
                done += 1
                r = measure(t, sc, cfg, tools)
                runs[sc][t.name].append(r)
                msg = "FAILED" if "failed" in r else (
                    f"{r['rps']:>10,.0f} req/s  p99 {r['p99_us'] / 1000:6.2f} ms  "
                    f"cpu {r['cpu_us_per_req']:5.1f} µs/req  errors {r['errors']}")
                print(f"[{done:>3}/{total}] {sc:<9} round {rnd + 1} {t.name:<12} {msg}",
                      flush=True)
                time.sleep(0.3)
    return runs


def start_own_proxies(cfg, d, tools, scenarios, upstream_port, extra_of, client_tls=None,
                      nginx_kind="proxy"):
    """Every proxy of cfg.targets (not `direct`) started in d for `scenarios`, in front of the
    origin's upstream_port, with the placeholders extra_of(name); returns (targets, failed),
    failed = {name: why} for a proxy that could not start (printed with its log; the caller
    reports it as failed in every round and the others still run)."""
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    names = [n for n in cfg.targets if n != "direct"]
    port_of = dict(zip(names, procs.pick_ports(cfg.port_base, len(names)) if names else []))
    started, failed = [], {}
    try:
        for name in names:
            try:
                started.append(targets.start_target(name, port_of[name], upstream_port, cfg, d,
                                                    tools, extra_of(name), client_tls,
                                                    nginx_kind))
            except RuntimeError as e:
                print(f"bench: {name} did not start for {', '.join(scenarios)}; its runs "
                      f"there are marked failed:\n{e}", flush=True)
                failed[name] = f"did not start: {str(e)[-600:]}"
    except BaseException:
        for t in started:
            t.proc.stop()
        raise
    return started, failed


def _fill_failed(cfg, got, failed, scenarios):
    return {sc: {n: got.get(sc, {}).get(n) or [{"failed": failed.get(n, "not run")}] *
                 cfg.rounds for n in cfg.targets} for sc in scenarios}


def run_tls_up(cfg, backend, material, tmp, tools, scenarios, meta):
    """The TLS_UP scenarios on targets of their own, started in tmp/tls-up and ended when they
    are done: each proxy reaches the origin's TLS port over HTTPS (targets.upstream_tls);
    `direct` is that port itself, measured over HTTPS. A proxy that cannot start (a Dito
    without https targets) is reported as failed in every round; the others still run."""
    d = os.path.join(tmp, "tls-up")
    proxies, failed = start_own_proxies(cfg, d, tools, scenarios, backend.tls_port,
                                        lambda name: targets.upstream_tls(name, material))
    try:
        by_name = {t.name: t for t in proxies}
        if "direct" in cfg.targets:
            by_name["direct"] = targets.Target("direct", backend.tls_port, backend.proc,
                                               scheme="https")
        tlist = [by_name[n] for n in cfg.targets if n in by_name]
        for t in tlist:
            t.backend = backend
        print(f"bench: {', '.join(scenarios)}: origin TLS on :{backend.tls_port}; " +
              ", ".join(f"{t.name} on :{t.port}" for t in tlist), flush=True)
        if not meta.get("dito_startup"):
            meta["dito_startup"] = targets.dito_startup_lines(d)
        got = run_rounds(tlist, cfg, tools, scenarios) if tlist else {}
        return _fill_failed(cfg, got, failed, scenarios)
    finally:
        for t in proxies:
            t.proc.stop()


def run_tls_down(cfg, backend, material, tmp, tools, scenarios, meta):
    """The TLS_DOWN scenarios on proxies of their own (tmp/tls-down), each listening with TLS
    only (targets.listen_tls: the run's certificate, TLS 1.3, ALPN h2 and http/1.1) and
    reaching the origin's plain port, ended when they are done. The same proxies serve both
    scenarios; `direct` is the origin's TLS port (ka-small-tls, HTTP/1.1) or its HTTP/2 TLS port
    (ka-small-h2). Before any load, one handshake per proxy offering h2 and http/1.1 records
    what it negotiates (meta["tls_down"]); a proxy that does not choose h2 is still measured,
    and fails in ka-small-h2 (h2load offers h2 only)."""
    d = os.path.join(tmp, "tls-down")
    proxies, failed = start_own_proxies(cfg, d, tools, scenarios, backend.port,
                                        lambda name: targets.listen_tls(name, material),
                                        procs.tls_client(material.ca))
    try:
        meta.setdefault("tls_down", {})
        for t in proxies:
            t.backend = backend
            try:
                info = procs.tls_handshake(t.port, material.ca, ("h2", "http/1.1"))
            except OSError as e:
                info = {"error": str(e)}
            meta["tls_down"][t.name] = info
            print(f"bench: {t.name} on :{t.port} (TLS): " + (
                f"{info['version']}, {info['cipher']}, ALPN {info['alpn']}"
                if "error" not in info else f"handshake failed: {info['error']}"), flush=True)
        if not meta.get("dito_startup"):
            meta["dito_startup"] = targets.dito_startup_lines(d)
        got = {}
        for sc in scenarios:
            tlist = []
            for name in cfg.targets:
                if name == "direct":
                    port = backend.h2_port if sc in H2 else backend.tls_port
                    t = targets.Target("direct", port, backend.proc, scheme="https")
                    t.backend = backend
                    tlist.append(t)
                else:
                    tlist += [p for p in proxies if p.name == name]
            print(f"bench: {sc}: " + ", ".join(f"{t.name} on :{t.port}" for t in tlist) +
                  (f" (h2load -c {cfg.h2_connections} -m {cfg.h2_streams} -t "
                   f"{cfg.wrk_threads})" if sc in H2 else ""), flush=True)
            if tlist:
                got.update(run_rounds(tlist, cfg, tools, [sc]))
        # What h2load itself negotiated (its cipher list differs from the probe's).
        for sc in scenarios:
            for name, rs in got.get(sc, {}).items():
                seen = {" ".join(r["raw"]["tls"].get(k, "?") for k in
                                 ("TLS Protocol", "Cipher", "Server Temp Key"))
                        for r in rs if "tls" in r.get("raw", {})}
                if seen:
                    meta.setdefault("h2load_tls", {})[name] = sorted(seen)
        return _fill_failed(cfg, got, failed, scenarios)
    finally:
        for t in proxies:
            t.proc.stop()


def run_ws(cfg, tmp, tools, scenarios, meta):
    """The WebSocket scenarios (harness/ws.py) on a backend (ws-echo) and proxies of their own,
    ended when they are done: ws-echo through run_rounds like the others (`direct` = ws-echo
    itself), then ws-idle, which starts each proxy afresh for each of its runs. Returns
    (runs of ws-echo, ws-idle runs or None)."""
    backend = ws.start_backend(cfg, tmp, tools)
    backend.backend = backend
    try:
        echo_runs, idle_runs = {}, None
        echo = [sc for sc in scenarios if sc in WS]
        if echo:
            d = os.path.join(tmp, "ws")
            proxies, failed = start_own_proxies(cfg, d, tools, echo, backend.port, ws.extra,
                                                nginx_kind="ws")
            try:
                by_name = {t.name: t for t in proxies}
                by_name["direct"] = targets.Target("direct", backend.port, backend.proc)
                tlist = [by_name[n] for n in cfg.targets if n in by_name]
                for t in tlist:
                    t.backend = backend
                print(f"bench: {', '.join(echo)}: ws-echo on :{backend.port}; " +
                      ", ".join(f"{t.name} on :{t.port}" for t in tlist), flush=True)
                if not meta.get("dito_startup"):
                    meta["dito_startup"] = targets.dito_startup_lines(d)
                got = run_rounds(tlist, cfg, tools, echo) if tlist else {}
                echo_runs = _fill_failed(cfg, got, failed, echo)
            finally:
                for t in proxies:
                    t.proc.stop()
        if ws.WS_IDLE in scenarios:
            print(f"bench: {ws.WS_IDLE}: {cfg.idle_tunnels} idle tunnels through each of "
                  f"{', '.join(cfg.targets)} (each proxy started afresh per run)", flush=True)
            idle_runs = ws.idle_rounds(list(cfg.targets), backend, cfg, tmp, tools)
        return echo_runs, idle_runs
    finally:
        backend.proc.stop()


def run_reload(cfg, backend, tmp, tools, meta):
    """The reload scenario, on proxies of its own (harness/reload.py), ended when it is done."""
    skipped = [n for n in cfg.targets if n not in reload.KINDS]
    rlist = reload.start(cfg.targets, backend, cfg, tmp, tools)
    print("bench: reload scenario: " + ", ".join(f"{r.name} on :{r.t.port}" for r in rlist) +
          (f" ({', '.join(skipped)}: nothing to reload, skipped)" if skipped else ""),
          flush=True)
    if not meta.get("dito_startup"):
        meta["dito_startup"] = targets.dito_startup_lines(os.path.join(tmp, "reload"))
    try:
        return reload.run_rounds(rlist, cfg, tools) if rlist else {}
    finally:
        for r in rlist:
            r.t.proc.stop()


def describe(cfg, backend_name, proxies=True, origin=True):
    lay = cfg.layout
    if any((cfg.loadgen_cpus, cfg.proxy_cpus, cfg.backend_cpus)):
        lay += (f" (load generator cpus {cfg.loadgen_cpus or 'any'}, proxies "
                f"{cfg.proxy_cpus or 'any'}, backend {cfg.backend_cpus or 'any'})")
    lg = f"{cfg.loadgen} ({cfg.wrk_threads} thread)" if cfg.loadgen == "wrk" else cfg.loadgen
    if not origin:  # only the WebSocket scenarios
        lg = f"ws-load ({cfg.wrk_threads} thread)"
    text = (f"Layout {lay}; {lg} × {cfg.connections} connections; {cfg.duration} s runs "
            f"after {cfg.warmup} s warm-up, {cfg.rounds} interleaved rounds, medians; ")
    if proxies:
        text += (f"proxies with {cfg.workers} workers (Dito io_driver {cfg.io_driver}, "
                 f"pin_workers {cfg.pin_workers}); ")
    ngx = f"nginx serving files ({cfg.backend_workers} worker)"
    echo = "dito-echo (a thread per connection)"
    if not proxies:
        return text + f"origins {echo} and {ngx}, each measured alone."
    plural = "s" if cfg.backend_workers > 1 else ""
    wsb = (f"ws-echo (bench/ws, {cfg.backend_workers} thread{plural}, one single-threaded "
           "tokio runtime each)")
    if not origin:
        text += f"backend {wsb}"
    else:
        text += f"backend {ngx if backend_name == 'nginx' else echo}"
        if any(sc in WS or sc == ws.WS_IDLE for sc in cfg.scenarios):
            text += f" (WebSocket scenarios: {wsb}, load from ws-load)"
    if any(sc in WS or sc == ws.WS_IDLE for sc in cfg.scenarios):
        text += ("; WebSocket proxying: Dito `enable_websocket: true` with a `ws://` target, "
                 "nginx `proxy_http_version 1.1` + `Upgrade`/`Connection \"upgrade\"` + "
                 "`proxy_read_timeout 3600s`, HAProxy `mode http` + `timeout tunnel 1h`")
    if any(sc in TLS_UP for sc in cfg.scenarios):
        text += (", also over TLS 1.3 on a second port (EC P-256 certificate for 127.0.0.1 and "
                 "localhost from a CA made for this run)")
    text += "."
    if any(sc in TLS_DOWN for sc in cfg.scenarios):
        text += (" In " + ", ".join(sc for sc in TLS_DOWN if sc in cfg.scenarios) +
                 " every proxy terminates TLS 1.3 with the same EC P-256 certificate (the "
                 "run's CA) and offers ALPN h2, http/1.1")
        if any(sc in H2 for sc in cfg.scenarios):
            text += (f"; HTTP/2 load: h2load, {cfg.h2_connections} connections × "
                     f"{cfg.h2_streams} streams, {cfg.wrk_threads} thread")
        text += "."
    return text


def scenario_doc(sc, cfg):
    doc = SCENARIOS[sc][2]
    if sc in H2:
        doc = doc.format(h2c=cfg.h2_connections, h2m=cfg.h2_streams, thr=cfg.wrk_threads)
    if sc in WS:
        doc = doc.format(c=cfg.connections, size=cfg.ws_size)
    return doc


def negotiated(meta):
    """What each TLS-terminating proxy negotiated with a client offering h2, http/1.1."""
    info = meta.get("tls_down") or {}
    if not info:
        return ""
    parts = [f"{n}: " + (f"{i['version']}, {i['cipher']}, ALPN {i['alpn']}"
                         if "error" not in i else f"handshake failed ({i['error']})")
             for n, i in info.items()]
    text = ("Negotiated by the TLS-terminating proxies (one handshake offering h2, http/1.1, "
            "Python's default suites): " + "; ".join(parts) + ".")
    h2 = meta.get("h2load_tls") or {}
    if h2:
        text += " h2load got: " + "; ".join(f"{n}: {', '.join(v)}" for n, v in h2.items()) + "."
    return text


def main(argv):
    cfg = parse_args(argv)
    tools = find_tools(cfg)
    procs.install_signal_handlers()
    started = datetime.datetime.now()
    meta = {
        "date": started.strftime("%Y-%m-%d %H:%M"),
        # -dirty: uncommitted changes to what is built (the harness itself does not count)
        "commit": sh(["git", "rev-parse", "--short", "HEAD"]) + (
            "-dirty" if sh(["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
                           + [f":(exclude)bench/{p}" for p in HARNESS_FILES]) else ""),
        "machine": f"{os.cpu_count()} cpus (nproc {sh(['nproc'])}), Linux "
                   f"{platform.release()}, {platform.machine()}",
        "loadavg_start": loadavg(),
        "command": " ".join(["python3", "bench/run.py"] + argv) if argv else
        "python3 bench/run.py",
        "config": {k: v for k, v in vars(cfg).items()},
        "versions": versions(cfg, tools),
    }
    if os.environ.get("BENCH_COMMAND"):  # set by the Makefile: name the make target
        meta["command"] = " ".join(
            [f"{k}={os.environ[k]}" for k in ENV_NAMES if k in os.environ] +
            [os.environ["BENCH_COMMAND"]])
    reload_runs = idle_runs = None
    tmp = tempfile.mkdtemp(prefix="dito-bench-")
    os.chmod(tmp, 0o755)  # nginx workers run as nobody and read www/ from here
    try:
        if cfg.compare_backends:
            ports = procs.pick_ports(cfg.port_base, 2)
            echo = targets.start_backend("echo", ports[0], cfg, tmp, tools)
            ngx = targets.start_backend("nginx", ports[1], cfg, tmp, tools)
            print(f"bench: dito-echo on :{ports[0]}, nginx-origin on :{ports[1]}", flush=True)
            echo.backend, ngx.backend = echo, ngx  # each origin is charged alone
            tlist, refs, subject, peers = [echo, ngx], ["nginx-origin"], None, ()
            runs = run_rounds(tlist, cfg, tools, cfg.scenarios)
            meta["title"] = "Origins compared: dito-echo vs nginx serving files (direct)"
            meta["setup"] = describe(cfg, "", proxies=False)
        else:
            normal = [sc for sc in cfg.scenarios
                      if sc in SCENARIOS and sc not in TLS_ANY and sc not in WS]
            ws_sc = [sc for sc in cfg.scenarios if sc in WS or sc == ws.WS_IDLE]
            tls_up = [sc for sc in cfg.scenarios if sc in TLS_UP]
            tls_down = [sc for sc in cfg.scenarios if sc in TLS_DOWN]
            # The origin's TLS ports: HTTP/1.1 for the ka-small-tls-up proxies and for
            # ka-small-tls's `direct`, HTTP/2 for ka-small-h2's `direct`.
            direct = "direct" in cfg.targets
            want_tls = bool(tls_up) or (direct and any(sc not in H2 for sc in tls_down))
            want_h2 = direct and any(sc in H2 for sc in tls_down)
            n_origin = 1 + want_tls + want_h2
            material = tls.make(tmp, tools["openssl"]) if tls_up or tls_down else None
            backend = None  # the origin; the WebSocket scenarios have their own (ws-echo)
            if normal or tls_up or tls_down or RELOAD in cfg.scenarios:
                ports = procs.pick_ports(cfg.port_base, n_origin +
                                         (len(cfg.targets) if normal else 0))
                backend = targets.start_backend(
                    cfg.backend, ports[0], cfg, tmp, tools,
                    tls_port=ports[1] if want_tls else None, tls=material,
                    h2_port=ports[n_origin - 1] if want_h2 else None)
            runs = {}
            if normal:
                tlist = []
                for name, port in zip(cfg.targets, ports[n_origin:]):
                    if name == "direct":
                        t = targets.Target("direct", backend.port, backend.proc)
                    else:
                        t = targets.start_target(name, port, backend.port, cfg, tmp, tools)
                    t.backend = backend
                    tlist.append(t)
                print("bench: " + ", ".join(f"{t.name} on :{t.port}" for t in tlist),
                      flush=True)
                meta["dito_startup"] = targets.dito_startup_lines(tmp)
                for line in meta["dito_startup"]:
                    print(f"  dito: {line}")
                runs = run_rounds(tlist, cfg, tools, normal)
            if tls_up:
                runs.update(run_tls_up(cfg, backend, material, tmp, tools, tls_up, meta))
            if tls_down:
                runs.update(run_tls_down(cfg, backend, material, tmp, tools, tls_down, meta))
            if RELOAD in cfg.scenarios:
                reload_runs = run_reload(cfg, backend, tmp, tools, meta)
            if ws_sc:
                echo_runs, idle_runs = run_ws(cfg, tmp, tools, ws_sc, meta)
                runs.update(echo_runs)
            refs = ["direct", "nginx", "haproxy"]
            subject, peers = "dito", ("nginx", "haproxy")
            if "dito-base" in cfg.targets:
                refs, peers = refs + ["dito-base"], peers + ("dito-base",)
            only = [sc for sc in cfg.scenarios if sc not in normal + tls_up + tls_down]
            meta["title"] = ("Reload under load: " if only == [RELOAD] else
                             "WebSocket: " if only and set(only) <= set(ws_sc) and not normal
                             and not tls_up and not tls_down else "") + \
                "Dito vs nginx vs HAProxy"
            if cfg.observe_cost:
                refs, subject, peers = ["dito"], "dito-observed", ("dito",)
                meta["title"] = ("What observing costs: Dito with metrics and access lines "
                                 "(dito-observed) vs without (dito)")
            meta["setup"] = describe(cfg, cfg.backend, origin=bool(backend))
            if meta.get("tls_down"):
                meta["setup"] += " " + negotiated(meta)
    finally:
        procs.stop_all()
        if cfg.keep_tmp:
            print(f"bench: configs and logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["loadavg_end"] = loadavg()
    summary = report.summarise(runs, refs)
    docs = {sc: f"{scenario_doc(sc, cfg)}, GET {SCENARIOS[sc][0]}" for sc in cfg.scenarios
            if sc in SCENARIOS}
    extra = []
    if reload_runs is not None:
        reload_summary = reload.summarise(reload_runs)
        extra.append(reload.markdown(reload_summary, cfg))
    if idle_runs is not None:
        idle_summary = ws.summarise(idle_runs)
        extra.append(ws.markdown(idle_summary, cfg))
    md = report.markdown(meta, summary, refs, docs, subject, peers, extra)
    print()
    print(md)
    os.makedirs(cfg.out, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    kind = "origins" if cfg.compare_backends else "results"
    base = os.path.join(cfg.out, f"{kind}-{stamp}")
    with open(base + ".json", "w") as f:
        doc = {"meta": meta, "summary": summary, "runs": runs}
        if reload_runs is not None:
            doc["reload"] = {"summary": reload_summary, "runs": reload_runs}
        if idle_runs is not None:
            doc["ws_idle"] = {"summary": idle_summary, "runs": idle_runs}
        json.dump(doc, f, indent=1, default=str)
    with open(base + ".md", "w") as f:
        f.write(md)
    print(f"bench: wrote {base}.json and {base}.md")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        procs.stop_all()
        print("\nbench: interrupted; every process it started has been ended")
        sys.exit(130)
    except RuntimeError as e:
        procs.stop_all()
        sys.exit(f"bench: {e}")
    except Exception:
        procs.stop_all()
        traceback.print_exc()
        sys.exit("bench: failed (traceback above); every process it started has been ended")
