"""The chunked catalogue softmax gives the plain cross-entropy's loss and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recfuse.models.losses import chunk_rows, softmax_cross_entropy


def test_hand_computed_value() -> None:
    # Two items, user state (1, 0): logits (1, 0) -> CE of item 0 is log(1 + e^-1), of item 1 is log(1 + e).
    h = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    table = torch.eye(2)
    loss = softmax_cross_entropy(h, table, torch.tensor([0, 1]), torch.tensor([1.0, 2.0]), chunked=True)
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-1)) + 2 * math.log(1 + math.e), rel=1e-6)


@pytest.mark.parametrize("with_bias", [False, True])
def test_chunked_matches_plain_cross_entropy(with_bias: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from recfuse.models import losses

    monkeypatch.setattr(losses, "CACHE_ELEMENTS", 64)  # 16-row chunks over 50 rows: a ragged last chunk
    torch.manual_seed(0)
    n, d, v = 50, 8, 30
    h = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    table = torch.randn(v, d, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, v - 5, (n,))
    w = torch.rand(n, dtype=torch.float64)
    bias = None
    if with_bias:  # the last 5 items are out of the softmax (cold items at training)
        bias = torch.zeros(v, dtype=torch.float64)
        bias[-5:] = float("-inf")
    got = softmax_cross_entropy(h, table, y, w, bias, chunked=True)
    gh, gt = torch.autograd.grad(got, (h, table))
    logits = h @ table.T + (0 if bias is None else bias)
    want = (F.cross_entropy(logits, y, reduction="none") * w).sum()
    wh, wt = torch.autograd.grad(want, (h, table))
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-10)
    assert torch.allclose(gh, wh, atol=1e-10) and torch.allclose(gt, wt, atol=1e-10)
    if with_bias:
        assert torch.all(gt[-5:] == 0)  # a removed item gets no gradient
    assert torch.autograd.gradcheck(lambda a, b: softmax_cross_entropy(a, b, y, w, bias, chunked=True), (h, table))


def test_chunk_rows_bounds() -> None:
    assert chunk_rows(1) == 4096 and chunk_rows(10**7) == 16


def test_label_smoothing_hand_computed() -> None:
    # Logits (1, 0), target item 0, e = 0.2: the target distribution is (0.9, 0.1), so the loss is
    # 0.9 log(1 + e^-1) + 0.1 log(1 + e).
    h, table = torch.tensor([[1.0, 0.0]]), torch.eye(2)
    for chunked in (True, False):
        loss = softmax_cross_entropy(h, table, torch.tensor([0]), chunked=chunked, smoothing=0.2)
        assert float(loss) == pytest.approx(0.9 * math.log(1 + math.exp(-1)) + 0.1 * math.log(1 + math.e), rel=1e-6)


@pytest.mark.parametrize("chunked", [True, False])
@pytest.mark.parametrize("with_bias", [False, True])
def test_label_smoothing_matches_smoothed_targets(with_bias: bool, chunked: bool) -> None:
    torch.manual_seed(1)
    n, d, v, e = 40, 6, 20, 0.1
    h = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    table = torch.randn(v, d, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, v - 4, (n,))
    w = torch.rand(n, dtype=torch.float64)
    keep = torch.ones(v, dtype=torch.bool)
    bias = None
    if with_bias:  # 4 items out of the softmax: the uniform part spreads over the other 16 only
        keep[-4:] = False
        bias = torch.zeros(v, dtype=torch.float64).masked_fill(~keep, float("-inf"))
    got = softmax_cross_entropy(h, table, y, w, bias, chunked=chunked, smoothing=e)
    gh, gt = torch.autograd.grad(got, (h, table))
    logp = torch.log_softmax((h @ table.T)[:, keep], dim=1)  # (n, kept)
    target = (1 - e) * F.one_hot(y, v)[:, keep].double() + e / int(keep.sum())
    want = (-(target * logp).sum(1) * w).sum()
    wh, wt = torch.autograd.grad(want, (h, table))
    tol = 1e-10 if chunked else 1e-6  # the plain path takes its cross-entropy in fp32
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=tol)
    assert torch.allclose(gh, wh, atol=tol) and torch.allclose(gt, wt, atol=tol)
    if not with_bias and not chunked:  # and torch's own label smoothing agrees
        torch_ls = (F.cross_entropy(h @ table.T, y, reduction="none", label_smoothing=e) * w).sum()
        assert float(got.detach()) == pytest.approx(float(torch_ls.detach()), rel=tol)


def test_label_smoothing_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="label smoothing"):
        softmax_cross_entropy(torch.ones(1, 2), torch.eye(2), torch.tensor([0]), smoothing=1.0)


@pytest.mark.parametrize("name", ["sasrec", "gru4rec", "fusion"])
def test_label_smoothing_out_of_range_is_refused_by_the_config(name: str) -> None:
    from recfuse.models import MODELS

    with pytest.raises(ValueError, match="label_smoothing must be in"):
        MODELS[name](label_smoothing=-0.1)


def test_label_smoothing_per_row_is_the_sum_of_the_parts() -> None:
    torch.manual_seed(2)
    h, table = torch.randn(12, 4, dtype=torch.float64), torch.randn(9, 4, dtype=torch.float64)
    y = torch.randint(0, 9, (12,))
    eps = torch.tensor([0.2] * 7 + [0.0] * 5, dtype=torch.float64)
    for chunked in (True, False):
        whole = softmax_cross_entropy(h, table, y, chunked=chunked, smoothing=eps)
        parts = (softmax_cross_entropy(h[:7], table, y[:7], chunked=chunked, smoothing=0.2)
                 + softmax_cross_entropy(h[7:], table, y[7:], chunked=chunked))
        assert float(whole) == pytest.approx(float(parts), rel=1e-6)
    with pytest.raises(ValueError, match="label smoothing"):
        softmax_cross_entropy(h, table, y, smoothing=torch.full((12,), -0.1))
