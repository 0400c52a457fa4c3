"""Paired significance tests between two models evaluated on the same queries.

Both tests pair query ``i`` of model A with query ``i`` of model B (the same
user, the same target), which is far more sensitive than comparing means:

* Wilcoxon signed-rank (``zero_method="zsplit"``: ties, i.e. the many users
  both models miss, are ranked and split half/half between the two signs,
  the conservative choice when most differences are exactly zero);
* paired t-test on the differences.

Degenerate inputs never raise: when every difference is zero (or there are
fewer than two pairs) there is no evidence of a difference and both p-values
are ``1.0``; when every difference is the same non-zero number the t statistic
is infinite and its p-value is ``0.0``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

# Differences smaller than this are float noise from averaging over seeds, not a difference.
ZERO_TOL = 1e-12


def primary_metric(ks: Sequence[int]) -> str:
    """The metric models are tuned, ranked and tested on.

    ``ndcg@10`` when 10 is among ``ks`` (always, by default), else NDCG at the
    K closest to 10.

    >>> primary_metric((5, 10, 20)), primary_metric((5, 20))
    ('ndcg@10', 'ndcg@5')
    """
    k = min(ks, key=lambda k: (abs(k - 10), k))
    return f"ndcg@{k}"


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Compare paired per-query scores ``a`` (candidate) against ``b`` (reference).

    Parameters
    ----------
    a, b
        Per-query metric values, aligned (``a[i]`` and ``b[i]`` are the same
        query), shape ``(n,)``.

    Returns
    -------
    dict
        ``wilcoxon_p`` and ``ttest_p`` (two-sided), ``mean_diff`` (mean of
        ``a - b``), ``ratio`` (``mean(a) / mean(b)``, ``None`` when
        ``mean(b) == 0``) and ``n`` (number of pairs).  Plain Python floats,
        ready for JSON.

    Examples
    --------
    >>> same = np.array([0.0, 0.5, 1.0, 0.3])
    >>> paired_test(same, same)["wilcoxon_p"]
    1.0
    >>> rng = np.random.default_rng(0)
    >>> b = rng.random(200)
    >>> r = paired_test(b + 0.1 + 0.01 * rng.standard_normal(200), b)
    >>> r["wilcoxon_p"] < 0.01, r["ttest_p"] < 0.01, round(r["mean_diff"], 1), r["n"]
    (True, True, 0.1, 200)
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_test: a has {a.shape[0]} values but b has {b.shape[0]}; they must be paired")
    n = int(a.shape[0])
    diff = a - b
    diff[np.abs(diff) < ZERO_TOL] = 0.0
    mean_a = float(a.mean()) if n else 0.0
    mean_b = float(b.mean()) if n else 0.0
    out: dict[str, Any] = {
        "wilcoxon_p": 1.0,
        "ttest_p": 1.0,
        "mean_diff": float(diff.mean()) if n else 0.0,
        "ratio": mean_a / mean_b if mean_b != 0 else None,
        "n": n,
    }
    if n < 2 or not np.any(diff):
        return out
    with warnings.catch_warnings():
        # scipy warns about ties/zeros and switches to the normal approximation; that is what we want.
        warnings.simplefilter("ignore")
        w = stats.wilcoxon(diff, zero_method="zsplit")
        out["wilcoxon_p"] = _clean_p(float(w.pvalue))
        if np.all(diff == diff[0]):
            out["ttest_p"] = 0.0  # constant non-zero difference: t = ±inf
        else:
            out["ttest_p"] = _clean_p(float(stats.ttest_1samp(diff, 0.0).pvalue))
    return out


def _clean_p(p: float) -> float:
    """A p-value clipped to ``[0, 1]``; ``nan`` (undefined) reads as no evidence, ``1.0``."""
    if not np.isfinite(p):
        return 1.0
    return float(min(max(p, 0.0), 1.0))
