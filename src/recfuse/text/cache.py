"""On-disk embedding cache, keyed by (model, sha256 of the text).

Layout, under ``data_root() / "embeddings"`` (``~/.cache/recfuse/embeddings``;
``RECFUSE_DATA_DIR`` moves the root)::

    <model-slug>/model.json                  {"model": key, "dim": d}
    <model-slug>/<shard>.vectors.npy         (m, d) float32
    <model-slug>/<shard>.hashes.npy          (m,) S64: hex sha256 of each text

Each run that encodes new texts appends one *shard* (no rewrite of what is
there, no pickle: ``np.load(allow_pickle=False)``).  Files are written to a
temporary name and renamed; the hashes file is renamed last, so a reader
that sees a shard's hashes always finds its vectors.  Concurrent writers each
add their own shard: at worst a text is encoded twice, never lost or mixed
up.  When a model has many shards they are compacted into one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recfuse.data.dataset import Interactions
from recfuse.data.registry import data_root
from recfuse.text.build import build_item_texts
from recfuse.text.encoder import TextEncoder

MAX_SHARDS = 16  # compact beyond this many shards


def embeddings_root() -> Path:
    """``data_root() / "embeddings"``.

    Examples
    --------
    >>> import os
    >>> os.environ["RECFUSE_DATA_DIR"] = "/tmp/rf"
    >>> str(embeddings_root())
    '/tmp/rf/embeddings'
    >>> del os.environ["RECFUSE_DATA_DIR"]
    """
    return data_root() / "embeddings"


def text_hash(text: str) -> str:
    """Hex sha256 of the UTF-8 text.

    Examples
    --------
    >>> text_hash("")[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _slug(key: str) -> str:
    """A folder name for a model key: readable part + short hash (no collisions)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("._")[:80] or "model"
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class EmbeddingCache:
    """Vectors of texts already encoded by one model.

    Parameters
    ----------
    model_key
        Identifies the weights (:attr:`TextEncoder.key`).
    root
        Cache root; default :func:`embeddings_root`.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> cache = EmbeddingCache("toy-model", root=tempfile.mkdtemp())
    >>> cache.put([text_hash("a")], np.ones((1, 3), dtype=np.float32))
    >>> vecs, found = cache.get([text_hash("a"), text_hash("b")], dim=3)
    >>> found.tolist(), vecs[0].tolist()
    ([True, False], [1.0, 1.0, 1.0])
    """

    def __init__(self, model_key: str, root: str | Path | None = None) -> None:
        self.model_key = model_key
        self.folder = Path(root if root is not None else embeddings_root()).expanduser() / _slug(model_key)

    def __repr__(self) -> str:
        return f"EmbeddingCache({self.model_key!r}, folder={str(self.folder)!r})"

    def _shards(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name[: -len(".hashes.npy")] for p in self.folder.glob("*.hashes.npy"))

    def _read_shard(self, shard: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(hashes, vectors)`` of one shard, or ``None`` if it vanished or is damaged."""
        try:
            hashes = np.load(self.folder / f"{shard}.hashes.npy", allow_pickle=False)
            vectors = np.load(self.folder / f"{shard}.vectors.npy", allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError):  # removed by a concurrent compaction, or truncated
            return None
        if vectors.ndim != 2 or len(vectors) != len(hashes):
            return None
        return hashes, vectors

    @property
    def dim(self) -> int | None:
        """Vector size recorded for this model, if anything is cached."""
        try:
            return int(json.loads((self.folder / "model.json").read_text())["dim"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def __len__(self) -> int:
        return sum(len(s[0]) for s in map(self._read_shard, self._shards()) if s is not None)

    def get(self, hashes: Sequence[str], dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Look up text hashes.

        Returns
        -------
        vectors
            ``(n, d)`` float32; rows not found are zero.
        found
            ``(n,)`` bool.
        """
        dim = dim if dim is not None else self.dim
        found = np.zeros(len(hashes), dtype=bool)
        if dim is None:
            return np.zeros((len(hashes), 0), dtype=np.float32), found
        out = np.zeros((len(hashes), dim), dtype=np.float32)
        wanted: dict[bytes, list[int]] = {}
        for i, h in enumerate(hashes):
            wanted.setdefault(h.encode("ascii"), []).append(i)
        for shard in reversed(self._shards()):  # newest first
            if not wanted:
                break
            got = self._read_shard(shard)
            if got is None or got[1].shape[1] != dim:
                continue
            shard_hashes, vectors = got
            hit = np.flatnonzero(np.isin(shard_hashes, np.array(list(wanted), dtype="S64")))
            for row in hit.tolist():
                rows = wanted.pop(bytes(shard_hashes[row]), None)
                if rows is not None:
                    out[rows] = vectors[row]
                    found[rows] = True
        return out, found

    def put(self, hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors (one per hash) as a new shard; compacts when there are many."""
        if len(hashes) != len(vectors):
            raise ValueError(f"{len(hashes)} hashes for {len(vectors)} vectors")
        if not len(hashes):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "model.json"
        if self.dim is None:
            tmp = meta.with_name(f".model.json.{uuid.uuid4().hex}.tmp")
            tmp.write_text(json.dumps({"model": self.model_key, "dim": int(vectors.shape[1])}) + "\n")
            os.replace(tmp, meta)
        shard = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        _save_npy(self.folder / f"{shard}.vectors.npy", vectors)
        _save_npy(self.folder / f"{shard}.hashes.npy", np.asarray(hashes, dtype="S64"))  # last: commits the shard
        if len(self._shards()) > MAX_SHARDS:
            self.compact()

    def compact(self) -> None:
        """Merge all shards into one (duplicates dropped)."""
        shards = self._shards()
        parts = [(s, got) for s in shards if (got := self._read_shard(s)) is not None]
        if len(parts) < 2:
            return
        dim = self.dim
        parts = [(s, got) for s, got in parts if got[1].shape[1] == dim]
        hashes = np.concatenate([got[0] for _, got in parts])
        vectors = np.concatenate([np.asarray(got[1]) for _, got in parts])
        _, first = np.unique(hashes, return_index=True)
        first.sort()
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        _save_npy(self.folder / f"{name}.vectors.npy", vectors[first])
        _save_npy(self.folder / f"{name}.hashes.npy", hashes[first])
        for shard, _ in parts:  # hashes first: a reader never sees hashes without vectors
            (self.folder / f"{shard}.hashes.npy").unlink(missing_ok=True)
            (self.folder / f"{shard}.vectors.npy").unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove everything cached for this model."""
        for shard in self._shards():
            (self.folder / f"{shard}.hashes.npy").unlink(missing_ok=True)
            (self.folder / f"{shard}.vectors.npy").unlink(missing_ok=True)
        (self.folder / "model.json").unlink(missing_ok=True)


@dataclass(frozen=True)
class EncodeStats:
    """What an :func:`encode_texts` / :func:`encode_items` run did.

    Attributes
    ----------
    n
        Texts asked for (items, for :func:`encode_items`).
    n_encoded
        Distinct texts run through the model (see :attr:`n_duplicates`).
    n_cached
        Texts served from the cache.
    n_empty
        Empty texts (zero vectors, neither encoded nor cached).
    dim
        Vector size.
    seconds
        Wall time of the whole call (model loading included).
    encode_seconds
        Time spent in the model.
    model
        The encoder's key.
    """

    n: int
    n_encoded: int
    n_cached: int
    n_empty: int
    dim: int
    seconds: float
    encode_seconds: float
    model: str
    cache_folder: str | None = None

    @property
    def n_duplicates(self) -> int:
        """Texts that repeated another new text in the call (encoded once, shared)."""
        return self.n - self.n_encoded - self.n_cached - self.n_empty

    @property
    def items_per_s(self) -> float:
        """Texts per second over the whole call."""
        return self.n / self.seconds if self.seconds > 0 else float("inf")

    @property
    def encoded_per_s(self) -> float:
        """Texts per second through the model (``nan`` when nothing was encoded)."""
        return self.n_encoded / self.encode_seconds if self.n_encoded and self.encode_seconds > 0 else float("nan")


def encode_texts(
    texts: Sequence[str],
    encoder: TextEncoder | None = None,
    *,
    cache: bool | EmbeddingCache = True,
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, EncodeStats]:
    """Encode texts, reusing cached vectors and encoding only new distinct texts.

    Empty texts get zero vectors: "no text" must not look like one shared
    topic (the embedding of ``""`` would make all text-less items similar).

    Parameters
    ----------
    texts
        The texts.
    encoder
        Default: ``TextEncoder()`` (all-MiniLM-L6-v2).
    cache
        ``True`` for the on-disk cache of ``encoder.key`` (under ``cache_dir``
        or :func:`embeddings_root`), an :class:`EmbeddingCache`, or ``False``.
    cache_dir
        Cache root when ``cache`` is ``True``.

    Returns
    -------
    vectors
        ``(n, d)`` float32, unit rows (zero rows for empty texts).
    stats
        :class:`EncodeStats`.
    """
    start = time.perf_counter()
    encoder = encoder if encoder is not None else TextEncoder()
    store = (
        cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(encoder.key, root=cache_dir) if cache else None
    )
    texts = list(texts)
    hashes = [text_hash(t) for t in texts]
    nonempty = np.array([bool(t) for t in texts], dtype=bool)
    dim = store.dim if store is not None else None
    if store is not None and dim is not None:
        vectors, found = store.get(hashes, dim=dim)
    else:
        dim = encoder.dim
        vectors, found = np.zeros((len(texts), dim), dtype=np.float32), np.zeros(len(texts), dtype=bool)
    found &= nonempty
    todo = np.flatnonzero(nonempty & ~found)
    encode_seconds = 0.0
    n_encoded = 0
    if len(todo):
        unique: dict[str, list[int]] = {}
        for i in todo.tolist():
            unique.setdefault(hashes[i], []).append(i)
        first = [rows[0] for rows in unique.values()]
        t0 = time.perf_counter()
        new = encoder.encode([texts[i] for i in first])
        encode_seconds = time.perf_counter() - t0
        if new.shape[1] != vectors.shape[1]:
            # The cache holds another vector size under this key (the weights
            # changed behind the name): do not mix the two, encode afresh.
            return encode_texts(texts, encoder, cache=False)
        for rows, vec in zip(unique.values(), new, strict=True):
            vectors[rows] = vec
        n_encoded = len(first)
        if store is not None:
            store.put(list(unique), new)
    vectors[~nonempty] = 0.0
    stats = EncodeStats(
        n=len(texts),
        n_encoded=n_encoded,
        n_cached=int(found.sum()),
        n_empty=int((~nonempty).sum()),
        dim=int(vectors.shape[1]),
        seconds=time.perf_counter() - start,
        encode_seconds=encode_seconds,
        model=encoder.key,
        cache_folder=None if store is None else str(store.folder),
    )
    return vectors, stats


def encode_items(
    data: Interactions,
    encoder: TextEncoder | None = None,
    template: str | None = None,
    *,
    cache: bool | EmbeddingCache = True,
    cache_dir: str | Path | None = None,
) -> tuple[np.ndarray, EncodeStats]:
    """The item text matrix ``(n_items, d)`` in item-index order, with stats.

    Texts come from :func:`recfuse.text.build.build_item_texts`; vectors from
    the cache where the same (model, text) was encoded before.

    Examples
    --------
    >>> from recfuse.data.registry import load_dataset            # doctest: +SKIP
    >>> vectors, stats = encode_items(load_dataset("ml-100k"))     # doctest: +SKIP
    >>> vectors.shape, stats.n_encoded + stats.n_cached            # doctest: +SKIP
    ((1682, 384), 1682)
    """
    built = build_item_texts(data, template)
    return encode_texts(built.texts, encoder, cache=cache, cache_dir=cache_dir)
