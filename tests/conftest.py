"""Shared fixtures. Every test gets its own CLM_HOME under tmp_path."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its config at import: point it at a throwaway home first, removed
# when the process (the session, or each xdist worker) ends.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="clm-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parent.parent / "dags")

from clm.core.settings import Settings, get_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with CLM_HOME in tmp_path and no stray production URLs."""
    monkeypatch.setenv("CLM_HOME", str(tmp_path / "clm"))
    for key in list(os.environ):
        if key.startswith("CLM_") and key not in {"CLM_HOME", "CLM_REQUIRE_SERVICES"}:
            monkeypatch.delenv(key)
    return get_settings()


@pytest.fixture
def small_shop(settings: Settings) -> Settings:
    """200 customers over 40 days, landed."""
    from clm.data.simulate import simulate_shop

    simulate_shop(
        settings.landing_dir,
        settings.truth_dir,
        n_customers=200,
        start=date(2024, 1, 1),
        days=40,
        seed=7,
        dirty_rate=0.02,
    )
    return settings


def require_service(name: str, available: bool, why: str) -> None:
    """Skip a test whose service is missing, or fail it when CI requires services."""
    if available:
        return
    if os.environ.get("CLM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{name} is required (CLM_REQUIRE_SERVICES=1) but unavailable: {why}")
    pytest.skip(f"{name} unavailable: {why}")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free port; yields its base URL (no database).

    Postgres refuses to run as root, so as root it runs as the ``postgres`` user.
    """
    from clm.app.bench import throwaway_postgres

    with throwaway_postgres("-c fsync=off") as url:
        require_service(
            "PostgreSQL", url is not None, "initdb not found (apt-get install postgresql)"
        )
        assert url is not None
        yield url.rsplit("/", 1)[0]


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the throwaway server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    return f"{postgres_server}/{name}"


# Test workers (make test: -n 3 --dist loadscope with the scheduler below). Each module
# runs on one worker, so its module fixtures (a running Airflow, a stack) are built
# once; the modules that use the session's scored shop share a worker, so the shop is
# built once. The longest groups start first, so the slowest never waits behind quick
# ones. (xdist's own --dist loadgroup cannot do this under pytest 9: it renames node
# ids, which pytest 9 no longer allows.)
SCORED_SHOP_MODULES = (
    "tests/integration/test_end_to_end.py",  # first: its last test lands a broken day
    "tests/integration/test_scoring.py",
)
LONGEST_FIRST = (
    "tests/integration/test_stack.py",
    "scored_shop",
    "tests/integration/test_scheduler.py",
    "tests/integration/test_bench.py",
    "tests/integration/test_evaluate.py",
    "tests/integration/test_online_retail.py",
    "tests/unit/test_ingest.py",
)


# Long modules of independent tests with cheap fixtures: their tests spread over the
# workers one by one (a module fixture is then built once per worker).
SPREAD_MODULES = ("tests/unit/test_bad_inputs.py",)


def worker_group(nodeid: str) -> str:
    """The worker group of a test: its module, ``scored_shop`` for the shop's modules, or
    the test itself in a spread module."""
    module = nodeid.split("::", 1)[0]
    if module in SPREAD_MODULES:
        return nodeid
    return "scored_shop" if module in SCORED_SHOP_MODULES else module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest groups first (stable); refuse a scored-shop user outside its group."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "scored_shop" in fixtures and worker_group(item.nodeid) != "scored_shop":
            raise pytest.UsageError(f"{item.nodeid} uses scored_shop: add its module to "
                                    "SCORED_SHOP_MODULES in tests/conftest.py")  # fmt: skip
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(worker_group(item.nodeid), len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Load-scope scheduling over the groups of :func:`worker_group`."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return GroupScheduling(config, log)
