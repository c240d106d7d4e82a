"""TLS material for the TLS scenarios: a CA made for this run and a server certificate it
signs, both with the `openssl` CLI.

    ca.pem, ca.key          the run's CA (EC P-256, basicConstraints CA:TRUE), valid 2 days
    server.pem, server.key  the server certificate: SAN IP:127.0.0.1 and DNS:localhost,
                            CA:FALSE, serverAuth, signed by the CA above (EC P-256, so every
                            handshake signs with ECDSA P-256 / SHA-256)
    server-combined.pem     server.pem then server.key, the one file HAProxy's `crt` reads

In `ka-small-tls-up` it is the origin's certificate; in `ka-small-tls` and `ka-small-h2` every
proxy (and the origin's TLS ports, for `direct`) serves this same certificate and key.

Everything lives in `tls/` under the run's temp dir and goes with it. The proxies trust only
ca.pem (Dito `transport.http.ca_file`, nginx `proxy_ssl_trusted_certificate`, HAProxy
`ca-file`), never the system roots, so a run cannot pass by trusting something else.
"""

import os
import secrets
import subprocess

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = dito-bench

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""

DAYS = "2"


class Material:
    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")
        self.combined = os.path.join(d, "server-combined.pem")  # HAProxy: cert + key


def _openssl(openssl, args, cwd):
    try:
        r = subprocess.run([openssl] + args, cwd=cwd, capture_output=True, text=True,
                           timeout=30, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"openssl {args[0]} still running after 30 s") from None
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed ({r.returncode}):\n"
                           f"{r.stderr.strip()[-800:]}")
    return r.stdout


def make(tmp, openssl):
    """Generate the run's CA and the origin's certificate in tmp/tls; returns a Material."""
    d = os.path.join(tmp, "tls")
    os.makedirs(d, exist_ok=True)
    m = Material(d)
    cnf = os.path.join(d, "openssl.cnf")
    with open(cnf, "w") as f:
        f.write(OPENSSL_CNF)
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    _openssl(openssl, ["genpkey"] + ec + ["-out", m.ca_key], d)
    _openssl(openssl, ["req", "-x509", "-new", "-key", m.ca_key, "-sha256", "-days", DAYS,
                       "-config", cnf, "-extensions", "ca_ext",
                       "-subj", "/CN=dito-bench CA (this run only)", "-out", m.ca], d)
    _openssl(openssl, ["genpkey"] + ec + ["-out", m.key], d)
    csr = os.path.join(d, "server.csr")
    _openssl(openssl, ["req", "-new", "-key", m.key, "-config", cnf, "-subj", "/CN=localhost",
                       "-out", csr], d)
    _openssl(openssl, ["x509", "-req", "-in", csr, "-CA", m.ca, "-CAkey", m.ca_key,
                       "-set_serial", "0x" + secrets.token_hex(16)[1:], "-days", DAYS,
                       "-sha256", "-extfile", cnf, "-extensions", "server_ext",
                       "-out", m.cert], d)
    # The chain and the IP name must check out before any proxy is pointed at it.
    _openssl(openssl, ["verify", "-CAfile", m.ca, "-verify_ip", "127.0.0.1",
                       "-purpose", "sslserver", m.cert], d)
    with open(m.cert) as c, open(m.key) as k, open(m.combined, "w") as out:
        out.write(c.read() + k.read())
    os.chmod(m.combined, 0o600)  # holds the private key
    return m
