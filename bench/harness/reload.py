"""The `reload` scenario: keep-alive load (GET /bytes/13) while the harness reloads the proxy
every `--reload-interval` seconds, to count the requests that reloads fail.

Each proxy gets its own process for this scenario, started in `reload/` under the run's temp
dir, so the reloads never touch the targets of the other scenarios, and with its process log
at a level that records reloads. One reload: render the proxy's config with the other of two
equivalent variants (one upstream request header, `X-Bench-Reload: a` or `b`), replace the
config file atomically (write beside it, rename over it), then signal the process the harness
started:

    dito     SIGHUP to its pid                          applied: "config reloaded" lines
    nginx    SIGHUP to the master pid in its pid file   applied: "start worker processes"
             (what `nginx -s reload` sends)             lines of its notice-level error log
    haproxy  SIGUSR2 to the master (master-worker mode, applied: "Loading success." lines
             which hands its listeners to the new worker)

Reloads go out at interval, 2 × interval, ... up to half an interval before the load ends, so
each lands inside the measured run (10 s at 1 s: 9 reloads). There are none in the warm-up.
"""

import os
import signal
import statistics
import threading
import time

from . import load, procs, targets

PATH = "/bytes/13"
DOC = "keep-alive, 13 B body, GET /bytes/13, while the proxy is reloaded"
TARGETS = ("dito", "nginx", "haproxy")  # `direct` has nothing to reload

# name -> (placeholders of its process, the two config variants of LOCATION_EXTRA,
#          log line of an applied reload, log line of a rejected one or None)
KINDS = {
    "dito": ({"LOG_LEVEL": "info"},
             ['    additional_headers: { X-Bench-Reload: "%s" }'],
             "config reloaded", "reload rejected"),
    "nginx": ({"LOG_LEVEL": "notice"},
              ['            proxy_set_header X-Bench-Reload "%s";'],
              "start worker processes", "[emerg]"),
    "haproxy": ({"GLOBAL_EXTRA": "    master-worker"},
                ["    http-request set-header X-Bench-Reload %s"],
                "Loading success.", "Loading failure"),
}
VARIANTS = ("a", "b")
SOCKET_KINDS = ("connect", "read", "write", "timeout")


class Reloadable:
    """A proxy started for the reload scenario, and how to reload it and count its reloads."""

    def __init__(self, target, log_path):
        self.t = target
        self.name = target.name
        self.log_path = log_path
        self.variant = 0
        _, lines, self.applied_mark, self.rejected_mark = KINDS[self.name]
        self.line = lines[0]

    def _write_variant(self):
        self.variant = 1 - self.variant
        values = dict(self.t.values, LOCATION_EXTRA=self.line % VARIANTS[self.variant])
        tmp_path = self.t.conf + ".next"
        targets.render(self.t.template, tmp_path, values)
        os.replace(tmp_path, self.t.conf)  # atomic: the proxy reads the old or the new file

    def _pid(self):
        """The pid to signal: always the process the harness started (checked alive)."""
        if not self.t.proc.alive():
            raise RuntimeError(f"{self.name} is not running")
        if self.name == "nginx":  # as `nginx -s reload`: the master's pid from its pid file
            path = os.path.join(self.t.values["DIR"], "nginx-proxy.pid")
            with open(path) as f:
                pid = int(f.read().strip())
            if pid != self.t.proc.pid:
                raise RuntimeError(f"{path} names pid {pid}, not the master the harness "
                                   f"started ({self.t.proc.pid}); not signalled")
            return pid
        return self.t.proc.pid

    def reload(self):
        self._write_variant()
        os.kill(self._pid(), signal.SIGUSR2 if self.name == "haproxy" else signal.SIGHUP)

    def counts(self):
        """(applied, rejected) lines in its log so far."""
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError:
            return 0, 0
        return text.count(self.applied_mark), text.count(self.rejected_mark)


class Reloader(threading.Thread):
    """Reloads `r` every `interval` s during a run of `seconds` s (bounded: at most
    (seconds - interval / 2) / interval reloads), until `done` is set."""

    def __init__(self, r, interval, seconds):
        super().__init__(daemon=True)
        self.r, self.interval = r, interval
        self.limit = max(0, int((seconds - interval / 2) / interval))
        self.done = threading.Event()
        self.sent = 0
        self.failures = []

    def run(self):
        start = time.monotonic()
        for k in range(1, self.limit + 1):
            if self.done.wait(max(0.0, start + k * self.interval - time.monotonic())):
                return
            try:
                self.r.reload()
                self.sent += 1
            except (OSError, RuntimeError, ValueError) as e:
                self.failures.append(str(e))


def start(names, backend, cfg, tmp, tools):
    """Start a fresh proxy per name (in tmp/reload, on free ports); returns Reloadables."""
    names = [n for n in names if n in KINDS]
    if not names:
        return []
    d = os.path.join(tmp, "reload")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    ports = procs.pick_ports(cfg.port_base, len(names))
    out = []
    for name, port in zip(names, ports):
        extra, lines, _, _ = KINDS[name]
        extra = dict(extra, LOCATION_EXTRA=lines[0] % VARIANTS[0])
        t = targets.start_target(name, port, backend.port, cfg, d, tools, extra)
        t.backend = backend
        log = (os.path.join(d, "nginx-proxy.error.log") if name == "nginx"
               else t.proc.log_path)
        out.append(Reloadable(t, log))
    return out


def measure(r, cfg, tools):
    """One run: warm-up without reloads, then the measured run with a reload every interval."""
    t = r.t
    if not t.proc.alive() or not t.backend.proc.alive():
        return {"failed": "process not running"}
    url = t.url(PATH)
    try:
        if cfg.warmup:
            load.run(cfg.loadgen, url, cfg.connections, cfg.warmup, cfg.wrk_threads, False,
                     cfg.loadgen_cpus, tools)
        applied0, rejected0 = r.counts()
        reloader = Reloader(r, cfg.reload_interval, cfg.duration)
        reloader.start()
        try:
            res = load.run(cfg.loadgen, url, cfg.connections, cfg.duration, cfg.wrk_threads,
                           False, cfg.loadgen_cpus, tools)
        finally:
            reloader.done.set()
            reloader.join(timeout=10)
    except load.LoadFailed as e:
        print(f"bench: {t.name}, reload: {e}")
        return {"failed": str(e)}
    # The last reload went out half an interval before the end; give it time to show in the
    # log (bounded), e.g. nginx starting its new workers.
    deadline = time.monotonic() + 3.0
    while True:
        applied, rejected = r.counts()
        if (applied - applied0 + rejected - rejected0 >= reloader.sent
                or time.monotonic() > deadline):
            break
        time.sleep(0.1)
    if not t.proc.alive():
        print(f"bench: {t.name} died during reload:\n{t.proc.log_tail()}")
        return {"failed": "died during the run: " + t.proc.log_tail(5)}
    raw = res.get("raw", {})
    res.update(reloads_sent=reloader.sent, reloads_planned=reloader.limit,
               reload_failures=reloader.failures,
               reloads_applied=applied - applied0, reloads_rejected=rejected - rejected0,
               # wrk's four kinds of socket error; oha reports its own (in raw), not these
               socket_by_kind=({k: raw[k] for k in SOCKET_KINDS}
                               if all(k in raw for k in SOCKET_KINDS) else None),
               max_us=raw.get("max_us"), pids_after=len(t.proc.pids()))
    return res


def run_rounds(rlist, cfg, tools):
    """Interleaved rounds, as the other scenarios: round k starts at the k-th target."""
    runs = {r.name: [] for r in rlist}
    total = cfg.rounds * len(rlist)
    done = 0
    for rnd in range(cfg.rounds):
        k = rnd % len(rlist)
        for r in rlist[k:] + rlist[:k]:
            done += 1
            res = measure(r, cfg, tools)
            runs[r.name].append(res)
            if "failed" in res:
                msg = "FAILED"
            else:
                msg = (f"{res['rps']:>10,.0f} req/s  failed {res['errors']} "
                       f"({res['non2xx']} non-2xx, {res['socket_errors']} socket)  "
                       f"reloads {res['reloads_sent']} sent, {res['reloads_applied']} applied")
                if res["reload_failures"]:
                    msg += f"  (could not reload: {res['reload_failures'][0]})"
            print(f"[{done:>3}/{total}] reload    round {rnd + 1} {r.name:<12} {msg}",
                  flush=True)
            time.sleep(0.3)
    return runs


def summarise(runs):
    """Per target: totals over rounds (requests, failures, reloads), medians of req/s and p99,
    the largest max latency."""
    out = {}
    for name, rs in runs.items():
        ok = [r for r in rs if r and "failed" not in r]
        med = (lambda k: statistics.median([r[k] for r in ok]) if ok else None)
        s = {"rounds": len(ok), "failed_rounds": len(rs) - len(ok),
             "rps": med("rps"), "p99_us": med("p99_us"),
             "max_us": max((r["max_us"] or 0 for r in ok), default=None)}
        for k in ("requests", "errors", "non2xx", "socket_errors", "reloads_sent",
                  "reloads_planned", "reloads_applied", "reloads_rejected"):
            s[k] = sum(r[k] for r in ok)
        kinds = [r["socket_by_kind"] for r in ok]
        s["socket_by_kind"] = ({k: sum(x[k] for x in kinds) for k in SOCKET_KINDS}
                               if kinds and all(kinds) else None)
        s["reload_failures"] = [f for r in ok for f in r["reload_failures"]]
        out[name] = s
    return out


def _lat(us):
    if us is None:
        return "–"
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"


def markdown(summary, cfg):
    head = ["target", "requests", "req/s", "failed", "non-2xx",
            "socket errors (connect/read/write/timeout)", "reloads sent", "reloads applied",
            "p99", "max latency"]
    lines = ["#### Reload under load", "",
             f"A reload every {cfg.reload_interval:g} s during each {cfg.duration} s run "
             f"({cfg.connections} keep-alive connections, GET {PATH}); each proxy is a fresh "
             "process whose config is rewritten between two equivalent variants "
             "(upstream header `X-Bench-Reload: a`/`b`) before each signal: Dito SIGHUP, "
             "nginx SIGHUP to the master from its pid file (as `nginx -s reload`), HAProxy "
             "SIGUSR2 to the master (master-worker mode). `failed` = non-2xx + socket "
             "errors, as wrk reports them; totals over rounds, req/s and p99 medians.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary.items():
        sk = s["socket_by_kind"]
        sock = str(s["socket_errors"])
        if sk:
            sock += " (" + "/".join(str(sk[k]) for k in SOCKET_KINDS) + ")"
        applied = str(s["reloads_applied"])
        if s["reloads_rejected"]:
            applied += f" ({s['reloads_rejected']} rejected)"
        sent = str(s["reloads_sent"])
        if s["reload_failures"]:
            sent += f" ({len(s['reload_failures'])} could not be sent)"
        failed = str(s["errors"])
        if s["failed_rounds"]:
            failed += f"; run FAILED in {s['failed_rounds']} round(s)"
        row = [name, f"{s['requests']:,}", "–" if s["rps"] is None else f"{s['rps']:,.0f}",
               failed, str(s["non2xx"]),
               sock, sent, applied, _lat(s["p99_us"]), _lat(s["max_us"])]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return "\n".join(lines)
