# Shared by the proxy benches: the anchors' packages, a scratch dir whose processes
# stop with the script, and the backend every proxy forwards to.
#   needs <command>...      installs what is missing from Debian's packages
#   scratch                 sets $tmp and stops the pids in $pids on exit
#   backend_conf <port> <dir>  prints an nginx config: 1 worker, `return 200`

needs() {
  local missing=()
  for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

scratch() {
  tmp=$(mktemp -d)
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
}

backend_conf() {
  cat <<CONF
worker_processes 1; daemon off; pid $2/backend.pid; error_log $2/backend.err;
events { worker_connections 8192; }
http { access_log off;
  server { listen 127.0.0.1:$1 backlog=4096 reuseport; location / { return 200 "ok\n"; } } }
CONF
}

# wait_http <port>: until something answers HTTP there (10 s at most).
wait_http() {
  for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done
  echo "nothing answers on port $1" >&2
  return 1
}
