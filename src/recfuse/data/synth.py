"""A structured synthetic log for scale work: its shape is known, so its answers are too.

Items belong to clusters; each cluster has its own small vocabulary, from
which the item's title and description are drawn.  Item popularity follows a
power law (within a cluster by rank, across clusters by how many users favour
them).  Each user has a long-term taste (a few favourite clusters with
weights) and a history of short sessions: a session starts in one of the
user's clusters and drifts to neighbouring clusters as it goes.  Timestamps
put seconds-to-minutes between events of a session and days between sessions.

Events are generated and written one chunk of users at a time
(``events/part-NNNNN.parquet``), so the whole log is never in memory; the
catalogue goes to ``items.parquet`` (``item_id, title, description,
cluster``) and each user's favourite clusters to ``users.parquet``.  Use it
with :func:`recfuse.data.prep.prepare` (the lazy path for big logs) or any
Parquet reader.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from recfuse.columns import Columns
from recfuse.data.dataset import DataError

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe", "gu", "hi", "jo", "ba")


@dataclass(frozen=True)
class SynthConfig:
    """Shape of a synthetic log; every draw follows from ``seed``."""

    users: int = 1000
    """Number of users."""
    items: int = 500
    """Catalogue size."""
    events: int = 20_000
    """Total events (at least 3 per user)."""
    clusters: int = 0
    """Item clusters (0: about one per 250 items, at least 4)."""
    tastes: int = 3
    """Favourite clusters per user."""
    item_zipf: float = 1.1
    """Power-law exponent of item popularity within a cluster (by rank)."""
    cluster_zipf: float = 0.8
    """Power-law exponent of how often a cluster is among a user's favourites."""
    session_len: float = 8.0
    """Mean events per session."""
    drift: float = 0.15
    """Probability that a session moves to a neighbouring cluster at each event."""
    days: float = 365.0
    """Span over which users start their histories, in days."""
    chunk_events: int = 1_000_000
    """Events generated and written per Parquet file (bounds the generator's memory)."""
    seed: int = 0
    """Seed of every draw."""

    @property
    def n_clusters(self) -> int:
        """Clusters used: ``clusters``, or about one per 250 items; never more than the items."""
        return min(self.items, self.clusters or max(4, self.items // 250))


def synthesize(out: str | Path, config: SynthConfig | None = None) -> Path:
    """Write a synthetic log to the folder ``out``; returns it.

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> d = synthesize(tempfile.mkdtemp(), SynthConfig(users=20, items=30, events=200))
    >>> pl.scan_parquet(d / "events" / "*.parquet").select(pl.len()).collect().item()
    200
    """
    c = config or SynthConfig()
    if c.users < 1 or c.items < 1:
        raise DataError(f"synth: need at least one user and one item, got users={c.users} items={c.items}")
    if c.events < 3 * c.users:
        raise DataError(f"synth: events={c.events} gives fewer than 3 events to each of {c.users} users")
    out = Path(out)
    (out / "events").mkdir(parents=True, exist_ok=True)
    for old in (out / "events").glob("part-*.parquet"):
        old.unlink()
    rng = np.random.default_rng(c.seed)
    k = c.n_clusters
    cluster = rng.permutation(np.arange(c.items) % k)  # (I,) each item's cluster, none empty
    order = np.argsort(cluster, kind="stable")  # items grouped by cluster
    sizes = np.bincount(cluster, minlength=k)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # Within each cluster the item of rank r weighs (r + 1) ** -item_zipf; ``cdf`` runs from c to c + 1 over
    # cluster c, so one searchsorted on ``c + u`` (u uniform) draws an item of cluster c.
    w = (np.arange(c.items) - np.repeat(starts, sizes) + 1.0) ** -c.item_zipf  # (I,) in cluster order
    cum = np.cumsum(w)
    before = np.repeat(cum[starts] - w[starts], sizes)  # weight of the clusters before each item's
    total = np.repeat(np.add.reduceat(w, starts), sizes)
    cdf = np.repeat(np.arange(k), sizes) + (cum - before) / total  # (I,) increasing
    item_ids = rng.permutation(c.items) * 3 + 100_000  # external ids: ints, neither dense nor in order
    user_ids = rng.permutation(c.users) * 7 + 1_000_000

    cluster_w = (np.arange(k) + 1.0) ** -c.cluster_zipf
    cluster_p = cluster_w / cluster_w.sum()
    fav = rng.choice(k, size=(c.users, c.tastes), p=cluster_p)  # (U, tastes)
    fav_w = rng.dirichlet(np.ones(c.tastes), size=c.users)  # (U, tastes)
    length = 3 + rng.multinomial(c.events - 3 * c.users, _share(rng, c.users))  # (U,) events per user
    t0 = rng.uniform(0, c.days * 86400.0, c.users) + 1.6e9

    ends = np.cumsum(length)
    part, first = 0, 0
    while first < c.users:
        last = int(np.searchsorted(ends, ends[first] - length[first] + c.chunk_events, side="right"))
        last = max(last, first + 1)
        users = np.arange(first, last)
        frame = _chunk(rng, c, users, length[users], fav[users], fav_w[users], t0[users], cdf, order, k)
        frame = frame.with_columns(pl.Series(Columns.USER, user_ids[frame[Columns.USER].to_numpy()]),
                                   pl.Series(Columns.ITEM, item_ids[frame[Columns.ITEM].to_numpy()]))
        frame.write_parquet(out / "events" / f"part-{part:05d}.parquet")
        part, first = part + 1, last

    vocab = _vocabulary(rng, k)
    titles, descriptions = [], []
    for i in range(c.items):
        words = vocab[cluster[i]]
        titles.append(" ".join(words[j] for j in rng.integers(0, len(words), 3)))
        descriptions.append(" ".join(words[j] for j in rng.integers(0, len(words), 12)))
    pl.DataFrame({Columns.ITEM: item_ids, "title": titles, "description": descriptions,
                  "cluster": cluster}).write_parquet(out / "items.parquet")
    pl.DataFrame({Columns.USER: user_ids, "clusters": fav, "weights": fav_w.astype(np.float32)}).write_parquet(
        out / "users.parquet")
    (out / "synth.json").write_text(json.dumps({**asdict(c), "n_clusters": k, "parts": part}, indent=2) + "\n")
    return out


def _share(rng: np.random.Generator, n: int) -> np.ndarray:
    """Each user's share of the events beyond the first three: lognormal, heavy-tailed."""
    w = rng.lognormal(0.0, 1.0, n)
    return w / w.sum()


def _chunk(rng: np.random.Generator, c: SynthConfig, users: np.ndarray, length: np.ndarray, fav: np.ndarray,
           fav_w: np.ndarray, t0: np.ndarray, cdf: np.ndarray, order: np.ndarray, k: int) -> pl.DataFrame:
    """The events of ``users`` (dense indices; item column in dense indices too), in time order per user."""
    n = int(length.sum())
    owner = np.repeat(np.arange(len(users)), length)  # (n,) row of the chunk's user
    first = np.zeros(n, dtype=bool)
    first[np.concatenate([[0], np.cumsum(length)[:-1]])] = True
    new_session = first | (rng.random(n) < 1.0 / c.session_len)
    session = np.cumsum(new_session) - 1  # (n,) session index within the chunk
    s_owner = owner[new_session]  # (S,)
    pick = (rng.random(len(s_owner))[:, None] > np.cumsum(fav_w[s_owner], 1)).sum(1)  # (S,) taste drawn
    s_cluster = fav[s_owner, np.minimum(pick, c.tastes - 1)]
    steps = np.where(rng.random(n) < c.drift, rng.choice([-1, 1], n), 0)  # (n,) drift moves
    walk = np.cumsum(steps)
    walk = walk - (walk - steps)[new_session][session]  # drift since the session began
    event_cluster = (s_cluster[session] + walk) % k
    item = order[np.minimum(np.searchsorted(cdf, event_cluster + rng.random(n)), len(order) - 1)]
    gap = np.where(new_session, rng.exponential(3 * 86400.0, n), rng.exponential(120.0, n))
    gap[first] = 0.0
    cum = np.cumsum(gap)
    ts = t0[owner] + cum - cum[first][owner]
    return pl.DataFrame({Columns.USER: users[owner], Columns.ITEM: item, Columns.TIME: ts.astype(np.int64)})


def _vocabulary(rng: np.random.Generator, k: int, words: int = 24) -> list[list[str]]:
    """``k`` disjoint word lists: every cluster its own vocabulary."""
    seen: set[str] = set()
    out: list[list[str]] = []
    for _ in range(k):
        mine: list[str] = []
        while len(mine) < words:
            w = "".join(_SYLLABLES[j] for j in rng.integers(0, len(_SYLLABLES), int(rng.integers(2, 5))))
            if w not in seen:
                seen.add(w)
                mine.append(w)
        out.append(mine)
    return out
