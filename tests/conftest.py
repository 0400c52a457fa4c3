"""Shared fixtures."""

from __future__ import annotations

# ============================================================================
# Serving (issue 4): fixtures for tests/test_serve*.py.  Everything below this
# line belongs to the service's tests.
# ============================================================================
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL_ENV = "RECFUSE_TEST_PG_URL"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def genre_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small fusion model directory on the genre/session data of recfuse.serve.testing (fitted once, ~20 s)."""
    pytest.importorskip("fastapi")
    from recfuse.serve.testing import fit_genre_bundle

    return fit_genre_bundle(tmp_path_factory.mktemp("genre-model") / "model")


def _pg_url() -> tuple[str | None, str]:
    """The test PostgreSQL URL, or None with the reason it cannot be used."""
    url = os.environ.get(PG_URL_ENV, PG_DEFAULT)
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return url, ""
    except Exception as e:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None, f"no PostgreSQL at {url} ({first}); set {PG_URL_ENV} to run these tests"


@pytest.fixture(scope="session")
def pg_url() -> str:
    url, reason = _pg_url()
    if url is None:
        pytest.skip(reason)
    return url


def _db(kind: str, tmp: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(URL, table prefix) of a fresh store: a new SQLite file, or unique tables in PostgreSQL (dropped after)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'events.db'}", ""
        return
    url = request.getfixturevalue("pg_url")
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    yield url, prefix
    from recfuse.serve.store import EventStore

    EventStore(url, prefix).drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A fresh event store per test, once on a SQLite file and once on PostgreSQL."""
    yield from _db(request.param, tmp_path, request)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Like ``store_db``, shared by a module's tests."""
    yield from _db(request.param, tmp_path_factory.mktemp("store"), request)
# ============================================================================
# End of the serving fixtures.
# ============================================================================
