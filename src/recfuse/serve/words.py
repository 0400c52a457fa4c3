"""Explanations and interest summaries in words for the service: ``explain=text`` and the profile route.

The facts come from the model, as for ``recfuse explain --text``: per recommended item from the engine's
explanation (:func:`recfuse.llm.facts.item_facts`), per user from the fusion model's two interest vectors
(:func:`recfuse.llm.facts.profile_facts`); :mod:`recfuse.llm.phrase` phrases them and checks a generator's
text against them (the title guard).

:class:`Phraser` holds the generator the service was started with (``ServeConfig.llm``, else the
environment; none: the templates).  With the templates, phrasing is string formatting and runs on the
event loop.  A generator runs in a worker thread, under a deadline per request (``ServeConfig.llm_timeout``)
and a bound on the generations in flight (``ServeConfig.llm_concurrency``): past the deadline, with every
slot taken, or when the generator fails or its text fails the check, the answer carries the template
sentence and says why (``fallback``).  Nothing here raises into a request.  The log gets the reasons,
never whose request it was.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from fastapi.concurrency import run_in_threadpool

from recfuse.llm.facts import display_title, item_facts, profile_facts, title_guard
from recfuse.llm.generators import TextGenerator, describe
from recfuse.llm.phrase import ItemFacts, Phrase, ProfileFacts, TitleGuard, explain_items, summarise_profile

if TYPE_CHECKING:
    from recfuse.serve.engine import Engine
    from recfuse.serve.metrics import Metrics
    from recfuse.serve.state import Snapshot

log = logging.getLogger(__name__)


def fallback_of(phrase: Phrase) -> str | None:
    """Why ``phrase`` is the template although a generator was asked: ``"fact_check"`` (its text was
    rejected), ``"error"`` (it failed), else ``None``.

    Examples
    --------
    >>> fallback_of(Phrase("x")), fallback_of(Phrase("x", rejected="names 'Heat'", raw="...")), fallback_of(Phrase("x", rejected="timed out"))
    (None, 'fact_check', 'error')
    """
    if phrase.source == "llm" or phrase.rejected is None:
        return None
    return "fact_check" if phrase.raw is not None else "error"


class Phraser:
    """Words for the service's answers, from one generator (``None``: the templates).

    Parameters
    ----------
    generator
        The back end, chosen once at start.
    timeout
        Seconds one request may spend generating; past them it gets the templates.
    concurrency
        Generations in flight at most; a request beyond gets the templates at once.
    metrics
        Where the sentences are counted (``recfuse_texts_llm_total``, ``recfuse_texts_template_total``,
        ``recfuse_text_fallbacks_total``).

    Examples
    --------
    >>> Phraser(None).name
    'template'
    """

    def __init__(self, generator: TextGenerator | None, timeout: float = 10.0, concurrency: int = 4,
                 metrics: Metrics | None = None) -> None:
        self.generator = generator
        self.timeout = timeout
        self.metrics = metrics
        self._slots = threading.BoundedSemaphore(max(1, concurrency))
        # One title guard per engine and catalogue size (items added through the API extend it).
        self._guards: weakref.WeakKeyDictionary[Engine, tuple[int, TitleGuard]] = weakref.WeakKeyDictionary()
        self._guard_lock = threading.Lock()

    @property
    def name(self) -> str:
        return describe(self.generator)

    def guard(self, engine: Engine) -> TitleGuard:
        """The title guard over ``engine``'s catalogue (built on first use: a worker thread's job)."""
        with self._guard_lock:
            found = self._guards.get(engine)
            if found is None or found[0] != engine.n_items:
                found = (engine.n_items, title_guard(engine.bundle))
                self._guards[engine] = found
            return found[1]

    # ---------------------------------------------------------------- answers
    async def items(self, engine: Engine, res: dict[str, Any]) -> dict[int, dict[str, Any]]:
        """One sentence per ranked item that the engine explained (``res``: :meth:`Service.rank`'s answer
        with ``explanations``), as the ``explanation.text`` entries, by item index."""
        exps = res.get("explanations")
        if exps is None:
            return {}
        entries = [exps["items"][i] for i in res["items"] if i in exps["items"]]
        facts = item_facts(engine.bundle, {"gate": exps["gate"], "items": entries})
        phrases, why = await self._phrase(engine, lambda gen, guard: explain_items(facts, gen, guard), facts)
        return {int(e["item"]): self._entry(p, why) for e, p in zip(entries, phrases, strict=True)}

    def popular(self, engine: Engine, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The ``explanation.text`` entries of a cold-start answer (most popular items): templates only,
        there is nothing about the user to phrase."""
        facts = [ItemFacts(display_title(engine.bundle, i), dimension="popularity") for i in indices]
        return [self._entry(p, None) for p in explain_items(facts)]

    async def profile(self, engine: Engine, history: Snapshot | None, now: float | None, user: str) -> dict[str, Any]:
        """The profile route's answer without its ids: ``summary``, ``source``, ``generator``, ``fallback``
        and ``facts`` (``history`` ``None`` or empty: the cold-start sentence, empty facts)."""

        def read(hist: Snapshot) -> ProfileFacts:
            with engine.lock.shared():  # an item update changes the model's item table: not in between
                return profile_facts(engine.bundle, engine.query(hist, now, user), user)

        known = history is not None and len(history) > 0
        facts = await run_in_threadpool(read, history) if history is not None and known else ProfileFacts()
        phrases, why = await self._phrase(engine, lambda gen, guard: [summarise_profile(facts, gen, guard)],
                                          [facts] if known else [])
        entry = self._entry(phrases[0], why)
        return {
            "summary": entry["text"], "source": entry["source"], "generator": entry["generator"],
            "fallback": entry["fallback"],
            "facts": {
                "gate": None if facts.gate is None else round(facts.gate, 6), "lean": facts.lean,
                "long_term": {"titles": list(facts.long_titles), "genres": list(facts.long_genres)},
                "short_term": {"titles": list(facts.short_titles), "genres": list(facts.short_genres)},
            },
        }

    # ---------------------------------------------------------------- generation
    async def _phrase(self, engine: Engine, work: Callable[[TextGenerator | None, TitleGuard | None], list[Phrase]],
                      facts: Sequence[object]) -> tuple[list[Phrase], str | None]:
        """``work`` with the generator in a worker thread, under the deadline and the slots; the templates
        (``work`` without a generator) and the reason when it cannot run or does not finish in time.
        Without a generator, or with nothing to phrase, the templates straight away."""
        gen = self.generator
        if gen is None or not facts:
            return work(None, None), None

        def job() -> list[Phrase] | None:
            # The slot is taken and given back in the thread, so an abandoned job still frees it when done.
            if not self._slots.acquire(blocking=False):
                return None
            try:
                return work(gen, self.guard(engine))
            finally:
                self._slots.release()

        why: str
        try:
            with anyio.fail_after(self.timeout):
                # run_in_threadpool's thread pool, abandoned at the deadline (run_in_threadpool itself
                # would wait for the generator however long it takes).
                out = await anyio.to_thread.run_sync(job, abandon_on_cancel=True)
            if out is not None:
                return out, None
            why = "busy"
        except TimeoutError:
            why = "timeout"
        log.warning("text generator %s: %s; %d template sentence(s) sent instead", self.name,
                    "every generation slot taken" if why == "busy" else f"no answer within {self.timeout:g} s",
                    len(facts))
        return work(None, None), why

    def _entry(self, phrase: Phrase, why: str | None) -> dict[str, Any]:
        """A :class:`~recfuse.llm.phrase.Phrase` as the wire's text entry (``Words``), counted."""
        fallback = why or fallback_of(phrase)
        if fallback is not None and phrase.rejected:
            log.info("text generator %s: template used (%s)", self.name, phrase.rejected)
        if self.metrics is not None:
            self.metrics.inc("recfuse_texts_llm_total" if phrase.source == "llm" else "recfuse_texts_template_total")
            if fallback is not None:
                self.metrics.inc("recfuse_text_fallbacks_total")
        return {"text": phrase.text, "source": phrase.source, "generator": self.name, "fallback": fallback}


__all__ = ["Phraser", "fallback_of"]
