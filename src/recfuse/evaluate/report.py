"""Turn results into files people read: JSON, Markdown, PNG, and the tables quoted in the docs.

Three inputs, none of which needs a model or a rerun:

* a ``results.json`` dict (see ``docs/results-json.md``): the leaderboard is
  built once (:func:`leaderboard`) and rendered twice, as Markdown and as a
  Rich table;
* the per-fit records under a benchmark's ``runs/`` folder
  (:func:`load_runs`): :func:`compare_runs` is ``recfuse compare``, the
  per-seed table and paired tests of two models;
* the committed ``benchmarks/*/results.json`` named in
  ``benchmarks/headline.toml``: :func:`headline_table` is the headline table
  that ``recfuse report`` writes into README.md and docs/benchmarks.md.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from recfuse.config import format_seeds
from recfuse.evaluate.significance import paired_test, primary_metric

#: The folder under a benchmark's ``--out`` that holds one record per (model, seed) fit.
RUNS_DIR = "runs"

#: Leaderboard metric columns: (header, metric key, show "± std").  Columns whose
#: metric is absent (a K that was not run) are dropped.
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("NDCG@10", "ndcg@10", True),
    ("Recall@10", "recall@10", False),
    ("MRR@10", "mrr@10", False),
    ("NDCG@20", "ndcg@20", False),
    ("Recall@20", "recall@20", False),
    ("Coverage@10", "coverage@10", False),
)

#: Table columns holding words, not numbers: left-aligned like the first column.
TEXT_COLUMNS = ("vs", "What changes")

#: Slice families that get a plot, in this order (others found in results follow).
SLICE_FAMILIES = ("target_popularity", "history_length", "cold_start")

#: Slice keys of the cold-start item protocol (``--cold-items``): they have no ``FAMILY=`` prefix in
#: ``results.json`` (the issue names them ``slices.cold_items``); plots group them as family ``cold_start``.
COLD_SLICES = ("cold_items", "warm_items")


def slice_family(key: str) -> tuple[str, str]:
    """``(family, value)`` of a slice key.

    >>> slice_family("target_popularity=head"), slice_family("cold_items")
    (('target_popularity', 'head'), ('cold_start', 'cold_items'))
    """
    if key in COLD_SLICES:
        return "cold_start", key
    fam, _, value = key.partition("=")
    return fam, value


def fmt_mean_std(summary: dict[str, Any] | None, std: bool = True, digits: int = 4) -> str:
    """``"0.0747 ± 0.0012"`` (or just the mean); ``"—"`` when missing.

    >>> fmt_mean_std({"mean": 0.07469, "std": 0.00123, "per_seed": []})
    '0.0747 ± 0.0012'
    >>> fmt_mean_std({"mean": 0.07469, "std": 0.0, "per_seed": []}, std=False)
    '0.0747'
    """
    if summary is None:
        return "—"
    text = f"{summary['mean']:.{digits}f}"
    return f"{text} ± {summary['std']:.{digits}f}" if std else text


def fmt_p(p: float | None) -> str:
    """A p-value for a table: 3 decimals, scientific below 0.001, ``"—"`` if none.

    >>> fmt_p(0.0213), fmt_p(2.1e-05), fmt_p(None), fmt_p(1.0)
    ('0.021', '2.1e-05', '—', '1.000')
    """
    if p is None:
        return "—"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def seeds_text(results: dict[str, Any], n_seeds: int) -> str:
    """``"seeds 10-14"`` from ``results["seeds"]``; ``"3 seed(s)"`` for a results dict without the list.

    >>> seeds_text({"seeds": [10, 11, 12]}, 3), seeds_text({"seeds": [4]}, 1), seeds_text({}, 2)
    ('seeds 10-12', 'seed 4', '2 seed(s)')
    """
    seeds = results.get("seeds")
    if not seeds:
        return f"{n_seeds} seed(s)"
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {format_seeds(list(seeds))}"


def _partial_note(results: dict[str, Any]) -> list[str]:
    """A warning line for a results dict written while its run was still going (``"complete": false``)."""
    if results.get("complete", True):
        return []
    done = {m: format_seeds(r.get("seeds", [])) for m, r in results["models"].items()}
    return ["", "**Partial**: the run has not finished; seeds so far: "
            + ", ".join(f"{m} {s or '-'}" for m, s in done.items()) + "."]


def primary(results: dict[str, Any]) -> str:
    """The metric the leaderboard is sorted by (``ndcg@10`` by default)."""
    return primary_metric(results["protocol"]["ks"])


def ranked_models(results: dict[str, Any]) -> list[str]:
    """Model names, best first by mean test primary metric (ties keep run order)."""
    metric = primary(results)
    models = results["models"]
    return sorted(models, key=lambda m: -models[m]["metrics"].get(metric, {"mean": 0.0})["mean"])


def leaderboard(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and formatted rows of the leaderboard, best model first.

    The reference model is marked ``(ref)``; ``vs`` names the model each row
    was tested against and ``p`` is the Wilcoxon signed-rank p-value.
    """
    models = results["models"]
    cols = [c for c in COLUMNS if any(c[1] in m["metrics"] for m in models.values())]
    headers = ["Model", *(c[0] for c in cols), "Train s", "vs", "p (Wilcoxon)"]
    rows = []
    for name in ranked_models(results):
        m = models[name]
        sig = m.get("significance")
        label = f"{name} (ref)" if name == results.get("reference") else name
        rows.append([
            label,
            *(fmt_mean_std(m["metrics"].get(key), std=with_std) for _, key, with_std in cols),
            f"{m['train_seconds']['mean']:.2f}",
            sig["vs"] if sig else "—",
            fmt_p(sig["wilcoxon_p"]) if sig else "—",
        ])
    return headers, rows


def slice_table(results: dict[str, Any], metric: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of ``metric`` (default: the primary one) per slice, mean ± std."""
    metric = metric or primary(results)
    sizes = results["protocol"].get("slice_sizes", {})
    keys: list[str] = []
    for m in results["models"].values():
        keys += [k for k in m.get("slices", {}) if k not in keys]
    headers = ["Model", *(f"{k} (n={sizes[k]})" if k in sizes else k for k in keys)]
    rows = [
        [name, *(fmt_mean_std(results["models"][name].get("slices", {}).get(k, {}).get(metric)) for k in keys)]
        for name in ranked_models(results)
    ]
    return headers, rows


def _k(results: dict[str, Any]) -> int:
    """The K of the primary metric (10 by default)."""
    return int(primary(results).split("@")[1])


def cold_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Headers and rows of the cold-start item slices (``None`` when the protocol was off).

    Per model: Recall and NDCG at the primary K on the cold slice (test
    targets that are held-out items), on the warm slice and on all of test.
    """
    cold = results["protocol"].get("cold_items")
    if not cold:
        return None
    k = _k(results)
    sizes = results["protocol"].get("slice_sizes", {})
    n = {key: sizes.get(key, cold.get(f"test_queries_{key.split('_')[0]}")) for key in COLD_SLICES}
    headers = [
        "Model",
        f"Recall@{k} cold (n={n['cold_items']})", f"NDCG@{k} cold",
        f"Recall@{k} warm (n={n['warm_items']})", f"NDCG@{k} warm",
        f"NDCG@{k} all",
    ]
    rows = []
    for name in ranked_models(results):
        m = results["models"][name]
        sl = m.get("slices", {})
        rows.append([
            name,
            fmt_mean_std(sl.get("cold_items", {}).get(f"recall@{k}")),
            fmt_mean_std(sl.get("cold_items", {}).get(f"ndcg@{k}")),
            fmt_mean_std(sl.get("warm_items", {}).get(f"recall@{k}")),
            fmt_mean_std(sl.get("warm_items", {}).get(f"ndcg@{k}")),
            fmt_mean_std(m["metrics"].get(f"ndcg@{k}")),
        ])
    return headers, rows


def cold_summary(results: dict[str, Any]) -> str | None:
    """One sentence on what the cold-start item protocol held out (``None`` when it was off)."""
    c = results["protocol"].get("cold_items")
    if not c:
        return None
    return (
        f"Cold-start items: {c['n_items_held_out']} of {c['n_candidate_items']} items held out "
        f"({c['frac']:g}, protocol seed {c['seed']}): {c['train_events_removed']} training events and "
        f"{c['history_events_removed']} history events removed, {c['valid_queries_dropped']} valid queries "
        f"dropped; {c['test_queries_cold']} test queries with a cold target, {c['test_queries_warm']} with a warm one."
    )


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    """The whole ``results.md`` text: protocol, leaderboard, slices, configs, versions.

    Examples
    --------
    >>> s = {"mean": 0.1, "std": 0.0, "per_seed": [0.1]}
    >>> r = {"dataset": "toy", "reference": "pop", "versions": {}, "machine": {},
    ...      "protocol": {"split": "loo", "ks": [10], "mask_history": True, "users_evaluated": 3, "n_items": 5},
    ...      "models": {"pop": {"metrics": {"ndcg@10": s}, "train_seconds": s, "significance": None,
    ...                         "config": {}, "tuning": {"grid": {}}}}}
    >>> "| pop (ref) | 0.1000 ± 0.0000 | 0.10 | — | — |" in markdown(r)
    True
    """
    p = results["protocol"]
    metric = primary(results)
    n_seeds = max((len(m["train_seconds"]["per_seed"]) for m in results["models"].values()), default=0)
    masked = "history items masked" if p.get("mask_history") else "history items NOT masked"
    ref = f" (reference: **{results['reference']}**)" if results.get("reference") else ""
    out = [
        f"# Benchmark: {results['dataset']}",
        "",
        (
            f"Split `{p['split']}`, full ranking over {p['n_items']} items, "
            f"{masked}, {p['users_evaluated']} users evaluated, {seeds_text(results, n_seeds)}: "
            "test mean ± sample std over seeds."
        ),
        *_partial_note(results),
        (
            f"`vs` / `p`: paired Wilcoxon signed-rank test on per-user test {metric.upper()} (averaged over "
            f"seeds) against the best other model by mean *valid* {metric.upper()}{ref}."
        ),
        "",
        "## Leaderboard",
        "",
        _md_table(*leaderboard(results)),
        "",
    ]
    if any(m.get("slices") for m in results["models"].values()):
        out += [f"## Slices (test {metric.upper()})", "", _md_table(*slice_table(results)), ""]
    cold = cold_table(results)
    if cold is not None:
        out += ["## Cold-start items", "", str(cold_summary(results)), "", _md_table(*cold), ""]
    out += ["## Configurations", ""]
    for name in ranked_models(results):
        m = results["models"][name]
        cfg = ", ".join(f"{k}={v}" for k, v in m.get("config", {}).items()) or "defaults"
        grid = m.get("tuning", {}).get("grid", {})
        tuned = "; tuned on valid over " + ", ".join(f"{k} ∈ {v}" for k, v in grid.items()) if grid else ""
        out.append(f"- **{name}**: {cfg}{tuned}")
    versions = ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items() if v)
    mach = results.get("machine", {})
    out += ["", f"Versions: {versions or 'not recorded'}. Machine: {mach.get('cpus')} CPUs, {mach.get('platform')}.", ""]
    return "\n".join(out)


def print_leaderboard(results: dict[str, Any], console: Console | None = None) -> None:
    """Print the leaderboard as a Rich table (same rows as the Markdown one).

    Under the cold-start item protocol a second table follows with the cold
    and warm slices.
    """
    console = console or Console()
    seeds = results.get("seeds") or []
    caption = (f"one seed ({seeds[0]}): a preview; the seeds move NDCG@10 by a few percent, "
               "so compare models over several (--seeds 10-14, recfuse compare)") if len(seeds) == 1 else None
    print_table(console, f"{results['dataset']} — {results['protocol']['split']}", *leaderboard(results), caption=caption)
    cold = cold_table(results)
    if cold is not None:
        print_table(console, f"{results['dataset']} — cold-start items (test)", *cold, caption=cold_summary(results))


def print_table(
    console: Console, title: str, headers: list[str], rows: list[list[str]], caption: str | None = None
) -> None:
    """A Rich table, first column (and :data:`TEXT_COLUMNS`) left-aligned, numbers right-aligned.

    Numbers are never cut: on a terminal too narrow for every column the rightmost columns are left out
    (the caption says how many; ``results.md`` has them all), and piped output is printed at the table's
    natural width.
    """

    def build(n: int) -> Table:
        table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
        for i, h in enumerate(headers[:n]):
            table.add_column(h, justify="left" if i == 0 or h in TEXT_COLUMNS else "right", no_wrap=True)
        for r in rows:
            table.add_row(*r[:n])
        return table

    width = lambda t: console.measure(t, options=console.options.update_width(1000)).maximum
    table = build(len(headers))
    if not console.is_terminal and not console.record:
        # Piped output (CI logs, files) has no real width and Rich would truncate every cell to fit 80
        # columns; print at the table's natural width to the same file instead.
        console = Console(file=console.file, width=max(console.width, width(table)), no_color=console.no_color)
    else:
        n = len(headers)
        while n > 2 and width(table) > console.width:
            n -= 1
            table = build(n)
        if n < len(headers):
            note = f"{len(headers) - n} columns left out for this terminal's width: results.md has every column"
            table.caption = f"{caption}\n{note}" if caption else note
    console.print(table)


def plot_slices(results: dict[str, Any], out_dir: str | Path, metric: str | None = None) -> list[Path]:
    """One grouped bar chart per slice family: ``metric`` per slice value per model, error bars = std.

    Uses matplotlib's object API with the Agg canvas, never ``pyplot``: no
    global backend switch, no display needed, safe in threads and servers.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metric = metric or primary(results)
    out_dir = Path(out_dir)
    models = ranked_models(results)
    sizes = results["protocol"].get("slice_sizes", {})
    families: dict[str, list[str]] = {}
    for m in models:
        for key in results["models"][m].get("slices", {}):
            fam, value = slice_family(key)
            if value not in families.setdefault(fam, []):
                families[fam].append(value)
    order = [f for f in SLICE_FAMILIES if f in families] + [f for f in families if f not in SLICE_FAMILIES]
    paths = []
    for fam in order:
        values = families[fam]
        fig = Figure(figsize=(max(5.0, 1.2 * len(values) * max(1, len(models)) / 2 + 2), 4), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        x = np.arange(len(values))
        width = 0.8 / max(len(models), 1)
        for i, m in enumerate(models):
            cells = [results["models"][m].get("slices", {}).get(_slice_key(fam, v), {}).get(metric) for v in values]
            mean = [c["mean"] if c else np.nan for c in cells]
            std = [c["std"] if c else 0.0 for c in cells]
            ax.bar(x + (i - (len(models) - 1) / 2) * width, mean, width, yerr=std, capsize=3, label=m)
        ax.set_xticks(x, [f"{v}\n(n={sizes[_slice_key(fam, v)]})" if _slice_key(fam, v) in sizes else v for v in values])
        ax.set_xlabel(fam)
        ax.set_ylabel(f"test {metric.upper()}")
        ax.set_title(f"{results['dataset']}: {metric.upper()} by {fam}")
        ax.legend(fontsize="small")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"slices_{fam}.png"
        fig.savefig(path)
        paths.append(path)
    return paths


def _slice_key(family: str, value: str) -> str:
    """Inverse of :func:`slice_family`."""
    return value if family == "cold_start" else f"{family}={value}"


def write_report(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``results.json``, ``results.md`` and ``slices_<family>.png`` under ``out_dir``.

    Returns the paths written, JSON first.

    Examples
    --------
    >>> import tempfile
    >>> s = {"mean": 0.1, "std": 0.0, "per_seed": [0.1]}
    >>> r = {"dataset": "toy", "reference": None,
    ...      "protocol": {"split": "loo", "ks": [10], "mask_history": True, "users_evaluated": 3, "n_items": 5},
    ...      "models": {"pop": {"metrics": {"ndcg@10": s}, "train_seconds": s, "slices": {"history_length=short":
    ...                         {"ndcg@10": s}}}}}
    >>> [p.name for p in write_report(r, tempfile.mkdtemp())]
    ['results.json', 'results.md', 'slices_history_length.png']
    """
    out_dir = Path(out_dir)
    json_path = write_results_json(results, out_dir)
    md_path = out_dir / "results.md"
    md_path.write_text(markdown(results))
    return [json_path, md_path, *plot_slices(results, out_dir)]


def write_results_json(results: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/results.json`` (through a temporary file, so a reader never sees half of it).

    Examples
    --------
    >>> import tempfile
    >>> write_results_json({"models": {}}, tempfile.mkdtemp()).name
    'results.json'
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    tmp = out_dir / "results.json.tmp"
    # allow_nan=False: a NaN would make the file unreadable by strict JSON parsers; fail loudly instead.
    tmp.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


# ------------------------------------------------------------------ ablation (``recfuse ablate``)
def fmt_change(x: float | None) -> str:
    """A relative change as a signed percentage; ``"—"`` if none.

    >>> fmt_change(0.0321), fmt_change(-0.05), fmt_change(None)
    ('+3.2%', '-5.0%', '—')
    """
    return "—" if x is None else f"{100 * x:+.1f}%"


def ablation_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the ablation table, in run order (``full`` first).

    Per row: test NDCG and HR (= hit) at the primary K, mean ± std over seeds;
    valid NDCG mean; relative change of test NDCG against ``full``; the
    Wilcoxon p-value of the paired test against ``full``; train seconds.
    """
    k = _k(results)
    ab = results["ablation"]
    ref = ab["reference"]
    headers = ["Variant", "What changes", f"Test NDCG@{k}", f"Test HR@{k}", f"Valid NDCG@{k}", f"vs {ref}",
               f"p vs {ref}", "Train s"]
    rows = []
    for label, row in ab["variants"].items():
        m = results["models"][label]
        rows.append([
            f"{label} (ref)" if label == ref else label,
            row["description"] + (f" (no-op: {row['inert']})" if row.get("inert") else ""),
            fmt_mean_std(m["metrics"].get(f"ndcg@{k}")),
            fmt_mean_std(m["metrics"].get(f"hit@{k}")),
            fmt_mean_std(m["valid_metrics"].get(f"ndcg@{k}"), std=False),
            "—" if label == ref else fmt_change(row["relative_change"]),
            "—" if label == ref else fmt_p(row["p_vs_full"]),
            f"{m['train_seconds']['mean']:.1f}",
        ])
    return headers, rows


def gate_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Headers and rows of the mean gate per time-gap bucket (``None`` without ``gate_by_gap``)."""
    g = results.get("gate_by_gap")
    if not g:
        return None
    headers = ["Time since previous event", "Queries", "Mean gate (short-term share)", "Std"]
    rows = [
        [b["label"], str(b["n"]), "—" if b["mean_gate"] is None else f"{b['mean_gate']:.3f}",
         "—" if b["std_gate"] is None else f"{b['std_gate']:.3f}"]
        for b in g["buckets"]
    ]
    rows.append(["all (known gap)", str(g["n_queries"] - g["n_unknown_gap"]),
                 "—" if g["mean_gate"] is None else f"{g['mean_gate']:.3f}", ""])
    return headers, rows


def ablation_markdown(results: dict[str, Any]) -> str:
    """The whole ``results.md`` of an ablation: protocol, ablation table, gate by time gap, configs."""
    p = results["protocol"]
    ab = results["ablation"]
    metric = ab["metric"].upper()
    n_seeds = max((len(m["train_seconds"]["per_seed"]) for m in results["models"].values()), default=0)
    fixed = ", ".join(f"{k}={v}" for k, v in ab.get("params", {}).items())
    out = [
        f"# Ablation: {ab['model']} on {results['dataset']}",
        "",
        (
            f"Split `{p['split']}`, full ranking over {p['n_items']} items, "
            f"{'history items masked' if p.get('mask_history') else 'history items NOT masked'}, "
            f"{p['users_evaluated']} users evaluated, {seeds_text(results, n_seeds)}, the same seeds for every row; "
            f"no tuning: every row runs the same configuration{f' ({fixed})' if fixed else ''} but for its switch."
        ),
        (
            f"`vs {ab['reference']}`: relative change of mean test {metric}. `p`: paired Wilcoxon signed-rank test on "
            f"per-user test {metric} (averaged over seeds) against `{ab['reference']}`."
        ),
        *_partial_note(results),
        "",
        _md_table(*ablation_table(results)),
        "",
    ]
    cold = cold_table(results)
    if cold is not None:
        out += ["## Cold-start items", "", str(cold_summary(results)), "", _md_table(*cold), ""]
    gates = gate_table(results)
    if gates is not None:
        g = results["gate_by_gap"]
        out += [
            "## Gate by time since the previous event",
            "",
            (
                f"`{g['variant']}`, seed {g['seed']}, {g['evalset']} queries: the gate (short-term share of the user "
                "vector) at request time, by time between the user's last history event and the request. "
                "Plot: `gate_by_gap.png`."
            ),
            "",
            _md_table(*gates),
            "",
        ]
    out += ["## Configurations", ""]
    for label in ab["variants"]:
        cfg = ", ".join(f"{k}={v}" for k, v in results["models"][label].get("config", {}).items())
        out.append(f"- **{label}**: {cfg}")
    versions = ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items() if v)
    mach = results.get("machine", {})
    out += ["", f"Versions: {versions or 'not recorded'}. Machine: {mach.get('cpus')} CPUs, {mach.get('platform')}.", ""]
    return "\n".join(out)


def print_ablation(results: dict[str, Any], console: Console | None = None) -> None:
    """The ablation table (and the gate-by-gap table) as Rich tables."""
    console = console or Console()
    ab = results["ablation"]
    print_table(console, f"{results['dataset']} — ablation of {ab['model']} ({results['protocol']['split']})",
                *ablation_table(results))
    cold = cold_table(results)
    if cold is not None:
        print_table(console, f"{results['dataset']} — cold-start items (test)", *cold, caption=cold_summary(results))
    gates = gate_table(results)
    if gates is not None:
        g = results["gate_by_gap"]
        print_table(console, f"Gate by time since the previous event ({g['variant']}, seed {g['seed']}, "
                    f"{g['evalset']})", *gates)


def write_ablation_report(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``results.json``, ``results.md``, ``gate_by_gap.png`` and the slice plots under ``out_dir``."""
    from recfuse.evaluate.analysis import plot_gate_by_gap

    out_dir = Path(out_dir)
    json_path = write_results_json(results, out_dir)
    md_path = out_dir / "results.md"
    md_path.write_text(ablation_markdown(results))
    paths = [json_path, md_path]
    if results.get("gate_by_gap"):
        g = results["gate_by_gap"]
        title = f"{results['dataset']}: {results['ablation']['model']} gate by time since the previous event"
        plot = plot_gate_by_gap(g, out_dir / "gate_by_gap.png", title=title)
        if plot is not None:
            paths.append(plot)
    return [*paths, *plot_slices(results, out_dir)]


# ------------------------------------------------------------------ per-fit records (``recfuse compare``)
#: Readable names of the splits, for the first line of a comparison.
SPLIT_NAMES = {
    "loo": "leave-one-out",
    "loo-valid5": "leave-one-out, five valid events per user",
    "temporal": "global temporal cut",
    "temporal-events": "global temporal cut, event by event",
}


def run_stem(label: str, seed: int) -> str:
    """File name (without suffix) of one fit's record under ``runs/``.

    >>> run_stem("fusion", 10)
    'fusion-seed10'
    """
    return f"{label}-seed{seed}"


def runs_folder(folder: str | Path) -> Path:
    """The ``runs/`` folder of a benchmark's ``--out`` folder (or ``folder`` itself when it holds the records)."""
    folder = Path(folder)
    return folder / RUNS_DIR if (folder / RUNS_DIR).is_dir() else folder


def load_runs(folder: str | Path, label: str) -> dict[int, tuple[dict[str, Any], dict[str, np.ndarray]]]:
    """``{seed: (record, per-query arrays)}`` of every fit of ``label`` recorded under ``folder``.

    ``folder`` is a benchmark's ``--out`` folder (its ``runs/`` is read) or
    the ``runs/`` folder itself; records are the files
    :func:`recfuse.evaluate.runner.write_run_record` writes.

    Examples
    --------
    >>> import tempfile
    >>> load_runs(tempfile.mkdtemp(), "fusion")
    {}
    """
    out: dict[int, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
    for js in sorted(runs_folder(folder).glob(f"{label}-seed*.json")):
        if not re.fullmatch(rf"{re.escape(label)}-seed\d+\.json", js.name):
            continue
        info = json.loads(js.read_text())
        if info.get("model", label) != label:
            continue
        with np.load(js.with_suffix(".npz"), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        out[int(info["seed"])] = (info, arrays)
    return dict(sorted(out.items()))


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); 0 for one value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def compare_runs(
    a: str,
    b: str,
    runs: str | Path,
    b_runs: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    on: str = "test",
    metric: str = "ndcg@10",
) -> dict[str, Any]:
    """Compare the recorded fits of ``a`` (under ``runs``) and ``b`` (under ``b_runs``, default ``runs``).

    Over the seeds both have (of ``seeds``, when given): each model's
    per-seed mean ``metric`` on ``on`` (``"test"`` or ``"valid"``, for a
    decision that must not look at test), their mean ± sample std (ddof=1),
    the ratio of A's mean to B's, and the paired Wilcoxon signed-rank test
    and paired t-test (:func:`recfuse.evaluate.significance.paired_test`)
    over users, each user's metric first averaged over those seeds (and over
    the user's queries, when a split asks a user several times).

    Returns
    -------
    dict
        ``a``, ``b`` (row labels), ``seeds``, ``on``, ``metric``, ``header``
        (dataset, split, machine), ``models`` (per label: ``per_seed``,
        ``mean``, ``std``, ``hit`` (mean HR at the metric's K), ``valid``
        (mean valid ``metric``), ``best_epoch``, ``stopped``,
        ``seconds_to_best`` (median), ``params``), ``ratio``, ``wilcoxon_p``,
        ``ttest_p``, ``n_users`` and ``n_queries``.

    Examples
    --------
    >>> import tempfile
    >>> compare_runs("fusion", "sasrec", tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: no seed that both fusion ([]) and sasrec ([]) have, in ...
    """
    if on not in ("test", "valid"):
        raise ValueError(f"on must be 'test' or 'valid', got {on!r}")
    ra, rb = load_runs(runs, a), load_runs(b_runs if b_runs is not None else runs, b)
    common = sorted(set(ra) & set(rb) & (set(seeds) if seeds else set(ra)))
    if not common:
        where = f"{runs_folder(runs)}" + ("" if b_runs is None else f" and {runs_folder(b_runs)}")
        raise ValueError(f"no seed that both {a} ({sorted(ra)}) and {b} ({sorted(rb)}) have"
                         f"{f' among {list(seeds)}' if seeds else ''}, in {where}")
    first = ra[common[0]][0]
    for label, rs in ((a, ra), (b, rb)):
        for s in common:
            info = rs[s][0]
            for key in ("dataset", "split"):
                if info.get(key, first.get(key)) != first.get(key):
                    raise ValueError(f"{label} seed {s} ran on {key} {info.get(key)!r}, {a} seed {common[0]} on "
                                     f"{first.get(key)!r}: not the same queries")
    pre = "valid_" if on == "valid" else ""
    missing = [f"{label} seed {s}" for label, rs in ((a, ra), (b, rb)) for s in common if f"{pre}{metric}" not in rs[s][1]]
    if missing:
        raise ValueError(f"{metric!r} is not among the recorded metrics of {', '.join(missing)}")
    user = ra[common[0]][1][f"{pre}user"]
    for label, rs in ((a, ra), (b, rb)):
        for s in common:
            if not np.array_equal(rs[s][1][f"{pre}user"], user):
                raise ValueError(f"{label} seed {s} was evaluated on other {on} queries than {a} seed {common[0]}")
    # The same model name from two folders (a switch against the default): label the rows by folder.
    la, lb = (a, b) if a != b or b_runs is None else (f"{a} ({Path(runs).name})", f"{b} ({Path(b_runs).name})")
    k = metric.split("@")[1] if "@" in metric else "10"
    models: dict[str, Any] = {}
    for label, rs in ((la, ra), (lb, rb)):
        per_seed = [float(rs[s][0][on][metric]) for s in common]
        hits = [rs[s][0][on].get(f"hit@{k}") for s in common]
        valid = [rs[s][0]["valid"].get(metric) for s in common]
        to_best = [rs[s][0].get("fit_info", {}).get("seconds_to_best_epoch") for s in common]
        models[label] = {
            "per_seed": per_seed,
            "mean": float(np.mean(per_seed)),
            "std": _std(per_seed),
            "hit": float(np.mean(hits)) if None not in hits else None,
            "valid": float(np.mean(valid)) if None not in valid else None,
            "best_epoch": [rs[s][0].get("best_epoch", rs[s][0].get("fit_info", {}).get("best_epoch")) for s in common],
            "stopped": [rs[s][0].get("stopped", rs[s][0].get("fit_info", {}).get("stopped")) for s in common],
            "seconds_to_best": float(np.median(to_best)) if to_best and None not in to_best else None,
            "params": rs[common[0]][0].get("params", {}),
        }
    per = {la: np.mean([ra[s][1][f"{pre}{metric}"] for s in common], axis=0),
           lb: np.mean([rb[s][1][f"{pre}{metric}"] for s in common], axis=0)}
    ratio = float(np.mean(per[la]) / np.mean(per[lb])) if np.mean(per[lb]) else None  # over queries
    n_queries = len(user)
    if len(np.unique(user)) < len(user):  # several queries per user: test the users' means
        _, idx = np.unique(user, return_inverse=True)
        per = {m: np.bincount(idx, v) / np.bincount(idx) for m, v in per.items()}
    t = paired_test(per[la], per[lb])
    kind = SPLIT_NAMES.get(first.get("split", "loo"), first.get("split", "loo"))
    masked = "history masked" if first.get("mask_history", True) else "history NOT masked"
    where = "" if b_runs is None else f"; {b} from {b_runs}"
    header = (f"{first.get('dataset', '?')} {kind}, full ranking, {masked}; seeds {common}; "
              f"machine {first.get('machine', '?')}{where}")
    return {
        "a": la, "b": lb, "seeds": common, "on": on, "metric": metric, "header": header, "models": models,
        "ratio": ratio, "wilcoxon_p": t["wilcoxon_p"], "ttest_p": t["ttest_p"], "n_users": t["n"],
        "n_queries": n_queries,
    }


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _stopped_text(stopped: Sequence[str | None]) -> str:
    """``"patience ×4, epochs"``: how the fits ended, counted; ``"—"`` for models without epochs."""
    known = [s for s in stopped if s]
    if not known:
        return "—"
    counts = {s: known.count(s) for s in dict.fromkeys(known)}
    return ", ".join(s if n == 1 else f"{s} ×{n}" for s, n in counts.items())


def compare_tables(cmp: dict[str, Any]) -> tuple[tuple[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]:
    """The two tables of a comparison: per seed (A, B, A/B), then per model (mean ± std, HR, valid, epochs)."""
    a, b, on, metric = cmp["a"], cmp["b"], cmp["on"], cmp["metric"]
    ma, mb = cmp["models"][a], cmp["models"][b]
    name = metric.upper().replace("HIT@", "HR@")
    seed_headers = ["seed", f"{a} {on} {name}", f"{b} {on} {name}", f"{a} / {b}"]
    seed_rows = [[str(s), f"{x:.4f}", f"{y:.4f}", _fmt(x / y if y else None, 3)]
                 for s, x, y in zip(cmp["seeds"], ma["per_seed"], mb["per_seed"], strict=True)]
    seed_rows.append(["mean ± std", f"{ma['mean']:.4f} ± {ma['std']:.4f}", f"{mb['mean']:.4f} ± {mb['std']:.4f}",
                      _fmt(ma["mean"] / mb["mean"] if mb["mean"] else None, 3)])
    k = metric.split("@")[1] if "@" in metric else "10"
    model_headers = ["model", f"{on} {name} mean ± std", f"{on} HR@{k}", *([f"valid {name}"] if on == "test" else []),
                     "best epochs", "stopped", "s to best (median)"]
    model_rows = []
    for label, m in ((a, ma), (b, mb)):
        model_rows.append([
            label, f"{m['mean']:.4f} ± {m['std']:.4f}", _fmt(m["hit"]), *([_fmt(m["valid"])] if on == "test" else []),
            str(m["best_epoch"]), _stopped_text(m["stopped"]), _fmt(m["seconds_to_best"], 0),
        ])
    return (seed_headers, seed_rows), (model_headers, model_rows)


def compare_params(cmp: dict[str, Any]) -> list[str]:
    """One line per model: the parameters its runs were given (``--set``, tuned), from its first seed."""
    return [f"- {label}: {', '.join(f'{k}={v}' for k, v in m['params'].items()) or 'defaults'}"
            for label, m in cmp["models"].items()]


def compare_line(cmp: dict[str, Any]) -> str:
    """The comparison's result in one sentence: ratio, then the paired tests over users."""
    over = f"{cmp['n_users']} users" + (f" (means of their {cmp['n_queries']} queries)"
                                         if cmp["n_users"] < cmp["n_queries"] else "")
    ratio = "—" if cmp["ratio"] is None else f"{cmp['ratio']:.4f}"
    return (f"{cmp['on']}: {cmp['a']} / {cmp['b']} = {ratio} ({cmp['metric'].upper()}, mean over seeds); "
            f"paired Wilcoxon over {over} p = {cmp['wilcoxon_p']:.3g}, paired t-test p = {cmp['ttest_p']:.3g}")


def compare_markdown(cmp: dict[str, Any]) -> str:
    """The whole ``compare_A_vs_B.md`` text: header line, per-seed table, per-model table, result line."""
    seeds, models = compare_tables(cmp)
    return "\n".join([cmp["header"], "", _md_table(*seeds), "", _md_table(*models), "", *compare_params(cmp), "",
                      compare_line(cmp), ""])


def compare_file_name(a: str, b: str, seeds: Sequence[int] | None = None, on: str = "test",
                      metric: str = "ndcg@10") -> str:
    """Where ``recfuse compare`` writes its table; seeds, set and metric other than the defaults tag the name.

    >>> compare_file_name("fusion", "sasrec"), compare_file_name("fusion", "sasrec", [10, 11], "valid", "hit@10")
    ('compare_fusion_vs_sasrec.md', 'compare_fusion_vs_sasrec_seeds10-11_valid_hit10.md')
    """
    tag = f"_seeds{format_seeds(list(seeds)).replace(',', '_')}" if seeds else ""
    tag += "_valid" if on == "valid" else ""
    tag += "" if metric == "ndcg@10" else "_" + re.sub(r"[^\w-]+", "", metric)
    return f"compare_{a}_vs_{b}{tag}.md"


def print_compare(cmp: dict[str, Any], console: Console | None = None) -> None:
    """Print a comparison: Rich tables on a terminal, the Markdown text otherwise (logs, pipes)."""
    console = console or Console()
    if not console.is_terminal:
        console.file.write(compare_markdown(cmp))
        return
    seeds, models = compare_tables(cmp)
    console.print(cmp["header"], soft_wrap=True)
    print_table(console, f"{cmp['a']} vs {cmp['b']} per seed", *seeds)
    print_table(console, "per model", *models)
    for line in compare_params(cmp):
        console.print(line, soft_wrap=True, markup=False)
    console.print(compare_line(cmp), soft_wrap=True)


# ------------------------------------------------------------------ the headline table (``recfuse report``)
#: The lines between which ``recfuse report`` writes the headline table.
TABLE_START = "<!-- results-table:start -->"
TABLE_END = "<!-- results-table:end -->"


def read_headline(path: str | Path) -> list[dict[str, Any]]:
    """The ``[[figure]]`` entries of ``benchmarks/headline.toml``: ``folder``, ``models``, optional ``reference``.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "headline.toml"
    >>> _ = p.write_text('[[figure]]\\nfolder = "ml-100k"\\nmodels = ["fusion", "sasrec"]\\nreference = "sasrec"\\n')
    >>> read_headline(p)
    [{'folder': 'ml-100k', 'models': ['fusion', 'sasrec'], 'reference': 'sasrec'}]
    """
    data = tomllib.loads(Path(path).read_text())
    figures = data.get("figure", [])
    for f in figures:
        well_formed = isinstance(f.get("folder"), str) and isinstance(f.get("models"), list)
        if not well_formed:  # a malformed file, not a wrong argument type
            raise ValueError(f"{path}: each [[figure]] needs folder = \"...\" and models = [...], got {f}")
        if f.get("reference") is not None and f["reference"] not in f["models"]:
            raise ValueError(f"{path}: reference {f['reference']!r} is not among the models {f['models']}")
    return list(figures)


def _seed_cell(seeds: Sequence[int]) -> str:
    """``"10-14"``, ``"0-2,5"`` or a single ``"4"``."""
    return str(seeds[0]) if len(seeds) == 1 else format_seeds(list(seeds))


def _bold_best(cells: list[str], means: list[float]) -> list[str]:
    """The cell of the highest mean in bold (none when all are equal or there is one)."""
    if len(means) < 2 or max(means) == min(means):
        return cells
    best = means.index(max(means))
    return [f"**{c}**" if i == best else c for i, c in enumerate(cells)]


def headline_rows(figures: list[dict[str, Any]], root: str | Path) -> tuple[list[str], list[list[str]], list[str]]:
    """Headers, rows and missing sources of the headline table.

    ``root`` is the folder the figures' ``folder`` names are relative to
    (``benchmarks/``).  Per model: test NDCG@10 and HR@10 (mean ± std over
    seeds, the best of each figure in bold), the seeds, and where
    ``results.json`` has it the model's paired test against the figure's
    ``reference``: the ratio of mean NDCG@10 and the Wilcoxon p-value (blank
    on the reference's own row).  When every figure names the same
    reference the header names it; otherwise a ``vs`` column does (without a
    ``reference``, each row's test is the one ``results.json`` holds).  A
    figure whose ``results.json`` is absent is left out and named in the
    third return value.

    Examples
    --------
    >>> headline_rows([{"folder": "nowhere", "models": ["fusion"]}], ".")
    (['dataset', 'model', 'NDCG@10', 'HR@10', 'seeds', 'vs', 'ratio (NDCG@10)', 'Wilcoxon p'], [], ['nowhere/results.json'])
    """
    refs = {f.get("reference") for f in figures}
    common = next(iter(refs)) if len(refs) == 1 and None not in refs else None
    headers = ["dataset", "model", "NDCG@10", "HR@10", "seeds",
               *([f"vs {common} (NDCG@10)"] if common else ["vs", "ratio (NDCG@10)"]), "Wilcoxon p"]
    rows: list[list[str]] = []
    missing: list[str] = []
    for fig in figures:
        path = Path(root) / fig["folder"] / "results.json"
        if not path.is_file():
            missing.append(str(path))
            continue
        results = json.loads(path.read_text())
        ref = fig.get("reference")
        absent = [n for n in fig["models"] if n not in results["models"]]
        if absent:
            raise ValueError(f"{path}: no model(s) {absent} (it has {sorted(results['models'])})")
        models = [results["models"][n] for n in fig["models"]]
        cols = {}
        for key in ("ndcg@10", "hit@10"):
            summaries = [m["metrics"].get(key) for m in models]
            means = [x["mean"] if x else float("-inf") for x in summaries]
            cols[key] = _bold_best([fmt_mean_std(x) for x in summaries], means)
        for i, (name, m) in enumerate(zip(fig["models"], models, strict=True)):
            seeds = m.get("seeds") or results.get("seeds") or list(range(len(m["metrics"]["ndcg@10"]["per_seed"])))
            sig = m.get("significance")
            vs, ratio, p = "", "", ""
            if name != ref and sig and (ref is None or sig["vs"] == ref):
                vs = sig["vs"]
                ratio = "—" if sig.get("ratio") is None else f"{sig['ratio']:.3f}x"
                p = "—" if sig.get("wilcoxon_p") is None else f"{sig['wilcoxon_p']:.2g}"
            rows.append([results["dataset"], name, cols["ndcg@10"][i], cols["hit@10"][i], _seed_cell(seeds),
                         *([ratio] if common else [vs, ratio]), p])
    return headers, rows, missing


def headline_table(headline: str | Path, root: str | Path | None = None) -> tuple[str, list[str]]:
    """The Markdown table ``recfuse report`` puts between the markers, and the missing sources.

    ``root`` defaults to the folder of ``headline`` (``benchmarks/``).
    """
    headline = Path(headline)
    root = Path(root) if root is not None else headline.parent
    headers, rows, missing = headline_rows(read_headline(headline), root)
    return _md_table(headers, rows), missing


def splice_table(text: str, table: str) -> str | None:
    """``text`` with everything between the marker lines replaced by ``table``; ``None`` without both markers.

    Examples
    --------
    >>> doc = "intro\\n<!-- results-table:start -->\\nold\\n<!-- results-table:end -->\\nrest\\n"
    >>> print(splice_table(doc, "| new |"), end="")
    intro
    <!-- results-table:start -->
    | new |
    <!-- results-table:end -->
    rest
    >>> splice_table("no markers", "| new |") is None
    True
    """
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == TABLE_START]
    ends = [i for i, line in enumerate(lines) if line.strip() == TABLE_END]
    if not starts or not ends:
        return None
    start = starts[0]
    after = [i for i in ends if i > start]
    if not after:
        return None
    end = after[0]
    head = lines[: start + 1]
    if not head[-1].endswith("\n"):
        head[-1] += "\n"
    return "".join([*head, table.strip("\n"), "\n", *lines[end:]])


def update_tables(files: Sequence[str | Path], table: str, check: bool = False) -> dict[Path, str]:
    """Write ``table`` between the markers of each file; with ``check``, only say which are out of date.

    Returns ``{path: status}``, status one of ``"updated"``, ``"up to date"``,
    ``"out of date"`` (``check`` only), ``"no markers"`` and ``"missing"``.
    """
    status: dict[Path, str] = {}
    for f in files:
        path = Path(f)
        if not path.is_file():
            status[path] = "missing"
            continue
        text = path.read_text()
        new = splice_table(text, table)
        if new is None:
            status[path] = "no markers"
        elif new == text:
            status[path] = "up to date"
        elif check:
            status[path] = "out of date"
        else:
            path.write_text(new)
            status[path] = "updated"
    return status
