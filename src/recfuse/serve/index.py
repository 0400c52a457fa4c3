"""Top-k items for user vectors: exact on a small catalogue, a FAISS HNSW graph on a large one.

A vector-scoring model (:class:`~recfuse.models.base.VectorScorer`) scores item ``i`` for a request
as ``u . v_i + w * T[r, i]``: the user vector times the item vector plus one row ``r`` of a per-request
offset table (the fusion model's trend: ``R`` fixed rows, the row picked by the request's time).  That
is an inner product, exactly, once both sides are augmented::

    item  [v_i, w*T[s_1, i], ..., w*T[s_m, i]]      query  [u, 1{r = s_1}, ..., 1{r = s_m}]

so one inner-product search serves every request whose row is among the indexed rows ``s_j`` without
approximating the offsets (a low-rank or per-item-bias shortcut would rank by something else than the
model's score).  A row that is zero for every item needs no column.  When the table has more than
:data:`OFFSET_ROWS` rows only the last one gets a column: every request later than the training log
falls in it (live traffic), and a request in another row (a replay of an old time) is answered by
exact search.

:class:`ItemIndex` picks the search by catalogue size (``kind="auto"``): exact below
:data:`EXACT_BELOW` items (one matrix product and a top-k, ties to the lower index like
:func:`recfuse.models.base.top_k`), a FAISS ``IndexHNSWFlat`` graph above it, sized by
:func:`hnsw_params`.  The graph holds each augmented item vector lifted by one more coordinate,
``sqrt(rho^2 - |x|^2)`` with ``rho`` the longest item's norm, and the query gets a 0 there: every item
then has norm ``rho``, so the nearest item by L2 distance is exactly the one of largest inner product.  An
inner-product graph over the raw vectors stalled at a recall@10 of about 0.97 however wide the
search beam (inner product is no distance: a few long vectors collect the links), the lifted L2 graph reaches 0.99 at the same
latency.  HNSW rather than IVF: it needs no training pass, so items added later go straight into the
graph, and its search cost does not depend on how evenly a k-means split the catalogue.

Whatever the kind, what comes back is exact in the parts that matter for the answer:

* history items are left out exactly: the index is asked for ``k + len(excluded)`` candidates, the
  excluded ones are dropped, and a row left with fewer than ``k`` is answered by exact search;
* every candidate's score is recomputed with float32 products over its own vector and offset, so a
  returned score is the exact score of that item (the index only proposes candidates);
* an updated item's old entry in the graph is filtered out of the search and the item is scored
  exactly on the side until :meth:`ItemIndex.rebuild`; added items are appended to the graph (one
  longer than ``rho`` is scored on the side too: its lift would be imaginary).

Searches may run from many threads at once (each asks OpenMP for one thread: on the request path
parallelism comes from concurrent requests); :meth:`ItemIndex.sync` and :meth:`ItemIndex.rebuild`
wait for running searches and hold new ones back while they change the index.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recfuse.models.base import top_k

KINDS: tuple[str, ...] = ("auto", "exact", "hnsw")

EXACT_BELOW = 20_000
"""Catalogue size from which ``kind="auto"`` uses the HNSW index.  Single-query latency, one thread
each, d = 64 (``benchmarks/retrieval``, 2-core AMD EPYC): at 10,000 items exact search and the graph
(search plus exact re-scoring of its candidates) take the same time, at 20,000 the graph is ahead
(p50 0.48 against 0.78 ms) and the gap grows with the catalogue; below it exact search costs nothing
worth saving and its answer is exact by construction."""

OFFSET_ROWS = 8
"""Offset tables with at most this many rows get a column per row; longer ones only their last row."""

REBUILD_SIDE = 4096
"""Updated items scored on the side from which :meth:`ItemIndex.sync` rebuilds the graph instead."""


@dataclass(frozen=True)
class HnswParams:
    """Sizes of an HNSW graph: ``m`` links per node, ``ef_construction`` and ``ef_search`` beam widths."""

    m: int
    ef_construction: int
    ef_search: int


def hnsw_params(n_items: int) -> HnswParams:
    """Graph sizes for a catalogue of ``n_items``: recall@10 >= 0.98 against exact search on clustered
    item vectors (``tests/test_item_index.py`` and ``benchmarks/retrieval`` check it), with the beam
    widened at search time to the number of candidates asked for.

    >>> hnsw_params(50_000)
    HnswParams(m=32, ef_construction=100, ef_search=128)
    """
    if n_items <= 200_000:
        return HnswParams(32, 100, 128)
    if n_items <= 2_000_000:
        return HnswParams(32, 128, 128)
    return HnswParams(48, 160, 256)


def choose_kind(kind: str, n_items: int) -> str:
    """The search ``kind`` resolves to for ``n_items``: ``"exact"`` or ``"hnsw"``.

    >>> choose_kind("auto", 1000), choose_kind("auto", EXACT_BELOW), choose_kind("hnsw", 10)
    ('exact', 'hnsw', 'hnsw')
    """
    if kind not in KINDS:
        raise ValueError(f"index must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "auto":
        return "exact" if n_items < EXACT_BELOW or not _have_faiss() else "hnsw"
    return kind


def _have_faiss() -> bool:
    """Whether FAISS can be imported (``kind="auto"`` stays exact without it; ``"hnsw"`` then fails)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def omp_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` OpenMP threads in this thread, then restore the count.

    FAISS and torch share one OpenMP runtime and the setting is per thread: left at 1 after a search,
    the batcher thread's forward passes would lose torch's threads too.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class _Guard:
    """Many searches at once, or one change alone (a change waits for running searches)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False

    def __enter__(self) -> None:
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._readers += 1

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def write(self) -> _Writing:
        return _Writing(self)


class _Writing:
    def __init__(self, guard: _Guard) -> None:
        self.g = guard

    def __enter__(self) -> None:
        with self.g._cond:
            while self.g._writing or self.g._readers:
                self.g._cond.wait()
            self.g._writing = True

    def __exit__(self, *exc: object) -> None:
        with self.g._cond:
            self.g._writing = False
            self.g._cond.notify_all()


class ItemIndex:
    """Top-``k`` items per user vector, history left out, exact or through an HNSW graph.

    Parameters
    ----------
    vectors
        Item vectors ``(n_items, D)``; kept by reference (what exact scores are computed from).
    offsets
        Per-request offset table ``(R, n_items)`` or ``None``: a request in row ``r`` adds
        ``weight * offsets[r]`` to its scores.  Kept by reference.
    weight
        The offsets' weight (a number or a 0-dim tensor, multiplied as the model does).
    kind
        ``"auto"`` (exact below :data:`EXACT_BELOW` items, else HNSW), ``"exact"`` or ``"hnsw"``.
    threads
        OpenMP threads for building the graph (default: every core).
    groups
        First item index of each group of items that lie in their own part of the vector space (the
        engine: ``(0, n_trained)``, the items the model was trained with and those added later by text
        alone); items appended later join the last group.  Each group gets its own graph, or is
        scored exactly on every search when it is below :data:`EXACT_BELOW` items: one graph over two
        such groups can leave one unreachable from the other (the genre model of ``benchmarks/serve-load``
        with 1,000,000 items added by text, ``benchmarks/retrieval/serve_http.py``: served recall@10 0.72
        with one graph; users whose true top 10 were all trained items got none of them).

    Examples
    --------
    >>> v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> idx, scores = ItemIndex(v).search(torch.tensor([[1.0, 0.5]]), 2, exclude=[np.array([2])])
    >>> idx.tolist(), scores.tolist()
    ([[0, 1]], [[1.0, 0.5]])
    """

    def __init__(self, vectors: torch.Tensor, offsets: torch.Tensor | None = None, weight: float | torch.Tensor = 1.0,
                 kind: str = "auto", threads: int | None = None, groups: Sequence[int] = (0,)) -> None:
        self.requested = kind
        self.starts = sorted({0, *(int(g) for g in groups)})
        self.threads = threads or os.cpu_count() or 1
        self._guard = _Guard()
        self._faiss: Any = None
        self._rows: list[int] = []
        self._zero: set[int] = set()
        self._set_tables(vectors, offsets, weight)
        self.kind = choose_kind(kind, self.n_items)
        self.params: HnswParams | None = None
        self.rebuild()

    # ---------------------------------------------------------------- state
    def _set_tables(self, vectors: torch.Tensor, offsets: torch.Tensor | None, weight: float | torch.Tensor) -> None:
        self.vectors = vectors.detach().float()
        self.offsets = None if offsets is None else offsets.detach()
        self.weight = weight
        if self.offsets is not None and self.offsets.shape[1] != len(self.vectors):
            raise ValueError(f"offsets cover {self.offsets.shape[1]} items, vectors {len(self.vectors)}")

    @property
    def n_items(self) -> int:
        return len(self.vectors)

    def _offset_cols(self, first: int = 0) -> np.ndarray:
        """Columns of the augmented vectors of items ``first...``: ``w * offsets[rows]`` for the indexed
        rows, ``(n - first, m)``."""
        if self.offsets is None:
            return np.zeros((self.n_items - first, 0), np.float32)
        table = self.offsets[torch.as_tensor(self._rows, dtype=torch.long)][:, first:]  # (m, n - first)
        return (self.weight * table).float().T.contiguous().numpy()

    def _pick_rows(self) -> None:
        """Which offset rows get a column (``_rows``) and which need none because they are zero (``_zero``)."""
        self._zero = set()
        self._rows = []
        if self.offsets is None:
            return
        nonzero = (self.offsets != 0).any(dim=1).tolist()
        self._zero = {r for r, nz in enumerate(nonzero) if not nz}
        wanted = range(len(nonzero)) if len(nonzero) <= OFFSET_ROWS else [len(nonzero) - 1]
        self._rows = [r for r in wanted if nonzero[r]]

    def _bounds(self) -> list[tuple[int, int]]:
        """``(start, end)`` of each group of items (the last one reaches ``n_items``)."""
        starts = [g for g in self.starts if g < self.n_items] or [0]
        return list(zip(starts, [*starts[1:], self.n_items], strict=True))

    def _wants_graph(self, size: int) -> bool:
        return self.kind == "hnsw" and size > 0 and (self.requested == "hnsw" or size >= EXACT_BELOW)

    def rebuild(self) -> None:
        """Build the search structure again from the current tables (updated items back in the graphs)."""
        with self._guard.write():
            self._side = np.zeros(0, np.int64)  # updated items, scored exactly outside the graphs
            self._graphs: list[_Graph] = []
            self._pinned = np.zeros(0, np.int64)  # items of groups too small for a graph: always scored exactly
            self._faiss = None
            self._pick_rows()
            if self.kind == "exact":
                return
            data = np.hstack([self.vectors.numpy(), self._offset_cols()]).astype(np.float32)
            pinned, far = [], []
            self.params = hnsw_params(self.n_items)
            for start, end in self._bounds():
                if not self._wants_graph(end - start):
                    pinned.append(np.arange(start, end, dtype=np.int64))
                    continue
                graph = _Graph.build(data[start:end], start, hnsw_params(end - start), self.threads)
                far.append(graph.far)
                self._graphs.append(graph)
            self._pinned = np.concatenate(pinned) if pinned else np.zeros(0, np.int64)
            self._side = np.concatenate(far) if far else np.zeros(0, np.int64)
            self._set_selector()
            self._faiss = self._graphs or None

    def sync(self, vectors: torch.Tensor, offsets: torch.Tensor | None = None, weight: float | torch.Tensor = 1.0,
             updated: Sequence[int] = ()) -> None:
        """Take the new tables after items were added (rows past the old ``n_items``) or ``updated``.

        Added items join the last group: appended to its graph, or scored exactly while the group is
        below :data:`EXACT_BELOW` items (past it, the index is rebuilt and the group gets its graph).
        An updated item of a graph is scored exactly on the side (its old graph entry filtered out)
        until more than :data:`REBUILD_SIDE` are, when the graphs are rebuilt.
        """
        n_before = self.n_items
        self._set_tables(vectors, offsets, weight)
        kind = choose_kind(self.requested, self.n_items)
        rows_before = (set(self._rows), set(self._zero))
        if kind != self.kind or self._faiss is None:
            self.kind = kind
            self.rebuild()
            return
        self._pick_rows()
        if (set(self._rows), set(self._zero)) != rows_before:  # an offset row changed from or to zero
            self.rebuild()
            return
        in_graph = np.asarray([i for i in updated if i < n_before and self._graph_of(i) is not None], np.int64)
        side = np.union1d(self._side, in_graph)
        if len(side) > REBUILD_SIDE:
            self.rebuild()
            return
        last_start, _ = self._bounds()[-1]
        last = self._graphs[-1] if self._graphs and self._graphs[-1].start == last_start else None
        if self.n_items > n_before and last is None and self._wants_graph(self.n_items - last_start):
            self.rebuild()  # the last group just became big enough for its own graph
            return
        with self._guard.write():
            if self.n_items > n_before:
                new = slice(n_before, self.n_items)
                if last is None:
                    self._pinned = np.concatenate([self._pinned, np.arange(n_before, self.n_items, dtype=np.int64)])
                else:
                    cols = self._offset_cols(n_before)
                    side = np.union1d(side, last.add(np.hstack([self.vectors[new].numpy(), cols]).astype(np.float32),
                                                     self.threads))
            if len(side) != len(self._side):
                self._side = side
                self._set_selector()

    def _graph_of(self, item: int) -> _Graph | None:
        for g in self._graphs:
            if g.start <= item < g.start + g.n:
                return g
        return None

    def _set_selector(self) -> None:
        """Keep the graph entries of the side items out of each graph's results."""
        for g in self._graphs:
            g.exclude(self._side)

    # ---------------------------------------------------------------- search
    def exact_scores(self, users: torch.Tensor, rows: np.ndarray | None = None) -> torch.Tensor:
        """Exact scores ``(B, n_items)``: ``users @ vectors.T`` plus the rows' offsets."""
        scores = (users.float() @ self.vectors.T).float()
        if self.offsets is not None and rows is not None:
            scores = scores + (self.weight * self.offsets[torch.as_tensor(rows, dtype=torch.long)]).to(scores.dtype)
        return scores

    def _exact(self, users: torch.Tensor, k: int, exclude: Sequence[np.ndarray], rows: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
        scores = self.exact_scores(users, rows)
        for b, ex in enumerate(exclude):
            if len(ex):
                scores[b, torch.from_numpy(np.asarray(ex, np.int64))] = -torch.inf
        idx, vals = top_k(scores.numpy(), k)
        return np.where(np.isfinite(vals), idx, -1), vals

    def search(self, users: torch.Tensor, k: int, exclude: Sequence[np.ndarray] | None = None,
               rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user, best first (ties to the lower index), with their exact scores.

        Parameters
        ----------
        users
            User vectors ``(B, D)``.
        k
            Items per user (at most ``n_items``).
        exclude
            Per user, item indices to leave out (their history), or ``None``.
        rows
            Per user, the offset row of the request, or ``None`` (no offsets).

        Returns
        -------
        tuple of numpy.ndarray
            ``(indices, scores)``, both ``(B, min(k, n_items))``; where fewer items are left than that,
            the tail is index -1 with score ``-inf``.
        """
        users = users.detach().float().reshape(-1, self.vectors.shape[1])
        n_q = len(users)
        excl = [np.zeros(0, np.int64)] * n_q if exclude is None else [np.asarray(e, np.int64) for e in exclude]
        if rows is not None:
            rows = np.asarray(rows, np.int64)
        k = min(k, self.n_items)
        with self._guard, torch.inference_mode():
            if self._faiss is None or k <= 0:
                return self._exact(users, k, excl, rows)
            return self._graph(users, k, excl, rows)

    def _graph(self, users: torch.Tensor, k: int, excl: list[np.ndarray], rows: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        n_q = len(users)
        out_i = np.full((n_q, k), -1, np.int64)
        out_s = np.full((n_q, k), -np.inf, np.float32)
        col = {r: j for j, r in enumerate(self._rows)}
        query = np.zeros((n_q, users.shape[1] + len(self._rows) + 1), np.float32)  # the lift coordinate: 0
        query[:, : users.shape[1]] = users.numpy()
        exact_rows: list[int] = []
        for b in range(n_q):
            r = 0 if rows is None else int(rows[b])
            if r in col:
                query[b, users.shape[1] + col[r]] = 1.0
            elif rows is not None and self.offsets is not None and r not in self._zero:
                exact_rows.append(b)  # an offset row without a column: exact search
        graph_rows = [b for b in range(n_q) if b not in set(exact_rows)]
        if graph_rows:
            want = k + max(len(excl[b]) for b in graph_rows)
            found = []
            for g in self._graphs:
                fetch = min(want, g.n)
                params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # per call: searches differ
                params.efSearch = max(g.params.ef_search, fetch)
                if g.selector is not None:
                    params.sel = g.selector
                with omp_threads(1):
                    _, local = g.index.search(query[graph_rows], fetch, params=params)
                found.append(np.where(local >= 0, local + g.start, -1))
            extra = np.concatenate([self._pinned, self._side])
            for j, b in enumerate(graph_rows):
                cand = np.concatenate([f[j][f[j] >= 0] for f in found])
                if len(extra):
                    cand = np.concatenate([cand, extra])
                if len(excl[b]):
                    cand = cand[~np.isin(cand, excl[b])]
                left = self.n_items - len(np.unique(excl[b]))
                if len(cand) < min(k, left):
                    exact_rows.append(b)
                    continue
                s = self._candidate_scores(users[b], cand, None if rows is None else rows[b : b + 1])
                order = np.lexsort((cand, -s))[:k]
                out_i[b, : len(order)], out_s[b, : len(order)] = cand[order], s[order]
        if exact_rows:
            e = np.array(sorted(exact_rows))
            idx, vals = self._exact(users[e], k, [excl[b] for b in e], None if rows is None else rows[e])
            out_i[e], out_s[e] = idx, vals
        return out_i, out_s

    def _candidate_scores(self, user: torch.Tensor, cand: np.ndarray, row: np.ndarray | None) -> np.ndarray:
        """Exact float32 scores of items ``cand`` for one user (and its offset row)."""
        c = torch.from_numpy(cand)
        s = (user[None] @ self.vectors[c].T).float()[0]
        if self.offsets is not None and row is not None:
            s = s + (self.weight * self.offsets[int(row[0]), c]).to(s.dtype)
        return s.numpy()

    def info(self) -> dict[str, Any]:
        """What the index is: kind, size, graph sizes, indexed offset rows, items on the side."""
        out: dict[str, Any] = {"kind": self.kind, "n_items": self.n_items}
        if self.kind == "hnsw" and self.params is not None:
            out |= {"m": self.params.m, "ef_construction": self.params.ef_construction,
                    "ef_search": self.params.ef_search, "offset_rows": list(self._rows), "side": len(self._side),
                    "graphs": [{"start": g.start, "n_items": g.n} for g in self._graphs],
                    "exact_items": len(self._pinned)}
        return out


class _Graph:
    """One HNSW graph over a contiguous group of items (global index ``start + local``), lifted to one norm."""

    def __init__(self, index: Any, start: int, radius: float, params: HnswParams) -> None:
        self.index, self.start, self.radius, self.params = index, start, radius, params
        self.n = 0
        self.far = np.zeros(0, np.int64)  # items longer than the radius (added later): scored on the side
        self.selector: Any = None
        self._stale: Any = None

    @classmethod
    def build(cls, data: np.ndarray, start: int, params: HnswParams, threads: int) -> _Graph:
        import faiss

        # Every item lifted to one norm: then the nearest item by L2 is the one of largest inner product.
        radius = float(np.sqrt((data * data).sum(axis=1).max(initial=0.0)))
        index = faiss.IndexHNSWFlat(data.shape[1] + 1, params.m, faiss.METRIC_L2)
        index.hnsw.efConstruction = params.ef_construction
        index.hnsw.efSearch = params.ef_search
        graph = cls(index, start, radius, params)
        graph.far = graph.add(data, threads)
        return graph

    def add(self, data: np.ndarray, threads: int) -> np.ndarray:
        """Append items (augmented rows, in order); returns the global indices of those longer than the
        radius (their lift would be imaginary: the caller scores them on the side)."""
        sq = (data * data).sum(axis=1)
        lifted = np.hstack([data, np.sqrt(np.maximum(self.radius**2 - sq, 0.0))[:, None]]).astype(np.float32)
        with omp_threads(threads):
            self.index.add(lifted)
        first = self.start + self.n
        self.n += len(data)
        return first + np.flatnonzero(sq > self.radius**2 * (1 + 1e-6)).astype(np.int64)  # rounding

    def exclude(self, items: np.ndarray) -> None:
        """Keep these global item indices out of this graph's results."""
        import faiss

        local = items[(items >= self.start) & (items < self.start + self.n)] - self.start
        self.selector = None
        if len(local):
            self._stale = faiss.IDSelectorBatch(local)  # IDSelectorNot does not own it: keep it alive
            self.selector = faiss.IDSelectorNot(self._stale)
