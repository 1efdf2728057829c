"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from batchpay.journal.target import PostgresURL
from batchpay.sandbox import Sandbox, SandboxConfig

# CI machines are shared and noisy: a slow example is not a failure. Examples stay bounded
# by max_examples; only the per-example wall-clock deadline is lifted.
settings.register_profile("batchpay", deadline=None)
settings.load_profile("batchpay")


@pytest.fixture(autouse=True)
def _private_user_data(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test writes into the real user data folder: BATCHPAY_HOME and XDG_DATA_HOME point
    at a temporary folder (subprocesses inherit both; tests that clear BATCHPAY_* still land
    in the temporary XDG folder)."""
    data = tmp_path_factory.mktemp("user-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data / "xdg"))
    monkeypatch.setenv("BATCHPAY_HOME", str(data / "batchpay-home"))
    return data


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (uvicorn and the sandbox target asyncio)."""
    return "asyncio"


@pytest.fixture
def auth_mode() -> str:
    """Which credential generation a test's sandbox and settings use: ``keys`` here; the
    end-to-end suite runs each of its tests in both (tests/e2e/conftest.py)."""
    return "keys"


@pytest.fixture
def sandbox_config(auth_mode: str) -> SandboxConfig:
    """The test sandbox's configuration: no rate limit, a clock that moves only when a test
    says so, and only the credentials of ``auth_mode`` accepted (OAuth mode refuses API
    keys, as the newest API does, so a test that passes there used OAuth all the way).

    The sandbox's and the batch tests' folders override it to keep the provider's own
    default rate limit."""
    auth = "oauth" if auth_mode == "oauth" else "both"
    return SandboxConfig(manual_clock=True, rate_limit_per_minute=None, auth=auth)


@pytest.fixture
async def sandbox(sandbox_config: SandboxConfig) -> AsyncIterator[Sandbox]:
    """A fresh in-memory sandbox configured by ``sandbox_config``."""
    sb = Sandbox(sandbox_config)
    yield sb
    await sb.aclose()


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to ``sandbox`` in process with the default test key."""
    async with sandbox.client() as c:
        yield c


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server's URL: ``BATCHPAY_TEST_POSTGRES_URL``, else a throw-away cluster.

    Without PostgreSQL installed the test is skipped, except under ``CI=true``, where a
    missing server is a failure (``.ci/run`` installs it).
    """
    import os

    from batchpay.testing_postgres import Cluster, PostgresMissing

    url = os.environ.get("BATCHPAY_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    try:
        cluster = Cluster().start()
    except PostgresMissing as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true needs PostgreSQL: {exc}")
        pytest.skip(str(exc))
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> PostgresURL:
    """A new, empty database on the test server, as a journal target."""
    from batchpay.testing_postgres import new_database

    return PostgresURL(new_database(postgres_server))


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | PostgresURL:
    """One journal's target per database: a SQLite file, and an empty PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "journal.db"
    url: PostgresURL = request.getfixturevalue("postgres_url")
    return url
