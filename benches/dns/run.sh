#!/usr/bin/env bash
# miren-dns side by side with unbound (SPEC §12), in one run:
#   unbound:  num-threads 1, the 100 names as local-data in a static local-zone
#   miren:    dns-standalone, one tokio thread, the same 100 names from its store
#   server:   a running `miren server` (what users run, its log to a file) with
#             SERVER_APPS apps deployed (a `web` of `tiny-http` each), asked for
#             `web.<app>.app.miren` by an operator, as users' tools ask
# dnsperf, one client thread, UDP, at most 100 queries outstanding, over the 100 names;
# prints queries/s, average latency and the server process's CPU time per query
# (utime+stime from /proc/<pid>/stat). Installs its anchors (dnsperf, unbound) from
# Debian's packages when missing.
#
#   bash benches/dns/run.sh            # DUR=10 ROUNDS=1 NAMES=100 by default
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-1}
NAMES=${NAMES:-100}
SERVER_APPS=${SERVER_APPS:-10}
CLIENTS=${CLIENTS:-1}
MIREN_BIN=${MIREN_BIN:-./target/release/miren}

if ! command -v dnsperf >/dev/null || ! command -v unbound >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf unbound >/dev/null
fi
cargo build -q --release -p miren-benches --bin dns-standalone --bin tiny-http
[ "$MIREN_BIN" != ./target/release/miren ] || cargo build -q --release -p miren-cli

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

{
  echo "server:"
  echo "  interface: 127.0.0.1"
  echo "  port: 15353"
  echo "  num-threads: 1"
  echo "  do-daemonize: no"
  echo "  chroot: \"\""
  echo "  username: \"\""
  echo "  pidfile: \"\""
  echo "  use-syslog: no"
  echo "  logfile: \"\""
  echo "  verbosity: 0"
  echo "  access-control: 127.0.0.0/8 allow"
  echo "  local-zone: \"app.miren.\" static"
  for i in $(seq 0 $((NAMES - 1))); do
    echo "  local-data: \"web.app$i.app.miren. 5 IN A 10.$((i / 256)).$((i % 256)).2\""
  done
  echo "remote-control:"
  echo "  control-enable: no"
} > "$tmp/unbound.conf"
for i in $(seq 0 $((NAMES - 1))); do echo "web.app$i.app.miren A"; done > "$tmp/names.txt"

unbound -d -c "$tmp/unbound.conf" 2>"$tmp/unbound.err" &
pids+=($!); unbound_pid=$!
./target/release/dns-standalone 127.0.0.1:15354 "$NAMES" >"$tmp/miren.out" 2>&1 &
pids+=($!); miren_pid=$!

wait_up() { # port
  for _ in $(seq 1 200); do
    if dnsperf -s 127.0.0.1 -p "$1" -d "$tmp/names.txt" -n 1 >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "nothing answers on $1" >&2; cat "$tmp"/*.err "$tmp/miren.out" >&2; exit 1
}

# The server as users run it, with apps deployed.
mkdir -p "$tmp/server"
"$MIREN_BIN" server --data-dir "$tmp/server" --http-addr 127.0.0.1:0 \
  --dns-addr 127.0.0.1:15355 --runtime process 2>"$tmp/server.log" &
pids+=($!); server_pid=$!
for _ in $(seq 200); do [ -S "$tmp/server/miren.sock" ] && break; sleep 0.05; done
tiny=$(realpath ./target/release/tiny-http)
for i in $(seq 0 $((SERVER_APPS - 1))); do
  mkdir -p "$tmp/app$i/.miren"
  printf 'name = "app%s"\n[services.web]\ncommand = "exec %s"\n[services.web.concurrency]\nmode = "fixed"\nnum_instances = 1\n' \
    "$i" "$tiny" > "$tmp/app$i/.miren/app.toml"
  "$MIREN_BIN" --server "$tmp/server/miren.sock" deploy -d "$tmp/app$i" >/dev/null
done
for i in $(seq 0 $((NAMES - 1))); do echo "web.app$((i % SERVER_APPS)).app.miren A"; done > "$tmp/server-names.txt"

wait_up 15353; wait_up 15354; wait_up 15355

# Both must give the same answer before their speed means anything.
for port in 15353 15354 15355; do
  a=$(dnsperf -s 127.0.0.1 -p "$port" -d <(echo "web.app7.app.miren A") -n 1 -v 2>/dev/null | grep -c NOERROR || true)
  [ "$a" -ge 1 ] || { echo "port $port does not answer web.app7.app.miren with NOERROR" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # name pid port [names file]
  local before after out qps lat lost sys0 sys1
  before=$(cpu_ticks "$2"); sys0=$(sys_ticks "$2")
  out=$(dnsperf -s 127.0.0.1 -p "$3" -d "${4:-$tmp/names.txt}" -c "$CLIENTS" -T "$CLIENTS" -l "$DUR" -q 100 2>&1)
  after=$(cpu_ticks "$2"); sys1=$(sys_ticks "$2")
  qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
  lat=$(awk '/Average Latency/ {print $4}' <<<"$out")
  lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
  local done_q; done_q=$(awk '/Queries completed/ {print $3}' <<<"$out")
  local us; us=$(awk -v t=$((after - before)) -v hz="$hz" -v q="$done_q" 'BEGIN { printf "%.2f", t / hz * 1e6 / q }')
  local kernel; kernel=$(awk -v s=$((sys1 - sys0)) -v t=$((after - before)) 'BEGIN { printf "%.0f", t ? 100 * s / t : 0 }')
  printf "%-8s %10.0f q/s  avg %7.3f ms  lost %-6s  CPU %6s µs/query (%s%% in the kernel)\n" "$1" "$qps" "$(awk -v l="$lat" 'BEGIN{print l*1000}')" "$lost" "$us" "$kernel"
  eval "${1}_qps+=(\"$qps\") ${1}_cpu+=(\"$us\")"
}

unbound_qps=(); unbound_cpu=(); miren_qps=(); miren_cpu=(); server_qps=(); server_cpu=()
echo "dnsperf -c $CLIENTS -T $CLIENTS -q 100 -l $DUR over $NAMES names, $ROUNDS round(s); $(nproc) cores"
for r in $(seq 1 "$ROUNDS"); do
  echo "-- round $r"
  run unbound "$unbound_pid" 15353
  run miren "$miren_pid" 15354
  run server "$server_pid" 15355 "$tmp/server-names.txt"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
uq=$(median "${unbound_qps[@]}"); mq=$(median "${miren_qps[@]}")
uc=$(median "${unbound_cpu[@]}"); mc=$(median "${miren_cpu[@]}")
sq=$(median "${server_qps[@]}"); sc=$(median "${server_cpu[@]}")
echo "-- medians"
awk -v uq="$uq" -v mq="$mq" -v uc="$uc" -v mc="$mc" -v sq="$sq" -v sc="$sc" 'BEGIN {
  printf "queries/s: miren %.0f vs unbound %.0f = %.2fx (target >= 1.00x)\n", mq, uq, mq / uq
  printf "CPU/query: miren %.2f us vs unbound %.2f us = %.2fx (target <= 1.00x)\n", mc, uc, mc / uc
  printf "inside miren server: %.0f q/s = %.2fx unbound, %.2f us/query = %.2fx unbound\n", sq, sq / uq, sc, sc / uc
}'
echo "the server logged $(wc -l < "$tmp/server.log") lines to a file during the run"
