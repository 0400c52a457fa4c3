"""``recfuse train``: fit one model, write a model directory (what ``serve``, ``recommend`` and ``explain`` load)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from recfuse.data.options import dataset_options
from recfuse.data.spec import DatasetSpec


def _overrides(model: str, items: list[str]) -> dict[str, Any]:
    from recfuse.config import coerce, config_fields, make_config

    fields = config_fields(model)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise typer.BadParameter(f"{item!r}: expected PARAM=VALUE, e.g. epochs=50", param_hint="--set")
        if key not in fields:
            raise typer.BadParameter(f"{item!r}: {model} has no parameter {key!r}; it has {sorted(fields)}", param_hint="--set")
        try:
            out[key] = coerce(value.strip(), fields[key])
        except ValueError as e:
            raise typer.BadParameter(f"{item!r}: {e}", param_hint="--set") from None
    try:  # values the config refuses (a gate name, a range) fail here, before any data is read
        make_config(model, out)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--set") from None
    return out


@dataset_options(required=False)
def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write (weights, config, id maps, item text).")],
    spec: DatasetSpec | None = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name from the registry (default: fusion, or the --warm-start model).")] = None,
    split: Annotated[str, typer.Option("--split", help="Protocol whose training events are used: loo or temporal.")] = "loo",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Model hyperparameter PARAM=VALUE (repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    tune: Annotated[bool, typer.Option("--tune/--no-tune", help="Grid-search the model's hyperparameters on valid first, as `recfuse benchmark` does (models with a grid: als, bpr, itemknn); --set values stay fixed.")] = True,
    from_db: Annotated[str | None, typer.Option("--from-db", help="Train on the events `recfuse serve` stored at this URL (sqlite:///FILE or postgresql+psycopg://...) instead of --dataset; new users and items included. Needs --warm-start or --items-from for the catalogue.")] = None,
    table_prefix: Annotated[str, typer.Option("--table-prefix", help="With --from-db: the store's table prefix (as given to `recfuse serve`).")] = "",
    warm_start: Annotated[Path | None, typer.Option("--warm-start", help="Model directory to start from: its weights where they fit (item rows matched by id), its hyperparameters (--set overrides) and its catalogue.")] = None,
    items_from: Annotated[Path | None, typer.Option("--items-from", help="With --from-db and no --warm-start: model directory whose item catalogue to use (fresh weights).")] = None,
    nproc: Annotated[int, typer.Option("--nproc", help="Train data-parallel in this many processes on this machine (torchrun, gloo on CPU, NCCL on GPU); --set batch_size is the global batch.")] = 1,
) -> None:
    """Fit one model on the protocol's training events (early stopping on valid) and write a model directory.

    The directory is what `recfuse serve --model DIR` and `recfuse explain --model DIR` load.
    With --from-db and --warm-start it is the service's feedback loop: retrain or fine-tune on what
    the service stored, then load the result with POST /v1/admin/reload.
    """
    from recfuse.bundle import Bundle, BundleError
    from recfuse.data.split import SPLITS
    from recfuse.evaluate.protocol import evaluate
    from recfuse.models import MODELS
    from recfuse.train import distributed

    if not distributed.init_from_env() and nproc > 1:  # start torchrun, which runs this command in each process
        raise typer.Exit(distributed.launch(nproc, _forwarded_args(sys.argv[1:])))
    if (spec is None) == (from_db is None):
        raise typer.BadParameter("give exactly one of --dataset NAME or --from-db URL", param_hint="--dataset")
    base = None
    catalogue_dir = warm_start or items_from
    if catalogue_dir is not None:
        try:
            base = Bundle.load(catalogue_dir)
        except BundleError as e:
            raise typer.BadParameter(str(e), param_hint="--warm-start" if warm_start else "--items-from") from None
    elif from_db is not None:
        raise typer.BadParameter("--from-db needs the item catalogue: give --warm-start DIR or --items-from DIR", param_hint="--from-db")
    model = model or (base.model.name if warm_start is not None and base is not None else "fusion")
    if model not in MODELS:
        raise typer.BadParameter(f"unknown model {model!r}; available: {', '.join(MODELS)}", param_hint="--model")
    if split not in SPLITS:
        raise typer.BadParameter(f"{split!r}; available: {', '.join(SPLITS)}", param_hint="--split")
    params = _overrides(model, set_ or [])
    if warm_start is not None and base is not None:
        if base.model.name != model:
            raise typer.BadParameter(f"--warm-start {warm_start} holds a {base.model.name!r} model, not {model!r}", param_hint="--model")
        from recfuse.train.feedback import warm_config

        params = {**warm_config(base), **params}
    try:
        if from_db is not None:
            from recfuse.data.eventdb import StoreError
            from recfuse.train.feedback import load_from_db

            assert base is not None
            try:
                data = load_from_db(from_db, base, table_prefix)
            except StoreError as e:
                raise typer.BadParameter(str(e), param_hint="--from-db") from None
        else:
            assert spec is not None
            data = spec.load()
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e), param_hint="--from-db" if from_db else "--dataset") from None
    console = Console(stderr=True)
    parts = SPLITS[split](data)
    cls = MODELS[model]
    from recfuse.config import config_fields

    fields = config_fields(model)
    if "progress" in fields:
        params.setdefault("progress", not quiet)
    params["seed"] = seed
    fresh = cls(**params)
    if warm_start is not None and base is not None:
        from recfuse.models.sequential import SequentialRecommender
        from recfuse.train.feedback import warm_start as start_from

        if not isinstance(fresh, SequentialRecommender):
            raise typer.BadParameter(f"{model} has no weights to start from; drop --warm-start", param_hint="--warm-start")
        fresh.warm_start = start_from(base)
    from recfuse.evaluate.runner import GRIDS, split_item_text, tune_model

    k = min(10, parts.train.n_items)
    grid = {name: values for name, values in GRIDS.get(model, {}).items() if name not in params}
    tuning = None
    if tune and grid and warm_start is None:
        chosen, tuning = tune_model(model, parts, (k,), True, {kk: v for kk, v in params.items() if kk != "seed"},
                                    quiet=True, seed=seed)
        console.print(f"{model}: picked on valid NDCG@{k} from {grid}: "
                      + ", ".join(f"{name}={chosen[name]}" for name in grid))
        fresh = cls(**{**params, **chosen})
    elif grid:
        console.print(f"{model}: fixed hyperparameters (no tuning): "
                      + ", ".join(f"{name}={getattr(fresh.config, name)}" for name in grid))
    text = split_item_text(parts)
    fitted = fresh.fit(parts.train, parts.valid, item_text=text)
    if not distributed.is_main():  # rank 0 evaluates and writes the model directory
        return
    test = evaluate(fitted, parts.test, parts.train, ks=(k,)).mean()
    meta = {"split": split, "seed": seed, "test": {m: round(float(v), 6) for m, v in test.items()},
            **({"tuning": tuning} if tuning is not None else {})}
    if from_db is not None:
        meta["from_db"] = from_db
    if warm_start is not None:
        meta["warm_start"] = str(warm_start)
    path = Bundle.from_fit(fitted, data, meta, text_vectors=text).save(out)
    info = fitted.fit_info
    fit = (f"best epoch {info['best_epoch']} of {info['epochs_run']} (stopped: {info.get('stopped')})"
           if "best_epoch" in info else "no epochs (fitted in one pass)")
    console.print(f"{model} on {data.name} ({split}): test NDCG@{k} {test[f'ndcg@{k}']:.4f}, "
                  f"HR@{k} {test[f'hit@{k}']:.4f}; {fit}")
    Console().print(f"Wrote model directory {path}")


def _forwarded_args(argv: list[str]) -> list[str]:
    """``argv`` without the subcommand name and ``--nproc N``: what each torchrun process is started with."""
    args = argv[1:] if argv and argv[0] == "train" else list(argv)
    out: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def register(app: typer.Typer) -> None:
    app.command("train", help=train.__doc__)(train)
