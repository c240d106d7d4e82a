"""Starting the backend and the targets from the templates in bench/peers/.

A Target is a name, a port and the process whose CPU time and peak RSS are charged to it
(for `direct`, the backend itself). In `ka-small-tls-up` the origin also listens with TLS on
a second port and the proxies reach it over HTTPS (UPSTREAM_TLS below). In `ka-small-tls`
and `ka-small-h2` the proxies terminate TLS themselves (LISTEN_TLS, SERVER_TLS below) and
reach the origin over plain HTTP; `direct` there is the origin's TLS port (HTTP/1.1) or its
TLS port with HTTP/2 (H2_SERVER).
"""

import os
import re
import shutil
import subprocess

from . import procs

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(BENCH, "peers")
BODY_SIZES = (13, 16384, 1048576)  # the /bytes/N paths nginx-as-origin serves from files


def find_tool(name, tools_dir):
    for cand in (os.path.join(tools_dir, "bin", name), shutil.which(name),
                 f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def version(argv):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (r.stdout + r.stderr).decode(errors="replace").strip().splitlines()
    return text[0].strip() if text else "?"


def render(template, dest, values):
    with open(os.path.join(PEERS, template)) as f:
        text = f.read()
    for key, val in values.items():
        text = text.replace("{{" + key + "}}", str(val))
    if re.search(r"\{\{[A-Z_]+\}\}", text):
        raise RuntimeError(f"{template}: unrendered placeholder in {dest}")
    with open(dest, "w") as f:
        f.write(text)
    return dest


class Target:
    def __init__(self, name, port, proc, scheme="http"):
        self.name = name
        self.port = port
        self.scheme = scheme  # what the load generator speaks to it (https: direct, TLS port)
        self.proc = proc  # charged with CPU time and RSS
        self.tls_port = None  # the origin's TLS port (HTTP/1.1), when it has one
        self.h2_port = None  # the origin's TLS port with HTTP/2, when it has one
        self.backend = None  # the Target whose CPU is reported as "backend µs/req"
        # What its config was rendered from (proxies only): the reload scenario re-renders it.
        self.template, self.conf, self.values = None, None, None

    def url(self, path):
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


def _www(tmp):
    """Files with the bytes dito-echo's /bytes/N sends (a..z repeating)."""
    d = os.path.join(tmp, "www", "bytes")
    os.makedirs(d, exist_ok=True)
    pattern = bytes(range(ord("a"), ord("z") + 1))
    for n in BODY_SIZES:
        data = (pattern * (n // 26 + 1))[:n]
        with open(os.path.join(d, str(n)), "wb") as f:
            f.write(data)
    for sub in ("www", os.path.join("www", "bytes")):
        os.chmod(os.path.join(tmp, sub), 0o755)


def _nginx(tmp, kind, conf_values, cpus, tools):
    """nginx with peers/nginx-KIND.conf.tmpl (origin, proxy or ws) rendered into tmp."""
    os.makedirs(os.path.join(tmp, f"nginx-{kind}-tmp"), exist_ok=True)
    conf = render(f"nginx-{kind}.conf.tmpl", os.path.join(tmp, f"nginx-{kind}.conf"),
                  conf_values)
    err = os.path.join(tmp, f"nginx-{kind}.error.log")
    return procs.Proc(f"nginx-{kind}", [tools["nginx"], "-p", tmp, "-e", err, "-c", conf],
                      cpus=cpus, log_path=os.path.join(tmp, f"nginx-{kind}.out"))


# The origin's second server in the TLS scenarios: the same files over TLS 1.3 only, with the
# certificate the run's CA signed (harness/tls.py). Session tickets and the session cache are
# nginx's defaults (tickets on, no shared cache). `{http2}` is empty (HTTP/1.1 only: the port
# the ka-small-tls-up proxies and ka-small-tls's `direct` use) or " http2" (a third server,
# ka-small-h2's `direct`: ALPN h2; nginx 1.22 has no `http2 on`, only the listen parameter).
TLS_SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl{http2} reuseport backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        root {dir}/www;
        location /bytes/ {{ }}
    }}"""


def start_backend(kind, port, cfg, tmp, tools, tls_port=None, tls=None, h2_port=None):
    """The origin: `echo` (dito-echo) or `nginx` (nginx serving files); returns a Target.
    With tls_port and tls (a tls.Material), nginx also serves the files over TLS there
    (HTTP/1.1), and with h2_port over TLS with HTTP/2 (ALPN h2, http/1.1) there too."""
    log = os.path.join(tmp, f"backend-{kind}.log")
    if (tls_port or h2_port) and kind != "nginx":
        raise ValueError("the TLS origin port needs the nginx backend (BACKEND=nginx)")
    if kind == "echo":
        proc = procs.Proc("dito-echo", [os.path.join(cfg.bin_dir, "dito-echo"), "--listen",
                                        f"127.0.0.1:{port}"],
                          cpus=cfg.backend_cpus, log_path=log)
    elif kind == "nginx":
        _www(tmp)
        tls_server = "".join(
            TLS_SERVER.format(port=p, http2=h2, cert=tls.cert, key=tls.key, dir=tmp)
            for p, h2 in ((tls_port, ""), (h2_port, " http2")) if p)
        proc = _nginx(tmp, "origin", {"DIR": tmp, "PORT": port,
                                      "BACKEND_WORKERS": cfg.backend_workers,
                                      "TLS_SERVER": tls_server},
                      cfg.backend_cpus, tools)
    else:
        raise ValueError(f"unknown backend {kind!r} (echo or nginx)")
    target = Target(f"{kind}-origin" if kind == "nginx" else "dito-echo", port, proc)
    procs.wait_ready(proc, port, "/bytes/13")
    for p in (tls_port, h2_port):
        if p:  # verified as a client would: only the run's CA, the name 127.0.0.1, TLS 1.3
            procs.wait_ready(proc, p, "/bytes/13", tls=procs.tls_client(tls.ca))
    target.tls_port, target.h2_port = tls_port, h2_port
    return target


# Placeholders only the reload scenario fills (harness/reload.py); these are every other run's.
EXTRA_DEFAULTS = {"LOG_LEVEL": "warn", "LOCATION_EXTRA": "", "GLOBAL_EXTRA": "",
                  "ACCESS_LOG": "false", "METRICS": "false",
                  "UPSTREAM_SCHEME": "http", "UPSTREAM_TLS": "",
                  "LISTEN_TLS": "", "SERVER_TLS": ""}
# dito-observed: Dito with metrics on and an access line per request (to its log file, as
# nginx's access_log writes a file), to measure what observing costs (--observe-cost).
OBSERVED = {"ACCESS_LOG": "true", "METRICS": "true"}
# dito-base: the same config on another build (--base-bin-dir), so a change is measured against
# the build before it in the same rounds: dito ÷ dito-base.
TEMPLATES = {"dito": ("dito.yaml.tmpl", "dito.yaml"),
             "dito-observed": ("dito.yaml.tmpl", "dito-observed.yaml"),
             "dito-base": ("dito.yaml.tmpl", "dito-base.yaml"),
             "nginx": ("nginx-proxy.conf.tmpl", "nginx-proxy.conf"),
             "haproxy": ("haproxy.cfg.tmpl", "haproxy.cfg")}


def upstream_tls(name, tls):
    """ka-small-tls-up's placeholders for proxy `name`: HTTPS to the origin's TLS port,
    verified against the run's CA only, connections pooled and TLS sessions reused.

    nginx and HAProxy check the name `localhost` (the certificate's DNS SAN): nginx 1.22's
    proxy_ssl_verify and HAProxy's verifyhost match DNS names only, not the IP SAN. Dito
    checks the target's host, 127.0.0.1, against the IP SAN."""
    lines = {
        "dito": ("transport:\n"
                 "  http:\n"
                 f'    ca_file: "{tls.ca}"'),
        "nginx": (f"            proxy_ssl_trusted_certificate {tls.ca};\n"
                  "            proxy_ssl_verify on;\n"
                  "            proxy_ssl_name localhost;\n"
                  # nginx 1.22's default is TLSv1 TLSv1.1 TLSv1.2 (1.3 from 1.23.4 on)
                  "            proxy_ssl_protocols TLSv1.3;\n"
                  "            proxy_ssl_session_reuse on;"),
        "haproxy": f" ssl verify required ca-file {tls.ca} verifyhost localhost",
    }
    key = "dito" if name.startswith("dito") else name
    return {"UPSTREAM_SCHEME": "https", "UPSTREAM_TLS": lines[key]}


def listen_tls(name, tls):
    """ka-small-tls's and ka-small-h2's placeholders for proxy `name`: its listener speaks
    only TLS, with the run's server certificate and key (EC P-256, tls.py), TLS 1.3, the
    library's default TLS 1.3 cipher suites and groups, ALPN h2 then http/1.1.

    dito     top-level `tls` block; TLS 1.2 and 1.3 (no knob), ALPN [h2, http/1.1] by default
    nginx    `listen ... ssl http2` (1.22 has no `http2 on`), ssl_protocols TLSv1.3
    haproxy  `bind ... ssl crt <cert+key> alpn h2,http/1.1 ssl-min-ver TLSv1.3
             prefer-client-ciphers`

    Cipher choice: rustls and nginx (ssl_prefer_server_ciphers off) take the client's order;
    HAProxy by default its own (OpenSSL's list, AES-256-GCM first), so h2load, whose list
    starts with AES-128-GCM, would get AES-128 from two proxies and AES-256 from HAProxy.
    prefer-client-ciphers makes HAProxy follow the client too, with its default list: every
    proxy then negotiates the same suite with the same client."""
    lines = {
        "dito": ("tls:\n"
                 f'  cert_file: "{tls.cert}"\n'
                 f'  key_file: "{tls.key}"'),
        "nginx": (" ssl http2",
                  f"        ssl_certificate {tls.cert};\n"
                  f"        ssl_certificate_key {tls.key};\n"
                  "        ssl_protocols TLSv1.3;"),
        "haproxy": (f" ssl crt {tls.combined} alpn h2,http/1.1 ssl-min-ver TLSv1.3"
                    " prefer-client-ciphers"),
    }
    key = "dito" if name.startswith("dito") else name
    if key == "nginx":
        return {"LISTEN_TLS": lines[key][0], "SERVER_TLS": lines[key][1]}
    return {"LISTEN_TLS": lines[key]}


def start_target(name, port, backend_port, cfg, tmp, tools, extra=None, client_tls=None,
                 nginx_kind="proxy"):
    """One proxy in front of the backend on its own port; returns a Target. `extra` overrides
    EXTRA_DEFAULTS; `client_tls` (an ssl.SSLContext) when the proxy listens with TLS: it is
    then ready once it answers 200 over HTTPS, its certificate verified. `nginx_kind`: which
    nginx template (`proxy`, or `ws` for WebSocket proxying, harness/ws.py)."""
    values = {"DIR": tmp, "PORT": port, "BACKEND": f"127.0.0.1:{backend_port}",
              "WORKERS": cfg.workers, "PIN_WORKERS": cfg.pin_workers,
              "IO_DRIVER": cfg.io_driver, **EXTRA_DEFAULTS,
              **(OBSERVED if name == "dito-observed" else {}), **(extra or {})}
    log = os.path.join(tmp, f"{name}.log")
    if name not in TEMPLATES:
        raise ValueError(f"unknown target {name!r} (direct, dito, dito-observed, dito-base, "
                         "nginx, haproxy)")
    template, conf_name = TEMPLATES[name]
    if name in ("dito", "dito-observed", "dito-base"):
        conf = render(template, os.path.join(tmp, conf_name), values)
        bin_dir = cfg.base_bin_dir if name == "dito-base" else cfg.bin_dir
        proc = procs.Proc(name, [os.path.join(bin_dir, "dito"), "-f", conf],
                          cpus=cfg.proxy_cpus, log_path=log)
    elif name == "nginx":
        proc = _nginx(tmp, nginx_kind, values, cfg.proxy_cpus, tools)
        template, conf_name = f"nginx-{nginx_kind}.conf.tmpl", f"nginx-{nginx_kind}.conf"
        conf = os.path.join(tmp, conf_name)
    else:
        conf = render(template, os.path.join(tmp, conf_name), values)
        proc = procs.Proc("haproxy", [tools["haproxy"], "-db", "-f", conf],
                          cpus=cfg.proxy_cpus, log_path=log)
    try:
        procs.wait_ready(proc, port, "/bytes/13", tls=client_tls)
    except RuntimeError:
        proc.stop()  # by its PID, now: the caller may go on without it
        raise
    t = Target(name, port, proc, scheme="https" if client_tls else "http")
    t.template, t.conf, t.values = template, conf, values
    return t


def dito_startup_lines(tmp, n=8):
    try:
        with open(os.path.join(tmp, "dito.log"), errors="replace") as f:
            return [ln.rstrip() for ln in f.readlines()[:n]]
    except OSError:
        return []
