"""``recfuse train`` (fit one model, write a model directory) and ``recfuse explain``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table


def _overrides(model: str, items: list[str]) -> dict[str, Any]:
    from recfuse.evaluate.cli import coerce
    from recfuse.evaluate.runner import config_fields

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
    from recfuse.evaluate.runner import make_config

    try:  # values the config refuses (a gate name, a range) fail here, before any data is read
        make_config(model, out)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--set") from None
    return out


def train(
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write (weights, config, id maps, item text).")],
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Registered dataset name (e.g. ml-100k) or path to an interaction file.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name from the registry (default: fusion, or the --warm-start model).")] = None,
    split: Annotated[str, typer.Option("--split", help="Protocol whose training events are used: loo or temporal.")] = "loo",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Model hyperparameter PARAM=VALUE (repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    from_db: Annotated[str | None, typer.Option("--from-db", help="Train on the events `recfuse serve` stored at this URL (sqlite:///FILE or postgresql+psycopg://...) instead of --dataset; new users and items included. Needs --warm-start or --items-from for the catalogue.")] = None,
    table_prefix: Annotated[str, typer.Option("--table-prefix", help="With --from-db: the store's table prefix (as given to `recfuse serve`).")] = "",
    warm_start: Annotated[Path | None, typer.Option("--warm-start", help="Model directory to start from: its weights where they fit (item rows matched by id), its hyperparameters (--set overrides) and its catalogue.")] = None,
    items_from: Annotated[Path | None, typer.Option("--items-from", help="With --from-db and no --warm-start: model directory whose item catalogue to use (fresh weights).")] = None,
) -> None:
    """Fit one model on the protocol's training events (early stopping on valid) and write a model directory.

    The directory is what `recfuse serve --model DIR` and `recfuse explain --model DIR` load.
    With --from-db and --warm-start it is the service's feedback loop: retrain or fine-tune on what
    the service stored, then load the result with POST /v1/admin/reload.
    """
    from recfuse.bundle import Bundle, BundleError
    from recfuse.data.registry import load_dataset
    from recfuse.data.split import SPLITS
    from recfuse.evaluate.protocol import evaluate
    from recfuse.models import MODELS

    if (dataset is None) == (from_db is None):
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
        from recfuse.serve.feedback import warm_config

        params = {**warm_config(base), **params}
    try:
        if from_db is not None:
            from recfuse.serve.feedback import load_from_db
            from recfuse.serve.store import StoreError

            assert base is not None
            try:
                data = load_from_db(from_db, base, table_prefix)
            except StoreError as e:
                raise typer.BadParameter(str(e), param_hint="--from-db") from None
        else:
            assert dataset is not None
            data = load_dataset(dataset)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e), param_hint="--from-db" if from_db else "--dataset") from None
    console = Console(stderr=True)
    parts = SPLITS[split](data)
    cls = MODELS[model]
    from recfuse.evaluate.runner import config_fields

    fields = config_fields(model)
    if "progress" in fields:
        params.setdefault("progress", not quiet)
    params["seed"] = seed
    fresh = cls(**params)
    if warm_start is not None and base is not None:
        from recfuse.serve.feedback import WarmStart

        fresh.warm_start = WarmStart.from_bundle(base)  # type: ignore[attr-defined]  # read by SequentialRecommender.fit
    fitted = fresh.fit(parts.train, parts.valid)
    test = evaluate(fitted, parts.test, parts.train).mean()
    meta = {"split": split, "seed": seed, "test": {k: round(float(v), 6) for k, v in test.items() if "@10" in k}}
    if from_db is not None:
        meta["from_db"] = from_db
    if warm_start is not None:
        meta["warm_start"] = str(warm_start)
    path = Bundle.from_fit(fitted, data, meta).save(out)
    console.print(
        f"{model} on {data.name} ({split}): test NDCG@10 {test['ndcg@10']:.4f}, HR@10 {test['hit@10']:.4f}; "
        f"best epoch {fitted.fit_info.get('best_epoch')}"
    )
    Console().print(f"Wrote model directory {path}")


def explain(
    user: Annotated[str, typer.Option("--user", "-u", help="External user id, as in the dataset (e.g. 196).")],
    model_dir: Annotated[Path | None, typer.Option("--model", help="Model directory from `recfuse train`.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="Dataset: trains a fusion model into models/<dataset>-fusion when --model is not given and none is there.")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=100, help="How many recommendations.")] = 10,
) -> None:
    """Print one user's recommendations with why: gate (short-term share), top history items, dominant dimension."""
    from recfuse.bundle import Bundle

    if model_dir is None:
        if dataset is None:
            raise typer.BadParameter("give --model DIR or --dataset NAME", param_hint="--model")
        model_dir = Path("models") / f"{dataset}-fusion"
        if not (model_dir / "bundle.json").is_file():
            Console(stderr=True).print(f"No model in {model_dir}: training one (recfuse train --dataset {dataset} --out {model_dir})")
            train(dataset=dataset, out=model_dir)
    bundle = Bundle.load(model_dir)
    print_explanation(bundle, user, k, Console())


def print_explanation(bundle: Any, user: str, k: int, console: Console) -> None:
    """Explain ``user``'s top-``k`` from a loaded bundle, as a Rich table."""
    import numpy as np
    import polars as pl

    from recfuse.data.split import Queries

    model = bundle.model
    if not hasattr(model, "explain"):
        raise typer.BadParameter(f"model {model.name!r} gives no explanations (the fusion model does)", param_hint="--model")
    if user not in bundle.users:
        raise typer.BadParameter(f"user {user!r} is not in this model's data ({len(bundle.users)} users)", param_hint="--user")
    ev = bundle.events.filter(pl.col("user_id") == user).sort("timestamp", maintain_order=True)
    items = bundle.items.to_index(ev["item_id"].to_list())
    ts = ev["timestamp"].to_numpy().astype(np.float64)
    rating = ev["rating"].to_numpy().astype(np.float32)
    q = Queries(
        user=np.array([bundle.users.index(user)]),
        indptr=np.array([0, len(items)]),
        items=items,
        timestamps=ts,
        ratings=rating,
        time=None,
    )
    exp = model.explain(q, k)[0]
    console.print(
        f"[bold]User {user}[/bold]: {len(items)} events; gate (short-term share) = {exp['gate']:.2f} "
        f"-> {'short-term' if exp['gate'] >= 0.5 else 'long-term'} interest leads"
    )
    table = Table(title=f"Top {k} for user {user} ({bundle.meta.get('model')} on {bundle.meta.get('dataset')})")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("dimension")
    table.add_column("because of (gradient x input)")
    for rank, entry in enumerate(exp["items"], 1):
        because = "; ".join(f"{bundle.title(i)} ({c:+.2f})" for i, c in entry["history"])
        table.add_row(str(rank), bundle.title(entry["item"]), entry["dimension"], because)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("train", help=train.__doc__)(train)
    app.command("explain", help=explain.__doc__)(explain)
