"""Descriptions written by a text generator for catalogue items that have none, cached and marked as generated.

:func:`describe_items` asks a :class:`~recfuse.llm.generators.TextGenerator` for a short factual description
(two or three sentences) of each item without one, from what the catalogue knows about it (title, year,
genres, any other field; :func:`describe_messages` is the prompt).  What comes back is cleaned
(:func:`clean_description`: labels, rambling, an unfinished last sentence dropped) and checked
(:func:`check_description`): a text that names a catalogue title other than the item's own (the
:class:`~recfuse.llm.phrase.TitleGuard` over the whole catalogue), refuses, or is empty is dropped.

Each answer is cached on disk once, keyed by the generator's name and the hash of the prompt
(``data_root() / "descriptions" / <generator>/``), so a second run asks the generator nothing.  The result
is the catalogue with its ``description`` filled in and a ``description_source`` column saying where each
description came from: ``given`` (the dataset had it), ``imported`` (from an ``--items`` catalogue, e.g. the
output of ``recfuse text import``), ``generated:<generator>``, or null where there is none.  The item text
template reads ``description`` only (:data:`recfuse.text.build.DEFAULT_SEGMENTS`), so encoders pick the
generated text up and never see the mark.  ``recfuse text describe`` runs it from the command line.

Examples
--------
>>> import polars as pl
>>> class Canned:
...     name = "canned"
...     def generate(self, messages, max_tokens=96):
...         return "Heat is a 1995 crime film about a thief and the detective who hunts him in Los Angeles."
>>> items = pl.DataFrame({"item_id": ["1", "2"], "title": ["Heat", "Up"], "year": ["1995", "2009"],
...                       "description": [None, "A flying house."]})
>>> result = describe_items(items, Canned(), cache=False)
>>> result.features["description_source"].to_list()
['generated:canned', 'given']
>>> result.stats.n_described, result.stats.n_generated
(1, 1)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recfuse.data.registry import data_root
from recfuse.llm.generators import GenerationError, Message, TextGenerator, describe
from recfuse.llm.phrase import TitleGuard, title_outside
from recfuse.text.build import natural_title, render_value

#: The catalogue field descriptions land in (the one the item text template reads).
DESCRIPTION = "description"
#: The catalogue field that says where each description came from; never part of the item text.
DESCRIPTION_SOURCE = "description_source"
GIVEN, IMPORTED, GENERATED = "given", "imported", "generated"
#: Fields of an item that are not facts to describe it from.
NOT_FACTS = frozenset({DESCRIPTION, DESCRIPTION_SOURCE, "text", "item_id"})
#: Fields read as the item's title, first found first.
TITLE_FIELDS = ("title", "name", "movie_title")
MAX_CHARS = 600  # what a description may be at most: two or three sentences
MAX_TOKENS = 160  # about 600 characters of English
MAX_SENTENCES = 3
MAX_FIELD_CHARS = 300  # a long field (reviews, an overview) is cut to this in the prompt
MAX_FAILURES_IN_A_ROW = 5  # a generator that failed this often in a row is not asked again this run
MAX_EXAMPLES = 20  # failures and rejections kept for the report

_YEAR = re.compile(r"(1[89]|20)\d\d")
# Values that say nothing is known (ml-100k's "unknown", RecBole's copy of it spelt "unkonwn").
_PLACEHOLDERS = frozenset({"unknown", "unkonwn", "n/a", "na", "none", "null", "nan", "-", "?"})
# Sentence ends, not after an initial or a title abbreviation ("U.S. Army", "Dr. No").
_SENTENCE_END = re.compile(r"(?<![A-Z]\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bMrs\.)(?<=[.!?])[\"”')]?\s+"
                           r"(?=[A-Z0-9\"“'(])")
_COMPLETE = re.compile(r"[.!?][\"”')]?$")
_LABEL = re.compile(r"^(?:here is|here's)[^:\n]*:\s*|^(?:description|answer|summary)\s*:\s*", re.IGNORECASE)
_REFUSAL = re.compile(r"^(?:i'?m sorry|sorry\b|i am sorry|i cannot|i can'?t|i do not|i don'?t|as an ai|"
                      r"unfortunately,? i)", re.IGNORECASE)

# One worked example: small instruct models follow an example far better than a description of the task.
# Its title joins the guard's, so a text copied from it is dropped for any other item.
EXAMPLE_TITLE = "Casablanca (1942)"
_EXAMPLE = (
    "Title: Casablanca\nYear: 1942\nGenres: Drama, Romance, War",
    ("Casablanca is a 1942 romantic drama set in Morocco during the Second World War. Rick Blaine, an American "
     "who runs a nightclub, meets the woman who once left him and must decide whether to help her and her "
     "husband, a Resistance leader, escape. Its mix of romance, wartime intrigue and sharp dialogue made it a "
     "classic."),
)
_SYSTEM = (
    "You write short catalogue descriptions. Given what is known about one item (a film, a book, a product), "
    "write a factual description of it in two or three sentences, 300 to 600 characters: what it is and what "
    "it is about. Do not name any other title. Do not invent awards, figures or quotes; leave out any detail "
    "you are not sure of. Answer with the description only."
)


# ------------------------------------------------------------------ prompt
def _value(value: Any) -> str | None:
    """A field value as prompt text; ``None`` for missing, blank or a placeholder (ml-100k's ``unknown``)."""
    text = render_value(value)
    if text is None:
        return None
    if isinstance(value, list | tuple) or (isinstance(value, str) and "|" in value):  # a list: drop its placeholders
        text = ", ".join(p for p in text.split(", ") if p.lower() not in _PLACEHOLDERS)
    if not text or text.lower() in _PLACEHOLDERS:
        return None
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS].rsplit(" ", 1)[0] + " ..."


def _title_field(fields: Mapping[str, Any]) -> str | None:
    return next((f for f in TITLE_FIELDS if _value(fields.get(f)) is not None), None)


def item_facts(fields: Mapping[str, Any]) -> dict[str, str]:
    """What is known about an item, as ``{label: text}`` for the prompt: the title (article-first) and the
    year first, then every other field with a value; the id, the description, its mark and ``text`` left out.

    Examples
    --------
    >>> item_facts({"title": "Usual Suspects, The", "year": "1995", "genres": "Crime|Thriller",
    ...             "description": None, "release_date": None})
    {'Title': 'The Usual Suspects', 'Year': '1995', 'Genres': 'Crime, Thriller'}
    """
    title_field = _title_field(fields)
    facts: dict[str, str] = {}
    if title_field is not None:
        facts["Title"] = natural_title(str(_value(fields[title_field])))
    for name in ("year", *fields):
        if name == title_field or name in TITLE_FIELDS or name in NOT_FACTS:
            continue
        label = name.replace("_", " ").strip().capitalize()
        text = _value(fields.get(name))
        if text is not None and label not in facts:
            facts[label] = text
    return facts


def describe_messages(fields: Mapping[str, Any]) -> list[Message]:
    """The chat messages that ask a generator for a short factual description of an item, from its fields
    (a catalogue row without its id: title, year, genres, ...), after one worked example.

    Examples
    --------
    >>> print(describe_messages({"title": "Heat", "year": 1995, "genres": "Action|Crime"})[-1]["content"])
    Title: Heat
    Year: 1995
    Genres: Action, Crime
    """
    facts = "\n".join(f"{label}: {text}" for label, text in item_facts(fields).items())
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": _EXAMPLE[0]},
        {"role": "assistant", "content": _EXAMPLE[1]},
        {"role": "user", "content": facts},
    ]


def prompt_key(messages: Sequence[Message], max_tokens: int) -> str:
    """Hex sha256 of a request (the messages and the token budget): the cache key, with the generator's name.

    Examples
    --------
    >>> len(prompt_key([{"role": "user", "content": "Title: Heat"}], 160))
    64
    """
    body = json.dumps({"messages": [dict(m) for m in messages], "max_tokens": max_tokens}, sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


# ------------------------------------------------------------ clean, check
def _repeats(sentence: str, before: set[str]) -> bool:
    words = re.findall(r"\w+", sentence.lower())
    grams = {" ".join(words[i: i + 5]) for i in range(len(words) - 4)}
    return bool(grams & before) or len(grams) < max(len(words) - 4, 0)


def clean_description(raw: str, max_chars: int = MAX_CHARS, max_sentences: int = MAX_SENTENCES) -> str:
    """The generator's answer as a description: no label ("Description:", "Here is ..."), no wrapping quotes,
    its first paragraph, at most ``max_sentences`` complete sentences and ``max_chars`` characters, stopping
    before a sentence that repeats an earlier one (small models loop) or is unfinished (out of tokens).
    ``""`` when not one complete sentence is left.

    Examples
    --------
    >>> clean_description('Description: "Up is a 2009 film. An old man flies his house. An old man flies his')
    'Up is a 2009 film. An old man flies his house.'
    >>> clean_description("Heat is a crime film about a heist that goes")
    ''
    """
    text = _LABEL.sub("", raw.strip()).strip()
    text = text.split("\n\n", 1)[0].strip()
    quotes = sum(text.count(q) for q in "\"“”")
    if text[:1] in ("\"", "“") and quotes == 1:
        text = text[1:]  # an opening quote the answer never closed: it was to wrap the whole answer
    elif len(text) > 1 and quotes == 2 and (text[0], text[-1]) in (("\"", "\""), ("“", "”")):
        text = text[1:-1]
    text = " ".join(text.split())
    kept: list[str] = []
    seen: set[str] = set()
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence or not _COMPLETE.search(sentence) or _repeats(sentence, seen) or sentence in kept:
            break
        if len(" ".join([*kept, sentence])) > max_chars or len(kept) == max_sentences:
            break
        kept.append(sentence)
        words = re.findall(r"\w+", sentence.lower())
        seen |= {" ".join(words[i: i + 5]) for i in range(len(words) - 4)}
    return " ".join(kept)


def _grams(text: str, n: int) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i: i + n]) for i in range(len(words) - n + 1)}


_EXAMPLE_GRAMS = _grams(_EXAMPLE[1], 6)
# Words only the example's film has: a text with one of them (its own title aside) describes the example.
_EXAMPLE_WORDS = re.compile(r"\b(casablanca|morocc\w*|blaine|nightclub)\b", re.IGNORECASE)


def check_description(text: str, title: str | None, guard: TitleGuard | None = None) -> str | None:
    """Why ``text`` may not describe the item titled ``title``, or ``None`` when it may.

    Dropped: an empty text, a refusal ("I'm sorry, ..."), an open quote, a text that copies six words in a row
    or a telling word ("Morocco") from the prompt's worked example (small models do, and then describe the
    example's film), and a text that
    names a title other than the item's own: a quoted span, a ``Title (Year)``, or (with ``guard``) any title
    of the catalogue (:func:`recfuse.llm.phrase.title_outside` with the item's title as the only one allowed).

    Examples
    --------
    >>> guard = TitleGuard(["Heat (1995)", "Casino (1995)", "Toy Story (1995)"])
    >>> check_description("Heat is a 1995 crime film set in Los Angeles.", "Heat (1995)", guard) is None
    True
    >>> check_description("Like Casino, Heat is a crime film.", "Heat (1995)", guard)
    "names another title: 'Casino'"
    >>> check_description("Heat is a 1995 drama set in Morocco during World War II.", "Heat (1995)")
    "copies the prompt's example: 'Morocco'"
    """
    stripped = text.strip()
    if not stripped:
        return "empty (no complete sentence)"
    if _REFUSAL.match(stripped):
        return "refuses"
    if stripped.count('"') % 2 or stripped.count("“") != stripped.count("”"):
        return "unfinished (an open quote)"
    copied = sorted(_grams(stripped, 6) & _EXAMPLE_GRAMS)
    if copied:
        return f"copies the prompt's example: {copied[0]!r}"
    word = _EXAMPLE_WORDS.search(stripped)
    if word is not None and not _EXAMPLE_WORDS.search(title or ""):
        return f"copies the prompt's example: {word[0]!r}"
    outside = title_outside(stripped, [title] if title else [], guard)
    if outside is not None:
        return f"names another title: {outside!r}"
    return None


def display_titles(features: pl.DataFrame) -> list[str | None]:
    """Each item's title as people read it, with its year where there is one (``"The Usual Suspects (1995)"``);
    ``None`` for an item without a title.

    Examples
    --------
    >>> display_titles(pl.DataFrame({"item_id": ["1", "2"], "title": ["Usual Suspects, The", None],
    ...                              "year": ["1995", None]}))
    ['The Usual Suspects (1995)', None]
    """
    n = features.height
    cols = [c for c in TITLE_FIELDS if c in features.columns[1:]]
    if not cols:
        return [None] * n
    years = features["year"].to_list() if "year" in features.columns[1:] else [None] * n
    candidates = zip(*(features[c].to_list() for c in cols), strict=True)
    out: list[str | None] = []
    for row, year in zip(candidates, years, strict=True):
        text = next((t for t in map(_value, row) if t is not None), None)
        if text is None:
            out.append(None)
            continue
        text = natural_title(text)
        y = _value(year)
        if y is not None and _YEAR.fullmatch(y) and not text.endswith(f"({y})"):
            text = f"{text} ({y})"
        out.append(text)
    return out


# ------------------------------------------------------------------- cache
def descriptions_root() -> Path:
    """``data_root() / "descriptions"``: where generated descriptions are cached.

    Examples
    --------
    >>> import os
    >>> os.environ["RECFUSE_DATA_DIR"] = "/tmp/rf"
    >>> str(descriptions_root())
    '/tmp/rf/descriptions'
    >>> del os.environ["RECFUSE_DATA_DIR"]
    """
    return data_root() / "descriptions"


class DescriptionCache:
    """Generated texts on disk, one small JSON file per (generator, prompt hash), written once.

    Layout: ``<root>/<generator slug>/<first two hex digits>/<prompt hash>.json`` holding the generator's name,
    the messages, the token budget and the raw answer.  Files are written to a temporary name and renamed, so
    concurrent runs at worst generate a text twice.  The raw answer is kept, so a changed cleaning or check
    applies to cached answers without asking the generator again.

    Examples
    --------
    >>> import tempfile
    >>> cache = DescriptionCache("local:SmolLM2-135M-Instruct", root=tempfile.mkdtemp())
    >>> cache.get("ab" * 32) is None
    True
    >>> cache.put("ab" * 32, "Heat is a crime film.", [{"role": "user", "content": "Title: Heat"}], 160)
    >>> cache.get("ab" * 32)
    'Heat is a crime film.'
    """

    def __init__(self, generator: str, root: str | Path | None = None) -> None:
        self.generator = generator
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", generator).strip("._")[:80] or "generator"
        slug = f"{readable}-{hashlib.sha256(generator.encode()).hexdigest()[:8]}"
        self.folder = Path(root if root is not None else descriptions_root()).expanduser() / slug

    def __repr__(self) -> str:
        return f"DescriptionCache({self.generator!r}, {str(self.folder)!r})"

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        """The cached answer for ``key`` (:func:`prompt_key`), or ``None``."""
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("generator") != self.generator:
            return None
        text = entry.get("text")
        return text if isinstance(text, str) else None

    def put(self, key: str, text: str, messages: Sequence[Message] = (), max_tokens: int | None = None) -> None:
        """Keep ``text``, the generator's answer to ``messages``, under ``key``."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"generator": self.generator, "key": key, "max_tokens": max_tokens,
                 "messages": [dict(m) for m in messages], "text": text, "created": time.time()}
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


# --------------------------------------------------------------- describe
@dataclass
class DescribeStats:
    """What :func:`describe_items` did.

    Attributes
    ----------
    generator
        The generator's name (:func:`recfuse.llm.generators.describe`).
    n_items
        Items in the catalogue.
    n_missing
        Items that had no description.
    n_targets
        Items asked about (those without one, or every item with ``all_items``), within ``limit``.
    n_left
        Items left out by ``limit``.
    n_untitled
        Targets skipped: no title to describe them from.
    n_generated, n_cached
        Answers the generator gave this run, and answers read from the cache.
    n_described
        Targets that got a description (passed the checks).
    n_rejected
        Answers dropped by :func:`check_description`; ``reasons`` counts them by reason.
    n_failed
        Generations that failed (the generator raised: an error, a timeout).
    n_not_tried
        Targets not asked once the generator had failed :data:`MAX_FAILURES_IN_A_ROW` times in a row.
    stopped
        Why generation stopped early, or ``None``.
    failures, rejections
        ``(item id, why)`` of the first few failures and rejections.
    seconds
        Wall time.
    cache_folder
        Where the answers are cached, or ``None`` without a cache.
    """

    generator: str
    n_items: int = 0
    n_missing: int = 0
    n_targets: int = 0
    n_left: int = 0
    n_untitled: int = 0
    n_generated: int = 0
    n_cached: int = 0
    n_described: int = 0
    n_rejected: int = 0
    n_failed: int = 0
    n_not_tried: int = 0
    stopped: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    cache_folder: str | None = None

    def reject(self, item_id: str, why: str) -> None:
        self.n_rejected += 1
        reason = why.split(":", 1)[0]
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.rejections) < MAX_EXAMPLES:
            self.rejections.append((item_id, why))

    def fail(self, item_id: str, why: str) -> None:
        self.n_failed += 1
        if len(self.failures) < MAX_EXAMPLES:
            self.failures.append((item_id, why))

    def summary(self) -> str:
        """One line: what was asked, generated, read from the cache, kept, dropped and failed.

        Examples
        --------
        >>> DescribeStats("canned", n_items=4, n_missing=2, n_targets=2, n_generated=1, n_cached=1,
        ...               n_described=2).summary()
        '4 items, 2 without a description, 2 to describe: 1 generated, 1 from the cache (canned); 2 described, 0 rejected, 0 failed'
        """
        left = f" ({self.n_left} more left out by --limit)" if self.n_left else ""
        untitled = f", {self.n_untitled} without a title skipped" if self.n_untitled else ""
        why = ", ".join(f"{n} {r}" for r, n in sorted(self.reasons.items(), key=lambda kv: -kv[1]))
        rejected = f"{self.n_rejected} rejected" + (f" ({why})" if why else "")
        not_tried = f", {self.n_not_tried} not tried" if self.n_not_tried else ""
        return (f"{self.n_items} items, {self.n_missing} without a description, {self.n_targets} to describe"
                f"{left}: {self.n_generated} generated, {self.n_cached} from the cache ({self.generator}){untitled}; "
                f"{self.n_described} described, {rejected}, {self.n_failed} failed{not_tried}")


@dataclass
class DescribeResult:
    """The catalogue with the generated descriptions, and what it took.

    Attributes
    ----------
    features
        The input catalogue (first column the item id) with ``description`` filled in where a generated text
        passed the checks, and ``description_source``.
    stats
        :class:`DescribeStats`.
    """

    features: pl.DataFrame
    stats: DescribeStats


def _answers(generator: TextGenerator, conversations: list[list[Message]], max_tokens: int) -> list[str | Exception]:
    """The generator's answer (or its error) per conversation; one padded batch where it has ``generate_batch``
    (the local LLM), one by one when the batch fails or there is no batch."""
    batch = getattr(generator, "generate_batch", None)
    if batch is not None and len(conversations) > 1:
        with contextlib.suppress(Exception):  # the batch failed as a whole: one by one says who failed
            out = list(batch(conversations, max_tokens))
            if len(out) == len(conversations) and all(isinstance(t, str) for t in out):
                return list(out)
    answers: list[str | Exception] = []
    for messages in conversations:
        try:
            text = generator.generate(messages, max_tokens=max_tokens)
            answers.append(text if isinstance(text, str) else GenerationError(f"answered {type(text).__name__}"))
        except Exception as err:  # noqa: BLE001 - a generator's failure, whatever it is, is that item's failure
            answers.append(err)
    return answers


def _error(err: Exception) -> str:
    return str(err) if isinstance(err, GenerationError) else f"{type(err).__name__}: {err}"


def describe_items(
    features: pl.DataFrame,
    generator: TextGenerator,
    *,
    all_items: bool = False,
    limit: int | None = None,
    marks: Mapping[str, str] | None = None,
    guard: TitleGuard | None = None,
    cache: bool | str | Path | DescriptionCache = True,
    max_tokens: int = MAX_TOKENS,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> DescribeResult:
    """Generated descriptions for the items of ``features`` that have none (every item with ``all_items``).

    Parameters
    ----------
    features
        The catalogue: first column the item id, then its fields (``title``, ``year``, ``genres``, ...,
        ``description`` and ``description_source`` where there are).
    generator
        Writes the texts (:func:`describe_messages` is the prompt).
    all_items
        Describe every item; an item whose new text fails keeps the description it had.
    limit
        Ask about at most this many items (the first in catalogue order).
    marks
        Where the descriptions there are came from, by item id (``imported``, ``generated:...``), for those
        that ``features`` has no ``description_source`` for; the others are ``given``.
    guard
        Catalogue titles a text may not name; by default every title of ``features`` (and the prompt
        example's).
    cache
        ``True``: the cache under :func:`descriptions_root`; a folder; a :class:`DescriptionCache`; ``False``.
    max_tokens
        The generator's budget per description.
    batch_size
        Items looked up and generated together (one padded batch on a generator with ``generate_batch``).
    progress
        Called with (items done, items to do) as it goes (a progress bar's ``update``).

    Raises
    ------
    GenerationError
        The generator cannot start (``load`` failed: a local model that is not installed).  A failure on
        one item is counted (``stats.n_failed``), never raised.

    Examples
    --------
    >>> class Confused:
    ...     name = "confused"
    ...     def generate(self, messages, max_tokens=96):
    ...         return "Up is a film that, like Toy Story, is about friendship."
    >>> items = pl.DataFrame({"item_id": ["1", "2"], "title": ["Up", "Toy Story"], "year": ["2009", "1995"]})
    >>> r = describe_items(items, Confused(), cache=False)
    >>> r.stats.rejections  # for Toy Story itself the text names no other title
    [('1', "names another title: 'Toy Story'")]
    >>> r.features["description_source"].to_list()
    [None, 'generated:confused']
    """
    start = time.perf_counter()
    name = describe(generator)
    store = cache if isinstance(cache, DescriptionCache) else (
        DescriptionCache(name, root=None if cache is True else cache) if cache is not False else None)
    stats = DescribeStats(name, n_items=features.height, cache_folder=None if store is None else str(store.folder))
    id_col, n = features.columns[0], features.height
    ids = [str(v) for v in features[id_col].to_list()]
    desc: list[str | None] = (features[DESCRIPTION].cast(pl.String).to_list() if DESCRIPTION in features.columns
                              else [None] * n)
    given: list[str | None] = (features[DESCRIPTION_SOURCE].cast(pl.String).to_list()
                               if DESCRIPTION_SOURCE in features.columns else [None] * n)
    have = [bool(d and d.strip()) for d in desc]
    known = marks or {}
    sources = [(given[i] or known.get(ids[i]) or GIVEN) if have[i] else None for i in range(n)]
    stats.n_missing = n - sum(have)
    targets = [i for i in range(n) if all_items or not have[i]]
    if limit is not None:
        stats.n_left = max(len(targets) - limit, 0)
        targets = targets[:limit]
    stats.n_targets = len(targets)

    titles = display_titles(features)
    fields = [c for c in features.columns[1:] if c not in NOT_FACTS]
    rows: list[dict[str, Any]] = features.select(fields).rows(named=True) if fields else [{} for _ in range(n)]
    pending: list[tuple[int, list[Message], str]] = []
    for i in targets:
        if _title_field(rows[i]) is None:
            stats.n_untitled += 1  # nothing to describe it from: any text would be invented
            continue
        messages = describe_messages(rows[i])
        pending.append((i, messages, prompt_key(messages, max_tokens)))
    done = stats.n_untitled
    if progress is not None:
        progress(done, stats.n_targets)

    texts = list(desc)
    in_a_row = 0
    loaded = False
    for b in range(0, len(pending), batch_size):
        chunk = pending[b: b + batch_size]
        raw: dict[int, str] = {}
        todo = []
        for i, messages, key in chunk:
            hit = store.get(key) if store is not None else None
            if hit is not None:
                raw[i] = hit
                stats.n_cached += 1
            else:
                todo.append((i, messages, key))
        if todo and stats.stopped is not None:
            stats.n_not_tried += len(todo)
            todo = []
        if todo:
            load = getattr(generator, "load", None)
            if not loaded and callable(load):
                load()  # a generator that cannot start is the caller's error, not one failure per item
            loaded = True
            for (i, messages, key), answer in zip(todo, _answers(generator, [m for _, m, _ in todo], max_tokens),
                                                  strict=True):
                if isinstance(answer, Exception):
                    stats.fail(ids[i], _error(answer))
                    in_a_row += 1
                    continue
                in_a_row = 0
                stats.n_generated += 1
                raw[i] = answer
                if store is not None:
                    store.put(key, answer, messages, max_tokens)
            if in_a_row >= MAX_FAILURES_IN_A_ROW:
                stats.stopped = (f"the generator failed {in_a_row} times in a row (last: {stats.failures[-1][1]}); "
                                 "not asked again")
        for i, answer in raw.items():
            if guard is None:
                guard = TitleGuard([*(t for t in titles if t), EXAMPLE_TITLE])  # once, on the first answer
            text = clean_description(answer)
            why = check_description(text, titles[i], guard)
            if why is not None:
                stats.reject(ids[i], why)
                continue
            texts[i], sources[i] = text, f"{GENERATED}:{name}"
            stats.n_described += 1
        done += len(chunk)
        if progress is not None:
            progress(done, stats.n_targets)

    out = features.with_columns(pl.Series(DESCRIPTION, texts, dtype=pl.String),
                                pl.Series(DESCRIPTION_SOURCE, sources, dtype=pl.String))
    stats.seconds = time.perf_counter() - start
    return DescribeResult(out, stats)


__all__ = [
    "DESCRIPTION",
    "DESCRIPTION_SOURCE",
    "EXAMPLE_TITLE",
    "GENERATED",
    "GIVEN",
    "IMPORTED",
    "DescribeResult",
    "DescribeStats",
    "DescriptionCache",
    "check_description",
    "clean_description",
    "describe_items",
    "describe_messages",
    "descriptions_root",
    "display_titles",
    "item_facts",
    "prompt_key",
]
