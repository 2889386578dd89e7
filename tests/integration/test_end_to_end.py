"""The four DAGs through real Airflow, via the CLI, on the shared scored shop.

``clm simulate`` and ``clm run`` ran as a user runs them (subprocesses with their
own CLM_HOME, see ``conftest.scored_shop``); these tests check the warehouse,
the MLflow runs and the registry alias, and run the CLI again. This module runs
before test_scoring.py on the same worker; its last test lands a broken day
after the landed range.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest

from clm.core.io import list_partitions, partition_dir, read_partition
from clm.core.settings import Settings, get_settings
from clm.data import warehouse
from tests.integration.conftest import CLM, FIRST, LANDED_TO, LAST, ScoredShop, clm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(scored_shop: ScoredShop) -> Iterator[tuple[dict[str, str], Settings]]:
    saved = {k: os.environ.get(k) for k in ("CLM_HOME", "CLM_HORIZON_DAYS")}
    os.environ["CLM_HOME"] = str(scored_shop.home)
    os.environ["CLM_HORIZON_DAYS"] = "30"
    yield scored_shop.env, get_settings()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_segment_table_has_one_valid_row_per_scored_customer(pipeline) -> None:
    _, settings = pipeline
    everybody = warehouse.query(
        settings.warehouse, "SELECT * FROM customer_segments WHERE ds = ?", [LAST]
    )
    features = pd.read_parquet(settings.features_dir / "order_features" / f"ds={LAST.isoformat()}")
    rows = everybody[everybody["lifecycle_stage"] != "prospect"]
    assert len(rows) == len(features) > 250
    assert everybody["customer_id"].is_unique
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
    assert rows["rfm_segment"].str.len().gt(0).all()
    needed = rows["next_best_action"].isin(["retain_with_offer", "win_back"])
    assert rows.loc[needed, "top_reasons"].str.len().gt(0).all()
    assert rows.loc[~needed, "top_reasons"].isna().all()
    assert rows["churn_model_version"].str.fullmatch(r"\d+").all()
    assert rows["clv_model_version"].str.fullmatch(r"\d+").all()
    assert rows["reco_model_version"].str.fullmatch(r"\d+").all()
    assert rows["cluster_model_version"].str.fullmatch(r"\d+").all()
    assert 3 <= rows["behaviour_cluster"].nunique() <= 8 and rows["behaviour_cluster"].notna().all()
    days = warehouse.query(
        settings.warehouse, "SELECT DISTINCT ds FROM segment_summary ORDER BY ds"
    )["ds"]
    assert [d.date() for d in days] == [FIRST + timedelta(days=i) for i in range(6)]


def test_recommendations_are_three_categories_not_bought_recently(pipeline) -> None:
    """Every scored customer gets categories from clm-reco@champion, none bought in the
    last 30 days, and they follow the purchase histories (not one list for everyone)."""
    _, settings = pipeline
    from clm.data.simulate import CATEGORIES
    from clm.ml import reco

    rows = warehouse.query(
        settings.warehouse,
        "SELECT customer_id, recommended_categories FROM customer_segments WHERE ds = ?",
        [LAST],
    )
    lists = rows["recommended_categories"].map(json.loads)
    assert lists.map(len).eq(3).mean() > 0.95
    assert all(len(set(x)) == len(x) and set(x) <= set(CATEGORIES) for x in lists)
    h = reco.history(settings.validated_dir, LAST)
    recent = pd.DataFrame(h.recent, index=h.customers, columns=h.categories)
    for customer, cats in zip(rows["customer_id"], lists, strict=True):
        if customer in recent.index:
            assert not recent.loc[customer, cats].any(), (customer, cats)
    assert lists.map(tuple).nunique() > 10  # personal, not the shop's best sellers


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
    experiment = client.get_experiment_by_name("clm-reco")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) - len(children) == 2
    assert {r.data.tags["candidate"] for r in children} == {
        "als",
        "item_item",
        "popularity",
        "own_top",
    }
    assert all({"hit_at_3", "ndcg_at_3"} == set(r.data.metrics) for r in children)
    champion = client.get_model_version_by_alias("clm-reco", "champion")
    assert champion.tags["family"] in {"als", "item_item"}
    model = mlflow.pyfunc.load_model("models:/clm-reco@champion")  # any MLflow consumer
    categories = model.metadata.metadata["categories"]
    history = pd.DataFrame(0.0, index=range(2), columns=categories, dtype="float32")
    history.iloc[0, :2] = [3.0, 1.0]
    scores = model.predict(history)
    assert list(scores.columns) == categories and scores.notna().all().all()
    assert not scores.iloc[0].equals(scores.iloc[1])  # the history matters
    experiment = client.get_experiment_by_name("clm-clusters")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 2 and all("silhouette" in r.data.metrics for r in runs)
    champion = client.get_model_version_by_alias("clm-clusters", "champion")
    assert "silhouette" in champion.tags["reasons"]
    scored = warehouse.query(
        settings.warehouse,
        "SELECT DISTINCT cluster_model_version, behaviour_cluster FROM customer_segments",
    )
    for version, named in scored.groupby("cluster_model_version")["behaviour_cluster"]:
        info = mlflow.models.get_model_info(f"models:/clm-clusters/{version}")
        assert set(named) <= set(info.metadata["names"])  # each row names its version's cluster
    promotions = warehouse.query(settings.warehouse, "SELECT * FROM model_promotions")
    assert len(promotions) == 10 and promotions["reasons"].str.len().gt(0).all()
    second = promotions[promotions.ds == promotions.ds.max()]
    assert second["champion_version"].notna().all()  # compared with the first champion


def test_prospects_are_scored_by_the_conversion_champion(pipeline) -> None:
    """Signed up, no order yet: a first-order probability from clm-conversion@champion,
    trained through the DAGs beside its baselines, and a segment and action for it."""
    import mlflow
    from mlflow import MlflowClient

    from clm.ml.registry import setup_mlflow

    _, settings = pipeline
    setup_mlflow(settings)
    client = MlflowClient()
    experiment = client.get_experiment_by_name("clm-conversion")
    children = client.search_runs(
        [experiment.experiment_id], "tags.mlflow.parentRunId != ''", max_results=100
    )
    assert {r.data.tags["candidate"] for r in children} == {
        "xgboost",
        "lightgbm",
        "channel_rate",
        "recent_visits",
    }
    assert all("roc_auc" in r.data.metrics for r in children)
    champion = client.get_model_version_by_alias("clm-conversion", "champion")
    names = mlflow.models.get_model_info(f"models:/clm-conversion/{champion.version}")
    inputs = names.signature.inputs.input_names()
    assert {"days_since_signup", "channel_conversion_rate", "visits_30d"} <= set(inputs)
    assert "recency_days" not in inputs  # a prospect has no orders
    prospects = warehouse.query(
        settings.warehouse,
        "SELECT * FROM customer_segments WHERE ds = ? AND lifecycle_stage = 'prospect'",
        [LAST],
    )
    assert len(prospects) > 10
    assert prospects["conversion_probability"].between(0, 1).all()
    assert set(prospects["conversion_model_version"]) == {str(champion.version)}
    assert prospects["next_best_action"].isin(["nurture", "welcome_offer", "no_action"]).all()
    assert prospects["churn_probability"].isna().all()


def _rows(root, table: str, days) -> pd.DataFrame:
    """Every row of ``table`` under ``root`` on ``days`` (a day may have none)."""
    frames = [
        read_partition(root, table, d) for d in days if partition_dir(root, table, d).exists()
    ]
    return pd.concat(frames) if frames else pd.DataFrame()


def test_ingest_accounts_for_every_landed_row(pipeline) -> None:
    """Every landed row of the days run so far is validated or quarantined, none lost."""
    _, settings = pipeline
    ran = [d for d in list_partitions(settings.landing_dir, "orders") if d <= LAST]
    for table in ("orders", "events"):
        landed = _rows(settings.landing_dir, table, ran)
        valid = _rows(settings.validated_dir, table, ran)
        bad = _rows(settings.quarantine_dir, table, ran)
        assert len(landed) == len(valid) + len(bad) > 0, table
    orders = _rows(settings.landing_dir, "orders", ran)
    dirty = pd.read_parquet(settings.truth_dir / "dirty_rows.parquet")
    planted = set(dirty.loc[dirty.table == "orders", "id"]) & set(orders["order_id"])
    assert planted and planted <= set(_rows(settings.quarantine_dir, "orders", ran)["order_id"])
    runs = warehouse.query(settings.warehouse, "SELECT * FROM validation_runs")
    landing = runs[runs.table_name != "customer_segments"]
    assert (landing.landed == landing.validated + landing.quarantined).all()
    assert landing.ds.nunique() == len(ran)
    assert landing.docs_url.str.startswith("file://").all()
    scored = runs[runs.table_name == "customer_segments"]  # the output suite ran every day
    assert len(scored) == (LAST - FIRST).days + 1 and scored.success.all()


def test_rerunning_a_day_gives_the_same_rows(pipeline) -> None:
    env, settings = pipeline
    query = "SELECT * FROM customer_segments WHERE ds = ? ORDER BY customer_id"
    before = warehouse.query(settings.warehouse, query, [LAST])
    summary_before = warehouse.query(
        settings.warehouse, "SELECT * FROM segment_summary WHERE ds = ? ORDER BY segment", [LAST]
    )
    # no training on the re-run, so the same champions score the same features
    env = dict(env, CLM_TRAINING_WEEKDAY=str((LAST.weekday() + 3) % 7))
    clm(env, "run", "--start", LAST.isoformat(), "--end", LAST.isoformat())
    pd.testing.assert_frame_equal(before, warehouse.query(settings.warehouse, query, [LAST]))
    pd.testing.assert_frame_equal(
        summary_before,
        warehouse.query(
            settings.warehouse,
            "SELECT * FROM segment_summary WHERE ds = ? ORDER BY segment",
            [LAST],
        ),
    )


def test_clm_customer_shows_a_customer_and_says_when_one_is_unknown(pipeline) -> None:
    env, settings = pipeline
    known = warehouse.query(
        settings.warehouse, "SELECT customer_id FROM customer_segments LIMIT 1"
    ).customer_id.iloc[0]
    shown = clm(env, "customer", known).stdout
    assert f"Online features of {known}" in shown and '"segment"' in shown
    assert "Recommended categories:" in shown and "Behaviour cluster:" in shown
    engagement = pd.read_parquet(
        settings.features_dir / "engagement_features" / f"ds={LAST.isoformat()}"
    )
    wrote = engagement.dropna(subset=["review_sentiment_90d"]).customer_id
    assert len(wrote) > 10  # the simulated reviews have texts
    assert "Review sentiment (90 days): mean" in clm(env, "customer", wrote.iloc[0]).stdout
    prospect = warehouse.query(
        settings.warehouse,
        "SELECT customer_id FROM customer_segments WHERE lifecycle_stage = 'prospect' "
        "ORDER BY ds DESC, customer_id LIMIT 1",
    ).customer_id.iloc[0]
    shown = clm(env, "customer", prospect).stdout
    assert "conversion_v1" in shown and "days_since_signup" in shown
    assert "chance of a first order" in shown
    for hostile in ("[bold]C0000001[/]\x1b[2J",):
        result = subprocess.run(
            [CLM, "customer", hostile], env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 1, result.stderr[-2000:]
        assert "unknown customer" in result.stdout and "Traceback" not in result.stderr
        assert "\x1b" not in result.stdout


def test_a_refused_batch_fails_the_airflow_task_with_the_rule(pipeline) -> None:
    """Runs last: lands a broken day after the simulated range and runs it through Airflow."""
    from clm.core.io import write_partition

    env, settings = pipeline
    day = LANDED_TO + timedelta(days=1)
    orders = read_partition(settings.landing_dir, "orders", LANDED_TO).drop(columns="status")
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
