"""The scored shop the end-to-end, scoring, report and UI tests share (built once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

CLM = str(Path(sys.executable).parent / "clm")
START, DAYS = date(2024, 1, 1), 120  # landed: 2024-01-01 .. 2024-04-29
FIRST = date(2024, 4, 10)
LAST = FIRST + timedelta(days=5)  # 6 scored days
TRAINING_DAY = FIRST + timedelta(days=2)  # the weekly training day; FIRST trains (no champion)
LANDED_TO = START + timedelta(days=DAYS - 1)


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
    """A CLM home run through ``clm run`` for 6 days, training twice, every day scored."""

    home: Path
    env: dict[str, str]

    @property
    def days(self) -> list[date]:
        return [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]


@pytest.fixture(scope="session")
def scored_shop(tmp_path_factory: pytest.TempPathFactory) -> ScoredShop:
    """500 customers over 120 days; ``clm run`` FIRST..LAST as a user runs it.

    FIRST trains (there is no champion yet) and TRAINING_DAY trains again (the
    weekly day), with the baselines, so its challenger meets a champion. Built once
    per session: the modules that use it run on one test worker, in file order
    (tests/conftest.py groups them), and the tests that change the shop run last.
    """
    home = tmp_path_factory.mktemp("scored") / "clm"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    env |= {
        "CLM_HOME": str(home),
        "CLM_HORIZON_DAYS": "30",
        "CLM_TRAIN_CUTOFFS": "2",
        "CLM_TRAINING_WEEKDAY": str(TRAINING_DAY.weekday()),
    }
    clm(
        env,
        "simulate",
        "--customers",
        "500",
        "--start",
        START.isoformat(),
        "--days",
        str(DAYS),
        "--seed",
        "5",
    )
    clm(env, "run", "--start", FIRST.isoformat(), "--end", LAST.isoformat())
    return ScoredShop(home, env)
