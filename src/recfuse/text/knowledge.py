"""Item descriptions from outside the dataset: import them by item id, or match them by title and year.

A description file is JSON (``{"id": "text", ...}``, ``{"id": {"description": ..., "title": ...}}``, a
list of objects, or JSON Lines) or a table (CSV / TSV / Parquet) with an id and/or a title column and a
text column.  Each record is matched to one of the dataset's items:

* ``key="id"``: the record's id is the dataset's item id;
* ``key="title"``: the record's normalised title and year equal the item's (a year one off is accepted
  when nothing matches exactly: release dates and title years disagree by one now and then).  A record
  without a title column has its title read from the start of its text (``"Toy Story (1995)" is a ...``);
* ``key="auto"``: ids where they agree with the titles, else titles.  Two datasets can share id *values*
  that mean different items (MovieLens 100K's ``1..1682`` and MovieLens' movieIds), so ids are trusted only
  when, on the ids both sides have, most titles agree too.

The matched texts become the items' ``description`` field (:func:`apply_descriptions`), which the default
item-text template reads, so the encoder, the embedding cache (keyed by encoder and text hash) and every
model reading text pick them up.  ``recfuse text import FILE --dataset NAME`` writes them to a catalogue
file that ``--items FILE`` adds to the dataset in every later command.

Examples
--------
>>> import json, tempfile, pathlib
>>> import polars as pl
>>> from recfuse.data.dataset import Interactions
>>> feats = pl.DataFrame({"item_id": ["1", "2"], "title": ["Usual Suspects, The", "Heat"], "year": ["1995", "1995"]})
>>> data = Interactions.from_frame(pl.DataFrame({"user_id": ["u", "u"], "item_id": ["1", "2"]}), item_features=feats)
>>> f = pathlib.Path(tempfile.mkdtemp()) / "d.json"
>>> _ = f.write_text(json.dumps({"50": '"The Usual Suspects (1995)" is a crime thriller.'}))
>>> result = import_descriptions(data, f)
>>> result.report.key, result.report.n_matched, [m.title for m in result.report.misses]
('title', 1, ['Heat'])
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recfuse.columns import Columns
from recfuse.data.dataset import DataError, Interactions
from recfuse.data.spec import merge_catalogue
from recfuse.text.build import TextError, natural_title

#: Field names tried, in order, when a description file does not name its columns.
ID_FIELDS = ("item_id", "id", "movieId", "movie_id", "itemId", "sku", "asin", "business_id")
TEXT_FIELDS = ("description", "text", "overview", "plot", "summary", "content")
TITLE_FIELDS = ("title", "name", "movie_title")
YEAR_FIELDS = ("year", "release_year")
#: The item field imported texts land in (read by :data:`recfuse.text.build.DEFAULT_SEGMENTS`).
DESCRIPTION = "description"
KEYS = ("auto", "id", "title")

_YEAR = r"(1[89]\d\d|20\d\d)"
# "Toy Story (1995)" is ..., Jumanji (1995) is ..., "Trial by Jury" (1994) ..., "Hate (La Haine, 1995)" ...
_LEADING_TITLE = re.compile(r'^\W{0,3}(?P<title>[^"“”]{1,200}?)["”]?\s*\((?:(?P<alt>[^()]{1,80}), )?' + _YEAR + r"\)")
_QUOTED = re.compile(r'["“](?P<title>[^"“”]{1,150}?)[,.]?["”]')
_ANY_YEAR = re.compile(r"\b" + _YEAR + r"\b")
_ARTICLES = ("the", "a", "an", "la", "le", "les", "l", "il", "el", "los", "las", "das", "der", "die", "un", "une")
_NON_WORD = re.compile(r"[^0-9a-z]+")


class DescriptionError(TextError):
    """A description file that cannot be read or matched (bad format, no id/text column, nothing matched)."""


def normalise_title(title: str) -> str:
    """A title reduced to what two spellings of it share: article-first, no accents, punctuation or case.

    A leading article (English, French, Spanish, Italian, German) is dropped, ``&`` reads ``and``.

    Examples
    --------
    >>> normalise_title("Usual Suspects, The")
    'usual suspects'
    >>> normalise_title("The Usual Suspects")
    'usual suspects'
    >>> normalise_title("Amélie & Nino: Café!")
    'amelie and nino cafe'
    """
    text = natural_title(title.strip())
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower().replace("&", " and ")
    text = text.replace("'", "")
    words = _NON_WORD.sub(" ", text).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


def _keys(title: str) -> list[tuple[str, bool]]:
    """:func:`title_keys` with, for each, whether it names the whole title (``False``: a subtitle part)."""
    keys = [(normalise_title(title), True)]
    main = re.sub(r"\s*\([^()]*\)", "", title).strip()
    if main and main != title:
        keys.append((normalise_title(main), True))
    for alt in re.findall(r"\(([^()]*)\)", title):
        alt = re.sub(r"^\s*(a\.?k\.?a\.?|also known as)\s+", "", alt.strip().strip('"“”'), flags=re.IGNORECASE)
        keys.append((normalise_title(alt.strip('"“”')), True))
    parts = [p.strip() for p in re.split(r":\s+|\s+-\s+", main or title) if p.strip()]
    if len(parts) > 1:
        keys += [(normalise_title(parts[0]), False), (normalise_title(parts[-1]), False)]
    seen: set[str] = set()
    out = []
    for k, whole in keys:
        if k and k not in seen:
            seen.add(k)
            out.append((k, whole))
    return out


def title_keys(title: str) -> list[str]:
    """Normalised forms a title can be matched by, most specific first: the whole title, the title without
    its bracketed alternatives, each alternative (``"a.k.a."`` dropped), then the parts of a title with a
    subtitle (``"Star Wars: Episode V - The Empire Strikes Back"``: ``"star wars"``, ``"empire strikes back"``).

    Examples
    --------
    >>> title_keys("City of Lost Children, The (Cité des enfants perdus, La)")
    ['city of lost children cite des enfants perdus la', 'city of lost children', 'cite des enfants perdus']
    >>> title_keys("Indian Summer (a.k.a. Alive & Kicking)")
    ['indian summer a k a alive and kicking', 'indian summer', 'alive and kicking']
    >>> title_keys("Star Wars: Episode V - The Empire Strikes Back")
    ['star wars episode v the empire strikes back', 'star wars', 'empire strikes back']
    """
    return [k for k, _ in _keys(title)]


def title_from_text(text: str) -> tuple[str | None, str | None]:
    """The ``(title, year)`` a description names at its start, or ``(None, None)``.

    Reads ``"Title (Year)" is ...``, ``Title (Year) is ...``, ``"Title" (Year) ...``, ``"Title (Alt, Year)"``
    and, failing those, the first quoted title with the first year of the opening sentence.

    Examples
    --------
    >>> title_from_text('"Toy Story (1995)" is a pioneering animated film')
    ('Toy Story', '1995')
    >>> title_from_text('"Trial by Jury" (1994) is a gripping drama')
    ('Trial by Jury', '1994')
    >>> title_from_text('"Hate (La Haine, 1995)" is a French drama')
    ('Hate (La Haine)', '1995')
    >>> title_from_text('The 1978 animated film "The Lord of the Rings," directed by Ralph Bakshi')
    ('The Lord of the Rings', '1978')
    >>> title_from_text('The movie "Anna (1996)" is a drama')
    ('Anna', '1996')
    >>> title_from_text('"Hard 8" (also known as "Sydney" or "Hard Eight") is a 1996 drama')
    ('Hard 8 (Sydney) (Hard Eight)', '1996')
    >>> title_from_text("no title here")
    (None, None)
    """
    head = text.strip()[:400]
    m = _LEADING_TITLE.match(head)
    if m is not None and not re.search(r"\bis an?\b", m["title"]) and len(m["title"]) <= 150:
        title = m["title"].strip().strip('"“”').strip()
        if m["alt"]:
            title = f"{title} ({m['alt'].strip()})"
        return (title or None), m[3]
    opening = head[:250]
    quotes = list(_QUOTED.finditer(opening))
    if not quotes:
        return None, None
    first = quotes[0]
    if opening[: first.start()].count(" ") > 4:  # the quote is not what the text opens with
        return None, None
    inner = _LEADING_TITLE.match(first["title"])  # 'The movie "Anna (1996)" is ...'
    if inner is not None:
        return title_from_text(first["title"])
    y = _ANY_YEAR.search(opening, first.end()) or _ANY_YEAR.search(opening[: first.start()])
    if y is None:
        return None, None
    alternates = [q["title"].strip() for q in quotes[1:] if q.end() <= y.start()]
    # '"Hard 8" (also known as "Sydney" or "Hard Eight") is a 1996 ...'
    return first["title"].strip() + "".join(f" ({alt})" for alt in alternates), y[1]


@dataclass(frozen=True)
class Miss:
    """A dataset item no description matched (``title``/``year`` as the dataset has them)."""

    item_id: str
    title: str | None
    year: str | None


@dataclass
class ImportReport:
    """What an import matched.

    Attributes
    ----------
    source
        The description file.
    key
        How records were matched: ``"id"`` or ``"title"``.
    why
        Why ``key`` was chosen (for ``key="auto"``), or ``""``.
    n_records
        Records read from the file (with a non-empty text).
    n_items
        Items in the dataset.
    n_matched
        Items that got a description.
    n_near_year
        Of those, matched by title with the year one off.
    n_ambiguous
        Items whose title and year matched several records (the first in file order was taken).
    n_unused
        Records no item took.
    misses
        Items without a description, in item order.
    """

    source: str
    key: str
    n_records: int
    n_items: int
    n_matched: int
    why: str = ""
    n_near_year: int = 0
    n_ambiguous: int = 0
    n_unused: int = 0
    misses: list[Miss] = field(default_factory=list)

    @property
    def match_rate(self) -> float:
        """Share of the dataset's items that got a description."""
        return self.n_matched / self.n_items if self.n_items else 0.0

    def summary(self) -> str:
        """One line: matched / items, by what, and what was left over.

        Examples
        --------
        >>> ImportReport("d.json", "title", n_records=10, n_items=4, n_matched=3).summary()
        'd.json: 3 of 4 items matched (75.0%) by title; 1 item without a description; 0 of 10 records unused'
        """
        near = f", {self.n_near_year} with the year one off" if self.n_near_year else ""
        amb = f", {self.n_ambiguous} ambiguous (first record taken)" if self.n_ambiguous else ""
        n_miss = self.n_items - self.n_matched
        return (
            f"{self.source}: {self.n_matched} of {self.n_items} items matched ({100 * self.match_rate:.1f}%) by "
            f"{self.key}{near}{amb}; {n_miss} item{'' if n_miss == 1 else 's'} without a description; "
            f"{self.n_unused} of {self.n_records} records unused"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the misses as ``{"item_id", "title", "year"}`` rows)."""
        return {
            "source": self.source, "key": self.key, "why": self.why, "n_records": self.n_records,
            "n_items": self.n_items, "n_matched": self.n_matched, "match_rate": round(self.match_rate, 4),
            "n_near_year": self.n_near_year, "n_ambiguous": self.n_ambiguous, "n_unused": self.n_unused,
            "misses": [{"item_id": m.item_id, "title": m.title, "year": m.year} for m in self.misses],
        }


@dataclass
class ImportResult:
    """The matched descriptions and the report.

    Attributes
    ----------
    descriptions
        ``item_id, description``: one row per matched item, in item order (a catalogue file's content).
    report
        :class:`ImportReport`.
    """

    descriptions: pl.DataFrame
    report: ImportReport


# ------------------------------------------------------------------ reading
def _pick(names: Sequence[str], wanted: str | None, candidates: Sequence[str], what: str, path: Path,
          required: bool) -> str | None:
    if wanted is not None:
        if wanted not in names:
            raise DescriptionError(f"{path}: no {what} field {wanted!r} (have: {', '.join(names)})")
        return wanted
    lower = {n.lower(): n for n in names}
    for c in candidates:
        if c.lower() in lower:
            return lower[c.lower()]
    if required:
        raise DescriptionError(f"{path}: no {what} field (looked for {', '.join(candidates)}; have: {', '.join(names)}); "
                           f"name it with --{what}-field")
    return None


def _records_frame(rows: list[dict[str, Any]], path: Path) -> pl.DataFrame:
    if not rows:
        raise DescriptionError(f"{path}: no records")
    names = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame({n: [None if r.get(n) is None else str(r.get(n)) for r in rows] for n in names},
                        schema={n: pl.String for n in names})


def _read_json(path: Path) -> pl.DataFrame:
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        try:
            rows = [json.loads(line) for line in raw.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise DescriptionError(f"{path}: line {err.lineno}: not JSON ({err.msg})") from None
        if not all(isinstance(r, dict) for r in rows):
            raise DescriptionError(f"{path}: every JSON Lines record must be an object")
        return _records_frame(rows, path)
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DescriptionError(f"{path}: line {err.lineno}: not JSON ({err.msg})") from None
    if isinstance(obj, dict):
        if all(isinstance(v, str) for v in obj.values()):  # {"id": "text"}
            return _records_frame([{"item_id": k, "description": v} for k, v in obj.items()], path)
        if all(isinstance(v, dict) for v in obj.values()):  # {"id": {"description": ...}}
            return _records_frame([{"item_id": k, **v} for k, v in obj.items()], path)
        raise DescriptionError(f"{path}: a JSON object must map ids to texts or to objects with a text field")
    if isinstance(obj, list) and all(isinstance(r, dict) for r in obj):
        return _records_frame(obj, path)
    raise DescriptionError(f"{path}: expected a JSON object keyed by item id, or a list of objects")


def read_descriptions(
    path: str | Path,
    id_field: str | None = None,
    text_field: str | None = None,
    title_field: str | None = None,
    year_field: str | None = None,
) -> pl.DataFrame:
    """Read a description file into ``key, title, year, description`` (all strings; ``key``/``title``/``year``
    may be null).  Records with an empty text are dropped.

    A title of the form ``"Heat (1995)"`` is split into title and year; a record with neither a title field
    nor a year gets them from the start of its text (:func:`title_from_text`).

    Parameters
    ----------
    path
        ``.json``, ``.jsonl``, ``.csv``, ``.tsv`` or ``.parquet``.
    id_field, text_field, title_field, year_field
        Field names; by default the first of :data:`ID_FIELDS`, :data:`TEXT_FIELDS`, :data:`TITLE_FIELDS`,
        :data:`YEAR_FIELDS` the file has.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = f.write_text('name,overview\\n"Heat (1995)",A heist in Los Angeles.\\n')
    >>> read_descriptions(f).row(0)
    (None, 'Heat', '1995', 'A heist in Los Angeles.')
    """
    path = Path(path)
    if not path.is_file():
        raise DescriptionError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".json", ".jsonl", ".ndjson"):
            frame = _read_json(path)
        elif suffix in (".parquet", ".pq"):
            frame = pl.read_parquet(path)
        elif suffix in (".csv", ".tsv", ".tab"):
            frame = pl.read_csv(path, separator="\t" if suffix != ".csv" else ",", infer_schema=False)
        else:
            raise DescriptionError(f"{path}: unknown file type {suffix!r} (use .json, .jsonl, .csv, .tsv or .parquet)")
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError) as err:
        raise DescriptionError(f"{path}: cannot read: {str(err).strip().splitlines()[0]}") from None
    names = frame.columns
    text_col = _pick(names, text_field, TEXT_FIELDS, "text", path, required=True)
    id_col = _pick(names, id_field, ID_FIELDS, "id", path, required=False)
    title_col = _pick(names, title_field, TITLE_FIELDS, "title", path, required=False)
    year_col = _pick(names, year_field, YEAR_FIELDS, "year", path, required=False)
    n = frame.height
    col = lambda c: [None] * n if c is None else [None if v is None else str(v).strip() or None for v in frame[c]]
    keys, titles, years, texts = col(id_col), col(title_col), col(year_col), col(text_col)
    rows: list[tuple[str | None, str | None, str | None, str]] = []
    for key, title, year, text in zip(keys, titles, years, texts, strict=True):
        if not text:
            continue
        if title is not None and year is None:
            m = re.match(r"^(.*\S)\s*\(" + _YEAR + r"\)\s*$", title)
            if m is not None:
                title, year = m[1], m[2]
        if title is None and year is None:
            title, year = title_from_text(text)
        rows.append((key, title, year, text))
    if not rows:
        raise DescriptionError(f"{path}: no record has a text in field {text_col!r}")
    cols = ("key", "title", "year", DESCRIPTION)
    return pl.DataFrame([list(c) for c in zip(*rows, strict=True)], schema={c: pl.String for c in cols}, orient="col")


# ----------------------------------------------------------------- matching
def _item_table(data: Interactions) -> tuple[list[str], list[str | None], list[str | None]]:
    ids = data.items.external_ids.astype(str).tolist()
    feats = data.item_features
    if feats is None:
        return ids, [None] * len(ids), [None] * len(ids)
    titles = feats["title"].cast(pl.String).to_list() if "title" in feats.columns else [None] * len(ids)
    years = feats["year"].cast(pl.String).to_list() if "year" in feats.columns else [None] * len(ids)
    years = [None if y is None else str(y).split(".")[0] for y in years]  # a float year column reads "1995.0"
    return ids, titles, years


def _by_id(records: pl.DataFrame, ids: list[str]) -> dict[int, int]:
    row_of: dict[str, int] = {}
    for r, key in enumerate(records["key"].to_list()):
        if key is not None:
            row_of.setdefault(key, r)
    return {i: row_of[item] for i, item in enumerate(ids) if item in row_of}


def _compact(key: str) -> str:
    # Spaces dropped: "Alien³" reads "alien3", ml-100k writes "Alien 3".
    return key.replace(" ", "")


_MIN_PART = 5  # a subtitle part shorter than this (compacted) is too generic to match by


def _title_index(records: pl.DataFrame) -> dict[tuple[str, str | None], list[tuple[int, bool]]]:
    """``{(compact key, year): [(record, whole title?), ...]}``."""
    index: dict[tuple[str, str | None], list[tuple[int, bool]]] = {}
    for r, (title, year) in enumerate(zip(records["title"].to_list(), records["year"].to_list(), strict=True)):
        if title is None:
            continue
        for k, whole in _keys(title):
            if whole or len(_compact(k)) >= _MIN_PART:
                index.setdefault((_compact(k), year), []).append((r, whole))
    return index


def _split_year(title: str | None, year: str | None) -> tuple[str | None, str | None]:
    """A year that is not four digits is looked for in the title (ml-100k has ``"... (1995) (V)"``)."""
    if title is None or (year is not None and re.fullmatch(_YEAR, year)):
        return title, year
    m = re.search(r"\s*\(" + _YEAR + r"\)", title)
    if m is None:
        return title, year
    return (title[: m.start()] + title[m.end():]).strip(), m[1]


def _by_title(
    records: pl.DataFrame, titles: Sequence[str | None], years: Sequence[str | None]
) -> tuple[dict[int, int], int, int]:
    """``{item: record}`` by normalised title + year, the number matched with the year one off, the ambiguous.

    The item's keys are tried most specific first; the first with a match decides.  A whole-title match
    takes the first record when several share it; a subtitle part must point at one record only.
    """
    index = _title_index(records)
    out: dict[int, int] = {}
    near = ambiguous = 0
    for i, (raw_title, raw_year) in enumerate(zip(titles, years, strict=True)):
        title, year = _split_year(raw_title, raw_year)
        if not title:
            continue
        keys = _keys(title)
        tries: list[str | None] = [year]
        if year is not None and year.isdigit():
            tries += [str(int(year) - 1), str(int(year) + 1)]
        for n_try, y in enumerate(tries):
            found: list[int] = []
            for k, whole in keys:
                hits = index.get((_compact(k), y), [])
                rows = list(dict.fromkeys(r for r, w in hits if w)) if whole else []
                if not rows:  # a subtitle part on either side: it must point at one record
                    distinct = list(dict.fromkeys(r for r, _ in hits))
                    rows = distinct if len(distinct) == 1 else []
                if rows:
                    found = rows
                    break
            if found:
                out[i] = found[0]
                near += n_try > 0
                ambiguous += len(found) > 1
                break
    return out, near, ambiguous


def match_descriptions(
    data: Interactions, records: pl.DataFrame, key: str = "auto", source: str = "descriptions"
) -> ImportResult:
    """Match records from :func:`read_descriptions` to ``data``'s items; see the module docstring for ``key``.

    Raises
    ------
    DescriptionError
        ``key`` unknown, ``key="id"`` on records without ids, ``key="title"`` on a dataset without titles,
        or no item matched.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> feats = pl.DataFrame({"item_id": ["1", "2"], "title": ["Heat", "Up"], "year": ["1995", "2009"]})
    >>> data = Interactions.from_frame(pl.DataFrame({"user_id": ["u", "u"], "item_id": ["1", "2"]}), item_features=feats)
    >>> recs = pl.DataFrame({"key": ["2"], "title": ["Up"], "year": ["2009"], "description": ["Balloons."]})
    >>> match_descriptions(data, recs).report.key
    'id'
    """
    if key not in KEYS:
        raise DescriptionError(f"unknown --key {key!r} (use {', '.join(KEYS)})")
    ids, titles, years = _item_table(data)
    has_ids = records["key"].is_not_null().any()
    has_titles = records["title"].is_not_null().any() and any(titles)
    why = ""
    if key == "id" and not has_ids:
        raise DescriptionError(f"{source}: --key id, but the records have no id field")
    if key == "title" and not has_titles:
        raise DescriptionError(f"{source}: --key title needs titles on both sides (records: "
                           f"{'yes' if records['title'].is_not_null().any() else 'no'}, dataset "
                           f"{data.name!r}: {'yes' if any(titles) else 'no'})")
    id_match = _by_id(records, ids) if has_ids and key != "title" else {}
    if key == "auto":
        if not id_match:
            key, why = "title", "no record id is an item id of the dataset"
        elif not has_titles:
            key, why = "id", "no titles to check the ids against"
        else:
            rec_titles = records["title"].to_list()
            both = [(i, r) for i, r in id_match.items() if titles[i] and rec_titles[r]]
            agree = sum(bool(set(title_keys(str(titles[i]))) & set(title_keys(str(rec_titles[r])))) for i, r in both)
            share = agree / len(both) if both else 1.0
            key = "id" if share >= 0.5 else "title"
            why = (f"on the {len(both)} ids both sides have, {100 * share:.0f}% of the titles agree"
                   + ("" if key == "id" else ": the ids mean other items here"))
    near = ambiguous = 0
    if key == "id":
        match = id_match
    else:
        match, near, ambiguous = _by_title(records, titles, years)
    if not match:
        raise DescriptionError(f"{source}: no record matched an item of dataset {data.name!r} by {key}"
                           + (f" ({why})" if why else ""))
    order = sorted(match)
    texts = records[DESCRIPTION].to_list()
    frame = pl.DataFrame({Columns.ITEM: [ids[i] for i in order], DESCRIPTION: [texts[match[i]] for i in order]},
                         schema={Columns.ITEM: pl.String, DESCRIPTION: pl.String})
    misses = [Miss(ids[i], titles[i], years[i]) for i in range(len(ids)) if i not in match]
    report = ImportReport(
        source=source, key=key, why=why, n_records=records.height, n_items=len(ids), n_matched=len(match),
        n_near_year=near, n_ambiguous=ambiguous, n_unused=records.height - len(set(match.values())), misses=misses,
    )
    return ImportResult(frame, report)


def import_descriptions(
    data: Interactions,
    path: str | Path,
    key: str = "auto",
    *,
    id_field: str | None = None,
    text_field: str | None = None,
    title_field: str | None = None,
    year_field: str | None = None,
) -> ImportResult:
    """Read a description file and match it to ``data``'s items (:func:`read_descriptions` +
    :func:`match_descriptions`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from recfuse.data.dataset import Interactions
    >>> feats = pl.DataFrame({"item_id": ["7"], "title": ["Heat"], "year": ["1995"]})
    >>> data = Interactions.from_frame(pl.DataFrame({"user_id": ["u"], "item_id": ["7"]}), item_features=feats)
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = f.write_text("item_id,description\\n7,A heist in Los Angeles.\\n")
    >>> import_descriptions(data, f).descriptions.rows()
    [('7', 'A heist in Los Angeles.')]
    """
    records = read_descriptions(path, id_field, text_field, title_field, year_field)
    return match_descriptions(data, records, key, source=str(path))


def apply_descriptions(data: Interactions, descriptions: pl.DataFrame) -> Interactions:
    """``data`` with ``descriptions`` (``item_id, description``) as its items' ``description`` field.

    An imported text replaces a description the dataset had for that item; other items keep theirs.

    Examples
    --------
    >>> from recfuse.data.dataset import Interactions
    >>> from recfuse.text.build import item_texts
    >>> feats = pl.DataFrame({"item_id": ["7"], "title": ["Heat"]})
    >>> data = Interactions.from_frame(pl.DataFrame({"user_id": ["u"], "item_id": ["7"]}), item_features=feats)
    >>> item_texts(apply_descriptions(data, pl.DataFrame({"item_id": ["7"], "description": ["A heist."]})))
    ['Heat. A heist.']
    """
    try:
        return merge_catalogue(data, descriptions, origin="imported descriptions")
    except DataError as err:
        raise DescriptionError(str(err)) from None


def write_catalogue(descriptions: pl.DataFrame, out: str | Path) -> Path:
    """Write matched descriptions as a catalogue file (``.parquet`` or ``.csv``) for ``--items FILE``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = write_catalogue(pl.DataFrame({"item_id": ["7"], "description": ["A heist."]}),
    ...                       pathlib.Path(tempfile.mkdtemp()) / "items.parquet")
    >>> pl.read_parquet(out).rows()
    [('7', 'A heist.')]
    """
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() in (".parquet", ".pq"):
        descriptions.write_parquet(tmp)
    elif out.suffix.lower() == ".csv":
        descriptions.write_csv(tmp)
    else:
        raise DescriptionError(f"{out}: write a .parquet or .csv catalogue")
    tmp.replace(out)
    return out


def misses_table(misses: Iterable[Miss]) -> pl.DataFrame:
    """The misses as a frame (``item_id, title, year``), e.g. to write next to the catalogue.

    Examples
    --------
    >>> misses_table([Miss("3", "Heat", "1995")]).rows()
    [('3', 'Heat', '1995')]
    """
    rows = [(m.item_id, m.title, m.year) for m in misses]
    schema = {Columns.ITEM: pl.String, "title": pl.String, "year": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


__all__ = [
    "DESCRIPTION",
    "DescriptionError",
    "ImportReport",
    "ImportResult",
    "Miss",
    "apply_descriptions",
    "import_descriptions",
    "match_descriptions",
    "misses_table",
    "normalise_title",
    "read_descriptions",
    "title_from_text",
    "title_keys",
    "write_catalogue",
]
