"""The benchmark: tune on valid, run every seed, measure on test, compare.

:func:`run_benchmark` (``recfuse benchmark``) and :func:`run_variants` (what it
and ``recfuse ablate`` run on) return the ``results.json`` dict documented in
``docs/results-json.md``.

The protocol, in order:

1. the split is built once (``SPLITS[split](data)``), every model sees the
   same train / valid / test;
2. models with a grid in :data:`GRIDS` are tuned on **valid only** (the
   first seed, best mean valid NDCG@10; ties keep the earlier grid point);
   the others use their defaults.  ``overrides`` fix a parameter and take it
   out of the grid;
3. every seed (``0..N-1`` for a count ``N``, or the listed seeds) fits the
   chosen config on ``split.train`` (valid available for early stopping),
   timed, then is evaluated on valid and test; with ``out``, each fit's
   record is written as it ends (``runs/``, :func:`write_run_record`);
4. each model's per-user test NDCG@10, averaged over seeds, is compared with
   a paired test against the best *other* model by mean valid NDCG@10 (or
   the model named by ``reference``).  Choosing the comparator on valid, not
   test, keeps the test set out of every decision.

The unit of a run is a :class:`Variant`: a label, a registry model and
parameters fixed for every seed.  ``run_benchmark`` makes one variant per
model (label = model name); ``recfuse ablate`` makes several of one model
(``full``, ``no_text``, ...) and both go through :func:`run_variants`.

With ``cold_items`` (the cold-start item protocol,
:func:`recfuse.data.split.hold_out_items`) the split is transformed before
anything is fitted, and two more test slices are written: ``cold_items``
(test targets that are held-out items) and ``warm_items`` (the others).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import itertools
import json
import logging
import logging.handlers
import math
import os
import platform
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from recfuse import metrics as _metrics
from recfuse.config import config_fields, make_config
from recfuse.data.dataset import Interactions
from recfuse.data.split import COLD_ITEMS_SEED, SPLITS, EvalSet, Split, cold_target_mask, hold_out_items, select_targets
from recfuse.evaluate.protocol import EvalResult, evaluate, slice_labels
from recfuse.evaluate.report import RUNS_DIR, run_stem, write_results_json
from recfuse.evaluate.significance import paired_test, primary_metric
from recfuse.metrics import ACCURACY
from recfuse.models import MODELS
from recfuse.models.base import Recommender

#: Hyperparameter grids searched on valid, declared here and nowhere else.
#: Kept small on purpose: the point is a fair baseline, not a tuning contest.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "als": {"embedding_size": [32, 64, 128], "reg": [0.01, 0.1, 1.0]},
    "bpr": {"embedding_size": [32, 64], "learning_rate": [0.01, 0.05]},
    "itemknn": {"neighbours": [50, 100, 200]},
}

#: Beyond-accuracy metrics reported at every K.
BEYOND = ("coverage", "novelty", "gini")

#: Config fields that are not hyperparameters and stay out of ``results["models"][m]["config"]``:
#: the seed is the run's (see ``seeds``), progress is display only.
UI_FIELDS = ("seed", "progress")

#: Packages whose versions go into ``results["versions"]``.
VERSIONED = ("numpy", "torch", "implicit", "polars")


def config_key(params: dict[str, Any]) -> str:
    """A stable, readable name for one grid point.

    >>> config_key({"embedding_size": 32, "reg": 0.1})
    'embedding_size=32,reg=0.1'
    >>> config_key({})
    'defaults'
    """
    return ",".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid, in declaration order (first key varies slowest).

    >>> grid_points({"a": [1, 2], "b": [3]})
    [{'a': 1, 'b': 3}, {'a': 2, 'b': 3}]
    """
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


@dataclass(frozen=True)
class Variant:
    """One row of a results table: a registry model with parameters fixed for every seed.

    ``label`` names the row in ``results["models"]``; a plain benchmark uses
    the model name, an ablation names what it changes (``no_text``).

    >>> Variant("no_text", "fusion", {"use_text": False}).model
    'fusion'
    """

    label: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeedRun:
    """What one fitted model (one config, one seed) produced.

    ``seconds`` times the fit alone, ``wall_seconds`` the fit and both
    evaluations.  ``fit_info`` is the model's ``fit_info`` without the
    per-epoch ``history``; ``torch_threads`` is ``None`` when torch was never
    loaded (models without torch).
    """

    valid: EvalResult
    test: EvalResult
    seconds: float
    best_epoch: int | None
    wall_seconds: float = 0.0
    fit_info: dict[str, Any] = field(default_factory=dict)
    torch_threads: int | None = None


# The item text matrix of each split, computed once and dropped with the split.
_ITEM_TEXT: weakref.WeakKeyDictionary[Split, np.ndarray | None] = weakref.WeakKeyDictionary()


def reads_text(model: str) -> bool:
    """Whether a registry model takes the item text matrix in ``fit`` (its ``reads_text`` class attribute).

    >>> reads_text("pop")
    False
    """
    return bool(getattr(MODELS[model], "reads_text", False))


def split_item_text(split: Split) -> np.ndarray | None:
    """The item text matrix of ``split.train``: ``(n_items, d_text)`` float32, rows in item-index order.

    Encoded once per split (:func:`recfuse.text.cache.encode_items`, cached on
    disk as well) and kept while the split lives; ``None`` when the dataset
    has no item text.  Use it for what a model that reads text is fitted with.

    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.data.split import leave_one_out
    >>> split_item_text(leave_one_out(Interactions.from_sequences([("u", ["a", "b", "c"])]))) is None
    True
    """
    if split not in _ITEM_TEXT:
        train = split.train
        if train.item_features is None or train.item_features.width < 2:
            _ITEM_TEXT[split] = None
        else:
            from recfuse.text.cache import encode_items

            _ITEM_TEXT[split] = np.ascontiguousarray(encode_items(train)[0], dtype=np.float32)
    return _ITEM_TEXT[split]


def fit_and_evaluate(
    model: str,
    params: dict[str, Any],
    seed: int,
    split: Split,
    ks: tuple[int, ...],
    mask_history: bool,
    test: bool = True,
    quiet: bool = False,
    after_fit: Callable[[Recommender], None] | None = None,
) -> SeedRun:
    """Fit ``model`` with ``params`` and ``seed`` on ``split.train``; evaluate on valid (and test).

    Only the fit is timed in ``SeedRun.seconds``.  When ``test`` is false
    (tuning) the test set is not touched at all and ``SeedRun.test`` is the
    valid result again.  ``quiet`` turns off the model's own progress display
    (if it has one and ``params`` does not set it).  ``after_fit`` is called
    with the fitted model once it has been evaluated (for analyses that need
    the model itself, e.g. the gate of the fusion model).  A model that reads
    text (:func:`reads_text`) is fitted with :func:`split_item_text`.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.data.split import leave_one_out
    >>> sp = leave_one_out(Interactions.from_sequences([(f"u{u}", [f"i{(u + j) % 15}" for j in range(5)])
    ...                                                 for u in range(30)]))
    >>> run = fit_and_evaluate("pop", {}, 0, sp, (10,), True)
    >>> len(run.test.per_query["ndcg@10"]), run.best_epoch
    (30, None)
    """
    started = time.perf_counter()
    params = {**params, "seed": seed}
    if quiet and "progress" in config_fields(model):
        params.setdefault("progress", False)
    config = make_config(model, params)
    rec: Recommender = MODELS[model](config)
    text = split_item_text(split) if reads_text(model) else None
    start = time.perf_counter()
    if reads_text(model):
        rec.fit(split.train, split.valid, item_text=text)
    else:
        rec.fit(split.train, split.valid)
    seconds = time.perf_counter() - start
    valid = evaluate(rec, split.valid, split.train, ks, mask_history_items=mask_history)
    tested = evaluate(rec, split.test, split.train, ks, mask_history_items=mask_history) if test else valid
    info = {k: v for k, v in rec.fit_info.items() if k != "history"}
    best_epoch = info.get("best_epoch")
    if after_fit is not None:
        after_fit(rec)
    torch = sys.modules.get("torch")
    threads = int(torch.get_num_threads()) if torch is not None else None
    return SeedRun(valid, tested, seconds, None if best_epoch is None else int(best_epoch),
                   wall_seconds=time.perf_counter() - started, fit_info=info, torch_threads=threads)


def tune_model(
    model: str,
    split: Split,
    ks: tuple[int, ...],
    mask_history: bool,
    overrides: dict[str, Any],
    on_point: Callable[[str, float], None] | None = None,
    quiet: bool = False,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Grid search on valid (one fit per grid point, with ``seed``: the run's first seed) for one model.

    Returns the chosen parameters (grid point plus ``overrides``) and the
    ``tuning`` record ``{"grid": ..., "valid_ndcg@10": {config: value}, "seed": seed}``.
    Overridden parameters are fixed and leave the grid.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.data.split import leave_one_out
    >>> sp = leave_one_out(Interactions.from_sequences([(f"u{u}", [f"i{(u + j) % 15}" for j in range(5)])
    ...                                                 for u in range(30)]))
    >>> tune_model("itemknn", sp, (10,), True, {})[1]["grid"]
    {'neighbours': [50, 100, 200]}
    """
    grid = {k: list(v) for k, v in GRIDS.get(model, {}).items() if k not in overrides}
    metric = primary_metric(ks)
    scores: dict[str, float] = {}
    if not grid:
        return dict(overrides), {"grid": {}, f"valid_{metric}": scores}
    best: tuple[float, dict[str, Any]] | None = None
    for point in grid_points(grid):
        run = fit_and_evaluate(model, {**point, **overrides}, seed, split, ks, mask_history, test=False, quiet=quiet)
        value = float(np.mean(run.valid.per_query[metric])) if len(split.valid) else 0.0
        scores[config_key(point)] = value
        if on_point is not None:
            on_point(config_key(point), value)
        if best is None or value > best[0]:  # strict: ties keep the earlier point
            best = (value, point)
    assert best is not None
    return {**best[1], **overrides}, {"grid": grid, f"valid_{metric}": scores, "seed": seed}


def seed_list(seeds: int | Sequence[int]) -> list[int]:
    """The seeds a run fits: ``0..seeds-1`` for a count, else the listed seeds in their order.

    >>> seed_list(3), seed_list([10, 11, 14])
    ([0, 1, 2], [10, 11, 14])
    """
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        return list(range(int(seeds)))
    out = [int(s) for s in seeds]
    if not out:
        raise ValueError("no seeds to run")
    if min(out) < 0:
        raise ValueError(f"seeds must be non-negative, got {out}")
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise ValueError(f"seed(s) {dup} listed twice")
    return out


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """``{"mean", "std", "per_seed"}``; ``std`` is the sample std (ddof=1), 0 for one seed.

    >>> summarize([1.0, 3.0])
    {'mean': 2.0, 'std': 1.4142135623730951, 'per_seed': [1.0, 3.0]}
    """
    v = [float(x) for x in values]
    arr = np.asarray(v, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()) if len(arr) else 0.0, "std": std, "per_seed": v}


def metric_names(ks: Sequence[int]) -> tuple[list[str], list[str]]:
    """Accuracy and beyond-accuracy metric names, in report order.

    >>> metric_names((10,))
    (['recall@10', 'ndcg@10', 'mrr@10', 'precision@10', 'hit@10'], ['coverage@10', 'novelty@10', 'gini@10'])
    """
    accuracy = [f"{m}@{k}" for k in ks for m in ACCURACY]
    beyond = [f"{m}@{k}" for k in ks for m in BEYOND]
    return accuracy, beyond


def _metric_block(results: list[EvalResult], ks: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Mean over queries per seed, then mean/std/per_seed over seeds, for every metric."""
    accuracy, beyond = metric_names(ks)
    means = [r.mean() for r in results]
    return {name: summarize(m[name] for m in means) for name in [*accuracy, *beyond]}


def _slice_block(
    results: list[EvalResult], labels: dict[str, np.ndarray], ks: Sequence[int]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"family=value": {metric: summary}}`` over the test queries of each slice."""
    accuracy, _ = metric_names(ks)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for family, lab in labels.items():
        for value in _ordered_values(lab):
            rows = lab == value
            out[f"{family}={value}"] = {
                name: summarize(float(np.mean(r.per_query[name][rows])) for r in results) for name in accuracy
            }
    return out


def _target_slice(
    results: list[EvalResult], sub: EvalSet, rows: np.ndarray, ks: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """Accuracy of each run's test rankings, re-scored against ``sub`` (a target subset of rows ``rows``).

    The rankings are the ones already computed for the whole test set (the
    same model, the same queries); only the relevant items change, so no
    model is called again.
    """
    accuracy, _ = metric_names(ks)
    n_targets = np.diff(sub.target_indptr)
    per_seed: list[dict[str, np.ndarray]] = []
    for r in results:
        hits = _metrics.hits_matrix(r.top[rows], sub.target_indptr, sub.targets)
        per_seed.append(_metrics.per_query(hits, n_targets, tuple(ks)))
    return {name: summarize(float(np.mean(q[name])) for q in per_seed) for name in accuracy}


#: Keys of the two slices of the cold-start item protocol, in report order.
COLD_SLICES = ("cold_items", "warm_items")

#: Natural order of the slice values produced by :func:`recfuse.evaluate.protocol.slice_labels`.
SLICE_ORDER = ("head", "torso", "tail", "short", "medium", "long", "rare", "common")


def _ordered_values(labels: np.ndarray) -> list[str]:
    present = {str(x) for x in np.unique(labels)} if len(labels) else set()
    known = [v for v in SLICE_ORDER if v in present]
    return known + sorted(present - set(known))


def versions() -> dict[str, str | None]:
    """Versions of recfuse, Python and the numeric stack (``None`` if not installed)."""
    import recfuse

    out: dict[str, str | None] = {"recfuse": recfuse.__version__, "python": platform.python_version()}
    for pkg in VERSIONED:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def machine() -> dict[str, Any]:
    """Where the numbers were measured (train seconds mean little without it)."""
    return {"cpus": os.cpu_count(), "platform": platform.platform()}


def _check_models(models: Sequence[str]) -> None:
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; available: {sorted(MODELS)}")
    dup = sorted({m for m in models if list(models).count(m) > 1})
    if dup:
        raise ValueError(f"model(s) listed twice: {dup}")
    if not models:
        raise ValueError("no models to run")


# ------------------------------------------------------------------ parallel fits
# Worker-process state for ``jobs > 1``: the split is sent once per worker (initializer), not per fit.
_WORKER_SPLIT: Split | None = None


def _worker_init(sp: Split, threads: int, epochs: Any = None, text: tuple[np.ndarray | None] | None = None) -> None:
    """Keep the split for this worker's fits; send the trainer's epoch records to ``epochs`` (a queue).

    ``text``, when given, is the split's item text matrix (in a 1-tuple: it may be ``None``), encoded
    once in the parent instead of once per worker.
    """
    global _WORKER_SPLIT
    import torch

    _WORKER_SPLIT = sp
    if text is not None:
        _ITEM_TEXT[sp] = text[0]
    torch.set_num_threads(threads)
    if epochs is not None:
        train_log = logging.getLogger("recfuse.train")
        train_log.addHandler(logging.handlers.QueueHandler(epochs))
        train_log.setLevel(logging.INFO)
        train_log.propagate = False


class _EpochProgress(logging.Handler):
    """Shows the epoch records of worker fits in the parent: a progress row per busy worker on a
    terminal; elsewhere (a log file) a line every ``every`` epochs."""

    def __init__(self, bar: Progress, say: Callable[..., None], every: int = 10) -> None:
        super().__init__()
        self.bar, self.say, self.every = bar, say, every
        self.tasks: dict[int | None, Any] = {}  # worker pid -> its progress row

    def emit(self, record: logging.LogRecord) -> None:
        fit, row = getattr(record, "fit", None), getattr(record, "row", None)
        if fit is None:
            return
        worker = record.process
        if getattr(record, "done", False) or row is None:
            if worker in self.tasks:
                self.bar.remove_task(self.tasks.pop(worker))
            return
        label = record.getMessage()  # "fusion seed 0 epoch 12: loss ... valid ndcg@10 ... (best ... @ ...)"
        if self.bar.console.is_terminal:
            if worker not in self.tasks:
                self.tasks[worker] = self.bar.add_task(label, total=getattr(record, "epochs", None))
            self.bar.update(self.tasks[worker], completed=row["epoch"], description=f"  {label}")
        elif row["epoch"] % self.every == 0:
            self.say(f"[dim]  {label}[/dim]")


def _worker_fit(
    model: str, params: dict[str, Any], seed: int, ks: tuple[int, ...], mask_history: bool, keep_model: bool
) -> tuple[SeedRun, Recommender | None]:
    """One (variant, seed) fit in a worker; the fitted model comes back only when a hook needs it."""
    assert _WORKER_SPLIT is not None, "worker not initialised"
    kept: list[Recommender] = []
    run = fit_and_evaluate(model, params, seed, _WORKER_SPLIT, ks, mask_history, quiet=True,
                           after_fit=kept.append if keep_model else None)
    return run, kept[0] if kept else None


def worker_threads(jobs: int, cpus: int | None = None) -> int:
    """Torch threads per worker when ``jobs`` fits share the machine's cores.

    >>> worker_threads(2, cpus=2), worker_threads(3, cpus=16), worker_threads(8, cpus=2)
    (1, 5, 1)
    """
    return max(1, (cpus or os.cpu_count() or 1) // max(jobs, 1))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (``None``: leave torch's setting alone)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_benchmark(
    data: Interactions,
    models: list[str],
    seeds: int | Sequence[int],
    split: str = "loo",
    ks: Sequence[int] = (5, 10, 20),
    mask_history: bool = True,
    tune: bool = True,
    overrides: dict[str, dict[str, Any]] | None = None,
    reference: str | None = None,
    progress: bool = True,
    console: Console | None = None,
    cold_items: float = 0.0,
    cold_seed: int = COLD_ITEMS_SEED,
    save_models: str | Path | None = None,
    jobs: int = 1,
    threads: int | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Run the benchmark and return the ``results.json`` dict.

    Parameters
    ----------
    data
        The whole interaction log; it is split here.
    models
        Registry names (:data:`recfuse.models.MODELS`), each at most once.
    seeds
        A count ``N`` (seeds ``0..N-1``) or the list of seeds; seed ``s`` is
        passed as ``Config.seed = s`` and every ``per_seed`` list follows the
        order of ``results["seeds"]``.
    split
        A key of :data:`recfuse.data.split.SPLITS` (``"loo"`` or ``"temporal"``).
    ks
        Cut-offs for every metric.
    mask_history
        Mask each query's history items out of the ranking (RecBole's default).
    tune
        Grid-search :data:`GRIDS` on valid (with the first seed); otherwise
        use defaults (+ overrides).
    overrides
        ``{model: {param: value}}`` applied to every run of that model; an
        overridden parameter is not tuned.
    reference
        The model every other one is tested against; default: the best by
        mean valid NDCG@10.
    progress
        Show a progress bar and one line per finished run.
    console
        Where progress goes (default: a stderr console).
    cold_items
        Share of items held out of training and histories (the cold-start
        item protocol, :func:`recfuse.data.split.hold_out_items`); 0 = off.
    cold_seed
        The protocol seed that picks the held-out items.
    save_models
        A folder: each model's fit with the first seed is written there as a
        model directory (:class:`recfuse.bundle.Bundle`, what ``recfuse
        explain`` and ``recfuse serve`` load), one sub-folder per model.
    jobs
        Fits run side by side in this many worker processes (each with
        ``cores // jobs`` torch threads); 1 runs them one after another here.
        Tuning grids always run here, first.  Seeds fix every fit, so the
        figures do not depend on ``jobs`` beyond float summation order.
    threads
        Torch threads per fit (default: ``cores // jobs`` in workers, torch's own setting here).  A fit
        is bit-for-bit repeatable at one thread; with several, CPU kernels may split their sums
        differently from run to run when other work competes for the cores.
    out
        A folder for the records that survive an interrupted run: as each
        fit ends, ``runs/MODEL-seedN.json`` and ``.npz`` (see
        :func:`write_run_record`) and ``results.json`` with the fits finished
        so far (``"complete": false`` until the last one).

    Returns
    -------
    dict
        See ``docs/results-json.md``.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> seqs = [(f"u{u}", [f"i{(u + j) % 15}" for j in range(5)]) for u in range(30)]
    >>> r = run_benchmark(Interactions.from_sequences(seqs), ["pop", "itemknn"], seeds=2, ks=(5, 10),
    ...                   progress=False)
    >>> r["models"]["pop"]["metrics"]["ndcg@10"]["std"], len(r["models"]["itemknn"]["metrics"]["hit@5"]["per_seed"])
    (0.0, 2)
    >>> run_benchmark(Interactions.from_sequences(seqs), ["pop"], seeds=[10, 12], ks=(10,), progress=False)["seeds"]
    [10, 12]
    """
    _check_models(models)
    if reference is not None and reference not in models:
        raise ValueError(f"reference {reference!r} is not among the models {list(models)}")
    overrides = {m: dict(p) for m, p in (overrides or {}).items()}
    for m in overrides:
        if m not in models:
            raise ValueError(f"override for {m!r}, which is not among the models {list(models)}")
    variants = [Variant(m, m, overrides.get(m, {})) for m in models]
    first_seed = seed_list(seeds)[0]
    hook = None
    if save_models is not None:
        folder = Path(save_models)

        def hook(v: Variant, seed: int, sp: Split, model: Recommender) -> None:
            from recfuse.bundle import Bundle

            if seed == first_seed:
                meta = {"split": split, "seed": seed, "cold_items": cold_items}
                Bundle.from_fit(model, data, meta, text_vectors=split_item_text(sp)).save(folder / v.label)

    return run_variants(
        data, variants, seeds, split=split, ks=ks, mask_history=mask_history, tune=tune, reference=reference,
        progress=progress, console=console, cold_items=cold_items, cold_seed=cold_seed, after_fit=hook, jobs=jobs,
        threads=threads, out=out,
    )


def run_variants(
    data: Interactions,
    variants: Sequence[Variant],
    seeds: int | Sequence[int],
    split: str = "loo",
    ks: Sequence[int] = (5, 10, 20),
    mask_history: bool = True,
    tune: bool = True,
    reference: str | None = None,
    progress: bool = True,
    console: Console | None = None,
    cold_items: float = 0.0,
    cold_seed: int = COLD_ITEMS_SEED,
    after_fit: Callable[[Variant, int, Split, Recommender], None] | None = None,
    title: str = "benchmark",
    jobs: int = 1,
    threads: int | None = None,
    out: str | Path | None = None,
    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run labelled variants under one protocol and return the ``results.json`` dict (keyed by label).

    Everything :func:`run_benchmark` documents holds, with variants in place
    of models: each variant's ``params`` are fixed (and leave its model's
    grid), ``reference`` is a label, ``runs/`` records are named by label.
    ``after_fit(variant, seed, split, model)`` is called with every fitted
    model once it has been evaluated; ``split`` is the one the models saw
    (cold-start protocol applied).  ``title`` names the progress bar.
    ``jobs > 1`` runs the fits in worker processes (see
    :func:`run_benchmark`); ``after_fit`` still runs here, on the fitted model
    each worker sends back.  ``finish`` completes a results dict (also the
    partial ones written to ``out``), e.g. with an ablation's own keys.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> seqs = [(f"u{u}", [f"i{(u + j) % 15}" for j in range(5)]) for u in range(30)]
    >>> r = run_variants(Interactions.from_sequences(seqs), [Variant("knn5", "itemknn", {"neighbours": 5}),
    ...                  Variant("knn50", "itemknn", {"neighbours": 50})], seeds=1, ks=(10,), progress=False)
    >>> list(r["models"]), r["models"]["knn5"]["model"], r["models"]["knn5"]["config"]["neighbours"]
    (['knn5', 'knn50'], 'itemknn', 5)
    """
    names = [v.label for v in variants]
    _check_models(sorted({v.model for v in variants}))  # unknown names; none at all
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ValueError(f"model(s) listed twice: {dup}")
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    seed_ids = seed_list(seeds)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; available: {sorted(SPLITS)}")
    if reference is not None and reference not in names:
        raise ValueError(f"reference {reference!r} is not among the models {names}")
    if not 0 <= cold_items < 1:
        raise ValueError(f"cold_items must be in [0, 1), got {cold_items}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    for v in variants:
        if "seed" in v.params:
            raise ValueError(f"{v.label}.seed: seeds are set by the runner (the seeds argument), not overridden")
        make_config(v.model, v.params)  # fail before any fitting on a misspelt name

    metric = primary_metric(ks)
    base = SPLITS[split](data)
    sp = hold_out_items(base, cold_items, cold_seed) if cold_items > 0 else base
    labels = slice_labels(sp.test, sp.train)
    cold = cold_target_mask(sp)
    target_slices = {"cold_items": select_targets(sp.test, cold), "warm_items": select_targets(sp.test, ~cold)}
    console = console or Console(stderr=True)
    n_tune = sum(len(grid_points(g)) for v in variants if (g := _variant_grid(v))) if tune else 0
    fits = [(v, seed) for v in variants for seed in seed_ids]
    n_steps = len(fits) + n_tune
    out_dir = Path(out) if out is not None else None

    chosen: dict[str, dict[str, Any]] = {}
    tuning: dict[str, dict[str, Any]] = {}
    got: dict[tuple[str, int], SeedRun] = {}

    def results() -> dict[str, Any]:
        """The results dict of the fits finished so far (all of them at the end)."""
        finished = [v for v in variants if any((v.label, s) in got for s in seed_ids)]
        runs = {v.label: [got[v.label, s] for s in seed_ids if (v.label, s) in got] for v in finished}
        done_names = [v.label for v in finished]
        valid_score = {m: float(np.mean([r.valid.mean()[metric] for r in runs[m]])) for m in done_names}
        ref = reference if reference in done_names else _best(done_names, valid_score)
        per_user = {m: np.mean([r.test.per_query[metric] for r in runs[m]], axis=0) for m in done_names}
        owners = sp.test.queries.user
        if len(np.unique(owners)) < len(owners):
            # Several queries per user (temporal-events): they are not independent, so the paired
            # test pairs per-user means (one number per user, as under leave-one-out).
            uniq, inv = np.unique(owners, return_inverse=True)
            count = np.bincount(inv, minlength=len(uniq))
            per_user = {m: np.bincount(inv, weights=v, minlength=len(uniq)) / count for m, v in per_user.items()}

        out_models: dict[str, Any] = {}
        for v in finished:
            m = v.label
            vs = ref if m != ref else _best([o for o in done_names if o != m], valid_score)
            significance = None
            if vs is not None:
                t = paired_test(per_user[m], per_user[vs])
                significance = {
                    "vs": vs, "metric": metric, "wilcoxon_p": t["wilcoxon_p"], "ttest_p": t["ttest_p"],
                    "mean_diff": t["mean_diff"], "ratio": t["ratio"], "n_users": t["n"],
                }
            config = dataclasses.asdict(make_config(v.model, chosen[m]))
            for key in UI_FIELDS:
                config.pop(key, None)
            tests = [r.test for r in runs[m]]
            slices = _slice_block(tests, labels, ks)
            if cold_items > 0:
                for key, (sub, rows) in target_slices.items():
                    if len(sub):
                        slices[key] = _target_slice(tests, sub, rows, ks)
            out_models[m] = {
                "model": v.model,
                "seeds": [s for s in seed_ids if (m, s) in got],
                "metrics": _metric_block(tests, ks),
                "valid_metrics": _metric_block([r.valid for r in runs[m]], ks),
                "slices": slices,
                "significance": significance,
                "train_seconds": summarize(r.seconds for r in runs[m]),
                "best_epoch": [r.best_epoch for r in runs[m]],
                "stopped": [r.fit_info.get("stopped") for r in runs[m]],
                "config": _jsonable(config),
                "tuning": _jsonable(tuning[m]),
            }

        slice_sizes = {f"{fam}={v}": int(np.sum(lab == v)) for fam, lab in labels.items() for v in _ordered_values(lab)}
        if cold_items > 0:
            slice_sizes.update({key: len(sub) for key, (sub, _) in target_slices.items() if len(sub)})
        r: dict[str, Any] = {
            "dataset": data.name,
            "seeds": list(seed_ids),
            "complete": len(got) == len(fits),
            "protocol": {
                "split": split,
                "ks": list(ks),
                "mask_history": bool(mask_history),
                "users_evaluated": len(np.unique(sp.test.queries.user)),
                "n_items": int(sp.train.n_items),
                "n_train_events": int(sp.train.n_events),
                "split_info": _jsonable(dict(base.info)),
                "slice_sizes": slice_sizes,
                "cold_items": _cold_protocol(sp) if cold_items > 0 else None,
            },
            "versions": versions(),
            "machine": machine(),
            "reference": ref,
            "models": out_models,
        }
        return finish(r) if finish is not None else r

    with torch_threads(threads), Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not progress, transient=False,
    ) as bar:
        task = bar.add_task(title, total=n_steps)
        say = bar.console.print if progress else (lambda *a, **k: None)
        for v in variants:
            m = v.label
            if tune and _variant_grid(v):
                bar.update(task, description=f"{m}: tuning")

                def on_point(key: str, value: float, m: str = m) -> None:
                    bar.advance(task)
                    say(f"[dim]  {m} tune {key}: valid {metric} {value:.4f}[/dim]")

                chosen[m], tuning[m] = tune_model(v.model, sp, ks, mask_history, v.params, on_point,
                                                  quiet=not progress, seed=seed_ids[0])
                say(f"{m}: chose {config_key(chosen[m])}")
            else:
                chosen[m], tuning[m] = dict(v.params), {"grid": {}, f"valid_{metric}": {}}

        def done(v: Variant, seed: int, run: SeedRun) -> None:
            got[v.label, seed] = run
            if out_dir is not None:
                context = {"dataset": data.name, "split": split, "ks": list(ks), "mask_history": bool(mask_history),
                           "cold_items": cold_items}
                write_run_record(out_dir, v, seed, run, sp, chosen[v.label], context)
                write_results_json(results(), out_dir)
            bar.advance(task)
            say(
                f"{v.label} seed {seed}: valid {metric} {run.valid.mean()[metric]:.4f}  "
                f"test {metric} {run.test.mean()[metric]:.4f}  fit {run.seconds:.1f}s"
            )

        if jobs == 1 or len(fits) == 1:
            for v, seed in fits:
                bar.update(task, description=f"{v.label}: seed {seed}")
                hook = None if after_fit is None else functools.partial(after_fit, v, seed, sp)
                done(v, seed, fit_and_evaluate(v.model, chosen[v.label], seed, sp, ks, mask_history,
                                               quiet=not progress, after_fit=hook))
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            n = min(jobs, len(fits))
            bar.update(task, description=f"{len(fits)} fits in {n} processes")
            # Encoded here once rather than in every worker.
            text = (split_item_text(sp),) if any(reads_text(v.model) for v in variants) else None
            # spawn: a fork of a process that has used Polars' or torch's thread pools can deadlock.
            ctx = multiprocessing.get_context("spawn")
            epochs = ctx.Queue() if progress else None
            listener = logging.handlers.QueueListener(epochs, _EpochProgress(bar, say)) if epochs is not None else None
            if listener is not None:
                listener.start()
            try:
                with ProcessPoolExecutor(n, mp_context=ctx, initializer=_worker_init,
                                         initargs=(sp, threads or worker_threads(n), epochs, text)) as pool:
                    futures = {pool.submit(_worker_fit, v.model, chosen[v.label], seed, ks, mask_history,
                                           after_fit is not None): (v, seed) for v, seed in fits}
                    for fut in as_completed(futures):
                        v, seed = futures[fut]
                        run, fitted = fut.result()
                        if after_fit is not None and fitted is not None:
                            after_fit(v, seed, sp, fitted)
                        done(v, seed, run)
            finally:
                if listener is not None:
                    listener.stop()

    return results()


def write_run_record(
    out: str | Path,
    variant: Variant,
    seed: int,
    run: SeedRun,
    split: Split,
    params: dict[str, Any],
    context: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write one fit's record, ``out/runs/LABEL-seedN.json`` and ``.npz``; return both paths.

    The JSON holds what the fit was (label, registry model, seed, params,
    full config, ``context``: dataset, split, ...) and what it gave: test
    and valid means, ``fit_info`` (without the epoch history), its
    ``epochs_run``, ``best_epoch`` and ``stopped`` (``"patience"``,
    ``"epochs"`` or ``"max_seconds"``; ``None`` for models that do not train
    in epochs), fit and wall seconds, torch threads and the machine.  The
    NPZ holds per-query arrays: ``user`` (the user index of each test
    query), every test metric by name (``ndcg@10``, ...), ``valid_user``
    and the valid metrics (``valid_ndcg@10``, ...).  ``recfuse compare``
    reads these files.

    Examples
    --------
    >>> import tempfile
    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.data.split import leave_one_out
    >>> sp = leave_one_out(Interactions.from_sequences([(f"u{u}", [f"i{(u + j) % 15}" for j in range(5)])
    ...                                                 for u in range(30)]))
    >>> run = fit_and_evaluate("pop", {}, 3, sp, (10,), True)
    >>> [p.name for p in write_run_record(tempfile.mkdtemp(), Variant("pop", "pop"), 3, run, sp, {})]
    ['pop-seed3.json', 'pop-seed3.npz']
    """
    folder = Path(out) / RUNS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / run_stem(variant.label, seed)
    config = dataclasses.asdict(make_config(variant.model, {**params, "seed": seed}))
    for key in UI_FIELDS:
        config.pop(key, None)
    info = run.fit_info
    record = {
        "model": variant.label,
        "registry_model": variant.model,
        "seed": seed,
        "params": dict(params),
        "config": config,
        **(context or {}),
        "test": run.test.mean(),
        "valid": run.valid.mean(),
        "fit_info": info,
        "epochs_run": info.get("epochs_run"),
        "best_epoch": run.best_epoch,
        "stopped": info.get("stopped"),
        "fit_seconds": run.seconds,
        "wall_seconds": run.wall_seconds,
        "torch_threads": run.torch_threads,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": versions(),
    }
    arrays: dict[str, np.ndarray] = {"user": np.asarray(split.test.queries.user, dtype=np.int64),
                                     "valid_user": np.asarray(split.valid.queries.user, dtype=np.int64)}
    arrays.update({k: np.asarray(v) for k, v in run.test.per_query.items()})
    arrays.update({f"valid_{k}": np.asarray(v) for k, v in run.valid.per_query.items()})
    npz = stem.with_suffix(".npz")
    # Written to a temporary name, then renamed: an interrupted write never leaves half a record.
    tmp = stem.with_name(stem.name + ".tmp.npz")
    np.savez(tmp, allow_pickle=False, **arrays)
    tmp.replace(npz)
    js = stem.with_suffix(".json")
    tmp_js = stem.with_name(stem.name + ".tmp.json")
    tmp_js.write_text(json.dumps(_finite(_jsonable(record)), indent=1, allow_nan=False) + "\n")
    tmp_js.replace(js)
    return js, npz


#: How a cold test target is defined, written into ``protocol.cold_items.definition``.
COLD_DEFINITION = (
    "held-out items: removed from training events and from every valid/test query history, kept in the "
    "catalogue; valid keeps warm targets only (early stopping); a test target is cold when its item is held out. "
    "slices.cold_items scores each test query that has a cold target against its cold targets only, "
    "slices.warm_items each query with a warm target against its warm targets only (under leave-one-out: "
    "the queries whose target is cold / warm)."
)


def _cold_protocol(sp: Split) -> dict[str, Any]:
    """``protocol.cold_items``: the seed, the share and what holding the items out removed."""
    i = sp.info
    return {
        "frac": i["cold_items_frac"],
        "seed": i["cold_items_seed"],
        "n_items_held_out": i["cold_items_n"],
        "n_candidate_items": i["cold_items_candidates"],
        "train_events_removed": i["cold_train_events_removed"],
        "history_events_removed": i["cold_history_events_removed"],
        "valid_queries_dropped": i["cold_valid_queries_dropped"],
        "valid_targets_dropped": i["cold_valid_targets_dropped"],
        "test_queries_cold": i["cold_test_queries"],
        "test_queries_warm": i["warm_test_queries"],
        "test_targets_cold": i["cold_test_targets"],
        "test_targets_warm": i["warm_test_targets"],
        "definition": COLD_DEFINITION,
    }


def _variant_grid(v: Variant) -> dict[str, list[Any]]:
    """The part of the model's grid that the variant does not fix."""
    return {k: vals for k, vals in GRIDS.get(v.model, {}).items() if k not in v.params}


def _best(models: Sequence[str], score: dict[str, float]) -> str | None:
    """The model with the highest score; ties go to the one listed first."""
    best: str | None = None
    for m in models:
        if best is None or score[m] > score[best]:
            best = m
    return best


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _jsonable(obj: Any) -> Any:
    """Numpy scalars/arrays and tuples to plain JSON types (recursively)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


__all__ = [
    "GRIDS",
    "SeedRun",
    "Variant",
    "config_fields",
    "config_key",
    "fit_and_evaluate",
    "grid_points",
    "make_config",
    "primary_metric",
    "reads_text",
    "run_benchmark",
    "run_variants",
    "seed_list",
    "split_item_text",
    "summarize",
    "tune_model",
    "versions",
    "write_run_record",
]
