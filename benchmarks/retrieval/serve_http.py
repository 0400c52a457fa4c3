"""GET recommendations over HTTP with a 1M-item catalogue: `recfuse serve --index hnsw` against `--index exact`.

The genre model of benchmarks/serve-load (943 users, 1,680 items, a fusion model with a text tower) gets
``--items`` synthetic items the way a shop adds them: stored as API items (text vectors, clustered like
real item text, L2-normalised), which `recfuse serve` replays into its engine at start, through the
model's text tower, and indexes.  Then, one server after the other on the same store: every known user
asked once (a warm user-vector cache), wrk at ``--concurrency`` connections for ``--seconds``, and the
top-10 of 300 users recorded; recall@10 is the share of the exact server's top-10 the index server
returns.  Client and server share the machine.

    python benchmarks/retrieval/serve_http.py --model models/serve-load-genre --items 1000000 --out benchmarks/retrieval
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks" / "serve-load"))

from mixed_load import WRK_LUA, Server, _warm, wrk_readers


def add_items(db: str, n: int, dim: int, seed: int = 0, chunk: int = 50_000) -> float:
    """Store ``n`` synthetic API items with clustered unit text vectors; seconds taken."""
    from recfuse.serve.store import EventStore, ItemRecord
    from recfuse.serve.testing import clustered_catalogue

    t0 = time.perf_counter()
    store = EventStore(db)
    store.migrate()
    vectors, _, _ = clustered_catalogue(n, dim, 1, 1, seed)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for start in range(0, n, chunk):
        store.upsert_items([ItemRecord(f"syn-{i}", f"synthetic item {i}", f"Synthetic {i}", None, vectors[i])
                            for i in range(start, min(n, start + chunk))])
    store.close()
    return time.perf_counter() - t0


def top10(url: str, users: list[str]) -> dict[str, list[str]]:
    import httpx

    with httpx.Client(base_url=url, timeout=120) as http:
        return {u: [i["item_id"] for i in http.get(f"/v1/users/{u}/recommendations", params={"k": 10}).json()["items"]]
                for u in users}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    from recfuse.bundle import Bundle

    bundle = Bundle.load(args.model)
    users = [str(u) for u in bundle.users.external_ids]
    assert bundle.text_vectors is not None, "the model needs a text tower to take new items"
    tmp = Path(tempfile.mkdtemp(prefix="retrieval-http-"))
    db = f"sqlite:///{tmp / 'events.db'}"
    store_seconds = add_items(db, args.items, bundle.text_vectors.shape[1])
    users_file, lua = tmp / "users.txt", tmp / "readers.lua"
    users_file.write_text("\n".join(users) + "\n")
    lua.write_text(WRK_LUA)
    sample = users[:: max(1, len(users) // 300)][:300]
    rows: dict[str, Any] = {}
    answers: dict[str, dict[str, list[str]]] = {}
    for kind in ("exact", "hnsw"):
        (tmp / kind).mkdir()
        t0 = time.perf_counter()
        # Both servers read the one store; at 1M items the start (items replayed, graph built) takes minutes.
        server = Server(ROOT / "src", args.model.resolve(), tmp / kind, ["--index", kind, "--threads", "1"],
                        db=db).wait(1800)
        start_seconds = time.perf_counter() - t0
        try:
            asyncio.run(_warm(server.url, users))
            res = wrk_readers(server.url, users_file, lua, args.concurrency, args.seconds)
            answers[kind] = top10(server.url, sample)
            health = __import__("httpx").get(f"{server.url}/health").json()
        finally:
            server.stop()
        rows[kind] = {"start_seconds": start_seconds, "n_items": health["model"]["n_items"],
                      "rps": res["requests"] / res["seconds"], **res}
        print(kind, json.dumps(rows[kind]), flush=True)
    recall = float(np.mean([len(set(answers["hnsw"][u]) & set(answers["exact"][u])) / max(len(answers["exact"][u]), 1)
                            for u in sample]))
    result = {
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), no GPU",
        "model": f"{args.model.name} + {args.items:,} synthetic API items", "concurrency": args.concurrency,
        "seconds": args.seconds, "store_seconds": store_seconds, "rows": rows, "served_recall@10": recall,
        "recall_users": len(sample), "load_1min_after": os.getloadavg()[0],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "http.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [(f"GET recommendations, {result['model']}, wrk c={args.concurrency}, {args.seconds:g} s, "
             f"{result['machine']}; one run."), "",
             "| search | items | start s | req/s | p50 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, r in rows.items():
        lines.append(f"| {kind} | {r['n_items']:,} | {r['start_seconds']:.0f} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['errors'] + r['non2xx']} |")
    lines += ["", f"Recall@10 of the index server's answers against the exact server's, {len(sample)} users: {recall:.4f}."]
    (args.out / "http.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
