"""A tiny counter store: POST /incr/<name> adds one, GET /<name> reads it.

Counters live in a JSON file on the service's disk ($MIREN_DISK_DATA), so they
survive redeploys and restarts.
"""
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA = os.environ.get("MIREN_DISK_DATA", "/data")
FILE = os.path.join(DATA, "counters.json")
LOCK = threading.Lock()


def load():
    try:
        with open(FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save(counters):
    tmp = FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(counters, f)
    os.replace(tmp, FILE)


class Handler(BaseHTTPRequestHandler):
    def reply(self, value):
        body = str(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with LOCK:
            self.reply(load().get(self.path.strip("/"), 0))

    def do_POST(self):
        name = self.path.removeprefix("/incr/")
        with LOCK:
            counters = load()
            counters[name] = counters.get(name, 0) + 1
            save(counters)
            self.reply(counters[name])

    def log_message(self, fmt, *args):
        pass


os.makedirs(DATA, exist_ok=True)
port = int(os.environ["PORT"])
print(f"store: keeping counters in {FILE}, listening on {port}", flush=True)
# Where other nodes of a cluster reach this one (`miren server --node-addr`); this
# machine only by default.
host = os.environ.get("MIREN_NODE_ADDR", "127.0.0.1")
ThreadingHTTPServer((host, port), Handler).serve_forever()
