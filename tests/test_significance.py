"""Known answers for the paired significance tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recfuse.evaluate.significance import paired_test, primary_metric


def test_identical_arrays_give_p_one() -> None:
    a = np.array([0.0, 0.3, 1.0, 0.5, 0.0, 0.2])
    r = paired_test(a, a.copy())
    assert r["wilcoxon_p"] == 1.0
    assert r["ttest_p"] == 1.0
    assert r["mean_diff"] == 0.0
    assert r["ratio"] == pytest.approx(1.0)
    assert r["n"] == 6


def test_all_zero_inputs_do_not_crash() -> None:
    # LOO NDCG for two weak models: both miss every user.
    z = np.zeros(50)
    r = paired_test(z, z)
    assert (r["wilcoxon_p"], r["ttest_p"], r["ratio"]) == (1.0, 1.0, None)


def test_float_noise_counts_as_equal() -> None:
    b = np.array([0.1, 0.2, 0.3, 0.4])
    a = b + np.array([1e-15, -1e-15, 0.0, 2e-16])  # seed averages that differ by rounding only
    assert paired_test(a, b)["wilcoxon_p"] == 1.0


def test_clear_shift_is_significant() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(300)
    a = b + 0.05 + 0.02 * rng.standard_normal(300)
    r = paired_test(a, b)
    assert r["wilcoxon_p"] < 0.01
    assert r["ttest_p"] < 0.01
    assert r["mean_diff"] == pytest.approx(np.mean(a - b))
    assert r["ratio"] == pytest.approx(a.mean() / b.mean())


def test_no_shift_is_not_significant() -> None:
    rng = np.random.default_rng(2)
    b = rng.random(300)
    a = b + 0.05 * rng.standard_normal(300)
    assert paired_test(a, b)["ttest_p"] > 0.05


def test_matches_scipy_on_a_generic_case() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(40), rng.random(40)
    r = paired_test(a, b)
    assert r["ttest_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert r["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a - b, zero_method="zsplit").pvalue)


def test_constant_nonzero_difference() -> None:
    r = paired_test(np.ones(5), np.zeros(5))
    assert r["ttest_p"] == 0.0  # t = inf
    assert 0.0 <= r["wilcoxon_p"] < 0.1
    assert r["ratio"] is None and r["mean_diff"] == 1.0


def test_tiny_and_empty_inputs() -> None:
    assert paired_test(np.array([1.0]), np.array([0.0]))["wilcoxon_p"] == 1.0
    assert paired_test(np.array([]), np.array([]))["n"] == 0


def test_unpaired_lengths_raise() -> None:
    with pytest.raises(ValueError, match="paired"):
        paired_test(np.zeros(3), np.zeros(4))


def test_primary_metric() -> None:
    assert primary_metric((5, 10, 20)) == "ndcg@10"
    assert primary_metric((20, 50)) == "ndcg@20"
