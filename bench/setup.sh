#!/usr/bin/env bash
# Installs what the benchmark needs; safe to run again (installs only what is missing).
#   wrk, nginx, haproxy  from Debian packages (never started as services: the harness runs
#                        them with its own configs, ports and pid files under a temp dir)
#   openssl              Debian's CLI: the per-run CA and the server certificate of the TLS
#                        scenarios (ka-small-tls-up, ka-small-tls, ka-small-h2)
#   h2load               Debian's nghttp2-client: the HTTP/2 load of ka-small-h2
#   oha                  `cargo install oha --locked` into bench/.tools (gitignored)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tools="$here/.tools"

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then echo sudo; else
            echo "setup.sh: installing Debian packages needs root (or sudo)" >&2; exit 1
        fi
    fi
}

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v openssl >/dev/null || missing+=(openssl)
command -v h2load >/dev/null || missing+=(nghttp2-client)

if [ ${#missing[@]} -gt 0 ]; then
    SUDO="$(need_root)"
    echo "setup.sh: installing ${missing[*]}"
    # Keep the packages' maintainer scripts from starting nginx/haproxy as system services:
    # policy-rc.d exiting 101 tells invoke-rc.d "not allowed". Ours only if none is there.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod 755 /usr/sbin/policy-rc.d
        own_policy=1
    fi
    cleanup() { if [ -n "$own_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi; }
    trap cleanup EXIT
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    cleanup; own_policy=""
else
    echo "setup.sh: wrk, nginx, haproxy, openssl, h2load already installed"
fi

if [ -x "$tools/bin/oha" ]; then
    echo "setup.sh: oha already in $tools/bin"
else
    echo "setup.sh: cargo install oha --locked --root $tools (a few minutes)"
    cargo install oha --locked --root "$tools"
fi

for t in wrk nginx haproxy; do
    p="$(command -v $t || echo /usr/sbin/$t)"
    [ -x "$p" ] || { echo "setup.sh: $t not found after install" >&2; exit 1; }
done
for t in openssl h2load; do
    command -v $t >/dev/null || { echo "setup.sh: $t not found after install" >&2; exit 1; }
done
echo "setup.sh: ok ($(wrk -v 2>&1 | head -1 | sed "s/ Copyright.*//"); $(/usr/sbin/nginx -v 2>&1); $(/usr/sbin/haproxy -v | head -1 | cut -d" " -f1-3); $(openssl version | cut -d" " -f1-2); $(h2load --version | head -1); $("$tools/bin/oha" --version))"
