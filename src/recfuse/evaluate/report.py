"""Turn a ``results.json`` dict into files people read: JSON, Markdown, PNG.

Everything here reads only the results dict (see ``docs/results-json.md``),
so a report can be rebuilt from a saved ``results.json`` without rerunning
anything.  The leaderboard is built once (:func:`leaderboard`) and rendered
twice: as Markdown and as a Rich table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from recfuse.evaluate.significance import primary_metric

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
            f"{masked}, {p['users_evaluated']} users evaluated, {n_seeds} seed(s): "
            "test mean ± sample std over seeds."
        ),
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
    out += ["", f"Versions: {versions}. Machine: {mach.get('cpus')} CPUs, {mach.get('platform')}.", ""]
    return "\n".join(out)


def print_leaderboard(results: dict[str, Any], console: Console | None = None) -> None:
    """Print the leaderboard as a Rich table (same rows as the Markdown one).

    Under the cold-start item protocol a second table follows with the cold
    and warm slices.
    """
    console = console or Console()
    print_table(console, f"{results['dataset']} — {results['protocol']['split']}", *leaderboard(results))
    cold = cold_table(results)
    if cold is not None:
        print_table(console, f"{results['dataset']} — cold-start items (test)", *cold, caption=cold_summary(results))


def print_table(
    console: Console, title: str, headers: list[str], rows: list[list[str]], caption: str | None = None
) -> None:
    """A Rich table, first column (and :data:`TEXT_COLUMNS`) left-aligned, numbers right-aligned."""
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 or h in TEXT_COLUMNS else "right", no_wrap=True)
    for r in rows:
        table.add_row(*r)
    if not console.is_terminal and not console.record:
        # Piped output (CI logs, files) has no real width and Rich would truncate every cell to fit 80
        # columns; print at the table's natural width to the same file instead.
        natural = console.measure(table, options=console.options.update_width(1000)).maximum
        console = Console(file=console.file, width=max(console.width, natural), no_color=console.no_color)
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
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    # allow_nan=False: a NaN would make the file unreadable by strict JSON parsers; fail loudly instead.
    json_path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    md_path = out_dir / "results.md"
    md_path.write_text(markdown(results))
    return [json_path, md_path, *plot_slices(results, out_dir)]


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
            f"{p['users_evaluated']} users evaluated, {n_seeds} seed(s), the same seeds for every row; "
            f"no tuning: every row runs the same configuration{f' ({fixed})' if fixed else ''} but for its switch."
        ),
        (
            f"`vs {ab['reference']}`: relative change of mean test {metric}. `p`: paired Wilcoxon signed-rank test on "
            f"per-user test {metric} (averaged over seeds) against `{ab['reference']}`."
        ),
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
    out += ["", f"Versions: {versions}. Machine: {mach.get('cpus')} CPUs, {mach.get('platform')}.", ""]
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
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
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
