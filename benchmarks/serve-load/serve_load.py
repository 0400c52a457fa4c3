"""Load test of `recfuse serve` over real HTTP (async httpx), on this machine.

Starts the service as a subprocess on a free loopback port with a fresh
SQLite store (seeded from the model's log), then measures:

* GET /v1/users/{id}/recommendations?k=10 for random known users at each
  concurrency level (closed loop: each client sends its next request when the
  previous answer arrives): p50/p90/p99 latency, throughput.  The server
  keeps user vectors between requests (``--user-cache``); 943 users drawn at
  random repeat many times in a level, so most requests are cache hits: the
  hit rate is printed per level, and ``--user-cache 0`` measures the model
  on every request;
* the same with explain=true at one level (explanations cost a backward pass);
* POST /v1/events ingest: batches of --batch events from 4 clients, and
  single events from 16 clients: events acknowledged per second (each batch
  is one committed transaction; SQLite synchronous=FULL).

The load client runs on the same machine as the server, so both share its
cores: the figures are what one 2-core box does end to end.  The default
client speaks HTTP/1.1 over asyncio streams (one keep-alive connection per
simulated client) because ``httpx.AsyncClient`` (``--client httpx``) spends
more CPU per request than the server does: with it, the server's own
histogram said 12 ms mean while the client saw 88 ms p50 at concurrency 16.

    python benchmarks/serve-load/serve_load.py --model models/demo/fusion --out benchmarks/serve-load/results/cache-1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))

from recfuse.serve.testing import ServerProcess


def percentiles(lat: list[float]) -> dict[str, float]:
    a = np.asarray(lat) * 1000
    return {"p50_ms": float(np.percentile(a, 50)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "max_ms": float(a.max())}


async def closed_loop(url: str, concurrency: int, seconds: float, make: Any, client: str = "raw") -> dict[str, Any]:
    """``concurrency`` clients, each sending its next request when the previous one is answered.

    ``make(rng) -> (method, path, json_body_or_None)``.  ``client="raw"``: one keep-alive HTTP/1.1
    connection per client on asyncio streams (little client CPU, so the 2 cores measure the server);
    ``client="httpx"``: ``httpx.AsyncClient`` (on this box its own CPU use caps the measurement).
    """
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    host, port = url.split("//")[1].split(":")

    async def raw_worker(w: int) -> None:
        nonlocal errors
        rng = random.Random(w)
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.perf_counter() < stop:
            method, path, body = make(rng)
            data = b"" if body is None else json.dumps(body).encode()
            head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            t = time.perf_counter()
            writer.write(head.encode() + b"\r\n" + data)
            response = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in response.split(b"\r\n") if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            if response.startswith(b"HTTP/1.1 200"):
                lat.append(time.perf_counter() - t)
            else:
                errors += 1
        writer.close()

    async def httpx_worker(w: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        rng = random.Random(w)
        while time.perf_counter() < stop:
            method, path, body = make(rng)
            t = time.perf_counter()
            r = await http.request(method, path, json=body)
            if r.status_code == 200:
                lat.append(time.perf_counter() - t)
            else:
                errors += 1

    start = time.perf_counter()
    if client == "raw":
        await asyncio.gather(*(raw_worker(w) for w in range(concurrency)))
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            await asyncio.gather(*(httpx_worker(w, http) for w in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"concurrency": concurrency, "requests": len(lat), "errors": errors, "seconds": elapsed,
            "throughput_rps": len(lat) / elapsed, **percentiles(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "ml-100k-fusion", help="model directory (recfuse train)")
    ap.add_argument("--db", default=None, help="store URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of each measurement")
    ap.add_argument("--concurrency", default="1,16,64", help="comma-separated client counts for GET recommendations")
    ap.add_argument("--batch", type=int, default=500, help="events per POST in the batched ingest test")
    ap.add_argument("--threads", type=int, default=1, help="server --threads (torch)")
    ap.add_argument("--max-wait-ms", type=float, default=None, help="server --max-wait-ms (default: the server's)")
    ap.add_argument("--user-cache", type=int, default=None,
                    help="server --user-cache (default: the server's; 0: every request runs the model)")
    ap.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load client (see closed_loop)")
    ap.add_argument("--note", default="", help="free text saved with the results (e.g. other load on the machine)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="where serve_load.{json,txt} go")
    args = ap.parse_args()
    if not (args.model / "bundle.json").is_file():
        sys.exit(f"{args.model}: no model directory; make one with `make serve-demo` or "
                 f"`recfuse train --dataset ml-100k --out {args.model}`")
    tmp = Path(tempfile.mkdtemp(prefix="recfuse-load-"))
    db = args.db or f"sqlite:///{tmp / 'load.db'}"
    events = pl.read_parquet(args.model / "events.parquet")
    users = events["user_id"].unique().to_list()
    items = pl.read_parquet(args.model / "items.parquet")["item_id"].to_list()
    load_before = os.getloadavg()
    extra = ["--threads", str(args.threads)]
    extra += [] if args.max_wait_ms is None else ["--max-wait-ms", str(args.max_wait_ms)]
    extra += [] if args.user_cache is None else ["--user-cache", str(args.user_cache)]
    t = time.perf_counter()
    server = ServerProcess(args.model, db, extra=extra, log=tmp / "server.log").wait(300)
    startup = time.perf_counter() - t
    print(f"server up in {startup:.1f} s (first start seeds the store with {events.height:,} events)", flush=True)
    results: dict[str, Any] = {"recommend": [], "ingest": []}
    try:
        def rec(explain: bool) -> Any:
            flag = str(explain).lower()
            return lambda rng: ("GET", f"/v1/users/{rng.choice(users)}/recommendations?k=10&explain={flag}", None)

        def cache() -> tuple[float, float]:
            text = httpx.get(f"{server.url}/metrics").text
            g = dict(x.split() for x in text.splitlines() if x.startswith("recfuse_user_cache_"))
            return float(g.get("recfuse_user_cache_hits", 0)), float(g.get("recfuse_user_cache_misses", 0))

        asyncio.run(closed_loop(server.url, 4, 3.0, rec(False), args.client))  # warm-up
        for c in [int(x) for x in args.concurrency.split(",")]:
            before = cache()
            r = asyncio.run(closed_loop(server.url, c, args.seconds, rec(False), args.client))
            hits, misses = (a - b for a, b in zip(cache(), before, strict=True))
            r["user_cache_hit_rate"] = hits / max(hits + misses, 1)
            results["recommend"].append({"explain": False, **r})
            print(f"GET recommendations  c={c:3d}: {r['throughput_rps']:7.1f} req/s  p50 {r['p50_ms']:6.1f} ms  "
                  f"p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}  user-cache hits {r['user_cache_hit_rate']:.0%}", flush=True)
        r = asyncio.run(closed_loop(server.url, 16, args.seconds, rec(True), args.client))
        results["recommend"].append({"explain": True, **r})
        print(f"GET ... explain=true c= 16: {r['throughput_rps']:7.1f} req/s  p50 {r['p50_ms']:6.1f} ms  "
              f"p99 {r['p99_ms']:6.1f} ms", flush=True)

        counter = iter(range(10**12))
        now = time.time()

        def events_body(n: int, rng: random.Random) -> dict[str, Any]:
            return {"events": [{"event_id": f"load-{next(counter)}", "user_id": f"load-{rng.randrange(5000)}",
                                "item_id": rng.choice(items), "timestamp": now, "type": "view"} for _ in range(n)]}

        for batch, conc in ((args.batch, 4), (1, 16)):
            make = lambda rng, b=batch: ("POST", "/v1/events", events_body(b, rng))
            r = asyncio.run(closed_loop(server.url, conc, args.seconds, make, args.client))
            rate = r["requests"] * batch / r["seconds"]
            results["ingest"].append({"batch": batch, "events_per_s": rate, **r})
            print(f"POST events batch={batch:4d} c={conc:2d}: {rate:8.0f} events/s  p50 {r['p50_ms']:6.1f} ms  "
                  f"p99 {r['p99_ms']:6.1f} ms  errors {r['errors']}", flush=True)
        metrics = httpx.get(f"{server.url}/metrics").text
        gauges = dict(x.split() for x in metrics.splitlines() if x.startswith("recfuse_model_batche"))
        batches = {"forward_passes": float(gauges["recfuse_model_batches"]),
                   "requests": float(gauges["recfuse_model_batched_requests"])}
    finally:
        server.stop()
    info = {
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "gpu": "none used",
                    "python": platform.python_version(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "model": str(args.model), "db": "sqlite (fresh file, WAL, synchronous=FULL)" if args.db is None else args.db,
        "server": f"one uvicorn process, {' '.join(extra)}, micro-batching (max 64)",
        "client": f"{args.client} (asyncio HTTP/1.1 keep-alive) on the same machine, closed loop" if args.client == "raw"
        else "httpx.AsyncClient on the same machine, closed loop",
        "note": args.note, "startup_seconds": startup, "seconds_per_level": args.seconds,
        "batcher": batches,
    }
    results = {**info, **results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_load.json").write_text(json.dumps(results, indent=2))
    lines = [(f"recfuse serve load test: {args.model.name}; {os.cpu_count()} CPUs, no GPU; "
             f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}"),
             *([f"note: {args.note}"] if args.note else []),
             "", "GET /v1/users/{id}/recommendations?k=10",
             f"{'concurrency':>11} {'explain':>7} {'req/s':>8} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'errors':>6} {'cache hits':>10}"]
    for r in results["recommend"]:
        lines.append(f"{r['concurrency']:>11} {str(r['explain']).lower():>7} {r['throughput_rps']:>8.1f} {r['p50_ms']:>7.1f} "
                     f"{r['p90_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6} "
                     f"{'' if 'user_cache_hit_rate' not in r else format(r['user_cache_hit_rate'], '.0%'):>10}")
    lines += ["", "POST /v1/events", f"{'batch':>6} {'clients':>7} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"]
    for r in results["ingest"]:
        lines.append(f"{r['batch']:>6} {r['concurrency']:>7} {r['events_per_s']:>9.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6}")
    text = "\n".join(lines) + "\n"
    (args.out / "serve_load.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
