"""Precision@10 of free-text queries over the ml-100k catalogue, per language, per encoder, per item text.

For every query of queries.json (the same meaning in English, Chinese and Spanish) the catalogue is ranked
by cosine between the query vector and each item's text vector, and precision@10 counts the relevant items
among the top ten (relevance: the query's rules over the genre labels and the imported descriptions).
Item text is either the dataset's own (title, year, genres) or that plus the imported LLM description.
Vectors come from recfuse's embedding cache, so a second run encodes nothing.

Usage: python benchmarks/text-queries/precision.py [--encoders minilm,e5,use-m3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.data.registry import load_dataset
from recfuse.text.build import build_item_texts
from recfuse.text.cache import encode_texts
from recfuse.text.encoder import ENCODERS, TextEncoder
from recfuse.text.knowledge import apply_descriptions, import_descriptions

HERE = Path(__file__).resolve().parent
DESCRIPTIONS = Path("../shared/data/llm-item-descriptions/movielens-llm-descriptions.json")
K = 10


def relevant(query: dict[str, Any], genres: list[set[str]], descriptions: list[str]) -> np.ndarray:
    """Boolean ``(n_items,)``: the items meeting every rule the query has."""
    ok = np.ones(len(genres), dtype=bool)
    if "genres_all" in query:
        need = set(query["genres_all"])
        ok &= np.array([need <= g for g in genres])
    if "genres_any" in query:
        some = set(query["genres_any"])
        ok &= np.array([bool(some & g) for g in genres])
    if "description_any" in query:
        pattern = re.compile("|".join(f"(?:{p})" for p in query["description_any"]), re.IGNORECASE)
        ok &= np.array([bool(pattern.search(d)) for d in descriptions])
    return ok


def precision_at_k(item_vectors: np.ndarray, query_vectors: np.ndarray, rel: np.ndarray, k: int = K) -> np.ndarray:
    """``(n_queries,)`` precision@k of ranking items by cosine (rows are unit vectors)."""
    scores = query_vectors @ item_vectors.T  # (Q, n_items)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(rel, top, axis=1).mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated registry names")
    parser.add_argument("--descriptions", type=Path, default=DESCRIPTIONS)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    spec = json.loads((HERE / "queries.json").read_text())
    queries, languages = spec["queries"], spec["languages"]

    data = load_dataset("ml-100k")
    imported = import_descriptions(data, args.descriptions)
    described = apply_descriptions(data, imported.descriptions)
    feats = described.item_features
    assert feats is not None
    genres = [set((g or "").split("|")) for g in feats["genres"].to_list()]
    descriptions = [d or "" for d in feats["description"].to_list()]
    rel = np.stack([relevant(q, genres, descriptions) for q in queries])  # (Q, n_items)
    texts = {"title+genres": build_item_texts(data).texts, "title+genres+description": build_item_texts(described).texts}

    rows: list[dict[str, Any]] = []
    per_query: dict[str, dict[str, list[float]]] = {}
    for name in args.encoders.split(","):
        encoder = TextEncoder(name, progress=False)
        qvec = {lang: encoder.encode_queries([q[lang] for q in queries]) for lang in languages}
        for text_kind, item_texts in texts.items():
            t0 = time.perf_counter()
            vectors, stats = encode_texts(item_texts, encoder)
            seconds = time.perf_counter() - t0
            for lang in languages:
                p = precision_at_k(vectors, qvec[lang], rel)
                per_query[f"{name}/{text_kind}/{lang}"] = [round(float(x), 3) for x in p]
                kinds = {kind: float(p[[q["kind"] == kind for q in queries]].mean()) for kind in ("genre", "theme", "mood")}
                rows.append({"encoder": name, "key": encoder.key, "item_text": text_kind, "language": lang,
                             "precision@10": round(float(p.mean()), 4), **{f"p@10 {k}": round(v, 4) for k, v in kinds.items()}})
            print(f"{name:7s} {text_kind:26s} " + "  ".join(
                f"{r['language']} {r['precision@10']:.3f}" for r in rows[-len(languages):])
                + f"   (encoded {stats.n_encoded}, cached {stats.n_cached}, {seconds:.1f} s)", flush=True)

    ratios = {}
    for r in rows:
        if r["language"] != "en":
            en = next(x for x in rows if x["encoder"] == r["encoder"] and x["item_text"] == r["item_text"] and x["language"] == "en")
            ratios[f"{r['encoder']}/{r['item_text']}/{r['language']}:en"] = round(r["precision@10"] / en["precision@10"], 3) if en["precision@10"] else None
    result = {
        "what": "precision@10 of free-text queries over ml-100k item texts, ranked by cosine",
        "n_queries": len(queries), "languages": languages, "k": K,
        "n_relevant": {q["id"]: int(n) for q, n in zip(queries, rel.sum(axis=1), strict=True)},
        "descriptions": imported.report.summary(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
        "rows": rows, "ratio_to_english": ratios, "per_query": per_query,
        "query_ids": [q["id"] for q in queries],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    lines = ["| encoder | item text | en | zh | es | zh / en | es / en |", "|---|---|---|---|---|---|---|"]
    for name in args.encoders.split(","):
        for text_kind in texts:
            got = {r["language"]: r["precision@10"] for r in rows if r["encoder"] == name and r["item_text"] == text_kind}
            zh_en, es_en = (f"{got[lang] / got['en']:.2f}" if got["en"] else "-" for lang in ("zh", "es"))
            lines.append(f"| {name} | {text_kind} | {got['en']:.3f} | {got['zh']:.3f} | {got['es']:.3f} | {zh_en} | {es_en} |")
    (args.out / "results.md").write_text(
        f"Precision@10 over {len(queries)} queries ({', '.join(languages)}), ml-100k, 1,682 items; "
        f"written by precision.py.\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
