"""`clm bench` at a quick size: every stage runs, beside its naive peer, and the figures add up.

The figures themselves are not asserted (a benchmark is measured, not a timed
test); what is checked is that every stage ran for real on the same day and
that the report is complete and consistent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clm.app.bench import STAGE_NAMES
from tests.integration.conftest import clm

# About 17 fresh processes and 110 core-seconds at 3,000 customers (alone: 100 s); .ci/run runs
# it after make test (make test-bench), so its processes do not crowd the suite's Airflows.
pytestmark = [pytest.mark.slow, pytest.mark.bench]


def test_the_quick_benchmark_runs_every_stage_and_writes_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    env |= {
        "CLM_HOME": str(tmp_path / "unused"),
        "CLM_HORIZON_DAYS": "30",
        "CLM_TRAIN_CUTOFFS": "2",
    }
    printed = clm(
        env,
        "bench",
        "--customers",
        "3000",
        "--days",
        "100",
        "--repeat",
        "1",
        "--trials",
        "1",
        "--workdir",
        str(tmp_path),
        "--json",
        str(out),
    )
    figures = json.loads(out.read_text())
    assert figures["customers"] == 3_000
    stages = figures["stages"]
    optional = {"materialize_redis", "score_postgres"}  # when the servers are installed
    assert set(STAGE_NAMES) - optional <= set(stages) <= set(STAGE_NAMES)
    if os.environ.get("CLM_REQUIRE_SERVICES") == "1":  # CI installs both
        assert optional <= set(stages)
    for name, stage in stages.items():
        assert stage["seconds"] > 0 and stage["peak_rss_mib"] > 50, name
        assert len(stage["runs"]) == 1
    # The naive peers ran and computed the same thing.
    assert stages["features"]["naive_same_values"] is True
    assert stages["features"]["customers"] > 1_500
    # Ours writes the customers whose stored values changed; the naive peer all of them.
    assert 0 < stages["materialize"]["rows"] < stages["materialize"]["naive_rows"]
    assert stages["training_set"]["rows"] == stages["training_set"]["naive_rows"]
    assert stages["score"]["customers"] == stages["score"]["naive_customers"]
    # Reasons for the customers whose action needs them; the naive peer explains everyone.
    assert 0 < stages["score"]["explained"] < stages["score"]["customers"]
    # everyone with an order: prospects have no churn score to explain
    buyers = stages["score"]["customers"] - stages["score"]["prospects"]
    assert stages["score"]["prospects"] > 0
    assert stages["score"]["naive_explained"] == buyers
    if "score_postgres" in stages:
        assert stages["score_postgres"]["customers"] == stages["score"]["customers"]
        assert stages["score_postgres"]["explained"] == stages["score"]["explained"]
    assert buyers == stages["features"]["customers"]  # the order view's customers
    for name in ("features", "materialize", "training_set", "score"):
        assert stages[name]["naive_seconds"] > 0
    # The cycle went through Airflow from ingest to segments, without training.
    assert stages["cycle"]["dag_runs"] == [
        "clm_ingest:success",
        "clm_features:success",
        "clm_score:success",
    ]
    assert figures["cycle_seconds"] == stages["cycle"]["seconds"]
    assert figures["cycle_naive_seconds"] > 0 and figures["cycle_peak_rss_mib"] > 0
    assert "daily cycle at most 180 s" in printed.stdout
    # No throwaway home is left behind.
    assert not list(tmp_path.glob("clm-bench-*"))
