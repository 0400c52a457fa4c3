"""Ablations of the fusion model: the full model against itself with one part switched off.

Every row is a :class:`~recfuse.evaluate.runner.Variant` of the registry
model ``fusion`` with one :class:`~recfuse.models.fusion.FusionConfig` switch
set, run by :func:`~recfuse.evaluate.runner.run_variants` under the same
protocol and the same seeds as the full model; each row is tested against
``full`` with the benchmark's paired test (per-user test NDCG@10 averaged over
seeds).  No tuning: every variant runs the same configuration but for its
switch, so a difference is the switch's doing.

The full model at the first seed is also asked for its gate per test query,
bucketed by time since the user's previous event
(:mod:`recfuse.evaluate.analysis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from recfuse.config import make_config
from recfuse.data.dataset import Interactions
from recfuse.data.split import COLD_ITEMS_SEED, Split
from recfuse.evaluate.analysis import model_gate_by_gap
from recfuse.evaluate.runner import Variant, run_variants, seed_list
from recfuse.models.base import Recommender

#: The model every row is a variant of.
MODEL = "fusion"

#: The row every other one is compared with.
REFERENCE = "full"

#: ``{label: (fixed FusionConfig switches, what the row leaves out)}``, in table order.
ABLATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "full": ({}, "full model: text, time (gaps and trend), rating, user vectors, learned long/short gate"),
    "no_text": ({"use_text": False}, "no item text (ID embeddings only)"),
    "long_only": ({"gate": "long"}, "long-term interest only"),
    "short_only": ({"gate": "short"}, "short-term interest only"),
    "fixed_gate": ({"gate": "fixed"}, "fixed 50/50 fusion instead of the learned gate"),
    "no_time": ({"use_time": False}, "no timeliness features (time gaps and the trend term)"),
    "no_rating": ({"use_rating": False}, "no rating features"),
    "no_trend": ({"trend_days": 0.0}, "no trend term (item popularity in the 30 days before the request)"),
    "no_user": ({"user_emb": False}, "no learned per-user vector in the long-term interest"),
}

#: The parameters the rows vary; ``--set`` may not fix one that a chosen row varies (it would change what
#: that row means); ``--set trend_days=0`` with rows that leave it alone ablates the model without the term.
SWITCHES = ("use_text", "use_time", "use_rating", "gate", "trend_days", "user_emb")


def ablation_variants(names: Sequence[str] | None = None, params: dict[str, Any] | None = None) -> list[Variant]:
    """The variants to run: ``full`` first (always: it is the reference), then ``names`` in table order.

    ``params`` (from ``--set``) apply to every row; they may not touch a switch.

    >>> [v.label for v in ablation_variants(["no_time", "no_text"])]
    ['full', 'no_text', 'no_time']
    >>> ablation_variants(["no_text"], {"epochs": 2})[1].params
    {'epochs': 2, 'use_text': False}
    """
    params = dict(params or {})
    unknown = sorted(set(names or ()) - set(ABLATIONS))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; available: {list(ABLATIONS)}")
    wanted = set(names) if names is not None else set(ABLATIONS)
    wanted.add(REFERENCE)
    varied = {key for label in wanted for key in ABLATIONS[label][0]}
    clash = sorted(set(params) & varied)
    if clash:
        raise ValueError(f"{clash}: the ablation varies these itself; leave them to the variants")
    out = [Variant(label, MODEL, {**params, **switch}) for label, (switch, _) in ABLATIONS.items() if label in wanted]
    for v in out:
        make_config(MODEL, v.params)  # a misspelt --set fails here, before any fitting
    return out


def inert_reason(label: str, data: Interactions) -> str | None:
    """Why a row cannot differ from ``full`` on ``data`` (the signal it removes is absent), or ``None``.

    >>> inert_reason("no_time", Interactions.from_sequences([("u", ["a", "b"])]))
    'the dataset has no timestamps'
    """
    switch = ABLATIONS[label][0]
    if "use_text" in switch and (data.item_features is None or data.item_features.width < 2):
        return "the dataset has no item text"
    if ("use_time" in switch or "trend_days" in switch) and data.timestamp is None:
        return "the dataset has no timestamps"
    if "use_rating" in switch and data.rating is None:
        return "the dataset has no ratings"
    return None


def run_ablation(
    data: Interactions,
    seeds: int | Sequence[int],
    names: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    split: str = "loo",
    ks: Sequence[int] = (5, 10, 20),
    mask_history: bool = True,
    progress: bool = True,
    console: Console | None = None,
    cold_items: float = 0.0,
    cold_seed: int = COLD_ITEMS_SEED,
    jobs: int = 1,
    threads: int | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Run the ablation and return its ``results.json`` dict.

    ``seeds`` is a count or a list, ``jobs`` runs fits side by side (``threads`` each) and
    ``out`` receives each fit's record as it ends, as in
    :func:`~recfuse.evaluate.runner.run_benchmark`.  The dict is a benchmark
    results dict (``docs/results-json.md``) keyed by variant label, with
    ``reference = "full"``, plus ``ablation`` (the rows: switches,
    description, relative change and p-value against ``full``, and ``inert``:
    why the row cannot differ from ``full`` on this dataset) and
    ``gate_by_gap`` (the full model's gate by time gap, first seed, test
    queries; ``None`` when ``full`` has no learned gate).

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> seqs = [(f"u{u}", [f"i{(u + j) % 12}" for j in range(6)]) for u in range(20)]
    >>> r = run_ablation(Interactions.from_sequences(seqs), 1, ["no_time"], {"epochs": 1, "embedding_size": 8},
    ...                  ks=(10,), progress=False)
    >>> list(r["models"]), r["reference"], r["ablation"]["variants"]["no_time"]["params"]
    (['full', 'no_time'], 'full', {'use_time': False})
    """
    variants = ablation_variants(names, params)
    first_seed = seed_list(seeds)[0]
    gates: dict[str, Any] = {}

    def after_fit(v: Variant, seed: int, sp: Split, model: Recommender) -> None:
        if v.label == REFERENCE and seed == first_seed and hasattr(model, "gates"):
            gates["test"] = model_gate_by_gap(model, sp.test)  # type: ignore[arg-type]

    def finish(results: dict[str, Any]) -> dict[str, Any]:
        """The ablation's own keys, over the rows finished so far (``full`` may not be among them yet)."""
        models = results["models"]
        full = models.get(REFERENCE)
        metric = full["significance"]["metric"] if full and full["significance"] else "ndcg@10"
        full_mean = full["metrics"][metric]["mean"] if full else None
        rows: dict[str, Any] = {}
        for v in variants:
            m = models.get(v.label)
            if m is None:
                continue
            mean = m["metrics"][metric]["mean"]
            sig = m["significance"] if v.label != REFERENCE else None
            rows[v.label] = {
                "params": ABLATIONS[v.label][0],
                "description": ABLATIONS[v.label][1],
                "relative_change": (mean / full_mean - 1.0) if full_mean else None,
                "p_vs_full": sig["wilcoxon_p"] if sig and sig["vs"] == REFERENCE else None,
                "inert": inert_reason(v.label, data),
            }
        results["ablation"] = {"model": MODEL, "reference": REFERENCE, "metric": metric,
                               "params": dict(params or {}), "variants": rows}
        gate = gates.get("test")
        results["gate_by_gap"] = (None if gate is None else
                                  {"variant": REFERENCE, "seed": first_seed, "evalset": "test", **gate})
        return results

    return run_variants(
        data, variants, seeds, split=split, ks=ks, mask_history=mask_history, tune=False, reference=REFERENCE,
        progress=progress, console=console, cold_items=cold_items, cold_seed=cold_seed, after_fit=after_fit,
        title="ablation", jobs=jobs, threads=threads, out=out, finish=finish,
    )


__all__ = ["ABLATIONS", "MODEL", "REFERENCE", "SWITCHES", "ablation_variants", "inert_reason", "run_ablation"]
