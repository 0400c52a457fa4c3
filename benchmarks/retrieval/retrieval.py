"""Retrieval at scale: the service's item index (recfuse.serve.index) against exact search.

    retrieval.py index --items 1000000   # build time, memory, recall@10, p50/p99; and per efSearch
    retrieval.py crossover               # single-query latency, exact vs HNSW, 5K to 200K items

Item and user vectors come from :func:`recfuse.serve.testing.clustered_catalogue` (d = 64, the fusion
model's default ``embedding_size``) with an offset table of 20 rows (what the fusion trend table has at
a million items: ``TREND_CELLS / n_items``), so the graph holds d + 1 offset column + 1 lift coordinate.
Each query leaves out 50 history items drawn from its own exact top 200 (the hard case for
over-fetching).  Each command prints one JSON object.  Latency is per single query on one thread, exact
and graph alike (the request path: concurrency comes from concurrent requests); the graph is built
with every core.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from typing import Any

import numpy as np
import torch

from recfuse.serve.index import ItemIndex, hnsw_params
from recfuse.serve.testing import clustered_catalogue

ROWS = 20
HISTORY = 50


def rss_gb() -> float:
    """Current resident memory of this process, GB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e9


def setup(n: int, n_users: int, seed: int = 0) -> dict[str, Any]:
    items, users, offsets = clustered_catalogue(n, 64, n_users=n_users, n_rows=ROWS, seed=seed)
    v, o, u = torch.from_numpy(items), torch.from_numpy(offsets), torch.from_numpy(users)
    weight = torch.tensor(0.3)
    rows = np.full(n_users, ROWS - 1)  # requests after the training log: the table's last row
    exact = ItemIndex(v, o, weight, kind="exact")
    top = exact.search(u, 200, rows=rows)[0]
    rng = np.random.default_rng(seed + 1)
    history = [rng.choice(t, HISTORY, replace=False) for t in top]
    return {"v": v, "o": o, "u": u, "w": weight, "rows": rows, "exact": exact, "history": history}


def latencies(index: ItemIndex, s: dict[str, Any], k: int = 10) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-query seconds of single-query searches (history left out) and what each returned."""
    out, found = [], []
    for b in range(len(s["u"])):
        t = time.perf_counter()
        idx, _ = index.search(s["u"][b : b + 1], k, [s["history"][b]], s["rows"][b : b + 1])
        out.append(time.perf_counter() - t)
        found.append(idx[0])
    return np.array(out), found


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)]))


def ms(x: np.ndarray, q: float) -> float:
    return round(float(np.percentile(x, q)) * 1e3, 3)


def cmd_index(a: argparse.Namespace) -> dict[str, Any]:
    s = setup(a.items, a.users)
    before = rss_gb()
    t = time.perf_counter()
    index = ItemIndex(s["v"], s["o"], s["w"], kind="hnsw")
    build = time.perf_counter() - t
    after = rss_gb()
    lat_x, truth = latencies(s["exact"], s)
    lat_h, found = latencies(index, s)
    import faiss

    graph_bytes = faiss.serialize_index(index._faiss).nbytes
    return {
        "step": "index", "items": a.items, "dim": 64, "offset_rows": ROWS, "history": HISTORY, "queries": a.users,
        **{k: v for k, v in index.info().items() if k != "n_items"},
        "build_seconds": round(build, 1), "index_gb": round(graph_bytes / 1e9, 3),
        "rss_added_gb": round(after - before, 3), "rss_gb": round(after, 3),
        "recall_at_10": round(recall(found, truth), 4),
        "exact_p50_ms": ms(lat_x, 50), "exact_p99_ms": ms(lat_x, 99),
        "index_p50_ms": ms(lat_h, 50), "index_p99_ms": ms(lat_h, 99),
        "torch_threads": torch.get_num_threads(),
        "per_ef_search": sweep(index, s, truth, a.ef),
    }


def sweep(index: ItemIndex, s: dict[str, Any], truth: list[np.ndarray], efs: list[int]) -> list[dict[str, Any]]:
    """Recall@10 and latency of one graph at each search beam width in ``efs``."""
    from recfuse.serve.index import HnswParams

    p = index.params or hnsw_params(index.n_items)
    rows = []
    for ef in efs:
        index.params = HnswParams(p.m, p.ef_construction, ef)
        lat, found = latencies(index, s)
        rows.append({"ef_search": ef, "recall_at_10": round(recall(found, truth), 4),
                     "p50_ms": ms(lat, 50), "p99_ms": ms(lat, 99)})
    index.params = p
    return rows


def cmd_crossover(a: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for n in a.sizes:
        s = setup(n, a.users)
        index = ItemIndex(s["v"], s["o"], s["w"], kind="hnsw")
        lat_x, truth = latencies(s["exact"], s)
        lat_h, found = latencies(index, s)
        rows.append({"items": n, "exact_p50_ms": ms(lat_x, 50), "index_p50_ms": ms(lat_h, 50),
                     "exact_p99_ms": ms(lat_x, 99), "index_p99_ms": ms(lat_h, 99),
                     "recall_at_10": round(recall(found, truth), 4)})
    return {"step": "crossover", "rows": rows, "torch_threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("index")
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=500)
    p.add_argument("--ef", type=int, nargs="+", default=[64, 96, 128, 192, 256], help="efSearch values to sweep")
    p = sub.add_parser("crossover")
    p.add_argument("--sizes", type=int, nargs="+", default=[5_000, 10_000, 20_000, 50_000, 100_000, 200_000])
    p.add_argument("--users", type=int, default=300)
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = {"index": cmd_index, "crossover": cmd_crossover}[a.cmd](a)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
