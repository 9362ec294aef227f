#!/usr/bin/env bash
# `miren deploy` of a 3-service app vs `docker-compose up -d` of the same services and
# images, and `miren app delete` vs `docker-compose down` (SPEC §12), side by side in
# one run on the same Engine, RUNS times each (default 5), medians.
#   app:   web (busybox httpd), worker (busybox sleep), redis (redis:7-alpine)
#   miren: a `miren server --runtime docker`; `deploy` returns once every instance is
#          ready (redis and web accept connections), compose's `up -d` once its
#          containers were started;
#   down:  compose as it comes (10 s stop timeout; its containers have no init, so
#          PID 1 ignores SIGTERM and waits it out) and with `-t 0`.
# Needs the test images (`bash tests/images/build.sh`) and Debian's docker-compose
# (installed when missing).
#
#   bash benches/docker/run.sh            # RUNS=5
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
command -v docker-compose >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
}
bash tests/images/build.sh busybox redis
if [ -z "${MIREN_BIN:-}" ]; then
  cargo build -q --release -p miren-cli
  MIREN_BIN=target/release/miren
fi
tmp=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  (cd "$tmp/compose" 2>/dev/null && docker-compose -p mirenbench down -v -t 0 >/dev/null 2>&1) || true
  rm -rf "$tmp"
}
trap cleanup EXIT

HTTPD='mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 3000 -h /www'
mkdir -p "$tmp/app/.miren" "$tmp/compose"
cat > "$tmp/app/.miren/app.toml" <<EOF2
name = "bench"
[services.web]
image = "miren-test/busybox"
command = "$HTTPD"
[services.web.concurrency]
mode = "fixed"
num_instances = 1
[services.worker]
image = "miren-test/busybox"
command = "exec sleep 100000"
[services.redis]
image = "redis:7-alpine"
EOF2
cat > "$tmp/compose/docker-compose.yml" <<EOF2
version: "3"
services:
  web:
    image: miren-test/busybox
    command: ["sh", "-c", "$HTTPD"]
  worker:
    image: miren-test/busybox
    command: ["sleep", "100000"]
  redis:
    image: redis:7-alpine
EOF2

"$MIREN_BIN" server --data-dir "$tmp/data" --runtime docker --http-addr 127.0.0.1:0 \
  --dns-addr 127.0.0.1:0 2>"$tmp/server.log" &
server=$!
for _ in $(seq 200); do [ -S "$tmp/data/miren.sock" ] && break; sleep 0.05; done
m() { "$MIREN_BIN" --server "$tmp/data/miren.sock" "$@"; }

secs() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo "$(( (t1 - t0) / 1000000 ))"; }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

: > "$tmp/r"
for i in $(seq "$RUNS"); do
  echo "miren-deploy $(secs m deploy -d "$tmp/app")" >> "$tmp/r"
  echo "miren-delete $(secs m app delete bench)" >> "$tmp/r"
  (cd "$tmp/compose"
    echo "compose-up $(secs docker-compose -p mirenbench up -d)"
    echo "compose-down $(secs docker-compose -p mirenbench down)"
    docker-compose -p mirenbench up -d >/dev/null 2>&1
    echo "compose-down-t0 $(secs docker-compose -p mirenbench down -t 0)"
    # Redis's anonymous volume (its image's VOLUME), which `down` keeps.
    docker-compose -p mirenbench down -v >/dev/null 2>&1) >> "$tmp/r"
done

echo "docker deploy bench: a 3-service app (web, worker, redis), $RUNS runs, medians in ms"
for k in miren-deploy compose-up miren-delete compose-down compose-down-t0; do
  printf "%-16s %6s ms\n" "$k" "$(awk -v k="$k" '$1 == k {print $2}' "$tmp/r" | median)"
done
awk '{v[$1] = v[$1] " " $2} END {
  for (k in v) { n = split(v[k], a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    med[k] = a[int((n + 1) / 2)] }
  printf "deploy: %.2fx compose up -d (target <= 1.0); delete: %d ms (target <= 1000); compose down: %d ms, with -t 0: %d ms\n",
    med["miren-deploy"] / med["compose-up"], med["miren-delete"], med["compose-down"], med["compose-down-t0"] }' "$tmp/r"
