"""Analyses of a fitted model beyond accuracy: the fusion gate against time since the last event.

The fusion model's gate is the short-term share of the user vector at
request time (:meth:`recfuse.models.fusion.Fusion.gates`).  The design says a
user back after a month should lean long-term and a user mid-binge
short-term; :func:`gate_by_gap` measures whether the fitted model does, by
averaging the gate over queries bucketed by the time since the user's
previous event (``queries.time`` minus the last history timestamp).

Only numpy here (the model is duck-typed: anything with ``gates(queries)``),
so the module is cheap to import and the plot reads a saved result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from recfuse.data.split import EvalSet, Queries

#: Upper edges (seconds, exclusive) of the time-gap buckets; the last bucket is open-ended.
GAP_EDGES: tuple[float, ...] = (60.0, 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0)
#: One label per bucket, in order.
GAP_LABELS: tuple[str, ...] = ("<1 min", "<1 h", "<1 day", "<1 week", "<1 month", "≥1 month")


class HasGates(Protocol):
    def gates(self, queries: Queries) -> np.ndarray: ...


def request_gaps(queries: Queries) -> np.ndarray:
    """Seconds from each query's last history event to its request time, ``(B,)``.

    ``NaN`` where it is unknown: no timestamps or request times, or an empty
    history.

    Examples
    --------
    >>> q = Queries(user=np.array([0, 1, 2]), indptr=np.array([0, 2, 2, 3]), items=np.array([4, 5, 6]),
    ...             timestamps=np.array([10.0, 40.0, 7.0]), time=np.array([100.0, 50.0, 7.0]))
    >>> request_gaps(q).tolist()
    [60.0, nan, 0.0]
    """
    B = len(queries)
    out = np.full(B, np.nan)
    if queries.timestamps is None or queries.time is None or B == 0:
        return out
    lengths = queries.lengths()
    has = lengths > 0
    last = queries.timestamps[queries.indptr[1:][has] - 1]
    out[has] = np.asarray(queries.time, np.float64)[has] - last
    return out


def gap_bucket_index(gaps: np.ndarray) -> np.ndarray:
    """Bucket of each gap (index into :data:`GAP_LABELS`); ``-1`` for ``NaN``.

    Bucket edges are exclusive upper bounds: 59 s is ``<1 min``, 60 s is ``<1 h``.

    >>> gap_bucket_index(np.array([0.0, 59.0, 60.0, 86400.0, 40 * 86400.0, np.nan])).tolist()
    [0, 0, 1, 3, 5, -1]
    """
    gaps = np.asarray(gaps, np.float64)
    idx = np.searchsorted(np.asarray(GAP_EDGES), np.nan_to_num(gaps, nan=0.0), side="right")
    return np.where(np.isnan(gaps), -1, idx).astype(np.int64)


def gate_by_gap(gates: np.ndarray, gaps: np.ndarray) -> dict[str, Any]:
    """Mean gate (short-term share) per time-gap bucket.

    Parameters
    ----------
    gates
        Gate value per query, ``(B,)`` in [0, 1].
    gaps
        Seconds since the previous event per query, ``(B,)``; ``NaN`` = unknown
        (those queries are counted in ``n_unknown_gap`` and left out of the buckets).

    Returns
    -------
    dict
        ``{"buckets": [{"label", "lower_s", "upper_s", "n", "mean_gate",
        "std_gate"}, ...], "n_queries", "n_unknown_gap", "mean_gate"}``; every
        bucket is listed (``n`` may be 0, then its mean and std are ``None``);
        ``upper_s`` of the last bucket is ``None``; ``std_gate`` is the
        population std over the bucket's queries.  Plain JSON types.

    Examples
    --------
    >>> r = gate_by_gap(np.array([0.8, 0.6, 0.2, 0.5]), np.array([5.0, 30.0, 90 * 86400.0, np.nan]))
    >>> [(b["label"], b["n"], b["mean_gate"]) for b in r["buckets"]][::5]
    [('<1 min', 2, 0.7), ('≥1 month', 1, 0.2)]
    >>> r["n_queries"], r["n_unknown_gap"]
    (4, 1)
    """
    gates = np.asarray(gates, np.float64)
    gaps = np.asarray(gaps, np.float64)
    if gates.shape != gaps.shape:
        raise ValueError(f"gate_by_gap: {gates.shape[0]} gates but {gaps.shape[0]} gaps")
    idx = gap_bucket_index(gaps)
    lowers = (0.0, *GAP_EDGES)
    uppers: tuple[float | None, ...] = (*GAP_EDGES, None)
    buckets = []
    for b, label in enumerate(GAP_LABELS):
        g = gates[idx == b]
        buckets.append({
            "label": label,
            "lower_s": lowers[b],
            "upper_s": uppers[b],
            "n": len(g),
            "mean_gate": round(float(g.mean()), 12) if len(g) else None,
            "std_gate": round(float(g.std()), 12) if len(g) else None,
        })
    known = idx >= 0
    return {
        "buckets": buckets,
        "n_queries": len(gates),
        "n_unknown_gap": int((~known).sum()),
        "mean_gate": float(gates[known].mean()) if known.any() else None,
    }


def model_gates(model: HasGates, evalset: EvalSet | Queries, batch_size: int = 1024) -> np.ndarray:
    """A fitted model's gate for every query of ``evalset``, ``(n,)``, computed in batches."""
    queries = evalset.queries if isinstance(evalset, EvalSet) else evalset
    parts = [
        np.asarray(model.gates(queries.take(np.arange(s, min(s + batch_size, len(queries))))), np.float64)
        for s in range(0, len(queries), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def model_gate_by_gap(model: HasGates, evalset: EvalSet | Queries, batch_size: int = 1024) -> dict[str, Any]:
    """:func:`gate_by_gap` for a fitted model over the queries of ``evalset``."""
    queries = evalset.queries if isinstance(evalset, EvalSet) else evalset
    return gate_by_gap(model_gates(model, queries, batch_size), request_gaps(queries))


def plot_gate_by_gap(result: dict[str, Any], path: str | Path, title: str = "") -> Path | None:
    """The mean gate per gap bucket (error bars: standard error), with the query count under each bucket.

    Returns the path written, or ``None`` when no query has a known gap
    (a dataset without timestamps).  matplotlib's object API on the Agg
    canvas, as in :mod:`recfuse.evaluate.report`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    buckets = result["buckets"]
    if not any(b["n"] for b in buckets):
        return None
    path = Path(path)
    fig = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    x = np.arange(len(buckets))
    mean = [b["mean_gate"] if b["n"] else np.nan for b in buckets]
    sem = [b["std_gate"] / np.sqrt(b["n"]) if b["n"] else 0.0 for b in buckets]
    # Points joined by a line, not bars: the buckets are ordered, and the gate often moves in a narrow band
    # that a bar chart anchored at 0 would flatten.
    ax.errorbar(x, mean, yerr=sem, marker="o", capsize=3, color="tab:blue", label="mean gate ± s.e.")
    if result.get("mean_gate") is not None:
        ax.axhline(result["mean_gate"], color="grey", linestyle="--", linewidth=1, label="all queries")
    ax.legend(fontsize="small")
    ax.set_xticks(x, [f"{b['label']}\n(n={b['n']})" for b in buckets])
    lo = np.nanmin(np.asarray(mean, np.float64) - np.asarray(sem))
    hi = np.nanmax(np.asarray(mean, np.float64) + np.asarray(sem))
    pad = max(0.02, 0.15 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad))
    ax.set_xlabel("time since the user's previous event (at request time)")
    ax.set_ylabel("mean gate (short-term share)")
    ax.set_title(title or "Fusion gate by time since the previous event")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


__all__ = [
    "GAP_EDGES",
    "GAP_LABELS",
    "gap_bucket_index",
    "gate_by_gap",
    "model_gate_by_gap",
    "plot_gate_by_gap",
    "request_gaps",
]
