"""The scheduler is the runtime: the product driven as a user drives it.

``clm ui airflow --port N`` (any free port, the virtualenv not on PATH) starts
the real Airflow 3: api-server, scheduler, dag-processor and triggerer, on
SQLite. The test signs in to the REST API, unpauses the DAGs and triggers
``clm_ingest`` as the UI's button does, then checks what the scheduler did:
the chain ingest -> features -> train (no champion yet) -> score for exactly
that day, each day processed once, and a day that has not landed failing
clearly with nothing written. Then headless Chromium loads the Airflow and
MLflow pages a user would look at and saves screenshots to
``build/screenshots/``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from clm.app.airflow_api import AirflowAPI, serve, wait_for
from tests.browser import browser, chromium_path
from tests.browser import text_with as _text_with
from tests.conftest import free_port, require_service
from tests.integration.conftest import CLM, clm

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
START, DAYS = date(2024, 1, 1), 100
LAST = START + timedelta(days=DAYS - 1)  # 2024-04-09, the newest landed day
DAY = LAST - timedelta(days=4)  # a Friday: no training day, but there is no champion yet


@dataclass
class Airflow(AirflowAPI):
    """A running ``clm ui airflow`` on a home, and a signed-in REST client of it."""

    home: Path
    env: dict[str, str]


def _q(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def _ledger(home: Path) -> dict[str, Any]:
    return dict(json.loads((home / "ledger.json").read_text()))


_wait = wait_for


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    """A simulated shop and ``clm ui airflow`` on a free port, started without the venv."""
    home = tmp_path_factory.mktemp("scheduler") / "clm"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    env |= {
        "PATH": "/usr/local/bin:/usr/bin:/bin",  # the virtualenv is not activated
        "CLM_HOME": str(home),
        "CLM_HORIZON_DAYS": "30",
        "CLM_TRAIN_CUTOFFS": "2",
        "CLM_TRAIN_BASELINES": "false",
    }
    env.pop("VIRTUAL_ENV", None)
    clm(env, "simulate", "--customers", "300", "--start", START.isoformat(), "--days", str(DAYS))
    with serve(CLM, env, home.parent / "airflow.log", timeout=180) as api:
        yield Airflow(api.base, api.token, home, env)


def _tail(home: Path) -> str:
    return (home.parent / "airflow.log").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def chain(airflow: Airflow) -> dict[str, Any]:
    """Unpause as the UI's toggles do, trigger clm_ingest for DAY, wait until DAY is scored."""
    started = time.monotonic()
    airflow.unpause()
    run_id = airflow.trigger("clm_ingest", {"ds": DAY.isoformat()})
    assert airflow.wait_run("clm_ingest", run_id) == "success", _tail(airflow.home)
    _wait(
        lambda: DAY.isoformat() in _ledger(airflow.home).get("scored", {}),
        f"ds={DAY} scored by the scheduler",
    )
    _wait(airflow.settled, "the chain to settle", timeout=300)
    return {"ingest_run": run_id, "seconds": time.monotonic() - started}


def _scored_days(airflow: Airflow) -> list[str]:
    """Every day each successful clm_score run scored, in run order."""
    days: list[str] = []
    for run in airflow.runs("clm_score"):
        if run["state"] == "success":
            result = airflow.xcom("clm_score", run["dag_run_id"], "score_and_segment") or {}
            days += result.get("days", [])
    return days


def test_the_scheduler_runs_the_chain_for_exactly_the_triggered_day(
    airflow: Airflow, chain: dict[str, Any]
) -> None:
    from clm.core.settings import get_settings
    from clm.data import warehouse

    seconds = chain["seconds"]
    print(f"chain for ds={DAY} (ingest, features, train, score) took {seconds:.0f}s")  # noqa: T201
    settings = get_settings(home=airflow.home)
    rows = warehouse.query(
        settings.warehouse, "SELECT ds, COUNT(*) AS n FROM customer_segments GROUP BY ds"
    )
    assert [d.date() for d in rows["ds"]] == [DAY]
    assert int(rows["n"].iloc[0]) > 100
    # the training the scheduler ran also fit the recommender, the clusters and the
    # conversion model, and used them (clusters on buyers, conversion on prospects)
    missing = warehouse.query(
        settings.warehouse,
        "SELECT COUNT(*) FILTER (WHERE recommended_categories IS NULL) AS reco, "
        "COUNT(*) FILTER (WHERE behaviour_cluster IS NULL AND lifecycle_stage != 'prospect') "
        "AS clusters, "
        "COUNT(*) FILTER (WHERE conversion_probability IS NULL AND lifecycle_stage = 'prospect') "
        "AS unscored, "
        "COUNT(*) FILTER (WHERE lifecycle_stage = 'prospect') AS prospects FROM customer_segments",
    )
    reco, clusters, unscored, prospects = missing.iloc[0].tolist()
    assert (reco, clusters) == (0, 0) and prospects > 0
    # this small shop's conversion model may miss its floor: then the prospects wait unscored
    decided = warehouse.query(
        settings.warehouse,
        "SELECT decision FROM model_promotions WHERE model_name = 'clm-conversion' "
        "ORDER BY ds DESC LIMIT 1",
    )
    assert len(decided) == 1
    assert unscored == (0 if decided["decision"].iloc[0] == "promote" else prospects)
    # With no champion, the chain trained before it scored, with nothing triggered by hand.
    trains = [r for r in airflow.runs("clm_train") if r["run_type"] == "asset_triggered"]
    assert [r["state"] for r in trains] == ["success"]
    scores = [r for r in airflow.runs("clm_score") if r["state"] == "success"]
    assert scores and scores[0]["start_date"] > trains[0]["start_date"]
    woke = airflow.call(
        "GET",
        f"/api/v2/dags/clm_score/dagRuns/{_q(scores[0]['dag_run_id'])}/upstreamAssetEvents",
    )
    assert {e["uri"].rstrip("/") for e in woke["asset_events"]} == {"clm://champion"}
    assert _scored_days(airflow) == [DAY.isoformat()]
    # Each run shows its ds: the trigger's conf, and the asset events' extras.
    ingest = airflow.call("GET", f"/api/v2/dags/clm_ingest/dagRuns/{_q(chain['ingest_run'])}")
    assert ingest["conf"] == {"ds": DAY.isoformat()}
    events = airflow.call("GET", "/api/v2/assets/events?order_by=timestamp&limit=50")
    extras = {
        (e["asset_id"], json.dumps(e["extra"], sort_keys=True)) for e in events["asset_events"]
    }
    assert any(f'"ds": "{DAY}"' in extra for _, extra in extras)
    # Nothing for days past the data: no snapshot, online value or segment for today.
    assert max(p.name for p in (airflow.home / "features" / "order_features").iterdir()) <= (
        f"ds={LAST}"
    )


def test_every_day_is_processed_exactly_once(airflow: Airflow, chain: dict[str, Any]) -> None:
    # The same day again: ingest runs, nothing downstream is due, nothing is re-scored.
    again = airflow.trigger("clm_ingest", {"ds": DAY.isoformat()})
    # Two more days back to back: one downstream run may be woken by both events.
    later = [
        airflow.trigger("clm_ingest", {"ds": (DAY + timedelta(days=i)).isoformat()}) for i in (1, 2)
    ]
    for run_id in (again, *later):
        assert airflow.wait_run("clm_ingest", run_id) == "success"
    wanted = {(DAY + timedelta(days=i)).isoformat() for i in (0, 1, 2)}
    _wait(lambda: wanted <= set(_ledger(airflow.home)["scored"]), "the later days scored")
    _wait(airflow.settled, "the chain to settle", timeout=300)
    scored = _scored_days(airflow)
    assert sorted(scored) == sorted(wanted), scored  # each day once, none twice
    assert scored == sorted(scored)  # in order


# Every route a user or a client can reach, Airflow's own and the plugin's.
PROTECTED = (
    "/api/v2/dags",
    "/api/v2/dags/clm_ingest/dagRuns",
    "/clm/segments",
    "/clm/data-docs/index.html",
    "/clm/docs",
    "/clm/redoc",
    "/clm/openapi.json",
)


def _status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_nothing_is_served_to_anyone_not_signed_in(airflow: Airflow, chain: dict[str, Any]) -> None:
    """Anonymous requests are refused on every route; the plugin serves no generated API docs."""
    for path in PROTECTED:
        assert _status(airflow.base + path) in (401, 403, 404), path
    assert _status(airflow.base + "/clm/segments", airflow.token) == 200
    for path in ("/clm/docs", "/clm/redoc", "/clm/openapi.json"):  # not even when signed in
        assert _status(airflow.base + path, airflow.token) == 404, path
    log = (airflow.home.parent / "airflow.log").read_text(errors="replace")
    password = json.loads(
        (airflow.home / "airflow" / "simple_auth_manager_passwords.json").read_text()
    )["admin"]
    assert password not in log  # the admin password is never printed


def test_a_day_that_has_not_landed_fails_clearly_and_writes_nothing(
    airflow: Airflow, chain: dict[str, Any]
) -> None:
    before = _ledger(airflow.home)
    future = LAST + timedelta(days=30)
    run_id = airflow.trigger("clm_ingest", {"ds": future.isoformat()})
    assert airflow.wait_run("clm_ingest", run_id, timeout=180) == "failed"
    task = airflow.call(
        "GET", f"/api/v2/dags/clm_ingest/dagRuns/{_q(run_id)}/taskInstances/wait_for_data"
    )
    assert task["state"] == "failed" and task["try_number"] == 1  # no retries for this
    log = airflow.task_log("clm_ingest", run_id, "wait_for_data")
    assert f"ds={future} is past the landing data, which ends at {LAST}" in log
    skipped = airflow.call(
        "GET", f"/api/v2/dags/clm_ingest/dagRuns/{_q(run_id)}/taskInstances/validate_landing"
    )
    assert skipped["state"] == "upstream_failed"
    assert _ledger(airflow.home) == before
    assert not (airflow.home / "features" / "order_features" / f"ds={future}").exists()


def test_the_pages_a_user_opens(airflow: Airflow, chain: dict[str, Any]) -> None:
    """Airflow's DAG list, a finished run's grid, the clm_train trigger form; MLflow's
    experiment page (both families) and the registered model with its champion alias."""
    require_service("Chromium", chromium_path() is not None, "apt-get install chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    mlflow_port = free_port()
    mlflow = subprocess.Popen(
        [CLM, "ui", "mlflow", "--port", str(mlflow_port)],
        env=airflow.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    mlflow_base = f"http://localhost:{mlflow_port}"
    try:
        with browser(height=1000) as page:
            page.call("Network.setCookie", name="_token", value=airflow.token, url=airflow.base)
            page.goto(f"{airflow.base}/dags")
            text = page.wait_for(_text_with("clm_score", "clm_train", "clm_features"))
            assert "clm_ingest" in text
            _shot(page, "airflow_dags.png")

            score_run = next(r for r in airflow.runs("clm_score") if r["state"] == "success")
            page.goto(f"{airflow.base}/dags/clm_score/runs/{_q(score_run['dag_run_id'])}")
            text = page.wait_for(_text_with("score_and_segment", "signal_drift"))
            assert "asset_triggered" in text.lower() or "Asset" in text
            _shot(page, "airflow_score_run.png")

            page.goto(f"{airflow.base}/dags/clm_train")
            page.wait_for(f"{_TRIGGER_BUTTON} !== undefined")
            page.evaluate(f"{_TRIGGER_BUTTON}.click()")
            text = page.wait_for(_text_with("horizon_days", "tuning_trials", "force_promotion"))
            assert "model_families" in text
            _shot(page, "airflow_train_trigger.png")

            from clm.core.settings import get_settings
            from clm.ml.registry import setup_mlflow

            settings = get_settings(home=airflow.home)
            setup_mlflow(settings)
            import mlflow as mlflow_lib

            client = mlflow_lib.MlflowClient(settings.tracking_uri)
            experiment = client.get_experiment_by_name("clm-churn")
            assert experiment is not None
            _wait(lambda: _up(f"{mlflow_base}/health"), "the MLflow UI", timeout=120)
            assert settings.mlflow_ui == mlflow_base  # links follow the served port
            # The link the report and the Customer segments page use opens the runs table.
            page.goto(f"{settings.mlflow_ui}/#/experiments/{experiment.experiment_id}/runs?{ML}")
            page.wait_for(_text_with("train ", "matching runs"), timeout=90)
            page.evaluate(f"{_EXPAND_PARENT}.click()")  # the parent run's child runs
            page.wait_for(_text_with("xgboost", "lightgbm"), timeout=60)
            _shot(page, "mlflow_churn_runs.png")

            champion = client.get_model_version_by_alias("clm-churn", "champion")
            page.goto(f"{mlflow_base}/#/models/clm-churn?{ML}")
            text = page.wait_for(_text_with("champion", f"Version {champion.version}"), 90)
            _shot(page, "mlflow_clm_churn_model.png")
    finally:
        _stop(mlflow)
    for name in (
        "airflow_dags.png",
        "airflow_score_run.png",
        "airflow_train_trigger.png",
        "mlflow_churn_runs.png",
        "mlflow_clm_churn_model.png",
    ):
        assert (SHOTS / name).stat().st_size > 10_000, name


ML = "workflowType=machine_learning"
_EXPAND_PARENT = "document.querySelector('button[data-component-id*=\"runnamecellrenderer\"]')"
_TRIGGER_BUTTON = (
    "Array.from(document.querySelectorAll('button'))"
    ".find(b => (b.innerText || '').trim() === 'Trigger')"
)


def _shot(page: Any, name: str) -> None:
    time.sleep(1.5)  # let charts and fonts settle
    page.screenshot(SHOTS / name)


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False
