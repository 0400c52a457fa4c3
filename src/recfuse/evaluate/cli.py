"""``recfuse benchmark`` and ``recfuse ablate``: load a dataset, run, write the report.

Heavy imports (models, torch) happen inside the command so that
``recfuse --help`` stays fast.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

#: The cold-start protocol seed (a copy of ``recfuse.data.split.COLD_ITEMS_SEED``: importing it would load
#: numpy for ``recfuse --help``); a test checks that the two agree.
COLD_ITEMS_SEED = 20240601

DEFAULT_MODELS = "pop,itemknn,als,bpr"
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def coerce(value: str, tp: Any) -> Any:
    """Parse the text ``value`` as type ``tp`` (a Config field's annotation).

    Handles ``int``, ``float``, ``bool``, ``str``, ``X | None`` and ``Literal``;
    anything else is passed through as the string.

    Examples
    --------
    >>> coerce("64", int), coerce("1e-3", float), coerce("no", bool), coerce("none", int | None)
    (64, 0.001, False, None)
    """
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value.lower() in {"none", "null"} and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if typing.get_origin(tp) is typing.Literal:
        for option in args:
            if str(option) == value:
                return option
        raise ValueError(f"{value!r} is not one of {list(args)}")
    if tp is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean (true/false)")
    if tp is int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    if tp is float:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    return value


SPLIT_HELP = (
    "Split: loo (leave-one-out), loo-valid5 (leave-one-out's test, the five events before it valid: "
    "for decisions), temporal (global cut, one query per user) or "
    "temporal-events (global cut, one query per new event in the phase)."
)


def parse_overrides(items: list[str], models: list[str]) -> dict[str, dict[str, Any]]:
    """``["als.reg=0.1", ...]`` to ``{"als": {"reg": 0.1}}``, typed by each model's Config.

    Raises ``typer.BadParameter`` (exit code 2) naming the bad item.
    """
    from recfuse.evaluate.runner import config_fields

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        m = re.fullmatch(r"\s*([\w-]+)\.(\w+)\s*=(.*)", item)
        if not m:
            raise typer.BadParameter(f"{item!r}: expected MODEL.PARAM=VALUE, e.g. als.reg=0.1", param_hint="--set")
        model, param, value = m.group(1), m.group(2), m.group(3).strip()
        if model not in models:
            raise typer.BadParameter(f"{item!r}: model {model!r} is not in --models {models}", param_hint="--set")
        fields = config_fields(model)
        if param == "seed":
            raise typer.BadParameter(f"{item!r}: seeds come from --seeds (0..N-1)", param_hint="--set")
        if param not in fields:
            raise typer.BadParameter(
                f"{item!r}: {model} has no parameter {param!r}; it has {sorted(f for f in fields if f != 'seed')}",
                param_hint="--set",
            )
        try:
            out.setdefault(model, {})[param] = coerce(value, fields[param])
        except ValueError as e:
            raise typer.BadParameter(f"{item!r}: {e}", param_hint="--set") from None
    from recfuse.evaluate.runner import make_config

    for model, params in out.items():  # values each config refuses (a gate name, a range) fail here, not mid-run
        try:
            make_config(model, params)
        except ValueError as e:
            raise typer.BadParameter(f"{model}: {e}", param_hint="--set") from None
    return out


JOBS_HELP = (
    "Fits (model x seed) run side by side in this many worker processes, each with cores/JOBS torch threads; "
    "1 = one after another in this process. Each worker's epochs show in a progress row "
    "(a line every 10 epochs when the output is not a terminal)."
)


def _load_dataset(name_or_path: str) -> Any:
    """The dataset, through the registry (imported here: it is optional at import time)."""
    from recfuse.data.registry import load_dataset

    return load_dataset(name_or_path)


def benchmark(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Registered dataset name (e.g. ml-100k) or path to an interaction file.")
    ],
    models: Annotated[
        str, typer.Option("--models", "-m", help="Comma-separated model names from the registry.")
    ] = DEFAULT_MODELS,
    seeds: Annotated[int, typer.Option("--seeds", "-s", min=1, help="Number of seeds (0..N-1) per model.")] = 3,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: results/<dataset name>).")
    ] = None,
    split: Annotated[str, typer.Option("--split", help=SPLIT_HELP)] = "loo",
    ks: Annotated[str, typer.Option("--ks", help="Comma-separated cut-offs K for every metric.")] = "5,10,20",
    mask_history: Annotated[
        bool,
        typer.Option(
            "--mask-history/--no-mask-history", help="Mask each user's history items out of the ranking (RecBole default)."
        ),
    ] = True,
    tune: Annotated[
        bool, typer.Option("--tune/--no-tune", help="Grid-search hyperparameters on valid (seed 0) before the runs.")
    ] = True,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="Model every other model is tested against (default: the best by mean valid NDCG@10)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Fix a hyperparameter, MODEL.PARAM=VALUE (repeatable); it is not tuned."),
    ] = None,
    cold_items: Annotated[
        float,
        typer.Option(
            "--cold-items", min=0.0, max=0.99,
            help=(
                "Cold-start item protocol: hold this share of items (e.g. 0.1) out of training and of every query "
                "history; they stay in the ranking and among test targets. Adds slices cold_items / warm_items. "
                "0 = off."
            ),
        ),
    ] = 0.0,
    cold_items_seed: Annotated[
        int, typer.Option("--cold-items-seed", help="Protocol seed that picks the held-out items (fixed by default).")
    ] = COLD_ITEMS_SEED,
    save_models: Annotated[
        Path | None,
        typer.Option("--save-models", help="Write each model's seed-0 fit as a model directory under this folder "
                     "(for recfuse explain / recfuse serve)."),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help=JOBS_HELP)
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-run lines.")] = False,
) -> None:
    """Tune on valid, fit every model for every seed, and report test metrics with significance."""
    from recfuse.data.split import SPLITS
    from recfuse.evaluate.report import print_leaderboard, write_report
    from recfuse.evaluate.runner import run_benchmark
    from recfuse.models import MODELS

    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown model(s) {unknown or '(none given)'}; available: {', '.join(MODELS)}", param_hint="--models"
        )
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"a model is listed twice: {names}", param_hint="--models")
    if split not in SPLITS:
        raise typer.BadParameter(f"{split!r}; available: {', '.join(SPLITS)}", param_hint="--split")
    try:
        cutoffs = tuple(int(k) for k in ks.split(",") if k.strip())
    except ValueError:
        raise typer.BadParameter(f"{ks!r}: expected integers like 5,10,20", param_hint="--ks") from None
    if not cutoffs or min(cutoffs) < 1:
        raise typer.BadParameter(f"{ks!r}: need at least one positive K", param_hint="--ks")
    if reference is not None and reference not in names:
        raise typer.BadParameter(f"{reference!r} is not among --models {names}", param_hint="--reference")
    overrides = parse_overrides(set_ or [], names)

    try:
        data = _load_dataset(dataset)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e), param_hint="--dataset") from None
    out_dir = out if out is not None else Path("results") / re.sub(r"[^\w.-]+", "_", data.name)

    stdout = Console()
    results = run_benchmark(
        data, names, seeds, split=split, ks=cutoffs, mask_history=mask_history, tune=tune, overrides=overrides,
        reference=reference, progress=not quiet, console=Console(stderr=True), cold_items=cold_items,
        cold_seed=cold_items_seed, save_models=save_models, jobs=jobs,
    )
    paths = write_report(results, out_dir)
    print_leaderboard(results, stdout)
    _print_written(stdout, paths)


def _print_written(console: Console, paths: list[Path]) -> None:
    console.print("Wrote:")
    for p in paths:
        console.print(f"  {p}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``benchmark`` to the ``recfuse`` app (a no-op if it is already there)."""
    if any(c.name == "benchmark" for c in app.registered_commands):
        return
    app.command("benchmark", help=benchmark.__doc__)(benchmark)


#: Ablation rows, as ``recfuse ablate --help`` lists them (the switches live in
#: ``recfuse.evaluate.ablation.ABLATIONS``; a test checks that the two agree).
ABLATION_NAMES = ("full", "no_text", "long_only", "short_only", "fixed_gate", "no_time", "no_rating", "no_trend", "no_user")


def parse_params(items: list[str], model: str) -> dict[str, Any]:
    """``["epochs=2", "fusion.dropout=0.3"]`` to ``{"epochs": 2, "dropout": 0.3}``, typed by ``model``'s Config.

    The ``MODEL.`` prefix is optional; another model's prefix is an error.
    """
    prefixed = []
    for item in items:
        m = re.fullmatch(r"\s*([\w-]+)\.(\w+\s*=.*)", item)
        if m and m.group(1) != model:
            raise typer.BadParameter(f"{item!r}: the ablation runs {model} only", param_hint="--set")
        prefixed.append(item if m else f"{model}.{item.strip()}")
    return parse_overrides(prefixed, [model]).get(model, {})


def ablate(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="Registered dataset name (e.g. ml-100k) or path to an interaction file.")
    ],
    seeds: Annotated[int, typer.Option("--seeds", "-s", min=1, help="Number of seeds (0..N-1), the same for every row.")] = 3,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output folder (default: results/<dataset name>-ablation).")
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option(
            "--variants", "-v",
            help=f"Comma-separated rows to run (default: all): {', '.join(ABLATION_NAMES)}. 'full' is always run: "
            "it is the reference.",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Fix a fusion hyperparameter for every row, PARAM=VALUE or fusion.PARAM=VALUE (repeatable), e.g. "
            "--set epochs=2. The switches the rows vary (use_text, use_time, use_rating, gate) are refused.",
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help=SPLIT_HELP)] = "loo",
    ks: Annotated[str, typer.Option("--ks", help="Comma-separated cut-offs K for every metric.")] = "5,10,20",
    cold_items: Annotated[
        float,
        typer.Option("--cold-items", min=0.0, max=0.99,
                     help="Run under the cold-start item protocol (share of items held out, e.g. 0.1); 0 = off."),
    ] = 0.0,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help=JOBS_HELP)
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-run lines.")] = False,
) -> None:
    """Ablate the fusion model: the full model against itself with one part switched off.

    Rows: full; no_text (use_text=false); long_only (gate=long); short_only
    (gate=short); fixed_gate (50/50, gate=fixed); no_time (use_time=false);
    no_rating (use_rating=false).  Same protocol, same seeds, no tuning.
    Each row: test NDCG@10 and HR@10 (mean ± std over seeds), valid NDCG@10,
    change against full and a paired Wilcoxon p-value on per-user NDCG@10,
    train seconds.  Also writes the full model's gate by time since the
    user's previous event (seed 0, test queries) as gate_by_gap in
    results.json and gate_by_gap.png.

    Example: recfuse ablate --dataset ml-100k --seeds 3 --out results/ablation
    """
    from recfuse.data.split import SPLITS
    from recfuse.evaluate.ablation import MODEL, run_ablation
    from recfuse.evaluate.report import print_ablation, write_ablation_report

    names = None
    if variants is not None:
        names = [v.strip() for v in variants.split(",") if v.strip()]
        unknown = [v for v in names if v not in ABLATION_NAMES]
        if unknown or not names:
            raise typer.BadParameter(
                f"unknown variant(s) {unknown or '(none given)'}; available: {', '.join(ABLATION_NAMES)}",
                param_hint="--variants",
            )
    if split not in SPLITS:
        raise typer.BadParameter(f"{split!r}; available: {', '.join(SPLITS)}", param_hint="--split")
    try:
        cutoffs = tuple(int(k) for k in ks.split(",") if k.strip())
    except ValueError:
        raise typer.BadParameter(f"{ks!r}: expected integers like 5,10,20", param_hint="--ks") from None
    if not cutoffs or min(cutoffs) < 1:
        raise typer.BadParameter(f"{ks!r}: need at least one positive K", param_hint="--ks")
    params = parse_params(set_ or [], MODEL)
    switched = sorted(set(params) & {"use_text", "use_time", "use_rating", "gate"})
    if switched:
        raise typer.BadParameter(f"{switched}: the ablation rows set these themselves", param_hint="--set")

    try:
        data = _load_dataset(dataset)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e), param_hint="--dataset") from None
    out_dir = out if out is not None else Path("results") / (re.sub(r"[^\w.-]+", "_", data.name) + "-ablation")

    stdout = Console()
    results = run_ablation(
        data, seeds, names, params, split=split, ks=cutoffs, progress=not quiet, console=Console(stderr=True),
        cold_items=cold_items, jobs=jobs,
    )
    paths = write_ablation_report(results, out_dir)
    print_ablation(results, stdout)
    _print_written(stdout, paths)


def register_ablate(app: typer.Typer) -> None:
    """Add ``ablate`` to the ``recfuse`` app (a no-op if it is already there)."""
    if any(c.name == "ablate" for c in app.registered_commands):
        return
    app.command("ablate", help=ablate.__doc__)(ablate)
