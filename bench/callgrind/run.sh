#!/usr/bin/env bash
# Instructions per request, deterministic (valgrind callgrind; no noise from the shared VM).
# usage: bench/callgrind/run.sh DITO_BIN BACKEND_PORT N keep|close [OUT]
#   Runs DITO_BIN (epoll driver, 1 worker) in front of an origin on 127.0.0.1:BACKEND_PORT
#   that serves GET /bytes/13 (e.g. `dito-echo --listen 127.0.0.1:PORT`), sends N sequential
#   requests (one keep-alive connection, or a new connection each), stops Dito and prints the
#   total instruction count. Run it with N=0 and N=2000 and divide the difference by 2000.
#   Compare builds with the same N; memcpy above glibc's rep-movsb threshold is counted per
#   byte, so look at it separately (callgrind_annotate OUT).
#   On a busy machine how often Dito waits for its sockets varies, and with it the count (±1k
#   per request). Pin everything to one CPU at real-time priority for repeatable numbers
#   (within a few instructions per request; every request then waits twice, so counts are
#   ~2k higher than on a quiet machine):
#     chrt -f 10 taskset -c 1 bench/callgrind/run.sh …   (origin started under taskset -c 1)
set -euo pipefail
bin=$1; backend=$2; n=$3; mode=$4; out=${5:-callgrind.out}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$dir/dito.yaml" <<Y
port: $port
listen: 127.0.0.1
workers: 1
io_driver: epoll
logging:
  enabled: false
  level: warn
locations:
  - path: "^/"
    target_url: "http://127.0.0.1:$backend"
Y
timeout 600 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" -config "$dir/dito.yaml" > "$dir/log" 2>&1 &
vg=$!
for _ in $(seq 1 300); do
  python3 -c "import socket;socket.create_connection(('127.0.0.1',$port)).close()" 2>/dev/null && break
  sleep 0.2
done
python3 "$(dirname "$0")/nreq.py" "$port" "$n" "$mode"
kill -TERM "$vg"; wait "$vg" || true
grep -h '^summary' "$out"
