#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: repeatable where CPU time
# is noisy (another process on the machine, frequency changes), so two builds of
# proxy-standalone can be compared exactly, e.g. before and after a change:
#
#   bash benches/proxy/instructions.sh [BINARY...]   # default: target/release/proxy-standalone
#
# Each binary proxies to an nginx `return 200` backend; after a warm-up, callgrind's
# counters are zeroed, wrk sends requests on 8 connections for $DUR, and the
# instructions counted are divided by the requests wrk saw answered.
# Needs valgrind, nginx and wrk (installed from Debian's packages when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-10s}
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build -q --release -p miren-benches --bin proxy-standalone
  bins=(target/release/proxy-standalone)
fi
. benches/proxy/common.sh
needs valgrind wrk nginx curl
scratch
backend_conf 18091 "$tmp" > "$tmp/backend.conf"
nginx -c "$tmp/backend.conf" -p "$tmp" & pids+=($!)
wait_http 18091

printf "%-50s %12s %14s %10s\n" binary requests instructions per_req
for bin in "${bins[@]}"; do
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$bin" 127.0.0.1:18094 127.0.0.1:18091 \
    >/dev/null 2>"$tmp/vg.err" &
  vg=$!
  for _ in $(seq 200); do curl -s -o /dev/null http://127.0.0.1:18094/ && break; sleep 0.1; done
  wrk -t1 -c8 -d3s http://127.0.0.1:18094/ >/dev/null
  callgrind_control -z "$vg" >/dev/null 2>&1
  n=$(wrk -t1 -c8 -d"$DUR" http://127.0.0.1:18094/ | awk '/requests in/ {print $1}')
  callgrind_control -d "$vg" >/dev/null 2>&1
  kill "$vg" 2>/dev/null || true
  wait "$vg" 2>/dev/null || true
  # The dump after the zeroing holds only the measured run.
  ir=$(for f in "$tmp"/cg.out.*; do awk '/^summary:/ {print $2}' "$f"; done | sort -n | tail -1)
  rm -f "$tmp"/cg.out*
  printf "%-50s %12s %14s %10.0f\n" "$bin" "$n" "$ir" "$(echo "$ir $n" | awk '{print $1 / $2}')"
done
