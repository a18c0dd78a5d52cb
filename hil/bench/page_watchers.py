"""Browsers watching the status page, for the access benchmark: N streams held open, as a page does.

Run: python -m edge.hil.bench.page_watchers URL N. Each watcher loads the page's history and
newest events once, then reads the server-sent event stream until SIGTERM; on exit it
prints {"watchers": N, "messages": total} so the benchmark can show the streams were live.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import urllib.request


def watch(url: str, counts: list[int], index: int, stop: threading.Event) -> None:
    for path in ("", "page.js", "api/history?hours=6", "api/events?priority=fault&limit=100"):
        with urllib.request.urlopen(url + path, timeout=10) as answer:
            answer.read()
    with urllib.request.urlopen(url + "api/stream", timeout=30) as stream:
        while not stop.is_set():
            line = stream.readline()
            if not line:
                return
            if line.startswith(b"event: "):
                counts[index] += 1


def main() -> int:
    url, n = sys.argv[1], int(sys.argv[2])
    stop = threading.Event()
    counts = [0] * n
    watchers = [threading.Thread(target=watch, args=(url, counts, i, stop), daemon=True) for i in range(n)]
    for watcher in watchers:
        watcher.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    print(json.dumps({"watchers": n, "messages": sum(counts)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
