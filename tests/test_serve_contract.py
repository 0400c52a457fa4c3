"""The OpenAPI contract, checked by schemathesis against the live service (real HTTP on loopback).

Two servers on SQLite files: one with no keys configured (event and
recommendation routes open, admin routes answering 403) and one with an API
and an admin key (schemathesis sends the admin key, which works everywhere).
Every operation is exercised with a bounded number of generated cases,
valid and invalid ones, and every built-in check runs: no 5xx, only
documented statuses and content types, answers that match their models,
valid data accepted, invalid data rejected, declared auth enforced.

Two settings say what JSON Schema cannot: whether a directory on the
server's disk holds a model (``POST /v1/admin/reload`` answers 422 for one
that does not, and the generated paths never name one), and that 413 is how
the service rejects a batch over 10,000 events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx")
schemathesis = pytest.importorskip("schemathesis")

from schemathesis.config import SchemathesisConfig

from recfuse.serve.app import ServeConfig, create_app
from recfuse.serve.testing import ServerThread

MAX_EXAMPLES = 12  # per operation and generation mode, on top of the coverage phase's boundary cases
ADMIN_KEY = "contract-admin"


def _config(admin_key: str | None) -> SchemathesisConfig:
    data: dict[str, Any] = {
        "seed": 27,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
        "checks": {"negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]}},
        "operations": [
            {
                # A model directory is a fact about the server's disk, not the request's shape.
                "include-path": "/v1/admin/reload",
                "generation": {"max-examples": 3},  # each valid body reloads the model (about a second)
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", 401, 403, 404, 409, 422]}},
            },
            {"include-path": "/v1/items", "generation": {"max-examples": 5}},  # each encodes text
        ],
    }
    if admin_key:
        data["auth"] = {"openapi": {"ApiKey": {"api_key": admin_key}, "Bearer": {"bearer": admin_key}}}
    return SchemathesisConfig.from_dict(data)


def _server(genre_model: Path, tmp: Path, api_key: str, admin_key: str) -> Iterator[str]:
    config = ServeConfig(genre_model, db=f"sqlite:///{tmp / 'events.db'}", api_key=api_key, admin_key=admin_key,
                         preload_text=False)
    server = ServerThread(create_app(config)).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def open_url(genre_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _server(genre_model, tmp_path_factory.mktemp("open"), api_key="", admin_key="")


@pytest.fixture(scope="module")
def keyed_url(genre_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _server(genre_model, tmp_path_factory.mktemp("keyed"), api_key="contract-api", admin_key=ADMIN_KEY)


def _run(url: str, admin_key: str | None) -> tuple[Counter[str], list[str]]:
    """Run schemathesis's engine (every phase the CLI runs) against ``url``: cases per operation and
    the failures, each as one line."""
    from schemathesis.engine import Status, events, from_schema

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=_config(admin_key))
    cases: Counter[str] = Counter()
    failures: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            rec = event.recorder
            for node in rec.cases.values():
                cases[node.value.operation.label] += 1
            for case_id, checks in rec.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE:
                        case = rec.cases[case_id].value if case_id in rec.cases else None
                        info = check.failure_info
                        what = getattr(getattr(info, "failure", None), "title", "") if info else ""
                        failures.append(f"{check.name} on {case.operation.label if case else '?'}: {what}; "
                                        f"{case.as_curl_command() if case else ''}"[:600])
        elif isinstance(event, events.NonFatalError):
            failures.append(f"error on {event.label}: {event.value!r}"[:600])
        elif isinstance(event, events.FatalError):
            failures.append(f"fatal: {event.exception!r}")
    return cases, failures


def _report(name: str, cases: Counter[str], failures: list[str]) -> None:
    for label, n in sorted(cases.items()):
        print(f"{name}: {n:5d} cases  {label}")
    print(f"{name}: {sum(cases.values()):5d} cases in all, {len(failures)} failures")
    for f in dict.fromkeys(failures):
        print(f"{name}: FAILED {f}")


def test_contract_without_keys(open_url: str) -> None:
    cases, failures = _run(open_url, None)
    _report("no keys", cases, failures)
    assert len(cases) == 11 and not failures


def test_contract_with_keys(keyed_url: str) -> None:
    cases, failures = _run(keyed_url, ADMIN_KEY)
    _report("keys", cases, failures)
    assert len(cases) == 11 and not failures
