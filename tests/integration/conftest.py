"""A scored shop shared by the scoring, report and UI tests (built once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

CLM = str(Path(sys.executable).parent / "clm")
START, DAYS = date(2024, 1, 1), 120
FIRST = date(2024, 4, 10)
LAST = FIRST + timedelta(days=7)  # 8 scored days


def clm(env: dict[str, str], *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """Run the ``clm`` CLI as a user would; fail the test with its output if it fails."""
    result = subprocess.run(
        [CLM, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"clm {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@dataclass
class ScoredShop:
    """A CLM home with a champion and 8 days scored one by one."""

    home: Path
    env: dict[str, str]

    @property
    def days(self) -> list[date]:
        return [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]


@pytest.fixture(scope="session")
def scored_shop(tmp_path_factory: pytest.TempPathFactory) -> ScoredShop:
    """400 customers over 120 days; train on the first day, then score 8 days one by one."""
    home = tmp_path_factory.mktemp("scored") / "clm"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    env |= {
        "CLM_HOME": str(home),
        "CLM_HORIZON_DAYS": "30",
        "CLM_TRAIN_CUTOFFS": "2",
        "CLM_TRAIN_BASELINES": "false",
    }
    clm(
        env,
        "simulate",
        "--customers",
        "400",
        "--start",
        START.isoformat(),
        "--days",
        str(DAYS),
        "--seed",
        "5",
    )
    clm(env, "run", "--start", FIRST.isoformat(), "--end", FIRST.isoformat())
    clm(
        env,
        "run",
        "--start",
        (FIRST + timedelta(days=1)).isoformat(),
        "--end",
        LAST.isoformat(),
        "--no-train",
    )
    return ScoredShop(home, env)
