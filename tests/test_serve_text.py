"""Explanations and interest summaries in words from the service (issue 26): ``explain=text`` on
``GET /v1/users/{id}/recommendations`` and ``GET /v1/users/{id}/profile``, over real HTTP on loopback.

The model is the small fusion model of the ``genre_model`` fixture; the sentences come from the real
templates and title guard of :mod:`recfuse.llm.phrase`.  Tests about what happens when a generator
misbehaves swap the running service's phraser for one around a ``FakeGenerator`` defined here (a lying,
failing or slow back end, which no real one is on demand), or around the real ``OpenAIGenerator``
pointed at a loopback socket that never answers.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")

from recfuse.bundle import Bundle
from recfuse.llm.facts import display_title, title_guard
from recfuse.llm.generators import Message, OpenAIGenerator, TextGenerator
from recfuse.llm.phrase import TitleGuard, check_text, lean_of, title_outside
from recfuse.serve.app import ServeConfig, create_app
from recfuse.serve.service import Service
from recfuse.serve.testing import ServerThread
from recfuse.serve.words import Phraser

USER = "u0"
ADMIN = {"X-API-Key": "text-admin"}


class FakeGenerator:
    """A text generator that answers at once: ``mode`` ``"honest"`` rewords the template's sentence it is
    handed (its facts intact), ``"liar"`` adds a catalogue title that is not among the facts, ``"raise"``
    fails, ``"slow"`` sleeps ``delay`` seconds first.  ``calls`` counts what it was asked."""

    def __init__(self, mode: str, outside: str = "", delay: float = 0.0) -> None:
        self.name = f"fake:{mode}"
        self.mode, self.outside, self.delay = mode, outside, delay
        self.calls = 0
        self.release = threading.Event()  # set: a slow one stops sleeping
        self._lock = threading.Lock()

    def generate(self, messages: Sequence[Message], max_tokens: int = 96) -> str:
        with self._lock:
            self.calls += 1
        if self.mode == "raise":
            raise RuntimeError("the fake back end is down")
        if self.mode == "slow":
            self.release.wait(self.delay)
        draft = messages[-1]["content"]
        if self.mode == "liar":
            return f'Since you loved "{self.outside}", here is why: {draft}'
        return f"Good news: {draft}"


@pytest.fixture(scope="module")
def server(genre_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    db = f"sqlite:///{tmp_path_factory.mktemp('text') / 'events.db'}"
    config = ServeConfig(genre_model, db=db, admin_key="text-admin", api_key="", preload_text=False)
    srv = ServerThread(create_app(config)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def service(server: ServerThread) -> Service:
    return server.server.config.app.state.service  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def bundle(genre_model: Path) -> Bundle:
    return Bundle.load(genre_model)


@pytest.fixture(scope="module")
def guard(bundle: Bundle) -> TitleGuard:
    return title_guard(bundle)


@contextmanager
def phrasing(service: Service, generator: TextGenerator | None, timeout: float = 10.0,
             concurrency: int = 4) -> Iterator[Phraser]:
    """The running service phrasing with ``generator`` inside the block."""
    before = service.phraser
    service.phraser = Phraser(generator, timeout, concurrency, service.metrics)
    try:
        yield service.phraser
    finally:
        service.phraser = before


def recs(http: httpx.Client, user: str = USER, **params: Any) -> dict[str, Any]:
    r = http.get(f"/v1/users/{user}/recommendations", params={"k": 10, **params})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def profile(http: httpx.Client, user: str = USER, **params: Any) -> dict[str, Any]:
    r = http.get(f"/v1/users/{user}/profile", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def facts_of(item: dict[str, Any]) -> list[str]:
    """The titles an item's explanation is about: the item and its history items."""
    return [item["title"], *(b["title"] for b in item["explanation"]["because"])]


def sentences(text: str) -> int:
    return len(re.findall(r'[.!?]["”]?(?:\s|$)', text))


# ------------------------------------------------------------------ explain=text with the templates
def test_explain_text_gives_one_grounded_sentence_per_item(http: httpx.Client, guard: TitleGuard) -> None:
    now = time.time()
    words, facts = recs(http, explain="text", at=now), recs(http, explain="true", at=now)
    assert [it["item_id"] for it in words["items"]] == [it["item_id"] for it in facts["items"]]
    lean = lean_of(words["gate"])
    assert lean is not None
    for it, plain in zip(words["items"], facts["items"], strict=True):
        text = it["explanation"].pop("text")
        assert it["explanation"] == plain["explanation"]  # the structured explanation, unchanged
        assert text["source"] == "template" and text["generator"] == "template" and text["fallback"] is None
        assert sentences(text["text"]) == 1, text
        assert title_outside(text["text"], facts_of(it), guard) is None, text
        assert check_text(text["text"], facts_of(it), lean=lean, gate=words["gate"], guard=guard,
                          must_name=it["title"]) is None, text
        assert lean in text["text"]


def test_only_explain_text_carries_words_and_booleans_work_as_before(http: httpx.Client) -> None:
    for value in ("false", "0"):
        assert all("explanation" not in it for it in recs(http, explain=value)["items"]), value
    assert all("explanation" not in it for it in recs(http)["items"])
    for value in ("true", "1"):
        items = recs(http, explain=value)["items"]
        assert all(it["explanation"]["because"] is not None and "text" not in it["explanation"] for it in items)
    r = http.get(f"/v1/users/{USER}/recommendations", params={"explain": "words"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "explain"]


def test_nothing_is_generated_for_a_request_that_does_not_ask(http: httpx.Client, service: Service) -> None:
    fake = FakeGenerator("honest")
    with phrasing(service, fake):
        recs(http, explain="false")
        recs(http, explain="true")
        http.get(f"/v1/users/{USER}/events").raise_for_status()
        recs(http, user="nobody-at-all", explain="text")  # cold start: popularity, nothing to phrase
        assert fake.calls == 0
        items = recs(http, explain="text")["items"]
        assert fake.calls == len(items) == 10
        assert {it["explanation"]["text"]["source"] for it in items} == {"llm"}
        assert all(it["explanation"]["text"]["text"].startswith("Good news: ") for it in items)
        assert all(it["explanation"]["text"]["generator"] == "fake:honest" for it in items)


def test_a_user_with_no_history_gets_popular_items_in_words(http: httpx.Client) -> None:
    out = recs(http, user="never-seen", explain="text")
    assert out["cold_start"] and len(out["items"]) == 10
    for it in out["items"]:
        assert it["explanation"]["text"] == {"text": f'"{it["title"]}" is one of the most popular items.',
                                             "source": "template", "generator": "template", "fallback": None}


# ------------------------------------------------------------------ the profile
def test_profile_of_a_known_user_summarises_their_two_interests(
    http: httpx.Client, bundle: Bundle, guard: TitleGuard
) -> None:
    now = time.time()
    out = profile(http, at=now)
    gate = recs(http, at=now)["gate"]
    events = http.get(f"/v1/users/{USER}/events").json()["events"]
    assert out["user_id"] == USER and not out["cold_start"] and out["history_length"] == len(events)
    assert out["source"] == "template" and out["generator"] == "template" and out["fallback"] is None
    facts = out["facts"]
    assert facts["gate"] == pytest.approx(gate, abs=1e-5) and facts["lean"] == lean_of(gate)
    history = {display_title(bundle, bundle.items.index(e["item_id"])) for e in events}
    for side in ("long_term", "short_term"):
        assert facts[side]["titles"] and set(facts[side]["titles"]) <= history, side
        assert facts[side]["genres"] and set(facts[side]["genres"]) <= {"Horror", "Comedy", "Romance", "Western"}
    titles = facts["long_term"]["titles"] + facts["short_term"]["titles"]
    assert 2 <= sentences(out["summary"]) <= 3, out["summary"]
    assert check_text(out["summary"], titles, lean=facts["lean"], gate=gate, guard=guard) is None, out["summary"]
    lead = "Your short-term interest leads" if gate >= 0.5 else "Your long-term taste leads"
    assert lead in out["summary"]


def test_profile_of_an_unknown_user_is_a_cold_start_answer(http: httpx.Client) -> None:
    out = profile(http, user="never-seen-either")
    assert out == {
        "user_id": "never-seen-either", "history_length": 0, "model_version": out["model_version"],
        "cold_start": True, "summary": "Not enough history yet to say what you like.",
        "source": "template", "generator": "template", "fallback": None,
        "facts": {"gate": None, "lean": None, "long_term": {"titles": [], "genres": []},
                  "short_term": {"titles": [], "genres": []}},
    }


# ------------------------------------------------------------------ generators that misbehave
def test_a_generator_naming_a_title_outside_the_facts_falls_back_to_the_template(
    http: httpx.Client, service: Service, bundle: Bundle
) -> None:
    now = time.time()
    plain, plain_profile = recs(http, explain="text", at=now), profile(http, at=now)
    named = {t for it in plain["items"] for t in facts_of(it)} | set(plain_profile["summary"].split('"'))
    outside = next(display_title(bundle, i) for i in range(len(bundle.items)) if display_title(bundle, i) not in named)
    fake = FakeGenerator("liar", outside=outside)
    with phrasing(service, fake):
        lied, lied_profile = recs(http, explain="text", at=now), profile(http, at=now)
    assert fake.calls == 11
    for it, ref in zip(lied["items"], plain["items"], strict=True):
        text = it["explanation"]["text"]
        assert text["source"] == "template" and text["fallback"] == "fact_check" and text["generator"] == "fake:liar"
        assert text["text"] == ref["explanation"]["text"]["text"] and outside not in text["text"]
    assert lied_profile["source"] == "template" and lied_profile["fallback"] == "fact_check"
    assert lied_profile["summary"] == plain_profile["summary"]
    metrics = http.get("/metrics").text
    assert re.search(r"^recfuse_text_fallbacks_total [1-9]", metrics, re.MULTILINE)


def test_a_generator_that_raises_falls_back_and_never_fails_the_request(http: httpx.Client, service: Service) -> None:
    with phrasing(service, FakeGenerator("raise")):
        items = recs(http, explain="text")["items"]
        out = profile(http)
    assert {(it["explanation"]["text"]["source"], it["explanation"]["text"]["fallback"]) for it in items} == {("template", "error")}
    assert all(it["explanation"]["text"]["text"].startswith(f'"{it["title"]}"') for it in items)
    assert out["source"] == "template" and out["fallback"] == "error" and out["summary"]


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An HTTP endpoint on loopback that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


def test_a_generator_past_the_deadline_gives_the_templates_in_time(
    http: httpx.Client, service: Service, silent_endpoint: str
) -> None:
    hung = OpenAIGenerator(silent_endpoint, model="never", timeout=30.0)  # its own timeout: far beyond the deadline
    with phrasing(service, hung, timeout=0.5):
        start = time.perf_counter()
        items = recs(http, explain="text")["items"]
        out = profile(http)
        spent = time.perf_counter() - start
    assert spent < 5, spent
    assert {(it["explanation"]["text"]["source"], it["explanation"]["text"]["fallback"]) for it in items} == {("template", "timeout")}
    assert out["source"] == "template" and out["fallback"] == "timeout"


def test_with_every_generation_slot_taken_a_request_gets_the_templates_at_once(
    http: httpx.Client, service: Service
) -> None:
    slow = FakeGenerator("slow", delay=1.5)
    with phrasing(service, slow, timeout=0.3, concurrency=1):
        first = recs(http, explain="text")["items"]  # abandoned at 0.3 s; its generation holds the slot
        start = time.perf_counter()
        second = recs(http, explain="text")["items"]
        spent = time.perf_counter() - start
        assert profile(http)["fallback"] == "busy"
        slow.release.set()
    assert {it["explanation"]["text"]["fallback"] for it in first} == {"timeout"}
    assert {it["explanation"]["text"]["fallback"] for it in second} == {"busy"} and spent < 1.0, spent


# ------------------------------------------------------------------ items added through the API
def test_an_item_added_through_the_api_is_named_in_words(http: httpx.Client) -> None:
    item = {"item_id": "new-w-1", "title": "Dust Devil Gunfight", "genres": "Western",
            "text": "A lone gunslinger rides into a dusty frontier town to face the outlaw gang."}
    assert http.post("/v1/items", json={"items": [item]}, headers=ADMIN).status_code == 200
    now = time.time()
    events = [{"event_id": f"add-{n}", "user_id": "adds-items", "item_id": i, "timestamp": now - 60 + n,
               "type": "view"} for n, i in enumerate(["w1", "w2", "new-w-1"])]
    assert http.post("/v1/events", json={"events": events}).json()["stored"] == 3
    out = profile(http, user="adds-items")
    assert "Dust Devil Gunfight" in out["facts"]["long_term"]["titles"] + out["facts"]["short_term"]["titles"]
    assert "Dust Devil Gunfight" in out["summary"]
    listed = recs(http, user="adds-items", explain="text", exclude_seen="false")["items"]
    assert all(it["explanation"]["text"]["text"] for it in listed)
    assert any("Dust Devil Gunfight" in it["explanation"]["text"]["text"] for it in listed)
