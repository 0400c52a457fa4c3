"""Item text: one string per item, built from the catalogue's text fields.

The default template is a sequence of *segments*, one per text field the
dataset has (title and year, genres, categories, brand, tags, description,
reviews, ...).  A segment is dropped for an item whose field is missing, null
or blank, so no text ever reads ``"None"`` or ``"Genres: ."``.  ``|``-joined
lists (the MovieLens convention for ``genres`` and ``tags``) and Polars list
columns are rendered as ``", "``-separated, and MovieLens titles are read
article-first (``"Usual Suspects, The"`` -> ``"The Usual Suspects"``).

A user template is a Python format string over the field names
(``"{title}: {description}"``); missing values render as ``""`` there.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from recfuse.data.dataset import Interactions


class TextError(ValueError):
    """Bad text input: a template field the dataset lacks, no item text, no model."""


# Default segments in reading order.  Each segment lists alternatives: the
# first whose fields all have a value for the item is used; if none has, the
# segment is dropped for that item.
DEFAULT_SEGMENTS: tuple[tuple[str, ...], ...] = (
    ("{title} ({year}).", "{title}."),
    ("Genres: {genres}.",),
    ("Categories: {categories}.",),
    ("Brand: {brand}.",),
    ("Tags: {tags}.",),
    ("{description}",),
    ("{overview}",),
    ("{plot}",),
    ("{summary}",),
    ("Reviews: {reviews}",),
)

_SPACES = re.compile(r"\s+")


def template_fields(template: str) -> list[str]:
    """Field names used by a format string, in order, without repeats.

    Examples
    --------
    >>> template_fields("{title} ({year}) {title}")
    ['title', 'year']
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise TextError(f"bad template {template!r}: {err}") from None
    names: list[str] = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            raise TextError(f"bad template {template!r}: use field names like {{title}}, not positional {{}}")
        name = re.split(r"[.\[]", field, maxsplit=1)[0]
        if name not in names:
            names.append(name)
    return names


def default_segments(columns: Sequence[str]) -> list[tuple[str, ...]]:
    """The default segments that can apply to a frame with ``columns``.

    Examples
    --------
    >>> default_segments(["item_id", "title", "genres"])
    [('{title}.',), ('Genres: {genres}.',)]
    """
    have = set(columns)
    out: list[tuple[str, ...]] = []
    for segment in DEFAULT_SEGMENTS:
        usable = tuple(alt for alt in segment if set(template_fields(alt)) <= have)
        if usable:
            out.append(usable)
    return out


_TRAILING_ARTICLE = re.compile(
    r"^(?P<name>.+?), (?P<article>The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El|Los|Las|Un|Une|Den|Det)"
    r"(?P<rest> \(.*\))?$"
)


def natural_title(title: str) -> str:
    """MovieLens-style ``"Usual Suspects, The"`` -> ``"The Usual Suspects"``.

    Language models (and people typing queries) read titles article-first.

    Examples
    --------
    >>> natural_title("Usual Suspects, The")
    'The Usual Suspects'
    >>> natural_title("City of Lost Children, The (Cité des enfants perdus, La)")
    'The City of Lost Children (Cité des enfants perdus, La)'
    >>> natural_title("Appartement, L'")
    "L'Appartement"
    """
    m = _TRAILING_ARTICLE.match(title)
    if m is None:
        return title
    article = m["article"]
    sep = "" if article.endswith("'") else " "
    return f"{article}{sep}{m['name']}{m['rest'] or ''}"


def render_value(value: Any) -> str | None:
    """A field value as item text: lists and ``a|b`` joined by commas, spaces collapsed; ``None`` for missing/blank."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        value = int(value) if value.is_integer() else value
    if isinstance(value, list | tuple):
        parts = [p for p in (render_value(v) for v in value) if p]
        return ", ".join(parts) or None
    text = str(value)
    if "|" in text:
        text = ", ".join(p.strip() for p in text.split("|") if p.strip())
    text = _SPACES.sub(" ", text).strip()
    return text or None


def _format(template: str, row: Mapping[str, str | None]) -> str:
    return template.format_map({k: "" if v is None else v for k, v in row.items()})


@dataclass(frozen=True)
class ItemTexts:
    """Texts of all items plus what was used to build them.

    Attributes
    ----------
    texts
        One string per item, in item-index order (``""`` for items without text).
    template
        The template used: the user's, or the default segments joined by ``" "``.
    fields
        Item-feature columns read.
    n_empty
        Items whose text is ``""``.
    """

    texts: list[str]
    template: str
    fields: list[str]
    n_empty: int


def build_texts(features: pl.DataFrame, template: str | None = None, name: str = "items") -> ItemTexts:
    """Build one text per row of an item-feature frame (first column = item id).

    Parameters
    ----------
    features
        One row per item; the first column is the id, the others are fields.
    template
        Python format string over field names; ``None`` uses the default
        segments for the fields the frame has.
    name
        The dataset's name, for error messages.

    Raises
    ------
    TextError
        No known text field (default template), or the template names a field
        the frame lacks.

    Examples
    --------
    >>> import polars as pl
    >>> feats = pl.DataFrame({"id": ["a", "b"], "title": ["Heat", None], "year": [1995, None]})
    >>> built = build_texts(feats)
    >>> built.texts, built.template, built.n_empty
    (['Heat (1995).', ''], '{title} ({year}).', 1)
    """
    if features.width < 2:
        raise TextError(f"dataset {name!r} has no item text (no item features beyond the id); give a catalogue "
                        "with text columns (--items FILE --text-columns title,description)")
    available = features.columns[1:]
    if template is None:
        segments = default_segments(available)
        if not segments:
            raise TextError(
                f"dataset {name!r}: none of the default text fields "
                f"(title, year, genres, categories, brand, tags, description, ...) is in the item features "
                f"(available fields: {', '.join(available)}); pass a template such as '{{{available[0]}}}'"
            )
        used_template = " ".join(seg[0] for seg in segments)
    else:
        segments = [(template,)]
        used_template = template
    fields = list(dict.fromkeys(f for seg in segments for alt in seg for f in template_fields(alt)))
    missing = [f for f in fields if f not in available]
    if missing:
        raise TextError(
            f"template field {missing[0]!r} is not among the item fields of dataset {name!r} "
            f"(available fields: {', '.join(available)})"
        )
    columns = {f: features[f].to_list() for f in fields}
    seg_fields = [[template_fields(alt) for alt in seg] for seg in segments]
    texts: list[str] = []
    for i in range(features.height):
        row = {f: render_value(columns[f][i]) for f in fields}
        title = row.get("title")
        if title:
            row["title"] = natural_title(title)
        if template is not None:
            text = _format(template, row) if any(v is not None for v in row.values()) else ""
        else:
            parts = []
            for seg, names in zip(segments, seg_fields, strict=True):
                for alt, alt_fields in zip(seg, names, strict=True):
                    if all(row[f] is not None for f in alt_fields):
                        parts.append(_format(alt, row))
                        break
            text = " ".join(parts)
        texts.append(_SPACES.sub(" ", text).strip())
    return ItemTexts(texts=texts, template=used_template, fields=fields, n_empty=sum(1 for t in texts if not t))


def build_item_texts(data: Interactions, template: str | None = None) -> ItemTexts:
    """Build one text per item of ``data`` (item-index order); see :func:`build_texts`.

    Raises
    ------
    TextError
        The dataset has no item features, or see :func:`build_texts`.

    Examples
    --------
    >>> import polars as pl
    >>> from recfuse.data.dataset import Interactions
    >>> feats = pl.DataFrame({"item_id": ["a", "b"], "title": ["Up", None], "genres": ["Animation|Comedy", None]})
    >>> data = Interactions.from_frame(pl.DataFrame({"user_id": ["u"], "item_id": ["a"]}), item_features=feats)
    >>> built = build_item_texts(data)
    >>> built.texts, built.n_empty
    (['Up. Genres: Animation, Comedy.', ''], 1)
    """
    if data.item_features is None:
        raise TextError(
            f"dataset {data.name!r} has no item text (no item catalogue); give one with --items FILE "
            "(a CSV/Parquet with the item id and title/description columns; --item-id, --text-columns), "
            "or items_path= in Python"
        )
    return build_texts(data.item_features, template, name=data.name)


def item_texts(data: Interactions, template: str | None = None) -> list[str]:
    """One text per item, in item-index order (see :func:`build_item_texts`).

    Examples
    --------
    >>> import polars as pl
    >>> from recfuse.data.dataset import Interactions
    >>> feats = pl.DataFrame({"item_id": ["1"], "title": ["Toy Story"], "year": ["1995"],
    ...                       "genres": ["Animation|Children's|Comedy"], "tags": [None]})
    >>> data = Interactions.from_frame(pl.DataFrame({"user_id": ["u"], "item_id": ["1"]}), item_features=feats)
    >>> item_texts(data)
    ["Toy Story (1995). Genres: Animation, Children's, Comedy."]
    >>> item_texts(data, "{title} / {genres}")
    ["Toy Story / Animation, Children's, Comedy"]
    """
    return build_item_texts(data, template).texts
