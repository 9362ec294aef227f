#!/usr/bin/env bash
# miren-proxy side by side with nginx and haproxy (SPEC §12), in one run:
#   backend:  nginx, 1 worker, `return 200` (also measured directly)
#   nginx:    1 worker, upstream keepalive 256
#   haproxy:  nbthread 1, http-reuse always
#   miren:    proxy-standalone, one tokio thread
# wrk -t1 at 64 and 256 connections on each; prints requests/s, p99 latency and the
# proxy process's CPU time per request (utime+stime from /proc/<pid>/stat).
# Installs its anchors (wrk, nginx, haproxy) from Debian's packages when missing.
#
#   bash benches/proxy/run.sh            # DUR=10s ROUNDS=1 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-10s}
ROUNDS=${ROUNDS:-1}

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx haproxy >/dev/null
fi
cargo build -q --release -p miren-benches --bin proxy-standalone

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

cat > "$tmp/backend.conf" <<EOF
worker_processes 1; daemon off; pid $tmp/backend.pid; error_log $tmp/backend.err;
events { worker_connections 8192; }
http { access_log off;
  server { listen 127.0.0.1:18081 backlog=4096 reuseport; location / { return 200 "ok\n"; } } }
EOF
cat > "$tmp/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $tmp/nginx.pid; error_log $tmp/nginx.err;
events { worker_connections 8192; }
http { access_log off;
  upstream b { server 127.0.0.1:18081; keepalive 256; }
  server { listen 127.0.0.1:18082 backlog=4096;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
cat > "$tmp/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:18083
  default_backend b
backend b
  server s1 127.0.0.1:18081 maxconn 4000
EOF

nginx -c "$tmp/backend.conf" -p "$tmp" & pids+=($!)
nginx -c "$tmp/nginx.conf" -p "$tmp" & pids+=($!)
haproxy -db -f "$tmp/haproxy.cfg" & pids+=($!)
target/release/proxy-standalone 127.0.0.1:18084 127.0.0.1:18081 >/dev/null & pids+=($!)
miren_pid=$!
haproxy_pid=${pids[2]}
for port in 18081 18082 18083 18084; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
done
worker_of() { pgrep -P "$(cat "$1")" | head -1; }
backend_worker=$(worker_of "$tmp/backend.pid")
nginx_worker=$(worker_of "$tmp/nginx.pid")

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run <name> <port> <pid> <conns>: prints "name conns rps p99_us cpu_us_per_req"
run() {
  local name=$1 port=$2 pid=$3 c=$4 before after out
  before=$(ticks "$pid")
  out=$(wrk -t1 -c"$c" -d"$DUR" --latency "http://127.0.0.1:$port/")
  after=$(ticks "$pid")
  echo "$out" | awk -v name="$name" -v c="$c" -v dt="$((after - before))" -v hz="$hz" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    / 99%/ { p99 = us($2) }
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    END { printf "%s %d %.0f %.0f %.1f\n", name, c, rps, p99, (n > 0 ? dt * 1000000 / hz / n : 0) }'
}

results="$tmp/results"
for round in $(seq "$ROUNDS"); do
  for c in 64 256; do
    run direct 18081 "$backend_worker" "$c"
    run nginx 18082 "$nginx_worker" "$c"
    run haproxy 18083 "$haproxy_pid" "$c"
    run miren 18084 "$miren_pid" "$c"
  done
done > "$results"

echo "proxy bench: wrk -t1 -d$DUR, $ROUNDS round(s), medians; CPU is the proxy's own (the backend's for direct)"
printf "%-8s %5s %10s %10s %12s\n" target conns req/s p99_us cpu_us/req
sort -k1,1 -k2,2n "$results" | awk '
  { key = $1 " " $2; n[key]++; rps[key, n[key]] = $3; p99[key, n[key]] = $4; cpu[key, n[key]] = $5; keys[key] = 1 }
  function med(a, key, k,   i, j, t, v) { for (i = 1; i <= k; i++) v[i] = a[key, i];
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((k + 1) / 2)] }
  END { for (key in keys) { split(key, p, " "); k = n[key];
      printf "%-8s %5s %10.0f %10.0f %12.1f\n", p[1], p[2], med(rps, key, k), med(p99, key, k), med(cpu, key, k) } }' | sort -k2,2n -k1,1 | tee "$tmp/table"
awk '
  { rps[$1, $2] = $3; p99[$1, $2] = $4; cpu[$1, $2] = $5 }
  END { for (c = 64; c <= 256; c *= 4) {
      best = rps["nginx", c] > rps["haproxy", c] ? "nginx" : "haproxy"
      printf "c%d: miren %.2fx %s req/s (target >= 1.10), p99 %.0f vs %.0f us, CPU %.1f us/req (target <= 19)\n",
        c, rps["miren", c] / rps[best, c], best, p99["miren", c], p99[best, c], cpu["miren", c] } }' "$tmp/table"
