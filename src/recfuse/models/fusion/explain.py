"""Why the fusion model recommends what it does: gradient x input over each history event's parts.

For a recommended item with score ``s``, event ``j``'s contribution is
``sum(ds/dx_j * x_j)`` over its three parts (content, rating, recency), plus
the request-time gap and the trend term for recency.  The top events by
contribution are the "because you ..." items; the dimension with the largest
total absolute contribution dominates.  The gate (short-term share) is the
user's at request time, shared by all of their items.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recfuse.data.split import Queries
from recfuse.models.fusion.model import request_times
from recfuse.models.fusion.module import DIMENSIONS

if TYPE_CHECKING:
    from recfuse.models.fusion.model import Fusion


def explain(
    model: Fusion, queries: Queries, k: int = 10, n_history: int = 3, exclude_history: bool = True
) -> list[dict[str, Any]]:
    """Top-``k`` items per query, each with why.

    Returns one dict per query: ``{"gate", "items": [{"item", "score",
    "history": [(item, contribution), ...], "dimension", "dimensions"}]}``
    with dense item indices; ``history`` holds the ``n_history`` events that
    contributed most.
    """
    module = model.module
    module.eval()
    top, scores = model.recommend(queries, k, exclude_history=exclude_history)
    out = []
    for b in range(len(queries)):
        q = queries.take(np.array([b]))
        x = model.inputs(q)
        kb = top.shape[1]
        rep = {name: t.expand(kb, *t.shape[1:]) for name, t in x.items()}  # one copy per item
        parts = {n: p.detach().requires_grad_(True) for n, p in module.embed(rep["hist"], rep["gap"], rep["rate"]).items()}
        now = module.now_emb(rep["now"]).detach().requires_grad_(True)
        fused = module.fuse(parts, rep["hist"], now, user=rep.get("user"), last_only=True)
        picked = torch.from_numpy(top[b]).to(model.device)
        items = model.item_vectors()[picked]  # (k, D)
        s = (fused.user[:, -1] * items.detach()).sum()
        s.backward()
        grad = lambda t: t.grad if t.grad is not None else torch.zeros_like(t)
        contrib = {n: (grad(p) * p).sum(-1).detach() for n, p in parts.items()}  # (k, L) each
        now_c = (grad(now) * now).sum(-1)[:, -1].detach()  # (k,)
        per_event = torch.stack(list(contrib.values())).sum(0)  # (k, L)
        offsets = model.score_offsets(request_times(q), q.lengths())
        if offsets is not None:  # the trend term is the item side of recency
            now_c = now_c + offsets.detach()[0, picked].abs()
        hist = rep["hist"][0].cpu().numpy()
        real = np.flatnonzero(hist > 0)
        entries = []
        for i in range(kb):
            ev = per_event[i].float().cpu().numpy()[real]
            order = np.argsort(-ev)[:n_history]
            history = [(int(hist[real[j]] - 1), float(ev[j])) for j in order]
            dims = {n: float(contrib[n][i].abs().sum()) for n in DIMENSIONS}
            dims["recency"] += float(now_c[i].abs())
            entries.append(
                {
                    "item": int(top[b, i]),
                    "score": float(scores[b, i]),
                    "history": history,
                    "dimension": max(dims, key=lambda n: dims[n]),
                    "dimensions": dims,
                }
            )
        out.append({"gate": float(fused.gate[0, -1].detach()), "items": entries})
    return out
