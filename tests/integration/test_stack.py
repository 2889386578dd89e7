"""The production topology as processes, driven as a user drives it.

``clm stack up`` starts Postgres, Redis, an MLflow server with sign-in and a
CeleryExecutor Airflow (api-server, scheduler, dag-processor, triggerer, two
Celery workers) on free ports, the venv not activated. The test signs in to
Airflow's REST API, unpauses the DAGs, triggers ``clm_ingest`` for a day of a
small simulated shop and lets the scheduler and the workers run the whole
Asset chain, training included. It then reads the results where production
keeps them (Postgres, the MLflow server, Redis), opens the pages in headless
Chromium, and checks that nobody gets in without signing in.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
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

from clm.app.airflow_api import AirflowAPI, wait_for
from tests.browser import browser, chromium_path, text_with
from tests.conftest import require_service
from tests.integration.conftest import CLM, clm

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
START, HISTORY = date(2024, 1, 1), 100
LAST = START + timedelta(days=HISTORY - 1)
DAY = LAST - timedelta(days=4)  # no champion yet: this run trains, promotes, then scores
TRIGGERED = (DAY, DAY + timedelta(days=1))
ML = "workflowType=machine_learning"


@dataclass
class Running:
    """A running stack: its home, the user's environment, its settings and a signed-in client."""

    home: Path
    env: dict[str, str]
    stack_env: dict[str, str]
    secrets: dict[str, str]
    airflow: AirflowAPI
    mlflow: str

    def mlflow_get(self, path: str, signed_in: bool = True, password: str | None = None) -> Any:
        request = urllib.request.Request(self.mlflow + path)
        if signed_in:
            user = f"admin:{password or self.secrets['MLFLOW_ADMIN_PASSWORD']}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(user).decode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _require_binaries() -> None:
    import glob

    have_pg = bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    require_service("PostgreSQL", have_pg, "apt-get install postgresql")
    require_service("Redis", shutil.which("redis-server") is not None, "apt-get install redis")


@pytest.fixture(scope="module")
def stack() -> Iterator[Running]:
    _require_binaries()
    # Postgres runs as its own user: the home's folders must be reachable by it.
    base = Path(tempfile.mkdtemp(prefix="clm-stack-"))
    base.chmod(0o755)
    home = base / "clm"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    env |= {
        "PATH": "/usr/local/bin:/usr/bin:/bin",  # the virtualenv is not activated
        "CLM_HOME": str(home),
        "CLM_HORIZON_DAYS": "30",
        "CLM_TRAIN_CUTOFFS": "2",
        "CLM_TRAIN_BASELINES": "false",
        # a user's setting reaches every worker: train on Wednesdays, not on TRIGGERED[1]
        "CLM_TRAINING_WEEKDAY": "2",
    }
    env.pop("VIRTUAL_ENV", None)
    clm(env, "simulate", "--customers", "300", "--start", START.isoformat(), "--days", str(HISTORY))
    started = time.monotonic()
    up = subprocess.run([CLM, "stack", "up"], env=env, capture_output=True, text=True, check=False)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"clm stack up: {time.monotonic() - started:.0f} s")  # noqa: T201
        secrets = _env_file(home / "stack" / "secrets.env")
        stack_env = _env_file(home / "stack" / "stack.env")
        assert secrets["AIRFLOW_ADMIN_PASSWORD"] not in up.stdout + up.stderr
        base_url = stack_env["AIRFLOW__API__BASE_URL"]
        api = AirflowAPI.sign_in(base_url, "admin", secrets["AIRFLOW_ADMIN_PASSWORD"])
        mlflow = stack_env["CLM_MLFLOW_UI_URL"]
        yield Running(home, env, stack_env, secrets, api, mlflow)
    finally:
        subprocess.run([CLM, "stack", "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _ledger(home: Path) -> dict[str, Any]:
    return dict(json.loads((home / "ledger.json").read_text()))


@pytest.fixture(scope="module")
def chain(stack: Running) -> dict[str, Any]:
    """Unpause, trigger clm_ingest for TRIGGERED, and wait until the workers have scored each.

    The first day has no champion yet, so it trains before it scores; the next day
    then goes through the chain without training, its tasks on whichever worker is free.
    """
    started = time.monotonic()
    stack.airflow.unpause()
    first = stack.airflow.trigger("clm_ingest", {"ds": TRIGGERED[0].isoformat()})
    assert stack.airflow.wait_run("clm_ingest", first) == "success", _logs(stack)
    _wait_scored(stack, TRIGGERED[0])
    seconds = {"first day (with training)": time.monotonic() - started}
    later = time.monotonic()
    runs = [first] + [
        stack.airflow.trigger("clm_ingest", {"ds": d.isoformat()}) for d in TRIGGERED[1:]
    ]
    for day in TRIGGERED[1:]:
        _wait_scored(stack, day)
    wait_for(stack.airflow.settled, "the chain to settle", timeout=300)
    seconds[f"{len(TRIGGERED) - 1} more days"] = time.monotonic() - later
    print(f"days scored by the Celery workers: {seconds}")  # noqa: T201
    return {"ingest_runs": runs, "seconds": seconds}


def _wait_scored(stack: Running, day: date) -> None:
    wait_for(
        lambda: day.isoformat() in _ledger(stack.home).get("scored", {}),
        f"ds={day} scored by the Celery workers",
        timeout=1200,
    )


def _logs(stack: Running) -> str:
    logs = stack.home / "stack" / "logs"
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(logs.glob("*.log"))
    )


def test_the_workers_ran_the_chain_and_segments_are_in_postgres(
    stack: Running, chain: dict[str, Any]
) -> None:
    import psycopg

    for dag_id in ("clm_ingest", "clm_features", "clm_train", "clm_score"):
        runs = stack.airflow.runs(dag_id)
        assert any(r["state"] == "success" for r in runs), dag_id
    # Every task that ran was run by a Celery worker, and both workers took work.
    done = stack.airflow.call("GET", "/api/v2/dags/~/dagRuns/~/taskInstances?limit=1000")
    ran = {
        (t["dag_id"], t["task_id"])
        for t in done["task_instances"]
        if t["state"] == "success"  # a branch's skipped path never reaches a worker
    }
    by_worker = {
        n: set(
            re.findall(
                r"task_id='([^']+)', dag_id='([^']+)'",
                (stack.home / "stack" / "logs" / f"airflow-worker-{n}.log").read_text(
                    errors="replace"
                ),
            )
        )
        for n in (1, 2)
    }
    executed = {(dag, task) for task, dag in by_worker[1] | by_worker[2]}
    print(f"tasks per worker: {len(by_worker[1])} and {len(by_worker[2])}")  # noqa: T201
    assert ("clm_train", "train_and_promote") in ran
    assert ran <= executed, sorted(ran - executed)
    assert by_worker[1] and by_worker[2], "one worker took every task"
    trained = [r for r in stack.airflow.runs("clm_train") if r["state"] == "success"]
    assert len(trained) == 1, "trained once: the later days are not training days"
    with psycopg.connect(stack.stack_env["CLM_WAREHOUSE_URL"]) as con:
        per_day = dict(
            con.execute(
                "SELECT ds, count(*) FROM customer_segments GROUP BY ds ORDER BY ds"
            ).fetchall()
        )
        validated = con.execute(
            "SELECT ds, table_name, status FROM validation_runs WHERE ds >= %s", [DAY]
        ).fetchall()
    assert list(per_day) == list(TRIGGERED), "exactly the triggered days, each once"
    assert min(per_day.values()) > 100
    tables = ("customers", "orders", "events", "customer_segments")
    assert sorted(validated) == sorted((d, t, "passed") for d in TRIGGERED for t in tables)


def test_runs_and_the_champion_are_on_the_mlflow_server(
    stack: Running, chain: dict[str, Any]
) -> None:
    for model in ("clm-churn", "clm-clv"):
        found = stack.mlflow_get(
            f"/api/2.0/mlflow/registered-models/alias?name={model}&alias=champion"
        )
        assert int(found["model_version"]["version"]) >= 1, model
    experiment = stack.mlflow_get(
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=clm-churn"
    )
    experiment_id = experiment["experiment"]["experiment_id"]
    request = urllib.request.Request(
        stack.mlflow + "/api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode(),
        headers={"Content-Type": "application/json"},
    )
    user = f"admin:{stack.secrets['MLFLOW_ADMIN_PASSWORD']}".encode()
    request.add_header("Authorization", "Basic " + base64.b64encode(user).decode())
    with urllib.request.urlopen(request, timeout=30) as response:
        runs = json.loads(response.read())["runs"]
    families = {
        tag["value"]
        for run in runs
        for tag in run["data"].get("tags", [])
        if tag["key"] == "family"
    }
    assert families == {"xgboost", "lightgbm"}, families


def test_a_customers_features_are_served_from_redis(stack: Running, chain: dict[str, Any]) -> None:
    import psycopg
    import redis

    with psycopg.connect(stack.stack_env["CLM_WAREHOUSE_URL"]) as con:
        row = con.execute(
            "SELECT customer_id FROM customer_segments WHERE ds = %s "
            "AND lifecycle_stage != 'prospect' ORDER BY customer_id LIMIT 1",
            [DAY],
        ).fetchone()
    assert row is not None
    env = stack.env | stack.stack_env
    shown = subprocess.run(
        [CLM, "customer", row[0]], env=env, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert row[0] in shown.stdout and "recency" in shown.stdout.lower()
    host, port = stack.stack_env["CLM_FEAST_REDIS"].split(",")[0].split(":")
    keys = redis.Redis(host=host, port=int(port), password=stack.secrets["REDIS_PASSWORD"]).dbsize()
    assert keys > 100


def test_the_cli_reads_the_postgres_warehouse(stack: Running, chain: dict[str, Any]) -> None:
    env = stack.env | stack.stack_env
    for argv in (["segments"], ["validations"], ["models"]):
        shown = subprocess.run([CLM, *argv], env=env, capture_output=True, text=True, check=False)
        assert shown.returncode == 0, shown.stdout + shown.stderr
    segments = subprocess.run(
        [CLM, "segments"], env=env, capture_output=True, text=True, check=False
    ).stdout
    assert f"Segments on {TRIGGERED[-1]}" in segments and "next_best_action" in segments


def test_nobody_gets_in_without_signing_in(stack: Running) -> None:
    import psycopg
    import redis

    for path in (
        "/api/v2/dags",
        "/clm/segments",
        "/clm/data-docs/index.html",
        "/clm/openapi.json",
        "/clm/docs",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(stack.airflow.base + path, timeout=30)
        assert refused.value.code in (401, 403, 404), path
    with pytest.raises(urllib.error.HTTPError) as refused:
        stack.mlflow_get("/api/2.0/mlflow/experiments/search?max_results=1", signed_in=False)
    assert refused.value.code == 401
    # The server keeps a successful sign-in for a minute; a wrong password is still refused.
    stack.mlflow_get("/api/2.0/mlflow/experiments/search?max_results=1")
    wrong = stack.secrets["MLFLOW_ADMIN_PASSWORD"] + "x"
    with pytest.raises(urllib.error.HTTPError) as refused:
        stack.mlflow_get("/api/2.0/mlflow/experiments/search?max_results=1", password=wrong)
    assert refused.value.code == 401
    host, port = stack.stack_env["CLM_FEAST_REDIS"].split(",")[0].split(":")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=host, port=int(port)).ping()
    url = stack.stack_env["CLM_WAREHOUSE_URL"]
    anonymous = url.replace(f":{stack.secrets['POSTGRES_PASSWORD']}@", "@")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(anonymous, connect_timeout=10)
    # No secret in any service's log.
    logs = _logs(stack) + "".join(
        p.read_text(errors="replace") for p in (stack.home / "stack" / "logs").glob("*.log")
    )
    for name, value in stack.secrets.items():
        assert value not in logs, f"{name} appears in a log"


def test_the_pages_of_the_running_stack(stack: Running, chain: dict[str, Any]) -> None:
    """The DAG list, a finished run's grid, the MLflow experiment and the segments page."""
    require_service("Chromium", chromium_path() is not None, "apt-get install chromium")
    SHOTS.mkdir(parents=True, exist_ok=True)
    api = stack.airflow
    score_run = next(r for r in api.runs("clm_score") if r["state"] == "success")
    experiment = stack.mlflow_get(
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=clm-churn"
    )["experiment"]["experiment_id"]
    with browser(height=1000) as page:
        page.call("Network.setCookie", name="_token", value=api.token, url=api.base)
        page.goto(f"{api.base}/dags")
        assert "clm_ingest" in page.wait_for(text_with("clm_score", "clm_train", "clm_features"))
        _shot(page, "stack_airflow_dags.png")
        run = urllib.parse.quote(score_run["dag_run_id"], safe="")
        page.goto(f"{api.base}/dags/clm_score/runs/{run}")
        page.wait_for(text_with("score_and_segment", "signal_drift"))
        _shot(page, "stack_airflow_score_run.png")
        page.goto(f"{api.base}/clm/segments")
        text = page.wait_for(text_with("Customer segments", "Champions"), timeout=60)
        assert TRIGGERED[-1].isoformat() in text
        _shot(page, "stack_segments.png")
        user = f"admin:{stack.secrets['MLFLOW_ADMIN_PASSWORD']}".encode()
        page.call("Network.enable")
        page.call(
            "Network.setExtraHTTPHeaders",
            headers={"Authorization": "Basic " + base64.b64encode(user).decode()},
        )
        page.goto(f"{stack.mlflow}/#/experiments/{experiment}/runs?{ML}")
        page.wait_for(text_with("matching runs"), timeout=90)
        _shot(page, "stack_mlflow_churn_runs.png")
    for name in (
        "stack_airflow_dags.png",
        "stack_airflow_score_run.png",
        "stack_segments.png",
        "stack_mlflow_churn_runs.png",
    ):
        assert (SHOTS / name).stat().st_size > 10_000, name


def _shot(page: Any, name: str) -> None:
    time.sleep(1.5)  # let charts and fonts settle
    page.screenshot(SHOTS / name)
