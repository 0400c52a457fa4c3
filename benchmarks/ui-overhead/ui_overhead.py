"""Does the web page cost the API anything?  API latency with and without the page's own requests in flight.

Starts ``recfuse serve`` as a subprocess on a free loopback port (the genre model of
:mod:`recfuse.serve.testing`, fitted here once unless ``--model`` names one), then measures
``GET /v1/users/{id}/recommendations?k=10`` for random known users from one closed-loop client
(keep-alive, the next request when the answer arrives) in three conditions, interleaved over
``--rounds`` rounds of ``--seconds`` each so that a busy machine's drift falls on all three alike:

* ``alone``: nothing else;
* ``cached``: browsers that have the page, at ``--page-rate`` loads per second: ``GET /`` with
  ``If-None-Match`` (answered 304; the assets are kept a year under their content hash, so a
  browser asks for nothing else);
* ``cold``: one client loading the page with an empty cache as fast as it can (``/``,
  ``ui/app.js``, ``ui/app.css``, full bodies): far more than any number of people would cause.

The page loads run in another process, so the API client's timings are not its own Python's.

    python benchmarks/ui-overhead/ui_overhead.py --out benchmarks/ui-overhead
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from recfuse.serve.testing import ServerProcess, fit_genre_bundle

CONDITIONS = ("alone", "cached", "cold")


def api_latencies(port: int, users: list[str], seconds: float, seed: int) -> list[float]:
    """Seconds per ``GET /v1/users/{id}/recommendations?k=10`` from one keep-alive client for ``seconds``."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out: list[float] = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        conn.request("GET", f"/v1/users/{rng.choice(users)}/recommendations?k=10")
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"recommendations answered {r.status}")
        out.append(time.perf_counter() - start)
    conn.close()
    return out


def page_loads(port: int, mode: str, rate: float, stop: Any, count: Any) -> None:
    """Load the page until ``stop`` is set: ``cached`` revalidates ``/`` at ``rate`` per second, ``cold``
    fetches the page and both assets in a closed loop.  ``count`` receives the number of requests."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        """Status, ETag and body of one GET on the keep-alive connection."""
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.getheader("etag") or "", r.read()

    _, etag, body = get("/")
    assets = re.findall(r'(?:src|href)="(ui/[^"]+)"', body.decode())
    n = 0
    next_at = time.perf_counter()
    while not stop.is_set():
        if mode == "cached":
            if get("/", {"If-None-Match": etag})[0] != 304:
                raise RuntimeError("the page was not answered 304 for its own ETag")
            n += 1
            next_at += 1.0 / rate
            time.sleep(max(0.0, next_at - time.perf_counter()))
        else:
            for path in ("/", *("/" + a for a in assets)):
                if get(path)[0] != 200:
                    raise RuntimeError(f"{path} was not answered 200")
                n += 1
    count.value = n
    conn.close()


def summary(lat: list[float]) -> dict[str, float]:
    """Count, mean and percentiles (milliseconds) of latencies in seconds."""
    a = np.asarray(lat) * 1000
    return {"requests": len(a), "mean_ms": round(float(a.mean()), 3), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p90_ms": round(float(np.percentile(a, 90)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="model directory (default: fit the genre test model, about a minute)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of one measurement")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the three conditions, interleaved")
    ap.add_argument("--page-rate", type=float, default=10.0, help="page loads per second of the cached condition")
    ap.add_argument("--out", type=Path, help="folder for results.json and results.md (default: print only)")
    args = ap.parse_args()

    uptime_start = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="recfuse-ui-overhead-"))
    model = args.model or fit_genre_bundle(tmp / "model")
    server = ServerProcess(model, f"sqlite:///{tmp / 'events.db'}", extra=["--threads", "1"]).wait()
    users = [f"u{i}" for i in range(160)]
    try:
        api_latencies(server.port, users, 3.0, seed=-1)  # warm-up: every user's vector in the cache
        runs: dict[str, list[float]] = {c: [] for c in CONDITIONS}
        rounds: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
        page_requests: dict[str, int] = {c: 0 for c in CONDITIONS}
        for rnd in range(args.rounds):
            for cond in CONDITIONS:
                stop, count = mp.Event(), mp.Value("q", 0)
                loader = None
                if cond != "alone":
                    loader = mp.Process(target=page_loads, args=(server.port, cond, args.page_rate, stop, count))
                    loader.start()
                    time.sleep(0.5)  # the loader connected and running
                lat = api_latencies(server.port, users, args.seconds, seed=rnd)
                runs[cond] += lat
                rounds[cond].append(summary(lat))
                if loader is not None:
                    stop.set()
                    loader.join(30)
                    page_requests[cond] += count.value
    finally:
        server.stop()
    uptime = subprocess.run(["uptime"], check=False, capture_output=True, text=True).stdout.strip()
    result: dict[str, Any] = {
        "route": "GET /v1/users/{id}/recommendations?k=10 (user-vector cache on, random users of 160)",
        "seconds_per_condition": args.seconds * args.rounds, "page_rate_cached": args.page_rate,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "uptime_start": uptime_start,
                    "uptime": uptime},
        "model": "genre test model (recfuse.serve.testing.fit_genre_bundle)" if args.model is None else str(args.model),
        "conditions": {c: {**summary(runs[c]), "page_requests": page_requests[c],
                           "page_requests_per_s": round(page_requests[c] / (args.seconds * args.rounds), 1),
                           "rounds": rounds[c]}
                       for c in CONDITIONS},
    }
    rows = ["| condition | API requests | mean ms | p50 ms | p90 ms | p99 ms | page requests/s | mean ms by round |",
            "|---|---|---|---|---|---|---|---|"]
    for c in CONDITIONS:
        r = result["conditions"][c]
        by_round = ", ".join(f"{x['mean_ms']:.2f}" for x in r["rounds"])
        rows.append(f"| {c} | {r['requests']:,} | {r['mean_ms']:.2f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                    f"{r['p99_ms']:.2f} | {r['page_requests_per_s']:g} | {by_round} |")
    table = "\n".join(rows)
    print(table, f"\n\n{uptime}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (args.out / "results.md").write_text(f"{result['route']}; {os.cpu_count()} CPUs.\n\n`uptime` at the start: "
                                             f"{uptime_start}; at the end: {uptime}\n\n{table}\n")


if __name__ == "__main__":
    main()
