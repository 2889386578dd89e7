"""Shared fixtures. Every test gets its own CLM_HOME under tmp_path."""

from __future__ import annotations

import os
import tempfile
from datetime import date
from pathlib import Path

import pytest

# Airflow reads its config at import: point it at a throwaway home first.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="clm-airflow-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parent.parent / "dags")

from clm.settings import Settings, get_settings


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
    from clm.simulate import simulate_shop

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
