"""Counts visits in Redis, speaking its wire protocol (the standard library has no
client): `redis.app.miren:6379` is Redis wherever it runs."""
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REDIS = os.environ["REDIS_ADDR"]


def incr(key):
    host, port = REDIS.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(f"INCR {key}\r\n".encode())
        answer = s.recv(64).decode().strip()
    if not answer.startswith(":"):
        raise OSError(f"redis answered {answer!r}")
    return int(answer[1:])


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            body, status = f"visit {incr('visits')}, counted by redis at {REDIS}\n", 200
        except OSError as e:
            body, status = f"redis is not reachable at {REDIS}: {e}\n", 502
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print(f"web: {self.command} {self.path}", flush=True)


port = int(os.environ["PORT"])
print(f"web: listening on {port}, redis at {REDIS}", flush=True)
ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
