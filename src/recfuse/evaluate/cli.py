"""``recfuse benchmark`` and ``recfuse ablate``: load a dataset, run, write the report.

Heavy imports (models, torch) happen inside the command so that
``recfuse --help`` stays fast.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from recfuse import config
from recfuse.config import coerce
from recfuse.data.options import dataset_options
from recfuse.data.spec import DatasetSpec

__all__ = ["coerce", "parse_overrides", "parse_params", "parse_seeds", "register", "register_ablate",
           "register_compare", "register_report"]

#: The cold-start protocol seed (a copy of ``recfuse.data.split.COLD_ITEMS_SEED``: importing it would load
#: numpy for ``recfuse --help``); a test checks that the two agree.
COLD_ITEMS_SEED = 20240601

DEFAULT_MODELS = "pop,itemknn,als,bpr"

SPLIT_HELP = (
    "Split: loo (leave-one-out), loo-valid5 (leave-one-out's test, the five events before it valid: "
    "for decisions), temporal (global cut, one query per user) or "
    "temporal-events (global cut, one query per new event in the phase)."
)


def parse_overrides(items: list[str], models: list[str]) -> dict[str, dict[str, Any]]:
    """:func:`recfuse.config.parse_overrides` for the command line: a bad item is a usage error.

    Raises ``typer.BadParameter`` (exit code 2) with the core's message, naming the bad item.
    """
    try:
        return config.parse_overrides(items, models)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--set") from None


def parse_seeds(spec: str) -> list[int]:
    """:func:`recfuse.config.parse_seeds` for the command line: a bad ``--seeds`` is a usage error (exit 2)."""
    try:
        return config.parse_seeds(spec)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--seeds") from None


SEEDS_HELP = (
    "Seeds: a count N (seeds 0..N-1), a range (10-14) or a list (0,3,7 or 0-2,5); one seed S is S-S. "
    "Tuning uses the first."
)

ABLATE_SEEDS_HELP = (
    "Seeds, the same for every row: a count N (seeds 0..N-1), a range (10-14) or a list (0,3,7 or 0-2,5)."
)

JOBS_HELP = (
    "Fits (model x seed) run side by side in this many worker processes, each with cores/JOBS torch threads; "
    "1 = one after another in this process. Each worker's epochs show in a progress row "
    "(a line every 10 epochs when the output is not a terminal)."
)
THREADS_HELP = (
    "Torch threads per fit (default: cores/JOBS). At 1 a fit is repeatable bit for bit on a busy machine too; "
    "with several, CPU kernels may split their sums differently when other work competes for the cores."
)


def _load_dataset(spec: DatasetSpec) -> Any:
    """The dataset the shared options name (a seam the CLI tests replace with a fixed log)."""
    return spec.load()


@dataset_options()
def benchmark(
    spec: DatasetSpec,
    models: Annotated[
        str, typer.Option("--models", "-m", help="Comma-separated model names from the registry.")
    ] = DEFAULT_MODELS,
    seeds: Annotated[str, typer.Option("--seeds", "-s", help=SEEDS_HELP)] = "3",
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
        bool, typer.Option("--tune/--no-tune", help="Grid-search hyperparameters on valid (first seed) before the runs.")
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
        typer.Option("--save-models", help="Write each model's fit with the first seed as a model directory under "
                     "this folder (for recfuse explain / recfuse serve)."),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", min=1, help=JOBS_HELP)
    ] = 1,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help=THREADS_HELP)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-run lines.")] = False,
) -> None:
    """Tune on valid, fit every model for every seed, and report test metrics with significance.

    As each fit ends, its record goes to OUT/runs/MODEL-seedN.json and .npz (what recfuse compare reads)
    and OUT/results.json is rewritten with the fits finished so far.

    Example: recfuse benchmark --dataset ml-100k --models pop,sasrec --seeds 10-14 --jobs 2 --out results/ml
    """
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
    seed_ids = parse_seeds(seeds)
    overrides = parse_overrides(set_ or [], names)

    try:
        data = _load_dataset(spec)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e), param_hint="--dataset") from None
    out_dir = out if out is not None else Path("results") / re.sub(r"[^\w.-]+", "_", data.name)

    stdout = Console()
    results = run_benchmark(
        data, names, seed_ids, split=split, ks=cutoffs, mask_history=mask_history, tune=tune, overrides=overrides,
        reference=reference, progress=not quiet, console=Console(stderr=True), cold_items=cold_items,
        cold_seed=cold_items_seed, save_models=save_models, jobs=jobs, threads=threads, out=out_dir,
    )
    paths = write_report(results, out_dir)
    print_leaderboard(results, stdout)
    ref = results.get("reference")
    if ref is not None and len(names) > 1:
        how = "--reference" if reference is not None else "the best model on mean valid NDCG@10; --reference picks another"
        stdout.print(f"Paired tests (Wilcoxon over users): every model against {ref} ({how}).")
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


@dataset_options()
def ablate(
    spec: DatasetSpec,
    seeds: Annotated[str, typer.Option("--seeds", "-s", help=ABLATE_SEEDS_HELP)] = "3",
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
    threads: Annotated[int | None, typer.Option("--threads", min=1, help=THREADS_HELP)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-run lines.")] = False,
) -> None:
    """Ablate the fusion model: the full model against itself with one part switched off.

    Rows: full; no_text (use_text=false); long_only (gate=long); short_only
    (gate=short); fixed_gate (50/50, gate=fixed); no_time (use_time=false);
    no_rating (use_rating=false).  Same protocol, same seeds, no tuning.
    Each row: test NDCG@10 and HR@10 (mean ± std over seeds), valid NDCG@10,
    change against full and a paired Wilcoxon p-value on per-user NDCG@10,
    train seconds.  Also writes the full model's gate by time since the
    user's previous event (first seed, test queries) as gate_by_gap in
    results.json and gate_by_gap.png.  Each fit's record goes to
    OUT/runs/ROW-seedN.json and .npz as it ends (recfuse compare full no_text
    --runs OUT compares two rows).

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
    seed_ids = parse_seeds(seeds)
    params = parse_params(set_ or [], MODEL)
    switched = sorted(set(params) & {"use_text", "use_time", "use_rating", "gate"})
    if switched:
        raise typer.BadParameter(f"{switched}: the ablation rows set these themselves", param_hint="--set")

    try:
        data = _load_dataset(spec)
    except (KeyError, ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e), param_hint="--dataset") from None
    out_dir = out if out is not None else Path("results") / (re.sub(r"[^\w.-]+", "_", data.name) + "-ablation")

    stdout = Console()
    results = run_ablation(
        data, seed_ids, names, params, split=split, ks=cutoffs, progress=not quiet, console=Console(stderr=True),
        cold_items=cold_items, jobs=jobs, threads=threads, out=out_dir,
    )
    paths = write_ablation_report(results, out_dir)
    print_ablation(results, stdout)
    _print_written(stdout, paths)


def register_ablate(app: typer.Typer) -> None:
    """Add ``ablate`` to the ``recfuse`` app (a no-op if it is already there)."""
    if any(c.name == "ablate" for c in app.registered_commands):
        return
    app.command("ablate", help=ablate.__doc__)(ablate)


def compare(
    a: Annotated[str, typer.Argument(help="Model A, as named in the runs (e.g. fusion): the ratio is A / B.")],
    b: Annotated[str, typer.Argument(help="Model B, the one A is compared against (e.g. sasrec).")],
    runs: Annotated[
        Path, typer.Option("--runs", help="A benchmark's --out folder: its runs/ records are read, the table written.")
    ],
    b_runs: Annotated[
        Path | None, typer.Option("--b-runs", help="B's --out folder, when it is another one than --runs.")
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", "-s", help="Only these seeds (as for benchmark: 5, 10-14, 0,3,7); "
                     "default: every seed both models have."),
    ] = None,
    on: Annotated[
        str, typer.Option("--on", help="test, or valid (for a decision that must not look at test).")
    ] = "test",
    metric: Annotated[str, typer.Option("--metric", help="Per-query metric, as recorded (ndcg@10, hit@10, ...).")] = (
        "ndcg@10"
    ),
) -> None:
    """Compare two models' recorded fits: per-seed table, mean ± std, ratio, paired Wilcoxon and t-test.

    Reads the runs/MODEL-seedN records recfuse benchmark (or ablate) wrote.  Over the seeds both
    models have, prints each seed's mean metric, mean ± sample std, the ratio A / B of the means, and the
    paired Wilcoxon signed-rank test and paired t-test over users (each user's metric averaged over those
    seeds first); writes the same as compare_A_vs_B.md into the --runs folder.

    Example: recfuse compare fusion sasrec --runs benchmarks/ml-100k
    """
    from recfuse.evaluate.report import compare_file_name, compare_markdown, compare_runs, print_compare

    if on not in ("test", "valid"):
        raise typer.BadParameter(f"{on!r}: expected test or valid", param_hint="--on")
    only = parse_seeds(seeds) if seeds is not None else None
    for folder, hint in ((runs, "--runs"), (b_runs, "--b-runs")):
        if folder is not None and not folder.is_dir():
            raise typer.BadParameter(f"{folder}: no such folder", param_hint=hint)
    try:
        cmp = compare_runs(a, b, runs, b_runs, only, on=on, metric=metric)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--runs") from None
    stdout = Console()
    print_compare(cmp, stdout)
    path = runs / compare_file_name(a, b, only, on, metric)
    path.write_text(compare_markdown(cmp))
    _print_written(stdout, [path])


def register_compare(app: typer.Typer) -> None:
    """Add ``compare`` to the ``recfuse`` app (a no-op if it is already there)."""
    if any(c.name == "compare" for c in app.registered_commands):
        return
    app.command("compare", help=compare.__doc__)(compare)


#: Files whose headline table ``recfuse report`` keeps, when ``--file`` is not given.
REPORT_FILES = (Path("README.md"), Path("docs/benchmarks.md"))


def report(
    headline: Annotated[
        Path, typer.Option("--headline", help="Which benchmark folders and models go in the table.")
    ] = Path("benchmarks/headline.toml"),
    files: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", help="A Markdown file with the table markers (repeatable; "
                     "default: README.md and docs/benchmarks.md)."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a file's table is out of date.")
    ] = False,
) -> None:
    """Write the headline results table into README.md and docs/benchmarks.md from the committed results.json.

    The table (dataset, model, test NDCG@10 and HR@10 mean ± std, seeds, ratio and paired Wilcoxon p against
    the reference) is built from benchmarks/FOLDER/results.json for each [[figure]] of the --headline file and
    goes between the lines <!-- results-table:start --> and <!-- results-table:end --> of each file that has
    them; nothing else in the files changes.

    Example: recfuse report --check
    """
    from recfuse.evaluate.report import headline_table, update_tables

    if not headline.is_file():
        raise typer.BadParameter(f"{headline}: no such file", param_hint="--headline")
    try:
        table, missing = headline_table(headline)
    except (ValueError, KeyError) as e:
        raise typer.BadParameter(f"{headline}: {e}", param_hint="--headline") from None
    err = Console(stderr=True)
    for source in missing:
        err.print(f"{source}: not found; its figure is left out of the table", soft_wrap=True)
    status = update_tables(files or list(REPORT_FILES), table, check=check)
    stdout = Console()
    for path, state in status.items():
        stdout.print(f"{path}: {state}", soft_wrap=True)
    if check and "out of date" in status.values():
        raise typer.Exit(1)


def register_report(app: typer.Typer) -> None:
    """Add ``report`` to the ``recfuse`` app (a no-op if it is already there)."""
    if any(c.name == "report" for c in app.registered_commands):
        return
    app.command("report", help=report.__doc__)(report)
