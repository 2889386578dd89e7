"""The daily segment tables: complete, idempotent, order-independent, crash-safe, on both
warehouses, validated, and watched for drift; and the "Customer segments" page of the
Airflow UI over them. Real Airflow, MLflow, Feast, GX, DuckDB, Postgres and Chromium
throughout (see ``conftest.scored_shop``).

One module, because every test here shares the scored shop: ``--dist loadscope`` keeps
a module on one test worker, so the shop is built once.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
import yaml

from clm.core.settings import get_settings
from clm.data import warehouse
from clm.data.features import FEATURE_DESCRIPTIONS
from clm.data.segments import STAGES, load_rules
from tests.browser import browser, chromium_path
from tests.conftest import free_port, require_service
from tests.integration.conftest import FIRST, LAST, TRAINING_DAY, ScoredShop, clm

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DAY_TABLES = (
    "customer_segments",
    "segment_summary",
    "segment_transitions",
    "drift",
    "feature_importance",
)


def _settings(shop: ScoredShop, **overrides):
    return get_settings(home=shop.home, horizon_days=30, **overrides)


def _checksums(url: str, days) -> dict[tuple[str, str], str]:
    return {
        (table, day.isoformat()): warehouse.checksum(url, table, ds=day)
        for table in DAY_TABLES
        for day in days
    }


@pytest.fixture(scope="module")
def day_by_day(scored_shop: ScoredShop) -> dict[tuple[str, str], str]:
    """Checksums of every day's tables as the daily runs wrote them."""
    return _checksums(_settings(scored_shop).warehouse, scored_shop.days)


def test_every_column_and_table_is_filled(scored_shop: ScoredShop, day_by_day) -> None:
    settings = _settings(scored_shop)
    url = settings.warehouse
    rules = load_rules(settings.segments_config)
    everybody = warehouse.query(url, "SELECT * FROM customer_segments WHERE ds = ?", [LAST])
    snapshot = pd.read_parquet(settings.features_dir / "order_features" / f"ds={LAST}")
    signed_up = pd.read_parquet(settings.features_dir / "profile_features" / f"ds={LAST}")
    # every customer signed up by the day: the buyers, and the prospects
    assert set(everybody["customer_id"]) == set(snapshot["customer_id"]) | set(
        signed_up["customer_id"]
    )
    assert everybody["customer_id"].is_unique
    prospect = everybody["lifecycle_stage"] == "prospect"
    assert set(everybody.loc[prospect, "customer_id"]) == set(signed_up["customer_id"]) - set(
        snapshot["customer_id"]
    )
    prospects, rows = everybody[prospect], everybody[~prospect].reset_index(drop=True)
    assert len(prospects) >= 20 and len(rows) == len(snapshot)
    conversion = ["conversion_probability", "conversion_model_version"]
    assert not rows.drop(columns=["top_reasons", *conversion]).isna().any().any()
    assert rows[conversion].isna().all().all()
    # prospects: a first-order probability from clm-conversion, a segment and an action
    assert prospects["conversion_probability"].between(0, 1).all()
    assert prospects["conversion_probability"].nunique() > 5
    assert (
        set(prospects["segment"])
        <= {
            "prospect_likely",
            "prospect_possible",
            "prospect_unlikely",
        }
        and prospects["segment"].nunique() >= 2
    )
    actions = rules["prospects"]["next_best_action"]
    assert (prospects["segment"].map(actions) == prospects["next_best_action"]).all()
    for column in (
        "churn_probability",
        "expected_spend",
        "value_tier",
        "rfm_segment",
        "churn_model_version",
        "behaviour_cluster",
        "top_reasons",
    ):
        assert prospects[column].isna().all(), column
    # a prospect gets the shop's popular categories: no history to personalise from
    assert prospects["recommended_categories"].notna().all()
    assert set(rows["lifecycle_stage"]) <= set(STAGES)
    assert len(set(rows["lifecycle_stage"])) >= 3
    assert set(rows["rfm_segment"]) <= {r["name"] for r in rules["rfm_segments"]}
    assert set(rows["value_tier"]) == {"high", "mid", "low"}
    assert (rows["segment"].map(rules["next_best_action"]) == rows["next_best_action"]).all()
    assert rows["churn_probability"].between(0, 1).all() and (rows["expected_spend"] >= 0).all()
    # top_reasons: up to three distinct model features, or "none".
    features = set(FEATURE_DESCRIPTIONS)
    # Exactly the customers whose action answers churn risk have them (segments.yaml).
    needed = rows["next_best_action"].isin(rules["top_reasons"]["actions"])
    assert needed.any() and not needed.all()
    assert rows.loc[needed, "top_reasons"].notna().all()
    assert rows.loc[~needed, "top_reasons"].isna().all()
    reasons = rows.loc[needed & (rows["top_reasons"] != "none"), "top_reasons"].str.split(", ")
    assert len(reasons) > needed.sum() / 2
    assert all(1 <= len(r) <= 3 and len(set(r)) == len(r) and set(r) <= features for r in reasons)
    # They are the reasons that explaining every customer gives (exact SHAP, row by row).
    from clm.ml.models import contributions
    from clm.ml.registry import load_version, model_features, setup_mlflow
    from clm.ml.scoring import load_snapshot, top_reasons

    setup_mlflow(settings)
    uri = f"models:/clm-churn/{rows['churn_model_version'].iloc[0]}"
    trained, names = load_version(uri), model_features(uri)
    everyone = load_snapshot(settings, LAST).sort_values("customer_id", ignore_index=True)
    assert everyone["customer_id"].tolist() == rows["customer_id"].tolist()
    full = top_reasons(contributions(trained, everyone[names].astype("float64")), names)
    assert rows.loc[needed, "top_reasons"].tolist() == [
        r for r, n in zip(full, needed, strict=True) if n
    ]

    from mlflow import MlflowClient

    from clm.ml.registry import setup_mlflow

    setup_mlflow(settings)
    client = MlflowClient()
    for column, name in (
        ("churn_model_version", "clm-churn"),
        ("clv_model_version", "clm-clv"),
        ("reco_model_version", "clm-reco"),
        ("cluster_model_version", "clm-clusters"),
    ):
        champion = client.get_model_version_by_alias(name, "champion").version
        assert set(rows[column]) == {str(champion)}
    champion = client.get_model_version_by_alias("clm-conversion", "champion").version
    assert set(prospects["conversion_model_version"]) == {str(champion)}

    summary = warehouse.query(url, "SELECT * FROM segment_summary WHERE ds = ?", [LAST])
    assert summary["customers"].sum() == len(everybody)
    by_segment = everybody.groupby("segment")["expected_spend"].sum()
    assert dict(zip(summary["segment"], summary["total_expected_spend"], strict=True)) == (
        pytest.approx(by_segment.to_dict())
    )
    converting = summary.set_index("segment")["mean_conversion_probability"]
    means = prospects.groupby("segment")["conversion_probability"].mean()
    assert converting[means.index].to_dict() == pytest.approx(means.to_dict())
    assert converting.drop(means.index).isna().all()
    rows = everybody
    moves = warehouse.query(url, "SELECT * FROM segment_transitions WHERE ds = ?", [LAST])
    assert moves["customers"].sum() == len(rows)
    previous = warehouse.query(
        url,
        "SELECT customer_id, segment FROM customer_segments WHERE ds = ?",
        [LAST - timedelta(1)],
    )
    stayed = rows.merge(previous, on="customer_id", suffixes=("", "_before"))
    expected_stay = int((stayed["segment"] == stayed["segment_before"]).sum())
    assert moves.loc[moves.from_segment == moves.to_segment, "customers"].sum() == expected_stay
    promotions = warehouse.query(url, "SELECT * FROM model_promotions")
    assert set(promotions["model_name"]) == {
        "clm-churn",
        "clm-clv",
        "clm-conversion",
        "clm-reco",
        "clm-clusters",
    }
    assert len(day_by_day) == len(DAY_TABLES) * len(scored_shop.days)


def test_the_output_suite_ran_on_every_scored_day(scored_shop: ScoredShop) -> None:
    runs = warehouse.query(
        _settings(scored_shop).warehouse,
        "SELECT * FROM validation_runs WHERE table_name = 'customer_segments' ORDER BY ds",
    )
    assert [d.date() for d in runs["ds"]] == scored_shop.days
    assert runs["success"].all()
    assert all(Path(unquote(url.removeprefix("file://"))).exists() for url in runs["docs_url"])


def test_drift_and_importance_are_recorded_every_day(scored_shop: ScoredShop) -> None:
    url = _settings(scored_shop).warehouse
    drift = warehouse.query(url, "SELECT * FROM drift")
    # churn and clv on the buyers, conversion on the prospects
    assert drift.groupby("ds")["model_name"].nunique().eq(3).all()
    assert len(drift["ds"].unique()) == len(scored_shop.days)
    assert set(drift["kind"]) == {"feature", "score"}
    assert {"churn_probability", "expected_spend", "recency_days"} <= set(drift["name"])
    assert (drift["psi"] >= 0).all() and drift["psi"].notna().all()
    importance = warehouse.query(url, "SELECT * FROM feature_importance WHERE ds = ?", [LAST])
    assert (importance["mean_abs_contribution"] > 0).sum() >= 3


def test_the_same_day_twice_gives_identical_rows(scored_shop: ScoredShop, day_by_day) -> None:
    middle = FIRST + timedelta(days=4)
    clm(scored_shop.env, "score", "--start", middle.isoformat(), "--end", middle.isoformat())
    url = _settings(scored_shop).warehouse
    assert _checksums(url, scored_shop.days) == day_by_day


def test_a_backwards_backfill_gives_the_day_by_day_tables(
    scored_shop: ScoredShop, day_by_day, tmp_path: Path
) -> None:
    other = f"duckdb:///{tmp_path / 'backfill.duckdb'}"
    env = scored_shop.env | {"CLM_WAREHOUSE_URL": other}
    clm(env, "score", "--start", FIRST.isoformat(), "--end", LAST.isoformat(), "--run-backwards")
    # A backfill scores with today's champions: the days after the last training (and
    # the day before each, which their transitions compare with) were scored by them too.
    same = [d for d in scored_shop.days if d > TRAINING_DAY]
    expected = {k: v for k, v in day_by_day.items() if k[1] in {d.isoformat() for d in same}}
    assert _checksums(other, same) == expected


def test_postgres_warehouse_gets_the_same_tables_idempotently(
    scored_shop: ScoredShop, day_by_day, postgres_url: str
) -> None:
    env = scored_shop.env | {"CLM_WAREHOUSE_URL": postgres_url}
    days = scored_shop.days[-3:]
    expected = {k: v for k, v in day_by_day.items() if k[1] in {d.isoformat() for d in days[1:]}}
    clm(env, "score", "--start", days[0].isoformat(), "--end", LAST.isoformat())
    # The first day has no previous day in this warehouse, so its transitions differ.
    assert _checksums(postgres_url, days[1:]) == expected
    clm(env, "score", "--start", days[2].isoformat(), "--end", days[2].isoformat())
    assert _checksums(postgres_url, days[1:]) == expected
    _crash_mid_write(scored_shop, postgres_url, expected, days[2], days[1:])


CRASH = """
import os, sys
from datetime import date
from clm.data import warehouse
from clm.ml.scoring import score_day
from clm.core.settings import get_settings

calls = []
real = {cls: cls.insert for cls in (warehouse.DuckDBTransaction, warehouse.PostgresTransaction)}

def crash_on_third(self, table, frame):
    calls.append(table)
    if len(calls) == 3:  # customer_segments and segment_summary are in, transitions next
        os._exit(9)
    real[type(self)](self, table, frame)

for cls in real:
    cls.insert = crash_on_third
score_day(get_settings(), date.fromisoformat(sys.argv[1]))
"""


def _crash_mid_write(
    shop: ScoredShop, url: str, expected: dict, day: date, days: list[date]
) -> None:
    env = shop.env | {"CLM_WAREHOUSE_URL": url}
    crashed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), day.isoformat()],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr[-3000:]
    assert _checksums(url, days) == expected


def test_a_crash_mid_write_leaves_the_previous_day_intact(
    scored_shop: ScoredShop, day_by_day
) -> None:
    middle = FIRST + timedelta(days=4)
    _crash_mid_write(
        scored_shop, _settings(scored_shop).warehouse, day_by_day, middle, scored_shop.days
    )


def test_the_report_has_every_chart(scored_shop: ScoredShop, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = clm(scored_shop.env, "report", "--ds", LAST.isoformat(), "--out", str(out))
    assert str(out) in result.stdout.replace("\n", "")
    html = out.read_text()
    for title in (
        "Segment sizes and value",
        "Transitions since",
        "Churn probability by lifecycle stage",
        "Global feature importance",
        "Champions",
        "Drift",
        "Prospects",
        "Recommended categories",
        "Behavioural clusters",
    ):
        assert title in html, title
    assert html.count("data:image/png;base64,") >= 8
    for chart in ("prospects", "recommended categories", "behavioural clusters"):
        assert f"<img alt='{chart}' src='data:image/png;base64," in html, chart
    assert "clm-churn" in html and "roc_auc" in html
    missing = clm_fails(scored_shop.env, "report", "--ds", "2020-01-01")
    assert "no scored rows for ds=2020-01-01" in missing


def test_a_champion_with_another_schema_is_refused(
    scored_shop: ScoredShop, day_by_day, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alias moved by hand (MLflow UI) onto a model with other inputs scores nothing."""
    import mlflow
    import numpy as np
    import xgboost

    from clm.ml.registry import ChampionSchemaError, current_champion, setup_mlflow
    from clm.ml.scoring import score_day
    from clm.ml.tracking import pip_requirements

    settings = _settings(scored_shop)
    monkeypatch.setenv("CLM_HOME", str(scored_shop.home))
    setup_mlflow(settings)
    client = mlflow.MlflowClient()
    champion = str(current_champion(client, "clm-churn").version)
    x = pd.DataFrame({"recency_days": np.arange(50.0), "shoe_size": np.arange(50.0) % 7})
    model = xgboost.XGBClassifier(n_estimators=5).fit(x, (x.recency_days > 25).astype(int))
    mlflow.set_experiment("clm-churn")
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            signature=mlflow.models.infer_signature(x, model.predict(x)),
            pip_requirements=pip_requirements("xgboost"),
        )
    stray = mlflow.register_model(info.model_uri, "clm-churn").version
    refused = clm_fails(scored_shop.env, "models", "rollback", "--model", "clm-churn",
                        "--to", str(stray), "--override-reason", "try it")  # fmt: skip
    assert "features differ from the feature service" in refused and "shoe_size" in refused
    assert str(current_champion(client, "clm-churn").version) == champion
    client.set_registered_model_alias("clm-churn", "champion", stray)  # as the MLflow UI can
    try:
        with pytest.raises(ChampionSchemaError, match=r"v\d+\): its features differ"):
            score_day(settings, LAST)
    finally:
        client.set_registered_model_alias("clm-churn", "champion", champion)
    assert _checksums(settings.warehouse, scored_shop.days) == day_by_day


def clm_fails(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "clm"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr


# The Customer segments page ---------------------------------------------------------
SCREENSHOT = ROOT / "build" / "screenshots" / "customer_segments.png"
IFRAME_TEXT = """(() => {
  const f = document.querySelector('iframe');
  const body = f && f.contentDocument && f.contentDocument.body;
  return body && body.innerText.includes('Latest validation results') ? body.innerText : null;
})()"""


@pytest.fixture(scope="module")
def api_server(scored_shop: ScoredShop) -> Iterator[str]:
    """``airflow api-server`` on the scored shop's Airflow home, plugins loaded at start."""
    from clm.core.settings import get_settings

    settings = get_settings(home=scored_shop.home)
    airflow = settings.airflow_home
    port = free_port()
    env = scored_shop.env | {
        "AIRFLOW_HOME": str(airflow),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow / 'airflow.db'}",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
    }
    log = open(scored_shop.home.parent / "api-server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "api-server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (scored_shop.home.parent / "api-server.log").read_text()[-3000:]
                    pytest.fail(f"airflow api-server did not start:\n{tail}")
                time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_the_plugin_is_registered(api_server: str) -> None:
    import json

    with urllib.request.urlopen(f"{api_server}/api/v2/plugins") as response:
        plugins = {p["name"]: p for p in json.load(response)["plugins"]}
    views = plugins["clm_segments"]["external_views"]
    assert views[0]["name"] == "Customer segments"
    assert views[0]["url_route"] == "customer-segments"


def test_customer_segments_page_in_chromium(api_server: str, scored_shop: ScoredShop) -> None:
    require_service("Chromium", chromium_path() is not None, "apt-get install chromium")
    from clm.app.report import champions
    from clm.core.settings import get_settings
    from clm.data import warehouse

    settings = get_settings(home=scored_shop.home)
    latest = warehouse.query(settings.warehouse, "SELECT MAX(ds) AS ds FROM segment_summary")
    day = latest["ds"].iloc[0].date()
    assert day >= LAST
    summary = warehouse.query(
        settings.warehouse, "SELECT * FROM segment_summary WHERE ds = ?", [day]
    )
    champs = champions(settings)
    with browser(height=1500) as page:
        page.goto(f"{api_server}/plugin/customer-segments")
        text = page.wait_for(IFRAME_TEXT)
        nav = page.evaluate("document.body.innerText")
        assert "Customer segments" in nav and "Dags" in nav  # inside the Airflow UI
        for heading in (
            "Segment summary",
            f"Latest scored day {day}",
            "Transitions since",
            "Champions",
            "Latest validation results",
        ):
            assert heading in text, heading
        for row in summary.itertuples():
            assert f"{row.segment}\t{row.customers:,}" in text
        for c in champs:
            assert f"{c['name']}\tv{c['version']}" in text
        links = page.evaluate(
            "Array.from(document.querySelector('iframe').contentDocument.links).map(a => a.href)"
        )
        assert {c["run_id"] for c in champs} <= {
            link.rsplit("/runs/", 1)[-1].split("?")[0] for link in links if "/runs/" in link
        }
        docs = [link for link in links if "/clm/data-docs/" in link]
        assert docs, links
        status = page.evaluate(f"fetch({docs[0]!r}).then(r => r.status)")
        assert status == 200
        time.sleep(1)  # let fonts and the nav settle before the picture
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(SCREENSHOT)
    assert SCREENSHOT.stat().st_size > 20_000


def test_drift_over_threshold_sets_off_training(scored_shop: ScoredShop, tmp_path: Path) -> None:
    """Runs last in this module: it trains a new model."""
    settings = _settings(scored_shop)
    rules = yaml.safe_load(settings.segments_config.read_text())
    rules["drift"] = {"feature_psi": 0.0, "score_psi": 0.0, "retrain_cooldown_days": 0}
    config = tmp_path / "segments.yaml"
    config.write_text(yaml.safe_dump(rules))
    day = LAST + timedelta(days=1)
    env = scored_shop.env | {
        "CLM_SEGMENTS_CONFIG": str(config),
        "CLM_TRAINING_WEEKDAY": str((day.weekday() + 3) % 7),  # not a scheduled training day
        "CLM_TRAIN_BASELINES": "false",
    }
    result = clm(env, "run", "--start", day.isoformat(), "--end", day.isoformat())
    order = re.findall(r"\]\s+(clm_\w+)\s+ds=", result.stdout)
    assert order == ["clm_ingest", "clm_features", "clm_score", "clm_train"], result.stdout
    log = (settings.airflow_home / "logs" / "clm-run" / "clm_score" / f"ds={day}.log").read_text()
    assert "drift against the training reference in" in log and "recency_days (PSI" in log
    promotions = warehouse.query(
        settings.warehouse, "SELECT * FROM model_promotions WHERE ds = ?", [day]
    )
    assert len(promotions) == 5  # churn, clv, conversion, the recommender and the clusters
