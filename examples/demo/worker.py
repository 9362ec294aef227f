"""Ticks every two seconds and counts its ticks in the store."""
import os
import time
import urllib.request

STORE = os.environ["STORE_URL"]

while True:
    try:
        with urllib.request.urlopen(urllib.request.Request(STORE + "/incr/ticks", method="POST"), timeout=5) as r:
            print(f"worker: tick {r.read().decode()}", flush=True)
    except OSError as e:
        print(f"worker: store not reachable yet ({e})", flush=True)
    time.sleep(2)
