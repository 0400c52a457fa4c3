"""mkdocs hook: pages generated from the code at build time, so they cannot drift from it.

* ``reference/configuration.md``: every field of every registered model's config dataclass
  (``recfuse.models.MODELS[name].Config``), with its type, default, the class that declares it and its
  attribute docstring (the string literal on the line after the field).
* Doctest lines (``>>> ...`` and their output) in docstrings are shown as ``pycon`` code blocks, so an output
  such as ``[[0, 1], []]`` is not read as a Markdown link.
* ``api/<package>.md``: one mkdocstrings section per public module found under ``src/recfuse/<package>``
  (walked at build time, so a module that moves or splits in two is picked up without editing the docs).

Wired in through ``hooks:`` in mkdocs.yml; nothing here runs outside ``mkdocs build`` / ``mkdocs serve``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import itertools
import re
import sys
import typing
from functools import cache
from pathlib import Path
from typing import Any

from markdown import Markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "recfuse"

# API pages: file name -> (title, what the page covers, the packages / top-level modules it holds).  A
# subpackage not named here gets a page of its own, and a top-level module not named here goes on the
# "core" page, so nothing public is left out (see _api_pages).
API_PAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "api/data.md": ("recfuse.data", "Readers, the dataset registry, `Interactions` and `IdMap`, splits.", ("data",)),
    "api/text.md": ("recfuse.text", "Item text building, the sentence encoder, the embedding cache.", ("text",)),
    "api/models.md": ("recfuse.models", "The model interface, the registry and every model.", ("models",)),
    "api/train.md": ("recfuse.train", "The trainer shared by the neural models.", ("train",)),
    "api/evaluate.md": ("recfuse.evaluate", "Metrics, the protocol, the benchmark runner, reports, significance.",
                        ("metrics", "evaluate")),
    "api/serve.md": ("recfuse.serve", "The HTTP service: app, engine, store, live state.", ("serve",)),
}
CORE_PAGE = ("api/core.md", "recfuse (top level)", "Modules at the package root: column names, configs, bundles.")
# Never documented as API: the command line (documented by `--help` and the guides).
SKIP = {"cli", "__main__", "__init__"}
NAV_PLACEHOLDER = "api/GENERATED"


# ----------------------------------------------------------------------------------------- API pages
def _public(path: Path) -> bool:
    return not any(part.startswith("_") for part in path.relative_to(SRC).with_suffix("").parts if part != "__init__")


def _modules(name: str) -> list[str]:
    """Dotted names of the public modules of ``recfuse.<name>`` (a package or a module), in file order."""
    base = SRC / PACKAGE
    if (base / f"{name}.py").is_file():
        return [f"{PACKAGE}.{name}"]
    folder = base / name
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.rglob("*.py")):
        if not _public(path) or path.name == "__main__.py":
            continue
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append(".".join(parts))
    return out


def _api_page(title: str, blurb: str, names: tuple[str, ...]) -> str:
    lines = [f"# {title}", "", blurb, ""]
    modules = [m for n in names for m in _modules(n)]
    if not modules:
        lines.append("*(no public modules found)*")
    for module in modules:
        lines += [f"## `{module}`", "", f"::: {module}", "    options:", "      heading_level: 3",
                  "      show_root_heading: false", "      show_root_toc_entry: false", ""]
    return "\n".join(lines)


def _api_pages() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """API_PAGES, plus a page per unnamed subpackage and the core page for unnamed top-level modules."""
    pages = dict(API_PAGES)
    named = {n for _, _, names in API_PAGES.values() for n in names}
    base = SRC / PACKAGE
    core = []
    for path in sorted(base.iterdir()):
        name = path.stem if path.suffix == ".py" else path.name
        if name in named or name in SKIP or name.startswith(("_", ".")):
            continue
        if path.is_dir() and (path / "__init__.py").is_file():
            pages[f"api/{name}.md"] = (f"{PACKAGE}.{name}", "", (name,))
        elif path.suffix == ".py":
            core.append(name)
    if core:
        uri, title, blurb = CORE_PAGE
        pages[uri] = (title, blurb, tuple(core))
    return pages


# ------------------------------------------------------------------------------- configuration page
@cache
def _class_docs(module_file: str, qualname: str) -> dict[str, str]:
    """Attribute docstrings of class ``qualname`` in ``module_file``: {field: first paragraph}."""
    tree = ast.parse(Path(module_file).read_text(encoding="utf-8"))
    node: Any = tree
    for part in qualname.split("."):
        node = next((n for n in getattr(node, "body", []) if isinstance(n, ast.ClassDef) and n.name == part), None)
        if node is None:
            return {}
    docs: dict[str, str] = {}
    body = node.body
    for stmt, nxt in itertools.pairwise(body):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            text = inspect.cleandoc(nxt.value.value).split("\n\n")[0]
            docs[stmt.target.id] = " ".join(text.split())
    return docs


def _docs_of(cls: type) -> dict[str, str]:
    try:
        path = inspect.getsourcefile(cls)
    except TypeError:
        return {}
    return _class_docs(path, cls.__qualname__) if path else {}


def _declared(cls: type, field: str) -> list[type]:
    """Classes of ``cls``'s MRO that declare ``field`` themselves (an annotation in their own body), nearest first."""
    return [k for k in cls.__mro__ if field in inspect.get_annotations(k)]


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "*required*"
    return f"`{value!r}`"


def _md(text: str) -> str:
    """reST inline markup of a docstring as Markdown: ``x`` -> `x`, :class:`~a.b.C` -> `C`."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _cell(text: str) -> str:
    return _md(text).replace("|", "\\|").replace("\n", " ")


def _type(f: dataclasses.Field[Any], hints: dict[str, Any]) -> str:
    hint = hints.get(f.name)
    if hint is not None and typing.get_origin(hint) is typing.Literal:  # show the allowed values
        return " \\| ".join(f"`{v!r}`" for v in typing.get_args(hint))
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", repr(f.type))
    return f"`{_cell(t)}`"


def _config_table(config: type) -> list[str]:
    lines = ["| field | type | default | declared in | description |", "|---|---|---|---|---|"]
    try:
        hints = typing.get_type_hints(config)
    except (NameError, TypeError):  # an annotation that does not resolve: show the written type instead
        hints = {}
    for f in dataclasses.fields(config):
        owners = _declared(config, f.name) or [config]
        doc = next((d for d in (_docs_of(k).get(f.name, "") for k in owners) if d), "")
        owner = owners[0]
        lines.append(f"| `{f.name}` | {_type(f, hints)} | {_default(f)} | `{owner.__name__}` | {_cell(doc)} |")
    return lines


def _bases(configs: list[type]) -> list[type]:
    """Classes that declare fields of more than one model's config (the shared bases), in MRO order."""
    seen: dict[type, set[type]] = {}
    for config in configs:
        for f in dataclasses.fields(config):
            for owner in _declared(config, f.name)[:1]:
                seen.setdefault(owner, set()).add(config)
    shared = [k for k, users in seen.items() if len(users) > 1 or k not in configs]
    return sorted(shared, key=lambda k: len(k.__mro__))


def _configuration_page() -> str:
    if str(SRC) not in sys.path:
        sys.path.insert(0, str(SRC))
    try:
        models = importlib.import_module(f"{PACKAGE}.models").MODELS
    except Exception as err:  # the page cannot be written without the registry: fail the build, saying why
        raise PluginError(f"docs/_hooks/generate.py: cannot import {PACKAGE}.models.MODELS: {err!r}") from err
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated at docs build time by docs/_hooks/generate.py from the config dataclasses of",
        "     recfuse.models.MODELS; edit the attribute docstrings in the code, not this page. -->",
        "",
        "Every model has one typed config, a dataclass declared once in the code.  This page is generated from",
        "those dataclasses when the docs are built, so it lists exactly the fields the code has.  Set a field",
        "",
        "* on the command line: `--set MODEL.FIELD=VALUE` (`recfuse benchmark`, which names the model) or",
        "  `--set FIELD=VALUE` (`recfuse train`, `recfuse ablate`: one model);",
        "* from Python: `MODELS[\"fusion\"](epochs=20, gate=\"fixed\")` or",
        "  `Fusion(FusionConfig(epochs=20))`.",
        "",
        "A field declared by a shared base class (`TrainConfig`, `SequentialConfig`, ...) has the same meaning",
        "in every model that inherits it; *declared in* names the class that declares the field (and so its",
        "default) for that model.",
        "",
    ]
    out += ["| model | class | config |", "|---|---|---|"]
    for name, cls in models.items():
        out.append(f"| [`{name}`](#{name}) | `{cls.__module__}.{cls.__name__}` | `{cls.Config.__name__}` |")
    out += ["", "The shared base classes:", ""]
    for base in _bases([cls.Config for cls in models.values()]):
        doc = inspect.cleandoc(base.__dict__.get("__doc__") or "").split("\n\n")[0]
        doc = "" if doc.startswith(base.__name__ + "(") else " ".join(doc.split())
        out.append(f"* `{base.__name__}` (`{base.__module__}`){': ' + _md(doc) if doc else ''}")
    out.append("")
    for name, cls in models.items():
        config = cls.Config
        doc = inspect.cleandoc(config.__dict__.get("__doc__") or "")  # its own, not a base class's
        where = f"`{cls.__module__}.{cls.__name__}`, config `{config.__module__}.{config.__qualname__}`."
        out += [f"## `{name}` {{ #{name} }}", "", where, ""]
        if doc and not doc.startswith(config.__name__ + "("):
            out += [_md(doc.split("\n\n")[0]), ""]
        out += _config_table(config)
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------- doctests as code blocks
class _Doctests(Preprocessor):
    """Wrap each run of doctest lines (``>>>``/``...`` prompts and the output up to a blank line) in a fence."""

    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        fence: str | None = None
        in_test = False
        indent = ""
        for line in lines:
            stripped = line.lstrip()
            if fence is None and not in_test and stripped.startswith(("```", "~~~")):
                fence = stripped[:3]
            elif fence is not None:
                if stripped.startswith(fence):
                    fence = None
                out.append(line)
                continue
            if fence is not None:
                out.append(line)
                continue
            if not in_test and stripped.startswith(">>>"):
                in_test = True
                indent = line[: len(line) - len(stripped)]
                out += ["", f"{indent}```pycon"]
            elif in_test and not stripped:
                in_test = False
                out.append(f"{indent}```")
            out.append(line)
        if in_test:
            out.append(f"{indent}```")
        return out


class DoctestExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # Markdown's name
        md.preprocessors.register(_Doctests(md), "recfuse_doctests", 40)  # before fenced code (25)


# ------------------------------------------------------------------------------------------- hooks
@event_priority(100)  # before mkdocstrings reads the extensions it renders docstrings with
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    config.markdown_extensions.append(DoctestExtension())  # type: ignore[arg-type]
    pages = _api_pages()
    if config.nav is not None:
        _fill_nav(config.nav, [{title: uri} for uri, (title, _, _) in pages.items()])
    return config


def _fill_nav(nav: list[Any], entries: list[dict[str, str]]) -> bool:
    for i, item in enumerate(nav):
        if item == NAV_PLACEHOLDER:
            nav[i:i + 1] = entries
            return True
        if isinstance(item, dict):
            for value in item.values():
                if value == NAV_PLACEHOLDER:
                    item.update({k: entries for k, v in item.items() if v == NAV_PLACEHOLDER})
                    return True
                if isinstance(value, list) and _fill_nav(value, entries):
                    return True
    return False


def on_files(files: Files, config: MkDocsConfig) -> Files:
    generated = {"reference/configuration.md": _configuration_page()}
    for uri, (title, blurb, names) in _api_pages().items():
        generated[uri] = _api_page(title, blurb, names)
    for uri, content in generated.items():
        old = files.get_file_from_path(uri)
        if old is not None:
            files.remove(old)
        files.append(File.generated(config, uri, content=content))
    return files
