"""The four DAGs through real Airflow on a ~1,000-customer shop, via the CLI.

Runs `clm simulate` and `clm run` as a user would (subprocesses with their own
CLM_HOME), then checks the warehouse, MLflow runs and the registry alias.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from clm.core.settings import get_settings
from clm.data import warehouse

pytestmark = pytest.mark.slow
CLM = str(Path(sys.executable).parent / "clm")
# 150 days, H=60: the test cutoff is 60 days back, with two monthly cutoffs before it.
START, DAYS = date(2024, 1, 1), 150
RUN_FROM, RUN_TO = date(2024, 5, 27), date(2024, 5, 29)


def _clm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [CLM, *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, (
        f"clm {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    home = tmp_path_factory.mktemp("e2e") / "clm"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    env.update(
        {
            "CLM_HOME": str(home),
            "CLM_HORIZON_DAYS": "60",
            "CLM_TRAIN_CUTOFFS": "2",
            # train on the last day too, so the second run meets a champion
            "CLM_TRAINING_WEEKDAY": str(RUN_TO.weekday()),
        }
    )
    _clm(
        env,
        "simulate",
        "--customers",
        "1000",
        "--start",
        START.isoformat(),
        "--days",
        str(DAYS),
        "--seed",
        "11",
    )
    _clm(env, "run", "--start", RUN_FROM.isoformat(), "--end", RUN_TO.isoformat())
    os.environ["CLM_HOME"] = str(home)
    os.environ["CLM_HORIZON_DAYS"] = "60"
    yield env, get_settings()
    os.environ.pop("CLM_HOME", None)
    os.environ.pop("CLM_HORIZON_DAYS", None)


def test_segment_table_has_one_valid_row_per_scored_customer(pipeline) -> None:
    _, settings = pipeline
    rows = warehouse.query(
        settings.warehouse, "SELECT * FROM customer_segments WHERE ds = ?", [RUN_TO]
    )
    features = __import__("pandas").read_parquet(
        settings.features_dir / "order_features" / f"ds={RUN_TO.isoformat()}"
    )
    assert len(rows) == len(features) > 300
    assert rows["customer_id"].is_unique
    assert rows["churn_probability"].between(0, 1).all()
    assert (rows["expected_spend"] >= 0).all()
    assert set(rows["lifecycle_stage"]) <= {
        "new",
        "active",
        "loyal",
        "at_risk",
        "lapsed",
        "reactivated",
    }
    assert set(rows["value_tier"]) == {"high", "mid", "low"}
    assert (
        rows["next_best_action"]
        .isin(["retain_with_offer", "cross_sell", "nurture", "win_back", "no_action"])
        .all()
    )
    assert rows["rfm_segment"].str.len().gt(0).all() and rows["top_reasons"].str.len().gt(0).all()
    assert rows["churn_model_version"].str.fullmatch(r"\d+").all()
    assert rows["clv_model_version"].str.fullmatch(r"\d+").all()
    days = warehouse.query(
        settings.warehouse, "SELECT DISTINCT ds FROM segment_summary ORDER BY ds"
    )["ds"]
    assert [d.date() for d in days] == [date(2024, 5, 27), date(2024, 5, 28), date(2024, 5, 29)]


def test_mlflow_has_both_families_and_the_champion_alias(pipeline) -> None:
    _, settings = pipeline
    import mlflow

    from clm.ml.registry import setup_mlflow

    setup_mlflow(settings)  # tracking and registry: an earlier test may have moved either
    client = mlflow.MlflowClient()
    for name in ("clm-churn", "clm-clv"):
        experiment = client.get_experiment_by_name(name)
        runs = client.search_runs([experiment.experiment_id])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 2  # first day (no champion) and the training weekday
        baselines = (
            {"recency", "rfm_logreg", "bgnbd"}
            if name == "clm-churn"
            else {
                "run_rate",
                "bgnbd_gg",
            }
        )
        assert {r.data.tags["candidate"] for r in children} == {"xgboost", "lightgbm"} | baselines
        assert {r.data.tags.get("family") for r in children} == {"xgboost", "lightgbm", None}
        metrics = set(children[0].data.metrics)
        assert all(set(r.data.metrics) == metrics for r in children)  # comparable in the UI
        tags = {"ds", "airflow_run_id", "git_sha", "feature_service"}
        assert all(tags <= set(r.data.tags) for r in runs)
        for child in children:
            plots = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
            expected = {"roc", "pr", "calibration", "lift"} if name == "clm-churn" else {"gains"}
            assert {f"plots/{p}.png" for p in expected} <= plots
            assert child.inputs.dataset_inputs, "each run names its input datasets"
        champion = client.get_model_version_by_alias(name, "champion")
        assert champion.tags["decision"] == "promote"
        model_info = mlflow.models.get_model_info(f"models:/{name}@champion")
        assert model_info.signature is not None
    promotions = warehouse.query(settings.warehouse, "SELECT * FROM model_promotions")
    assert len(promotions) == 4 and promotions["reasons"].str.len().gt(0).all()
    second = promotions[promotions.ds == promotions.ds.max()]
    assert second["champion_version"].notna().all()  # compared with the first champion


def test_ingest_accounts_for_every_landed_row(pipeline) -> None:
    _, settings = pipeline
    import pandas as pd

    for table in ("orders", "events"):
        landed = pd.read_parquet(settings.landing_dir / table)
        valid = pd.read_parquet(settings.validated_dir / table)
        bad_dir = settings.quarantine_dir / table
        bad = pd.read_parquet(bad_dir) if bad_dir.exists() else pd.DataFrame()
        assert len(landed) == len(valid) + len(bad), table
    dirty = pd.read_parquet(settings.truth_dir / "dirty_rows.parquet")
    quarantined = pd.read_parquet(settings.quarantine_dir / "orders")
    assert set(dirty.loc[dirty.table == "orders", "id"]) <= set(quarantined["order_id"])
    runs = warehouse.query(settings.warehouse, "SELECT * FROM validation_runs")
    landing = runs[runs.table_name != "customer_segments"]
    assert (landing.landed == landing.validated + landing.quarantined).all()
    assert landing.ds.nunique() == len(list((settings.landing_dir / "orders").iterdir()))
    assert landing.docs_url.str.startswith("file://").all()
    scored = runs[runs.table_name == "customer_segments"]  # the output suite ran every day
    assert len(scored) == 3 and scored.success.all()


def test_rerunning_a_day_gives_the_same_rows(pipeline) -> None:
    import pandas as pd

    env, settings = pipeline
    query = "SELECT * FROM customer_segments WHERE ds = ? ORDER BY customer_id"
    before = warehouse.query(settings.warehouse, query, [RUN_TO])
    summary_before = warehouse.query(
        settings.warehouse, "SELECT * FROM segment_summary WHERE ds = ? ORDER BY segment", [RUN_TO]
    )
    # no training on the re-run, so the same champions score the same features
    env = dict(env, CLM_TRAINING_WEEKDAY=str((RUN_TO.weekday() + 3) % 7))
    _clm(env, "run", "--start", RUN_TO.isoformat(), "--end", RUN_TO.isoformat())
    pd.testing.assert_frame_equal(before, warehouse.query(settings.warehouse, query, [RUN_TO]))
    pd.testing.assert_frame_equal(
        summary_before,
        warehouse.query(
            settings.warehouse,
            "SELECT * FROM segment_summary WHERE ds = ? ORDER BY segment",
            [RUN_TO],
        ),
    )


def test_a_refused_batch_fails_the_airflow_task_with_the_rule(pipeline) -> None:
    """Runs last: lands a broken day after the simulated range and runs it through Airflow."""
    from datetime import timedelta

    from clm.core.io import partition_dir, read_partition, write_partition

    env, settings = pipeline
    day = RUN_TO + timedelta(days=1)
    orders = read_partition(settings.landing_dir, "orders", RUN_TO).drop(columns="status")
    write_partition(orders, settings.landing_dir, "orders", day)
    result = subprocess.run(
        [CLM, "run", "--start", day.isoformat(), "--end", day.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode != 0
    output = " ".join((result.stdout + result.stderr).split())
    assert f"orders ds={day}: rule expect_table_columns_to_match_set failed" in output
    assert "missing column(s) ['status']" in output
    assert not partition_dir(settings.validated_dir, "orders", day).exists()
    failed = warehouse.query(
        settings.warehouse, "SELECT status, error FROM validation_runs WHERE ds = ?", [day]
    )
    assert list(failed.status) == ["failed"] and "nothing written" in failed.error.iloc[0]


def test_clm_customer_shows_a_customer_and_says_when_one_is_unknown(pipeline) -> None:
    env, settings = pipeline
    known = warehouse.query(
        settings.warehouse, "SELECT customer_id FROM customer_segments LIMIT 1"
    ).customer_id.iloc[0]
    shown = _clm(env, "customer", known).stdout
    assert f"Online features of {known}" in shown and '"segment"' in shown
    for hostile in ("[bold]C0000001[/]\x1b[2J",):
        result = subprocess.run(
            [CLM, "customer", hostile], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 1, result.stderr[-2000:]
        assert "unknown customer" in result.stdout and "Traceback" not in result.stderr
        assert "\x1b" not in result.stdout
