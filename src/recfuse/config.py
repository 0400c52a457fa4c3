"""Model configs: the shared root class and the helpers that build a config from text.

:class:`ModelConfig` is the root of every model's ``Config`` (kept here so
that trainer and models import it without a cycle).  The helpers turn the
command line's ``MODEL.PARAM=VALUE`` settings and seed lists into typed
values; they are what ``recfuse benchmark``, ``recfuse ablate`` and
``recfuse train`` parse their options with.

Nothing heavy is imported at module import time (no torch, no typer, no
``recfuse.evaluate``): the registry (:data:`recfuse.models.MODELS`) is
imported inside the functions that need it, because ``recfuse.models``
imports this module.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


@dataclasses.dataclass
class ModelConfig:
    """Hyperparameters shared by name across models."""

    seed: int = 0
    """Seed of every random draw of a fit (initial weights, batches, dropout, negatives)."""


def config_fields(model: str) -> dict[str, Any]:
    """``{field name: type}`` of a registered model's ``Config`` (types resolved).

    Examples
    --------
    >>> config_fields("itemknn")["neighbours"]
    <class 'int'>
    """
    from recfuse.models import MODELS

    cls = MODELS[model].Config
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(cls)}


def make_config(model: str, params: dict[str, Any]) -> ModelConfig:
    """The model's ``Config`` with ``params`` applied; unknown names raise ``ValueError``.

    Values the config refuses (a gate name, a range) raise ``ValueError`` too.

    Examples
    --------
    >>> make_config("itemknn", {"neighbours": 50}).neighbours
    50
    """
    from recfuse.models import MODELS

    fields = config_fields(model)
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(f"{model}: unknown hyperparameter(s) {unknown}; {model} has {sorted(fields)}")
    config: ModelConfig = MODELS[model].Config(**params)
    return config


def coerce(value: str, tp: Any) -> Any:
    """Parse the text ``value`` as type ``tp`` (a Config field's annotation).

    Handles ``int``, ``float``, ``bool``, ``str``, ``X | None`` and ``Literal``;
    anything else is passed through as the string.  A value that does not
    parse raises ``ValueError`` saying why.

    Examples
    --------
    >>> coerce("64", int), coerce("1e-3", float), coerce("no", bool), coerce("none", int | None)
    (64, 0.001, False, None)
    """
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        if value.lower() in {"none", "null"} and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if typing.get_origin(tp) is typing.Literal:
        for option in args:
            if str(option) == value:
                return option
        raise ValueError(f"{value!r} is not one of {list(args)}")
    if tp is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"{value!r} is not a boolean (true/false)")
    if tp is int:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
    if tp is float:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    return value


def parse_overrides(items: list[str], models: list[str]) -> dict[str, dict[str, Any]]:
    """``["als.reg=0.1", ...]`` to ``{"als": {"reg": 0.1}}``, typed by each model's Config.

    Every item must name a model of ``models`` and one of its parameters
    (not ``seed``: seeds are the runner's).  Each model's resulting config is
    built once, so a value its config refuses fails here, before any fit.

    Raises
    ------
    ValueError
        Naming the bad item and why (the CLI shows the message as a usage error).

    Examples
    --------
    >>> parse_overrides(["itemknn.neighbours=50", "als.reg=0.1"], ["als", "itemknn"])
    {'itemknn': {'neighbours': 50}, 'als': {'reg': 0.1}}
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        m = re.fullmatch(r"\s*([\w-]+)\.(\w+)\s*=(.*)", item)
        if not m:
            raise ValueError(f"{item!r}: expected MODEL.PARAM=VALUE, e.g. als.reg=0.1")
        model, param, value = m.group(1), m.group(2), m.group(3).strip()
        if model not in models:
            raise ValueError(f"{item!r}: model {model!r} is not in --models {models}")
        fields = config_fields(model)
        if param == "seed":
            raise ValueError(f"{item!r}: seeds come from --seeds")
        if param not in fields:
            raise ValueError(f"{item!r}: {model} has no parameter {param!r}; it has {sorted(f for f in fields if f != 'seed')}")
        try:
            out.setdefault(model, {})[param] = coerce(value, fields[param])
        except ValueError as e:
            raise ValueError(f"{item!r}: {e}") from None
    for model, params in out.items():
        try:
            make_config(model, params)
        except ValueError as e:
            raise ValueError(f"{model}: {e}") from None
    return out


def parse_seeds(spec: str) -> list[int]:
    """The seeds a ``--seeds`` text names: a count ``N`` (seeds ``0..N-1``) or a list of seeds and ranges.

    ``"3"`` is the count (0, 1, 2); ``"10-14"`` a range (both ends included);
    ``"0,3,7"`` and ``"0-2,5"`` lists.  A single seed is a one-seed range,
    ``"7-7"``.  The seeds come back in the order written; a repeated seed
    or a negative one raises ``ValueError``.

    Examples
    --------
    >>> parse_seeds("3"), parse_seeds("10-14"), parse_seeds("0-2,5"), parse_seeds("7-7")
    ([0, 1, 2], [10, 11, 12, 13, 14], [0, 1, 2, 5], [7])
    """
    text = spec.strip()
    if re.fullmatch(r"\d+", text):
        n = int(text)
        if n < 1:
            raise ValueError(f"{spec!r}: a seed count must be at least 1")
        return list(range(n))
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ValueError(f"{spec!r}: expected a count (3), a range (10-14) or a list (0,3,7 or 0-2,5)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise ValueError(f"{spec!r}: range {lo}-{hi} runs backwards")
        seeds += range(lo, hi + 1)
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise ValueError(f"{spec!r}: seed(s) {dup} listed twice")
    return seeds


def format_seeds(seeds: list[int]) -> str:
    """The shortest ``--seeds`` text for a list of seeds (inverse of :func:`parse_seeds` for lists).

    Examples
    --------
    >>> format_seeds([10, 11, 12, 13, 14]), format_seeds([0, 1, 2, 5]), format_seeds([7]), format_seeds([])
    ('10-14', '0-2,5', '7-7', '')
    """
    parts: list[str] = []
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(f"{seeds[i]}-{seeds[j]}" if j > i or len(seeds) == 1 else str(seeds[i]))
        i = j + 1
    return ",".join(parts)


__all__ = ["ModelConfig", "coerce", "config_fields", "format_seeds", "make_config", "parse_overrides", "parse_seeds"]
