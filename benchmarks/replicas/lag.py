"""How long a change accepted by one replica takes to reach another: two `recfuse serve` processes over one
PostgreSQL store (fresh tables, dropped after), kept coherent by LISTEN/NOTIFY (recfuse.serve.sync).

For each trial a new user posts one event to replica A; from A's 2xx on, replica B is asked for that
user's recommendations in a tight loop until its answer counts the event.  The lag is the time from A's
2xx to B's first answer that has the event; "first try" is the share of trials where B's very first
request, sent right after A's 2xx, already had it.  Then the same for erasures: ``DELETE`` on A, until B
answers ``cold_start``.  Client and servers share the machine.

    python benchmarks/replicas/lag.py --model DIR --db postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))

ADMIN_KEY = "bench-admin"


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))]


def summary(lags: list[float], first: int) -> dict[str, Any]:
    ms = [x * 1000 for x in lags]
    return {"trials": len(ms), "p50_ms": statistics.median(ms), "p90_ms": percentile(ms, 90),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms), "first_try_share": first / len(ms)}


def wait_until(check: Any, timeout: float = 10.0) -> tuple[float, int]:
    """Call ``check()`` until true; (seconds since the call, requests made)."""
    t0 = time.perf_counter()
    n = 0
    while True:
        n += 1
        if check():
            return time.perf_counter() - t0, n
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("the change did not reach the other replica")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="model directory to serve")
    ap.add_argument("--db", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--erasures", type=int, default=50)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    import httpx

    from recfuse.bundle import Bundle
    from recfuse.serve.store import EventStore
    from recfuse.serve.testing import ServerProcess

    items = [str(i) for i in Bundle.load(args.model).items.external_ids[:50]]
    prefix = f"lag{uuid.uuid4().hex[:8]}_"
    env = {"RECFUSE_ADMIN_KEY": ADMIN_KEY, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    logs = Path(tempfile.mkdtemp(prefix="replica-lag-"))
    extra = ["--table-prefix", prefix, "--threads", "1"]
    a = ServerProcess(args.model, args.db, env=env, extra=extra, log=logs / "a.log").wait(180)
    b = ServerProcess(args.model, args.db, env=env, extra=extra, log=logs / "b.log").wait(180)
    events: list[float] = []
    erasures: list[float] = []
    first_events = first_erasures = 0
    try:
        with httpx.Client(base_url=a.url, timeout=30) as ca, httpx.Client(base_url=b.url, timeout=30) as cb:
            def history(user: str) -> int:
                return int(cb.get(f"/v1/users/{user}/recommendations", params={"k": 1}).json()["history_length"])

            for n in range(args.trials):
                user = f"lag-{n}"
                body = {"event_id": f"lag-{n}", "user_id": user, "item_id": items[n % len(items)],
                        "timestamp": time.time() - 5, "type": "view"}
                assert ca.post("/v1/events", json=body).status_code == 200
                lag, tries = wait_until(lambda u=user: history(u) == 1)
                events.append(lag)
                first_events += tries == 1
            for n in range(args.erasures):
                user = f"lag-{n}"
                assert ca.delete(f"/v1/users/{user}", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
                lag, tries = wait_until(
                    lambda u=user: cb.get(f"/v1/users/{u}/recommendations", params={"k": 1}).json()["cold_start"])
                erasures.append(lag)
                first_erasures += tries == 1
    finally:
        a.stop()
        b.stop()
        EventStore(args.db, prefix).drop()
    result = {
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), no GPU",
        "model": str(args.model.name), "store": "PostgreSQL on loopback, LISTEN/NOTIFY",
        "event": summary(events, first_events), "erasure": summary(erasures, first_erasures),
        "load_1min_after": os.getloadavg()[0],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lag.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| change | trials | p50 ms | p90 ms | p99 ms | max ms | B's first request already had it |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind in ("event", "erasure"):
        r = result[kind]
        lines.append(f"| {kind} | {r['trials']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['max_ms']:.1f} | {r['first_try_share']:.0%} |")
    text = f"Replica lag, A's 2xx to B's first answer with the change ({result['machine']}).\n\n" + "\n".join(lines) + "\n"
    (args.out / "lag.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
