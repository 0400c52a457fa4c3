"""The model side of the service: one loaded model directory, scored in micro-batches.

:class:`Engine` wraps a :class:`~recfuse.bundle.Bundle`: id maps that grow
when items are added, display fields, the item text matrix (for free-text
queries), and cached item vectors.  A model that scores by user and item
vectors (:class:`~recfuse.models.base.VectorScorer`, e.g. the fusion model)
is served on a fast path: its item table is computed once per model version
instead of on each request, which gives the same scores as the model's own
``recommend`` (the serve tests check that) and the gate from the same
forward pass.  Known users' vectors and gates are
cached between requests (keyed by user, event count and request-gap bucket),
so a repeat request with nothing new skips the forward pass; the HTTP route
answers such a hit on its event loop (:meth:`Engine.try_cached`) without
queueing it for the batcher.

:class:`Batcher` runs requests on one worker thread: whatever is queued when
the worker becomes free forms the next batch (up to ``max_batch``), so a
lone request waits for nothing and concurrent ones share one forward pass.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import polars as pl
import torch

from recfuse.bundle import Bundle
from recfuse.data.dataset import IdMap
from recfuse.data.split import Queries
from recfuse.models.base import Explainer, ItemAdder, VectorScorer
from recfuse.models.fusion.features import gap_bucket
from recfuse.serve.index import ItemIndex, choose_kind
from recfuse.serve.state import Snapshot
from recfuse.serve.store import ItemRecord

_tokens = itertools.count(1)


class EngineError(ValueError):
    """A request the loaded model cannot answer (e.g. new items without a text tower)."""


class ModelLoadError(ValueError):
    """A model directory that cannot be served: not a model directory, a missing, truncated or garbled
    file, an unknown model name.  The message names the directory and the problem."""


def load_engine(path: str | Path, version: int = 1, cache_size: int = 100_000,
                erased: dict[str, float] | None = None, index: str = "auto") -> Engine:
    """Load the model directory ``path`` into an :class:`Engine`, any failure as a :class:`ModelLoadError`.

    ``index``: how the engine finds its top-k items (see :class:`Engine`).

    Examples
    --------
    >>> load_engine("/no/such/dir")
    Traceback (most recent call last):
    ...
    recfuse.serve.engine.ModelLoadError: /no/such/dir: not a recfuse model directory (no bundle.json); make one with `recfuse train`
    """
    from recfuse.bundle import BundleError

    try:
        _check_model_name(Path(path))
        return Engine(Bundle.load(path), path, version=version, cache_size=cache_size, erased=erased, index=index)
    except (BundleError, ModelLoadError) as e:
        raise ModelLoadError(str(e)) from e
    except Exception as e:  # whatever breaks while reading a directory is that directory's problem
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ModelLoadError(f"{path}: cannot be loaded as a model directory ({type(e).__name__}: {first})") from e


# ------------------------------------------------------------------ text encoder
_encoder: Any = None
_encoder_lock = threading.Lock()


def text_encoder() -> Any:
    """The process-wide sentence encoder (loaded once; ~3-6 s on first use)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            from recfuse.text.encoder import TextEncoder

            enc = TextEncoder(progress=False)
            enc.encode(["warm up"])  # loads the weights now, not on a request
            _encoder = enc
        return _encoder


def encode(texts: Sequence[str]) -> np.ndarray:
    """Texts -> L2-normalised ``(n, d)`` float32 with the service's encoder."""
    enc = text_encoder()
    with _encoder_lock:  # one forward at a time: the model is shared
        return np.asarray(enc.encode(list(texts)), np.float32)


def _check_model_name(path: Path) -> None:
    """Raise :class:`ModelLoadError` when the directory names a model this recfuse does not have."""
    import json

    from recfuse.models import MODELS

    try:
        name = json.loads((path / "model" / "config.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return  # missing or garbled: Bundle.load names that problem
    if name not in MODELS:
        raise ModelLoadError(f"{path}: unknown model {name!r} (this recfuse has {', '.join(sorted(MODELS))})")


# ------------------------------------------------------------------ locks
class SharedLock:
    """A lock with a shared side (many holders at once) and an exclusive side (one, alone).

    ``with lock:`` (or :meth:`exclusive`) takes it alone; :meth:`shared` shares it;
    :meth:`try_shared` shares it only if that needs no wait.  An exclusive waiter goes first:
    shared holders arriving after it wait.

    Examples
    --------
    >>> lock = SharedLock()
    >>> with lock.shared(), lock.shared():
    ...     lock.try_shared()
    True
    >>> lock.release_shared()
    >>> with lock:
    ...     lock.try_shared()
    False
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    def try_shared(self) -> bool:
        """Share the lock if nobody holds or waits for it alone; ``True`` when taken (then call
        :meth:`release_shared`)."""
        with self._cond:
            if self._exclusive or self._waiting:
                return False
            self._shared += 1
            return True

    def release_shared(self) -> None:
        with self._cond:
            self._shared -= 1
            if not self._shared:
                self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            self.release_shared()

    def __enter__(self) -> Self:
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._exclusive = False
            self._cond.notify_all()

    def exclusive(self) -> Self:
        """The lock, to take alone in a ``with`` block."""
        return self


# ------------------------------------------------------------------ engine
@dataclass
class Job:
    """One ranking request for the batcher."""

    history: Snapshot
    k: int
    exclude: bool
    explain: bool
    now: float | None  # request time (None: the history has no timestamps)
    engine: Engine
    user: str | None = None  # a known user's id: their vector may come from the engine's cache
    future: Future[dict[str, Any]] = field(default_factory=Future)


class Engine:
    """A loaded model directory, ready to serve.

    Parameters
    ----------
    bundle
        The loaded model directory.
    path
        Where it came from (reported by ``/health``).
    version
        A number the service increments at each reload.
    cache_size
        User vectors kept between requests (0: none).
    erased
        Users whose data was erased, with when (Unix seconds): those erased
        after this model was trained are served as unknown users (their
        learned per-user vector is never looked up).
    index
        How a vector-scoring model's top-k items are found: ``"auto"`` (exact below
        :data:`recfuse.serve.index.EXACT_BELOW` items, an HNSW graph above), ``"exact"`` or ``"hnsw"``
        (see :mod:`recfuse.serve.index`).  Exact search is the scores of every item and a top-k, as
        before there was an index; with the graph, history is still left out exactly and the scores
        returned are the exact ones, so the answer is the exact answer whenever the graph finds the
        true top-k.  Explanations are always computed by exact search.
    """

    def __init__(self, bundle: Bundle, path: str | Path, version: int = 1, cache_size: int = 100_000,
                 erased: dict[str, float] | None = None, index: str = "auto") -> None:
        choose_kind(index, 0)  # an unknown kind fails here, before anything is loaded
        self.index_kind = index
        self.index: ItemIndex | None = None  # None: exact search over the score matrix
        self._n_trained = len(bundle.items)  # items of the model's own catalogue; later ones come by text
        self.bundle = bundle
        # User vectors and gates of known users, keyed by (user, events in their history, request-gap
        # bucket): a user who has done nothing new since the last request, at the same log2 bucket of
        # time since their last event, gets the same vector, so the forward pass is skipped.  Cleared
        # whenever the item table changes (add_items); a reload builds a new engine.
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, int, int], tuple[torch.Tensor, float]] = OrderedDict()
        self.cache_hits = self.cache_misses = 0
        self.model = bundle.model
        self.path = str(path)
        self.version = version
        self.items: IdMap = bundle.items
        # A model with a learned vector per training user (fusion ``user_emb``) needs each known user's
        # training row (the bundle's user map, string ids once loaded); anyone else is the unknown user (-1).
        model = self.model
        self.fast = isinstance(model, VectorScorer)
        self._user_rows = bundle.users if isinstance(model, VectorScorer) and model.knows_users else None
        created = _created(bundle)
        self._erased = {u for u, at in (erased or {}).items() if created is None or at >= created}
        self._forget_before: dict[str, int] = {}  # user -> newest history stamp erased on this engine
        self.token = next(_tokens)
        # Scoring (batches, cache hits, similar items) shares the engine; changing it (add_items, forget)
        # takes it alone.  The cache itself needs no lock: each OrderedDict operation is atomic under the
        # GIL, and an entry evicted between a lookup and its move to the end is simply not moved.
        self.lock = SharedLock()
        table = bundle.item_table
        self.titles: list[str] = [bundle.title(i) for i in range(len(bundle.items))]
        self.genres: list[str | None] = (
            [None if g is None else str(g) for g in table["genres"].to_list()] if "genres" in table.columns
            else [None] * len(bundle.items)
        )
        self.text_vectors = None if bundle.text_vectors is None else np.asarray(bundle.text_vectors, np.float32)
        self.explains = isinstance(model, Explainer)
        self.can_add = isinstance(model, ItemAdder) and model.takes_new_items
        self._refresh()

    # ---------------------------------------------------------------- caches
    @torch.inference_mode()
    def _refresh(self, updated: Sequence[int] | None = None) -> None:
        """Recompute item-vector caches (after load, or after add_items with the ``updated`` items)."""
        model: Any = self.model
        if hasattr(model, "module"):
            model.module.eval()
        if isinstance(model, VectorScorer):
            self._content = model.item_table()  # (n_items + 1, D): row 0 is what padding gets
            vectors = self._content[1:]
            self._sync_index(vectors, updated)
            # (D, n_items): what a cache hit multiplies by (with an index, the index scores it instead)
            self._items_t = vectors.T.contiguous() if self.index is None else vectors.T
        elif hasattr(model, "item_vectors"):
            vectors = model.item_vectors().detach()
        else:
            vectors = None
        self._unit = None if vectors is None else torch.nn.functional.normalize(vectors.float(), dim=1)
        self._cache.clear()

    def _sync_index(self, vectors: torch.Tensor, updated: Sequence[int] | None) -> None:
        """Build the item index, or bring it up to date after ``add_items`` (new items appended, the
        ``updated`` ones scored exactly on the side); no index while exact search is the choice."""
        offsets = self._offset_table()
        if choose_kind(self.index_kind, len(vectors)) == "exact" or offsets is False:
            self.index = None
            return
        table, weight = offsets if isinstance(offsets, tuple) else (None, 1.0)
        if self.index is None or updated is None:
            # The trained items and those added later by text alone are searched as two groups.
            self.index = ItemIndex(vectors, table, weight, kind=self.index_kind, groups=(0, self._n_trained))
        else:
            self.index.sync(vectors, table, weight, updated=updated)

    def _offset_table(self) -> tuple[torch.Tensor, Any] | None | bool:
        """The model's per-request offsets as ``(table, weight)``, ``None`` without any, ``False`` when it
        has offsets an index cannot fold in (no ``offset_table``/``offset_rows``: served exactly)."""
        model: Any = self.model
        if hasattr(model, "offset_table") and hasattr(model, "offset_rows"):
            found: tuple[torch.Tensor, Any] | None = model.offset_table()
            return found
        return None if model.score_offsets(None, np.zeros(1, np.int64)) is None else False

    def _offset_rows(self, times: np.ndarray | None, lengths: np.ndarray) -> np.ndarray | None:
        model: Any = self.model
        return model.offset_rows(times, lengths) if hasattr(model, "offset_rows") else None

    @property
    def n_items(self) -> int:
        return len(self.items)

    def info(self, public: bool = False) -> dict[str, Any]:
        """What is loaded; ``public`` leaves out where it was loaded from (``/health`` is open to anyone)."""
        out = {
            "version": self.version, "model": self.model.name, "dataset": self.bundle.meta.get("dataset"),
            "n_items": self.n_items, "created": self.bundle.meta.get("created"),
        }
        return out if public else {**out, "dir": self.path}

    def user_row(self, user: str | None) -> int:
        """The model's training row of ``user`` (its learned per-user vector), or -1: unknown or erased."""
        if self._user_rows is None or user is None or user in self._erased:
            return -1
        return self._user_rows.get(user)

    def forget(self, user: str, stamp: int) -> None:
        """Serve ``user`` as an unknown user from now on and drop their cached vectors.

        ``stamp``: the newest live-state stamp of the erased history (a request already in flight
        with that history does not put its vector back in the cache).
        """
        with self.lock.exclusive():
            self._erased.add(user)
            self._forget_before[user] = stamp
            for key in [k for k in self._cache if k[0] == user]:
                del self._cache[key]

    def describe(self, index: int) -> dict[str, Any]:
        return {"item_id": self.items.external_ids[index], "title": self.titles[index], "genres": self.genres[index]}

    def query(self, history: Snapshot, now: float | None, user: str | None = None) -> Queries:
        """The model-side query of one history at request time ``now`` (what a ranking job scores)."""
        return self._queries([Job(history, 1, False, False, now, self, user)])

    # ---------------------------------------------------------------- scoring
    def _queries(self, jobs: Sequence[Job]) -> Queries:
        hist = [j.history for j in jobs]
        indptr = np.zeros(len(jobs) + 1, np.int64)
        np.cumsum([len(h) for h in hist], out=indptr[1:])
        timed = jobs[0].now is not None
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)
        return Queries(
            user=np.array([self.user_row(j.user) for j in jobs], np.int64),
            indptr=indptr,
            items=cat([h.items for h in hist], np.int64),
            timestamps=cat([h.timestamps for h in hist], np.float64) if timed else None,
            ratings=cat([h.ratings for h in hist], np.float32) if timed else None,
            time=np.array([j.now for j in jobs], np.float64) if timed else None,
        )

    @torch.inference_mode()
    def user_vectors(self, q: Queries) -> tuple[torch.Tensor, np.ndarray]:
        """Fast-path models: user vectors ``(B, D)`` and gates ``(B,)`` at request time, with the cached item table."""
        assert isinstance(self.model, VectorScorer)
        user, gate = self.model.encode_users(q, self._content)
        return user, gate.float().cpu().numpy()

    def _cache_key(self, job: Job) -> tuple[str, int, int] | None:
        h = job.history
        if not self.fast or self.cache_size <= 0 or job.user is None or h.version < 0:
            return None
        gap = 0 if job.now is None or not len(h) else int(gap_bucket(np.array([job.now - h.timestamps[-1]]))[0])
        return (job.user, h.version, gap)

    @torch.inference_mode()
    def _cached_scores(self, jobs: Sequence[Job]) -> tuple[torch.Tensor, np.ndarray | None, Queries]:
        """Scores ``(B, n_items)`` and gates ``(B,)`` (``None`` for models without a gate) for
        ``jobs``; the fusion forward pass runs only for users not in the cache."""
        q = self._queries(jobs)
        if not self.fast:
            return torch.from_numpy(self.model.score(q)), None, q
        users, gates = self._cached_vectors(jobs, q)
        times = q.time if q.timestamps is not None else None
        return self._plus_offsets((users @ self._content[1:].T).float(), times, q.lengths()), gates, q

    def _cached_vectors(self, jobs: Sequence[Job], q: Queries) -> tuple[torch.Tensor, np.ndarray]:
        """User vectors ``(B, D)`` and gates ``(B,)`` of ``jobs`` (queries ``q``), from the cache where
        it has them."""
        keys = [self._cache_key(j) for j in jobs]
        found = [None if k is None else self._cache.get(k) for k in keys]
        miss = [b for b, f in enumerate(found) if f is None]
        self.cache_hits += len(jobs) - len(miss)
        self.cache_misses += len(miss)
        vecs: list[torch.Tensor] = [f[0] if f is not None else None for f in found]  # type: ignore[misc]
        gates = np.array([f[1] if f is not None else np.nan for f in found], np.float32)
        if miss:
            users, g = self.user_vectors(q if len(miss) == len(jobs) else q.take(np.array(miss)))
            for row, b in enumerate(miss):
                vecs[b], gates[b] = users[row], g[row]
                key = keys[b]
                if key is not None and key[1] > self._forget_before.get(key[0], -1):
                    self._cache[key] = (users[row].clone(), float(g[row]))
        for k in keys:
            if k is not None:
                with suppress(KeyError):
                    self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            with suppress(KeyError):
                self._cache.popitem(last=False)
        return torch.stack(vecs), gates

    def _plus_offsets(self, scores: torch.Tensor, times: np.ndarray | None, lengths: np.ndarray) -> torch.Tensor:
        """``scores`` plus the model's per-request item term (the fusion model's trend), if it has one."""
        assert isinstance(self.model, VectorScorer)
        extra = self.model.score_offsets(times, lengths)
        return scores if extra is None else scores + extra.to(scores.dtype)

    def try_cached(self, job: Job) -> dict[str, Any] | None:
        """The answer to ``job`` straight from the user cache, or ``None`` (a miss, an explanation,
        or the engine busy with a batch or an item update).

        Made for the HTTP event loop: a hit costs one ``(D,) x (D, n_items)`` product and a top-k,
        far less than handing the request to the batcher thread and back (two thread switches
        under the GIL), and it never waits for the engine's lock.
        """
        key = None if job.explain else self._cache_key(job)
        if key is None or not self.lock.try_shared():
            return None
        try:
            found = self._cache.get(key)
            if found is None:
                return None
            with suppress(KeyError):
                self._cache.move_to_end(key)
            self.cache_hits += 1
            if self.index is not None:
                return self._index_answers([job], found[0][None], np.array([found[1]], np.float32))[0]
            with torch.inference_mode():
                scores = (found[0] @ self._items_t).float()[None]  # (1, n_items)
                times = None if job.now is None else np.array([job.now], np.float64)
                scores = self._plus_offsets(scores, times, np.array([len(job.history)]))
            return self._answers([job], scores, np.array([found[1]], np.float32), None)[0]
        finally:
            self.lock.release_shared()

    def run(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """Answer jobs of one kind (all timed or all untimed), in one or two forward passes.

        A batch is padded to its longest history, so when lengths are skewed
        (ml-100k: median 65 events, the longest 737, the model reads up to
        250) the shorter half runs as a second, much cheaper, pass.
        """
        if len(jobs) >= 8:
            order = sorted(range(len(jobs)), key=lambda b: len(jobs[b].history))
            half = len(order) // 2
            if len(jobs[order[-1]].history) > 2 * max(len(jobs[order[half - 1]].history), 1):
                parts = [order[:half], order[half:]]
                answers = [self._run([jobs[b] for b in part]) for part in parts]
                out: list[dict[str, Any]] = [{}] * len(jobs)
                for part, ans in zip(parts, answers, strict=True):
                    for b, a in zip(part, ans, strict=True):
                        out[b] = a
                return out
        return self._run(jobs)

    def _run(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        with self.lock.shared():
            if self.index is not None and self.fast and not any(j.explain for j in jobs):
                with torch.inference_mode():
                    users, found_gates = self._cached_vectors(jobs, self._queries(jobs))
                return self._index_answers(jobs, users, found_gates)
            with torch.inference_mode():
                scores, gates, q = self._cached_scores(jobs)
            return self._answers(jobs, scores, gates, q)

    def _index_answers(self, jobs: Sequence[Job], users: torch.Tensor, gates: np.ndarray) -> list[dict[str, Any]]:
        """The jobs' answers from the item index (user vectors ``(B, D)``); what :meth:`_answers` gives
        from the full score matrix when the index finds the true top-k.  Called with the lock held."""
        assert self.index is not None
        kmax = min(max(j.k for j in jobs), self.n_items)
        timed = jobs[0].now is not None
        lengths = np.array([len(j.history) for j in jobs])
        rows = self._offset_rows(np.array([j.now for j in jobs], np.float64) if timed else None, lengths)
        empty = np.zeros(0, np.int64)
        exclude = [j.history.items if j.exclude and len(j.history) else empty for j in jobs]
        idx, vals = self.index.search(users, kmax, exclude, rows)
        out = []
        for b, job in enumerate(jobs):
            n = min(job.k, kmax)
            finite = np.isfinite(vals[b, :n])
            out.append({
                "items": idx[b, :n][finite].tolist(),
                "scores": vals[b, :n][finite].astype(np.float64).tolist(),
                "gate": float(gates[b]),
            })
        return out

    def _answers(
        self, jobs: Sequence[Job], scores: torch.Tensor, gates: np.ndarray | None, q: Queries | None
    ) -> list[dict[str, Any]]:
        """Top-k of ``scores`` ``(B, n_items)`` per job, seen items left out where asked, explained
        where asked (``q``: the jobs' queries, needed only then).  Called with the lock held."""
        kmax = min(max(j.k for j in jobs), self.n_items)
        with torch.inference_mode():
            for b, job in enumerate(jobs):
                if job.exclude and len(job.history):
                    scores[b, torch.from_numpy(job.history.items)] = -torch.inf
            vals, idx = torch.topk(scores, kmax, dim=1)
        vals_np, idx_np = vals.numpy(), idx.numpy()
        out = []
        for b, job in enumerate(jobs):
            n = min(job.k, kmax)
            finite = np.isfinite(vals_np[b, :n])
            res: dict[str, Any] = {
                "items": idx_np[b, :n][finite].tolist(),
                "scores": vals_np[b, :n][finite].astype(np.float64).tolist(),
                "gate": None if gates is None else float(gates[b]),
            }
            if job.explain and self.explains:
                assert q is not None
                res["explanations"] = self.explain(q.take(np.array([b])), n, job.exclude)
            out.append(res)
        return out

    def explain(self, q: Queries, k: int, exclude: bool) -> dict[str, Any]:
        """The model's explanation for one query (items with history contributions and dimensions)."""
        assert isinstance(self.model, Explainer)
        with torch.enable_grad():
            exp = self.model.explain(q, k, exclude_history=exclude)[0]
        return {"gate": exp["gate"], "items": {e["item"]: e for e in exp["items"]}}

    # ---------------------------------------------------------------- items
    def similar(self, index: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Items closest to ``index`` by cosine of the model's item vectors (itself left out)."""
        if self._unit is None:
            raise EngineError(f"model {self.model.name!r} has no item vectors")
        with self.lock.shared(), torch.inference_mode():
            sims = self._unit @ self._unit[index]  # (n_items,)
            sims[index] = -torch.inf
            v, i = torch.topk(sims, min(k, self.n_items - 1))
        return i.numpy(), v.numpy()

    def text_scores(self, vector: np.ndarray) -> np.ndarray:
        """Cosine of a query text vector with every item's text, ``(n_items,)``."""
        if self.text_vectors is None:
            raise EngineError("this model directory has no item text vectors; free-text queries need them")
        return self.text_vectors @ vector

    def add_items(self, records: Sequence[ItemRecord]) -> tuple[list[str], list[str]]:
        """Add new items (text vector only, recommendable at once) or update known ones' text.

        Returns ``(added, updated)`` external ids.
        """
        if not self.can_add:
            raise EngineError(f"model {self.model.name!r} cannot take new items (it needs a text tower: a fusion model trained with text)")
        model = self.model
        assert isinstance(model, ItemAdder)
        with self.lock:
            added, updated = [], []
            new_recs: list[ItemRecord] = []
            new_ids: set[str] = set()
            for r in records:
                assert r.vector is not None
                idx = self.items.get(r.item_id, -1)
                if idx >= 0:
                    model.set_item_text(idx, r.vector)
                    self._set_item(idx, r)
                    updated.append(r.item_id)
                elif r.item_id not in new_ids:
                    new_ids.add(r.item_id)
                    new_recs.append(r)
            if new_recs:
                vecs = np.stack([np.asarray(r.vector, np.float32) for r in new_recs])
                model.add_items(vecs)
                self.bundle.items = self.bundle.items.extend([r.item_id for r in new_recs])
                self.items = self.bundle.items
                self.token = next(_tokens)
                self.titles += [""] * len(new_recs)
                self.genres += [None] * len(new_recs)
                self.text_vectors = vecs if self.text_vectors is None else np.vstack([self.text_vectors, vecs])
                for r in new_recs:
                    self._set_item(self.items.index(r.item_id), r)
                    added.append(r.item_id)
            self._sync_table(records)
            self._refresh(updated=[self.items.index(i) for i in updated])
        return added, updated

    def _sync_table(self, records: Sequence[ItemRecord]) -> None:
        """Give the bundle's item table a row per added item and the new fields of updated ones, so that
        what reads the catalogue from the bundle (:mod:`recfuse.llm.facts`: titles, genres) sees every
        item served.  Called with the lock held, after the engine's own lists are updated."""
        table = self.bundle.item_table
        table = table.with_columns(
            (pl.col(c).cast(pl.String) if c in table.columns else pl.lit(None, pl.String)).alias(c)
            for c in ("text", "title", "genres")
        )
        n_old = table.height
        cols = {c: table[c].to_list() for c in ("text", "title", "genres")}
        latest = {r.item_id: r for r in records}
        for r in latest.values():
            idx = self.items.index(r.item_id)
            if idx < n_old:
                cols["text"][idx], cols["title"][idx], cols["genres"][idx] = r.text, self.titles[idx], r.genres
        table = table.with_columns(pl.Series(c, v, pl.String) for c, v in cols.items())
        new_ids = self.items.external_ids[n_old:].tolist()
        if new_ids:
            rows = pl.DataFrame({
                "item_id": new_ids, "text": [latest[i].text for i in new_ids],
                "title": [self.titles[n_old + n] for n in range(len(new_ids))],
                "genres": [latest[i].genres for i in new_ids],
            })
            table = pl.concat([table, rows], how="diagonal_relaxed")
        self.bundle.item_table = table

    def _set_item(self, idx: int, r: ItemRecord) -> None:
        self.titles[idx] = r.title or r.text[:60]
        self.genres[idx] = r.genres
        if self.text_vectors is not None and idx < len(self.text_vectors) and r.vector is not None:
            self.text_vectors[idx] = r.vector


def _created(bundle: Bundle) -> float | None:
    """When the bundle was trained (Unix seconds), from its ``created`` field; ``None`` when unknown."""
    import calendar

    raw = bundle.meta.get("created")
    try:
        return float(calendar.timegm(time.strptime(str(raw), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


# ------------------------------------------------------------------ batcher
class Batcher:
    """Run :class:`Job` s on one worker thread, batching whatever is queued.

    Parameters
    ----------
    max_batch
        Most jobs in one forward pass.
    max_wait
        Seconds to wait for more jobs after the first (0: take only what is
        already queued; concurrency fills the batches by itself).
    """

    def __init__(self, max_batch: int = 64, max_wait: float = 0.0) -> None:
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._q: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="recfuse-batcher", daemon=True)
        self.batches = 0
        self.jobs = 0
        self._thread.start()

    def submit(self, job: Job) -> Future[dict[str, Any]]:
        self._q.put(job)
        return job.future

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(10)

    def _take(self) -> list[Job] | None:
        first = self._q.get()
        if first is None:
            return None
        jobs = [first]
        deadline = time.monotonic() + self.max_wait
        while len(jobs) < self.max_batch:
            try:
                wait = deadline - time.monotonic()
                job = self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._q.put(None)
                break
            jobs.append(job)
        return jobs

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            self.batches += 1
            self.jobs += len(jobs)
            groups: dict[tuple[int, bool], list[Job]] = {}
            for j in jobs:
                groups.setdefault((id(j.engine), j.now is not None), []).append(j)
            for group in groups.values():
                try:
                    results = group[0].engine.run(group)
                except Exception as e:  # noqa: BLE001 - handed to the waiting request
                    for j in group:
                        j.future.set_exception(e)
                    continue
                for j, r in zip(group, results, strict=True):
                    j.future.set_result(r)
