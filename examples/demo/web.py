"""The web service: each visit is counted in the store, next to the worker's ticks."""
import os
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STORE = os.environ["STORE_URL"]


def store(path, method="GET"):
    req = urllib.request.Request(STORE + path, method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            visits = store("/incr/visits", "POST")
            ticks = store("/ticks")
            body = f"Hello from miren! visit {visits}; the worker has ticked {ticks} times (counted by the store at {STORE})\n"
            status = 200
        except OSError as e:
            body, status = f"the store is not reachable: {e}\n", 502
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(f"web: {self.command} {self.path} {args[1] if len(args) > 1 else ''}", flush=True)


port = int(os.environ["PORT"])
print(f"web: listening on {port}", flush=True)
ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
