"""Explanations and interest summaries in words, grounded in the model's facts, with a title guard.

Two kinds of text, each from a facts object (:mod:`recfuse.llm.facts` builds them from a model):

* :func:`explain_item`: one sentence per recommended item from :class:`ItemFacts` (the gate, the history
  items that drove the item, the dominant dimension);
* :func:`summarise_profile`: two or three sentences per user from :class:`ProfileFacts` (what the
  long-term and the short-term interest vectors are nearest to, and which one leads).

Each has a deterministic template (:func:`item_template`, :func:`profile_template`), the default and the
fallback.  With a :class:`~recfuse.llm.generators.TextGenerator` the facts and the template's sentence
go to the LLM to be phrased; its answer is kept only if :func:`check_text` finds nothing wrong with it:
every quoted title, every ``Title (Year)`` and every catalogue title it names must be one of the facts'
titles, the lean it states must be the gate's, and any percentage must be the gate's.  Otherwise (and
when the generator fails in any way) the template sentence is returned.  These functions never raise.

Examples
--------
>>> facts = ItemFacts("Heat (1995)", gate=0.31, because=("Casino (1995)", "GoodFellas (1990)"),
...                   dimension="content")
>>> explain_item(facts).text
'"Heat (1995)" comes from your long-term taste (short-term share 31%): it is close in content to "Casino (1995)" and "GoodFellas (1990)".'
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from recfuse.llm.generators import GenerationError, Message, TextGenerator, describe
from recfuse.text.knowledge import normalise_title

SHORT, LONG = "short-term", "long-term"

_DIMENSION_PHRASE = {
    "content": "it is close in content to {because}",
    "rating": "it follows from how you rated {because}",
    "recency": "it follows your latest activity: {because}",
}
_QUOTES = re.compile(r'["“”«»「」『』]([^"“”«»「」『』]{1,150}?)["“”«»「」『』]')
_TITLE_YEAR = re.compile(r"((?:[\w'’&.:!?,-]+\s+){0,9}[\w'’&.:!?,-]+)\s*\(((?:1[89]|20)\d\d)\)")
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*(?:%|percent\b|per cent\b)")
_LEAN = re.compile(r"\b(short|long)[\s-]term\b", re.IGNORECASE)
_SHARE = re.compile(r"\bshort[\s-]term share\b", re.IGNORECASE)  # names the gate's value, not a lean
_YEAR_SUFFIX = re.compile(r"\s*\((?:1[89]|20)\d\d\)\s*$")


def lean_of(gate: float | None) -> str | None:
    """``"short-term"`` when the short-term share is at least a half, ``"long-term"`` below, ``None`` without a gate.

    Examples
    --------
    >>> lean_of(0.7), lean_of(0.2), lean_of(None)
    ('short-term', 'long-term', None)
    """
    if gate is None:
        return None
    return SHORT if gate >= 0.5 else LONG


def _pct(gate: float) -> int:
    return round(100 * gate)


def _quoted(titles: Sequence[str]) -> str:
    q = [f'"{t}"' for t in titles]
    if len(q) <= 1:
        return "".join(q)
    return ", ".join(q[:-1]) + f" and {q[-1]}"


def _listed(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + f" and {words[-1]}"


@dataclass(frozen=True)
class ItemFacts:
    """What the model says about one recommended item.

    Attributes
    ----------
    title
        The recommended item's title (with its year where the catalogue has one).
    gate
        The user's short-term share in ``[0, 1]``, or ``None`` (a model without a gate).
    because
        Titles of the history items that contributed most, strongest first.
    dimension
        ``"content"``, ``"rating"`` or ``"recency"`` (the dominant one), or ``None``.
    item_id
        The item's id (not shown; for the caller).
    """

    title: str
    gate: float | None = None
    because: tuple[str, ...] = ()
    dimension: str | None = None
    item_id: str | None = None

    @property
    def lean(self) -> str | None:
        """``"short-term"`` / ``"long-term"`` from the gate."""
        return lean_of(self.gate)

    def titles(self) -> list[str]:
        """Every title the facts hold: the item's and the history items'."""
        return [self.title, *self.because]


@dataclass(frozen=True)
class ProfileFacts:
    """What the model says about one user's interests.

    Attributes
    ----------
    gate
        The short-term share at request time, or ``None``.
    long_titles, long_genres
        History items nearest to the long-term interest vector, and the genres of the catalogue items
        nearest to it (most weight first).
    short_titles, short_genres
        The same for the short-term interest vector (its titles from the recent events).
    n_events
        Events in the user's history.
    user_id
        The user's id (not shown).
    """

    gate: float | None = None
    long_titles: tuple[str, ...] = ()
    long_genres: tuple[str, ...] = ()
    short_titles: tuple[str, ...] = ()
    short_genres: tuple[str, ...] = ()
    n_events: int = 0
    user_id: str | None = None

    @property
    def lean(self) -> str | None:
        return lean_of(self.gate)

    def titles(self) -> list[str]:
        return [*self.long_titles, *self.short_titles]


@dataclass(frozen=True)
class Phrase:
    """A sentence and where it came from.

    Attributes
    ----------
    text
        What to show.
    source
        ``"llm"`` (the generator's text passed the checks) or ``"template"``.
    generator
        The back end asked (``"template"`` when none).
    seconds
        Wall time spent, generation included.
    rejected
        Why the generator's text was not used (a failed check, or its error), else ``None``.
    raw
        The generator's text when it was rejected (for logs and tests).
    """

    text: str
    source: str = "template"
    generator: str = "template"
    seconds: float = 0.0
    rejected: str | None = None
    raw: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"text": self.text, "source": self.source, "generator": self.generator,
                "seconds": round(self.seconds, 6), "rejected": self.rejected}


# ---------------------------------------------------------------- templates
def item_template(facts: ItemFacts) -> str:
    """The deterministic sentence for one recommended item (the no-LLM default).

    Examples
    --------
    >>> item_template(ItemFacts("Up (2009)", gate=0.8, because=("Cars (2006)",), dimension="recency"))
    '"Up (2009)" comes from your short-term interest (short-term share 80%): it follows your latest activity: "Cars (2006)".'
    >>> item_template(ItemFacts("Up (2009)", because=("Cars (2006)",)))
    '"Up (2009)" is recommended because of "Cars (2006)".'
    >>> item_template(ItemFacts("Up (2009)", dimension="popularity"))
    '"Up (2009)" is one of the most popular items.'
    """
    because = _quoted(facts.because)
    if facts.dimension == "popularity" and not because and facts.gate is None:
        return f'"{facts.title}" is one of the most popular items.'
    if facts.gate is None:
        return f'"{facts.title}" is recommended because of {because}.' if because else f'"{facts.title}" is recommended.'
    lean = "your short-term interest" if facts.lean == SHORT else "your long-term taste"
    head = f'"{facts.title}" comes from {lean} (short-term share {_pct(facts.gate)}%)'
    if not because:
        return head + "."
    why = _DIMENSION_PHRASE.get(facts.dimension or "content", _DIMENSION_PHRASE["content"])
    return f"{head}: {why.format(because=because)}."


def profile_template(facts: ProfileFacts) -> str:
    """The deterministic two or three sentences about a user's interests (the no-LLM default).

    Examples
    --------
    >>> print(profile_template(ProfileFacts(0.25, ("Heat (1995)", "Casino (1995)"), ("Crime", "Thriller"),
    ...                                     ("Toy Story (1995)",), ("Animation", "Comedy"))))
    Over time you have liked crime and thriller films such as "Heat (1995)" and "Casino (1995)". Right now you are into animation and comedy, like "Toy Story (1995)". Your long-term taste leads (short-term share 25%).
    """
    parts = []
    if facts.long_titles or facts.long_genres:
        genres = f"{_listed([g.lower() for g in facts.long_genres])} films" if facts.long_genres else "films"
        such = f" such as {_quoted(facts.long_titles)}" if facts.long_titles else ""
        parts.append(f"Over time you have liked {genres}{such}.")
    if facts.short_titles or facts.short_genres:
        if facts.short_genres and set(facts.short_genres) == set(facts.long_genres):
            genres = "the same"
        elif facts.short_genres:
            genres = _listed([g.lower() for g in facts.short_genres])
        else:
            genres = "what you watched last"
        like = f", like {_quoted(facts.short_titles)}" if facts.short_titles else ""
        parts.append(f"Right now you are into {genres}{like}.")
    if facts.gate is not None:
        lead = "Your short-term interest leads" if facts.lean == SHORT else "Your long-term taste leads"
        parts.append(f"{lead} (short-term share {_pct(facts.gate)}%).")
    return " ".join(parts) or "Not enough history yet to say what you like."


# -------------------------------------------------------------------- guard
def _title_forms(title: str) -> set[str]:
    """Normalised forms a title may appear in: with and without its year."""
    forms = {normalise_title(title), normalise_title(_YEAR_SUFFIX.sub("", title))}
    return {f for f in forms if f}


def _names_a_fact(words: Sequence[str], year: str, allowed: set[str]) -> bool:
    """Whether the words before ``(year)`` name a fact title (with that year where the facts give one).

    The capture may start with ordinary words ("Because of Heat (1995)"): some tail of it must be a fact
    title.  It may also be only the tail of a long or punctuated fact title ("... 1/3: The Final Insult
    (1994)"): the whole capture may end a fact title.
    """
    whole = normalise_title(f"{' '.join(words)} ({year})")
    if any(a == whole or a.endswith(" " + whole) for a in allowed):
        return True
    for i in range(len(words)):
        tail = " ".join(words[i:])
        if normalise_title(f"{tail} ({year})") in allowed:
            return True
        if normalise_title(tail) in allowed and not any(a.startswith(normalise_title(tail) + " ") for a in allowed):
            return True  # a fact title given without a year (a catalogue without years)
    return False


class TitleGuard:
    """Catalogue titles to look for in generated text: a title of the catalogue that is not among the
    facts must not appear (matched case-sensitively on word boundaries; single-word titles only count
    when quoted or followed by a year, which :func:`check_text` checks anyway).

    Build one per catalogue and reuse it: it compiles one pattern over all titles.

    Examples
    --------
    >>> guard = TitleGuard(["Heat (1995)", "Toy Story (1995)", "Casino (1995)"])
    >>> guard.named("You will like Toy Story, as you liked Casino.")
    ['Toy Story', 'Casino']
    """

    def __init__(self, titles: Iterable[str]) -> None:
        names: dict[str, str] = {}
        for title in titles:
            bare = _YEAR_SUFFIX.sub("", title).strip()
            if not bare:
                continue
            names.setdefault(bare, title)
        self.titles = names
        multi = sorted((t for t in names if len(t.split()) >= 2 or len(t) >= 5), key=len, reverse=True)
        self._pattern = re.compile(r"(?<![\w])(" + "|".join(re.escape(t) for t in multi) + r")(?![\w])") if multi else None

    def named(self, text: str) -> list[str]:
        """Catalogue titles (without year) that ``text`` names, in order."""
        if self._pattern is None:
            return []
        return [m.group(1) for m in self._pattern.finditer(text)]


def title_outside(text: str, titles: Sequence[str], guard: TitleGuard | None = None) -> str | None:
    """The first title ``text`` names that is not one of ``titles``, or ``None``.

    Looked for: every quoted span, every ``Title (Year)``, and with ``guard`` every title of the catalogue.
    This is the check that counts hallucinated titles; :func:`check_text` runs it among others.

    Examples
    --------
    >>> title_outside('As with "Casino", try Ronin (1998).', ["Casino (1995)"])
    'Ronin (1998)'
    >>> title_outside('As with "Casino", try "Heat".', ["Casino (1995)", "Heat (1995)"]) is None
    True
    """
    allowed: set[str] = set()
    for t in titles:
        allowed |= _title_forms(t)
    for m in _QUOTES.finditer(text):
        span = m.group(1).strip().rstrip(",.;:!?").strip()
        if span and not (_title_forms(span) & allowed):
            return span
    for m in _TITLE_YEAR.finditer(text):
        words = m.group(1).split()
        if not _names_a_fact(words, m.group(2), allowed):
            first = next((i for i, w in enumerate(words) if w[:1].isupper() or w[:1].isdigit()), 0)
            return f"{' '.join(words[first:])} ({m.group(2)})"
    if guard is not None:
        outside = [t for t in guard.named(text) if not (_title_forms(t) & allowed)]
        # A catalogue title inside a fact title ("Casino" in "Casino Royale") is that fact title.
        outside = [t for t in outside if not any(t.lower() in f.lower() for f in titles)]
        if outside:
            return outside[0]
    return None


def check_text(text: str, titles: Sequence[str], lean: str | None = None, gate: float | None = None,
               guard: TitleGuard | None = None, require_lean: bool = True, must_name: str | None = None) -> str | None:
    """Why ``text`` may not be shown for facts naming ``titles``, or ``None`` when it may.

    Checks, in order: not empty, overlong, unfinished (an open quote) or repeating itself; every quoted span
    and every ``Title (Year)`` one of ``titles`` and no other catalogue title (:func:`title_outside`); the lean (``"short-term"`` /
    ``"long-term"``) stated and not its opposite (with ``lean``); every percentage within one point of
    the gate's (with ``gate``); ``must_name`` (the recommended item) named.

    Examples
    --------
    >>> facts = ["Heat (1995)", "Casino (1995)"]
    >>> check_text('Like "Casino", "Heat" fits your long-term taste.', facts, lean="long-term") is None
    True
    >>> check_text('You loved "Scarface", so here is "Heat".', facts, lean="long-term")
    "names 'Scarface', which is not in the facts"
    >>> check_text('"Heat" suits your short-term mood.', facts, lean="long-term")
    'states a short-term lean; the gate says long-term'
    """
    stripped = text.strip()
    if not stripped:
        return "empty"
    if len(stripped) > 600:
        return f"too long ({len(stripped)} characters)"
    if stripped.count('"') % 2 or stripped.count("“") != stripped.count("”"):
        return "is unfinished (an open quote)"
    words = re.findall(r"\w+", stripped.lower())
    grams = [" ".join(words[i: i + 5]) for i in range(len(words) - 4)]
    if len(set(grams)) < len(grams):
        return "repeats itself"
    outside = title_outside(stripped, titles, guard)
    if outside is not None:
        return f"names {outside!r}, which is not in the facts"
    if lean is not None:
        said = {m.group(1).lower() + "-term" for m in _LEAN.finditer(_SHARE.sub("", stripped))}
        other = LONG if lean == SHORT else SHORT
        if other in said:
            return f"states a {other} lean; the gate says {lean}"
        if require_lean and lean not in said:
            return f"does not state the {lean} lean"
    if must_name is not None:
        norm = f" {normalise_title(stripped)} "
        if not any(f" {form} " in norm for form in _title_forms(must_name)):
            return f"does not name {must_name!r}"
    if gate is not None:
        for m in _PERCENT.finditer(stripped):
            if abs(float(m.group(1)) - 100 * gate) > 1.0:
                return f"says {m.group(0)!r}; the short-term share is {_pct(gate)}%"
    return None


# ------------------------------------------------------------------ prompts
# The prompts hand over the template's sentence (which holds every fact) and one worked example: small
# instruct models follow an example far better than a description of the task.
_SYSTEM_ITEM = (
    "You rewrite one sentence about a movie recommendation so that it sounds friendly and natural. Keep every "
    "title exactly as written, in double quotes. Keep the words 'long-term taste' or 'short-term interest'. Do "
    "not add any other movie, person, number or fact. Answer with the rewritten sentence only."
)
_EXAMPLE_ITEM = (
    ('"Up (2009)" comes from your short-term interest (short-term share 80%): it is close in content to '
    '"Cars (2006)".'),
    'Because you watched "Cars (2006)", your short-term interest points to "Up (2009)".',
)
_SYSTEM_PROFILE = (
    "You rewrite a short description of a movie viewer's tastes so that it sounds friendly and natural, in two "
    "or three sentences. Keep every title exactly as written, in double quotes. Keep the words 'long-term taste' "
    "or 'short-term interest'. Do not add any other movie, person, number or fact. Answer with the rewritten "
    "text only."
)
_EXAMPLE_PROFILE = (
    ('Over time you have liked western films such as "Rio Bravo (1959)". Right now you are into comedy, like '
    '"Airplane! (1980)". Your short-term interest leads (short-term share 70%).'),
    ('You have always enjoyed westerns like "Rio Bravo (1959)", but lately comedy has your attention, with '
    '"Airplane! (1980)": your short-term interest leads.'),
)


def item_messages(facts: ItemFacts, draft: str | None = None) -> list[Message]:
    """The chat messages that ask a generator to phrase ``facts``: the template's sentence, which states every
    fact, after one worked example.

    Examples
    --------
    >>> item_messages(ItemFacts("Up (2009)", gate=0.8))[-1]["content"]
    '"Up (2009)" comes from your short-term interest (short-term share 80%).'
    """
    return [
        {"role": "system", "content": _SYSTEM_ITEM},
        {"role": "user", "content": _EXAMPLE_ITEM[0]},
        {"role": "assistant", "content": _EXAMPLE_ITEM[1]},
        {"role": "user", "content": draft or item_template(facts)},
    ]


def profile_messages(facts: ProfileFacts, draft: str | None = None) -> list[Message]:
    """The chat messages that ask a generator to phrase a user's interest summary (the template's text after
    one worked example).

    Examples
    --------
    >>> profile_messages(ProfileFacts(0.2, long_genres=("Drama",)))[-1]["content"]
    'Over time you have liked drama films. Your long-term taste leads (short-term share 20%).'
    """
    return [
        {"role": "system", "content": _SYSTEM_PROFILE},
        {"role": "user", "content": _EXAMPLE_PROFILE[0]},
        {"role": "assistant", "content": _EXAMPLE_PROFILE[1]},
        {"role": "user", "content": draft or profile_template(facts)},
    ]


_SENTENCE_END = re.compile(r'(?<=[.!?])["”]?\s+(?=[A-Z"“])')


def _clean(raw: str, sentences: int = 1) -> str:
    """The generator's answer without labels ("Draft:", "Here is ..."), a wrapping quote pair or what follows its
    first ``sentences`` sentences (small models ramble and repeat themselves).

    Examples
    --------
    >>> _clean('Draft: You will like "Up". It is great. It is great.')
    'You will like "Up".'
    """
    text = raw.strip()
    text = re.sub(r"^(here is|here's)[^:\n]*:\s*", "", text, flags=re.IGNORECASE)
    text = re.sub(r"^(draft|sentence|rewrite|rewritten|answer)\s*:\s*", "", text, flags=re.IGNORECASE)
    text = text.split("\n\n", 1)[0].strip()
    if len(text) > 1 and text[0] == text[-1] == "'":
        text = text[1:-1].strip()
    text = " ".join(text.split())
    parts = _SENTENCE_END.split(text)
    return " ".join(parts[:sentences]).strip()


def _phrase(template: str, messages: list[Message], titles: Sequence[str], lean: str | None, gate: float | None,
            generator: TextGenerator | None, guard: TitleGuard | None, max_tokens: int, start: float,
            raw: str | None = None, sentences: int = 1, must_name: str | None = None) -> Phrase:
    name = describe(generator)
    if generator is None and raw is None:
        return Phrase(template, "template", name, time.perf_counter() - start)
    try:
        if raw is None:
            assert generator is not None
            raw = generator.generate(messages, max_tokens=max_tokens)
        text = _clean(raw, sentences)
        why = check_text(text, titles, lean=lean, gate=gate, guard=guard, must_name=must_name)
    except GenerationError as err:
        return Phrase(template, "template", name, time.perf_counter() - start, rejected=str(err))
    except Exception as err:  # noqa: BLE001 - a generator's failure, whatever it is, degrades to the template
        return Phrase(template, "template", name, time.perf_counter() - start,
                      rejected=f"{type(err).__name__}: {err}")
    if why is not None:
        return Phrase(template, "template", name, time.perf_counter() - start, rejected=why, raw=raw)
    return Phrase(text, "llm", name, time.perf_counter() - start)


def explain_item(facts: ItemFacts, generator: TextGenerator | None = None, guard: TitleGuard | None = None,
                 max_tokens: int = 56) -> Phrase:
    """One sentence for one recommended item: the template, or the generator's phrasing when it passes
    :func:`check_text` (which also asks that it name the recommended item).  Never raises.

    Examples
    --------
    >>> class Liar:
    ...     name = "liar"
    ...     def generate(self, messages, max_tokens=96):
    ...         return 'Since you loved "Scarface", try "Heat" from your long-term taste.'
    >>> p = explain_item(ItemFacts("Heat (1995)", gate=0.2, because=("Casino (1995)",)), Liar())
    >>> p.source, p.rejected
    ('template', "names 'Scarface', which is not in the facts")
    """
    start = time.perf_counter()
    try:
        template = item_template(facts)
    except Exception:  # noqa: BLE001 - malformed facts: say as little as is safe
        return Phrase("Recommended for you.", "template", describe(generator), time.perf_counter() - start,
                      rejected="facts could not be phrased")
    if generator is None:
        return Phrase(template, "template", "template", time.perf_counter() - start)
    return _phrase(template, item_messages(facts, template), facts.titles(), facts.lean, facts.gate, generator,
                   guard, max_tokens, start, must_name=facts.title)


def summarise_profile(facts: ProfileFacts, generator: TextGenerator | None = None, guard: TitleGuard | None = None,
                      max_tokens: int = 96) -> Phrase:
    """Two or three sentences about a user's interests: the template, or the generator's phrasing when it
    passes :func:`check_text`.  Never raises.

    Examples
    --------
    >>> summarise_profile(ProfileFacts(0.9, short_genres=("Horror",), short_titles=("Scream (1996)",))).text
    'Right now you are into horror, like "Scream (1996)". Your short-term interest leads (short-term share 90%).'
    """
    start = time.perf_counter()
    try:
        template = profile_template(facts)
    except Exception:  # noqa: BLE001 - malformed facts: say as little as is safe
        return Phrase("Not enough history yet to say what you like.", "template", describe(generator),
                      time.perf_counter() - start, rejected="facts could not be phrased")
    if generator is None:
        return Phrase(template, "template", "template", time.perf_counter() - start)
    return _phrase(template, profile_messages(facts, template), facts.titles(), facts.lean, facts.gate, generator,
                   guard, max_tokens, start, sentences=3)


def explain_items(facts: Sequence[ItemFacts], generator: TextGenerator | None = None,
                  guard: TitleGuard | None = None, max_tokens: int = 56) -> list[Phrase]:
    """:func:`explain_item` for several items; a generator with ``generate_batch`` (the local LLM) gets
    them in one batch.  Never raises.

    Examples
    --------
    >>> [p.source for p in explain_items([ItemFacts("Up (2009)"), ItemFacts("Heat (1995)")])]
    ['template', 'template']
    """
    batch = getattr(generator, "generate_batch", None)
    if generator is None or batch is None or len(facts) < 2:
        return [explain_item(f, generator, guard, max_tokens) for f in facts]
    start = time.perf_counter()
    templates = [item_template(f) for f in facts]
    try:
        raws = list(batch([item_messages(f, t) for f, t in zip(facts, templates, strict=True)], max_tokens))
    except Exception as err:  # noqa: BLE001 - degrade every item to its template
        spent = (time.perf_counter() - start) / len(facts)
        return [Phrase(t, "template", describe(generator), spent, rejected=f"{type(err).__name__}: {err}")
                for t in templates]
    spent = (time.perf_counter() - start) / len(facts)
    out = []
    for f, t, raw in zip(facts, templates, raws, strict=True):
        p = _phrase(t, [], f.titles(), f.lean, f.gate, generator, guard, max_tokens, time.perf_counter(), raw=raw,
                    must_name=f.title)
        out.append(Phrase(p.text, p.source, p.generator, spent + p.seconds, p.rejected, p.raw))
    return out


@dataclass
class GuardStats:
    """Counts over many phrases: how many came from the LLM and why the others were replaced."""

    n: int = 0
    llm: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, phrase: Phrase) -> None:
        self.n += 1
        if phrase.source == "llm":
            self.llm += 1
        elif phrase.rejected:
            reason = re.sub(r"'[^']*'", "'…'", phrase.rejected.split(":")[0])
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


__all__ = [
    "LONG",
    "SHORT",
    "GuardStats",
    "ItemFacts",
    "Phrase",
    "ProfileFacts",
    "TitleGuard",
    "check_text",
    "explain_item",
    "explain_items",
    "item_messages",
    "item_template",
    "lean_of",
    "profile_messages",
    "profile_template",
    "summarise_profile",
    "title_outside",
]
