#!/usr/bin/env bash
# miren-proxy side by side with nginx and haproxy (SPEC §12), in one run:
#   backend:  nginx, 1 worker, `return 200` (also measured directly)
#   nginx:    1 worker, upstream keepalive 256, no access log
#   haproxy:  nbthread 1, http-reuse always, no log
#   miren:    proxy-standalone, one tokio thread, no log
#   server:   a running `miren server` (what users run) with an app deployed whose web
#             service is the same nginx backend, made the default route; the server
#             as users start it, access log included (to a file)
# wrk -t1 at 64 and 256 connections on each; prints requests/s, p99 latency and the
# proxy process's CPU time per request (utime+stime from /proc/<pid>/stat; for the
# server: the whole server process, controller, store and logs included).
# Installs its anchors (wrk, nginx, haproxy) from Debian's packages when missing.
#
#   bash benches/proxy/run.sh            # DUR=10s ROUNDS=1 by default
#   PROXY_BIN=… MIREN_BIN=… bash benches/proxy/run.sh   # other builds (e.g. before a change)
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-10s}
ROUNDS=${ROUNDS:-1}
. benches/proxy/common.sh
needs wrk nginx haproxy curl
if [ -z "${PROXY_BIN:-}" ]; then
  cargo build -q --release -p miren-benches --bin proxy-standalone
  PROXY_BIN=target/release/proxy-standalone
fi
if [ -z "${MIREN_BIN:-}" ]; then
  cargo build -q --release -p miren-cli
  MIREN_BIN=target/release/miren
fi
scratch

backend_conf 18081 "$tmp" > "$tmp/backend.conf"
cat > "$tmp/nginx.conf" <<EOF2
worker_processes 1; daemon off; pid $tmp/nginx.pid; error_log $tmp/nginx.err;
events { worker_connections 8192; }
http { access_log off;
  upstream b { server 127.0.0.1:18081; keepalive 256; }
  server { listen 127.0.0.1:18082 backlog=4096;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF2
cat > "$tmp/haproxy.cfg" <<EOF2
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
EOF2

nginx -c "$tmp/backend.conf" -p "$tmp" & pids+=($!)
nginx -c "$tmp/nginx.conf" -p "$tmp" & pids+=($!)
haproxy -db -f "$tmp/haproxy.cfg" & pids+=($!)
haproxy_pid=$!
"$PROXY_BIN" 127.0.0.1:18084 127.0.0.1:18081 >/dev/null & pids+=($!)
miren_pid=$!

# The server, and the app it serves: the same nginx backend as a deployed web service.
mkdir -p "$tmp/app/.miren" "$tmp/server"
backend_conf @PORT@ @DIR@ > "$tmp/app/backend.conf.in"
cat > "$tmp/app/.miren/app.toml" <<'EOF2'
name = "bench"
[services.web]
command = 'd=$(mktemp -d) && sed -e "s|@PORT@|$PORT|" -e "s|@DIR@|$d|g" backend.conf.in > "$d/nginx.conf" && exec nginx -p "$d" -c "$d/nginx.conf"'
[services.web.concurrency]
mode = "fixed"
num_instances = 1
EOF2
"$MIREN_BIN" server --data-dir "$tmp/server" --http-addr 127.0.0.1:18085 \
  --dns-addr 127.0.0.1:0 --runtime process 2>"$tmp/server.log" & pids+=($!)
server_pid=$!
for _ in $(seq 200); do [ -S "$tmp/server/miren.sock" ] && break; sleep 0.05; done
"$MIREN_BIN" --server "$tmp/server/miren.sock" deploy -d "$tmp/app" >/dev/null
"$MIREN_BIN" --server "$tmp/server/miren.sock" route set-default --app bench 2>/dev/null

for port in 18081 18082 18083 18084 18085; do wait_http "$port"; done
worker_of() { pgrep -P "$1" | head -1; }
backend_worker=$(worker_of "$(cat "$tmp/backend.pid")")
nginx_worker=$(worker_of "$(cat "$tmp/nginx.pid")")
app_master=$(pgrep -f "master process nginx -p" | head -1)
app_worker=$(worker_of "$app_master")

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }
idle_ticks() { awk '/^cpu /{print $5 + $6}' /proc/stat; }
# CPU seconds of this shell's finished children (wrk), from the `times` builtin, into
# $CHILD (run in this shell: a subshell would count only its own children).
child_secs() {
  times > "$tmp/times"
  CHILD=$(tail -1 "$tmp/times" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] } printf "%.3f", t }')
}
hz=$(getconf CLK_TCK)
ncpu=$(nproc)

# run <name> <port> <pid> <conns> <backend pid>: prints
#   name conns rps p99_us cpu_us_per_req backend_us_per_req wrk_us_per_req idle_pct kernel_pct
run() {
  local name=$1 port=$2 pid=$3 c=$4 be=$5 before after b0 b1 i0 i1 w0 w1 s0 s1 out
  before=$(ticks "$pid"); s0=$(sys_ticks "$pid"); b0=$(ticks "$be"); i0=$(idle_ticks); child_secs; w0=$CHILD
  out=$(wrk -t1 -c"$c" -d"$DUR" --latency "http://127.0.0.1:$port/")
  after=$(ticks "$pid"); s1=$(sys_ticks "$pid"); b1=$(ticks "$be"); i1=$(idle_ticks); child_secs; w1=$CHILD
  echo "$out" | awk -v name="$name" -v c="$c" -v dt="$((after - before))" -v db="$((b1 - b0))" \
      -v ds="$((s1 - s0))" \
      -v di="$((i1 - i0))" -v dw="$(echo "$w1 $w0" | awk '{print $1 - $2}')" -v hz="$hz" -v ncpu="$ncpu" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000; return v }
    / 99%/ { p99 = us($2) }
    /requests in/ { n = $1; secs = $4 + 0 }
    /Requests\/sec/ { rps = $2 }
    END { if (n == 0) n = 1
      printf "%s %d %.0f %.0f %.1f %.1f %.1f %.0f %.0f\n", name, c, rps, p99, dt * 1000000 / hz / n,
        db * 1000000 / hz / n, dw * 1000000 / n, 100 * di / hz / (secs * ncpu), dt ? 100 * ds / dt : 0 }'
}

results="$tmp/results"
for round in $(seq "$ROUNDS"); do
  for c in 64 256; do
    run direct 18081 "$backend_worker" "$c" "$backend_worker"
    run nginx 18082 "$nginx_worker" "$c" "$backend_worker"
    run haproxy 18083 "$haproxy_pid" "$c" "$backend_worker"
    run miren 18084 "$miren_pid" "$c" "$backend_worker"
    run server 18085 "$server_pid" "$c" "$app_worker"
  done
done > "$results"

echo "the server logged $(wc -l < "$tmp/server.log") lines (one access line per request) to a file"
echo "proxy bench: wrk -t1 -d$DUR, $ROUNDS round(s), medians. cpu: the proxy's own per request (the"
echo "backend's for direct; the whole miren server's for server); backend, wrk: theirs per request in"
echo "the same run; idle: the machine's idle share; kernel: the share of the proxy's CPU spent in"
echo "the kernel (system time)"
printf "%-8s %5s %9s %8s %8s %8s %8s %5s %7s\n" target conns req/s p99_us cpu_us backend wrk idle% kernel%
sort -k1,1 -k2,2n "$results" | awk '
  { key = $1 " " $2; n[key]++; k = n[key]; for (f = 3; f <= 9; f++) v[key, f, k] = $f; keys[key] = 1 }
  function med(key, f, k,   i, j, t, a) { for (i = 1; i <= k; i++) a[i] = v[key, f, i];
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return a[int((k + 1) / 2)] }
  END { for (key in keys) { split(key, p, " "); k = n[key];
      printf "%-8s %5s %9.0f %8.0f %8.1f %8.1f %8.1f %5.0f %7.0f\n", p[1], p[2], med(key, 3, k), med(key, 4, k),
        med(key, 5, k), med(key, 6, k), med(key, 7, k), med(key, 8, k), med(key, 9, k) } }' | sort -k2,2n -k1,1 | tee "$tmp/table"
awk '
  { rps[$1, $2] = $3; p99[$1, $2] = $4; cpu[$1, $2] = $5; be[$1, $2] = $6; wrk[$1, $2] = $7 }
  END { for (c = 64; c <= 256; c *= 4) {
      best = rps["nginx", c] > rps["haproxy", c] ? "nginx" : "haproxy"
      for (t = 0; t < 2; t++) {
        m = t == 0 ? "miren" : "server"
        printf "c%d %-6s: %.2fx %s req/s (target >= 1.10), p99 %.0f vs %.0f us, CPU %.1f us/req = %.2fx %s (target <= 0.80)\n",
          c, m, rps[m, c] / rps[best, c], best, p99[m, c], p99[best, c], cpu[m, c], cpu[m, c] / cpu[best, c], best
      }
      # What one core of proxy work buys, and what the machine allows: wrk, the backend and
      # the proxy share two cores, so the rate is at most 2 cores / their CPU per request
      # together, and 1 / (wrk + backend) while those two share one core.
      all = be["miren", c] + wrk["miren", c] + cpu["miren", c]
      printf "      per core of proxy CPU: miren %.0f req/s, %s %.0f (%.2fx); machine limit for miren: %.0f req/s on 2 busy cores (%.2fx %s), %.0f with wrk + backend on one\n",
        1e6 / cpu["miren", c], best, 1e6 / cpu[best, c], cpu[best, c] / cpu["miren", c],
        2e6 / all, 2e6 / all / rps[best, c], best, 1e6 / (be["miren", c] + wrk["miren", c]) } }' "$tmp/table"
