"""Drive the four DAGs through Airflow for a range of days (``clm run``).

Each day runs ``clm_ingest`` -> ``clm_features`` -> (``clm_train`` on training
days) -> ``clm_score`` as real DAG runs (``dag.test()``, recorded in the Airflow
metadata database and visible in the UI). The Asset chain is what the
scheduler follows in production; here the runner follows it in order, so a
range is processed without a scheduler process.

Catch-up: the first day's ingest validates every pending landed day at once,
and the first training run computes features only at the cutoffs it needs.
Every write is keyed by ds, so this gives the same tables as day-by-day runs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from clm.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)
DAG_IDS = ("clm_ingest", "clm_features", "clm_train", "clm_score")


class DagRunFailed(RuntimeError):
    """A DAG run ended in a state other than success."""


@dataclass
class RunRecord:
    """One DAG run that ``clm run`` made."""

    dag_id: str
    ds: str
    state: str
    seconds: float
    xcom: dict[str, Any] = field(default_factory=dict)


def ensure_airflow_db(settings: Settings) -> None:
    """Create or upgrade the Airflow metadata database (SQLite under CLM_HOME by default)."""
    settings.export_env()
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    marker = settings.airflow_home / ".migrated"
    if marker.exists():
        return
    log.info("airflow db migrate (first run under %s)", settings.airflow_home)
    subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "airflow"), "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
    )
    marker.write_text("ok")


def load_dags(settings: Settings) -> dict[str, Any]:
    """Parse ``dags/`` with Airflow's DagBag.

    Raises:
        RuntimeError: if a DAG file fails to import or a DAG is missing.
    """
    settings.export_env()
    from airflow.dag_processing.dagbag import DagBag

    # Airflow 3.3 dropped include_examples; AIRFLOW__CORE__LOAD_EXAMPLES=False keeps them out.
    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    missing = [d for d in DAG_IDS if d not in bag.dags]
    if missing:
        raise RuntimeError(f"DAGs not found in {PROJECT_ROOT / 'dags'}: {missing}")
    return dict(bag.dags)


def _xcom(run: Any, task_ids: list[str]) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out: dict[str, Any] = {}
    with create_session() as session:
        for task_id in task_ids:
            row = (
                session.query(XComModel)
                .filter_by(
                    dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value"
                )
                .one_or_none()
            )
            if row is not None:
                out[task_id] = XComModel.deserialize_value(row)
    return out


def run_dag(dag: Any, ds: date, conf: dict[str, Any] | None = None) -> RunRecord:
    """Run one DAG for ``ds`` through Airflow and return its state and XComs.

    Raises:
        DagRunFailed: naming the failed tasks, if the run did not succeed.
    """
    started = time.perf_counter()
    logical = datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
    run = dag.test(logical_date=logical, run_conf={"ds": ds.isoformat(), **(conf or {})})
    state = str(getattr(run, "state", "unknown"))
    seconds = time.perf_counter() - started
    if state != "success":
        failed = [ti.task_id for ti in run.get_task_instances() if str(ti.state) != "success"]
        raise DagRunFailed(
            f"{dag.dag_id} for ds={ds} ended {state}; tasks not successful: {failed}. "
            f"See the task logs in the Airflow UI (make airflow) or under "
            f"{os.environ.get('AIRFLOW_HOME')}/logs"
        )
    return RunRecord(dag.dag_id, ds.isoformat(), state, seconds, _xcom(run, list(dag.task_ids)))


def is_training_day(settings: Settings, ds: date, champion_exists: bool) -> bool:
    """Train on the configured weekday, and whenever there is no champion yet."""
    return (not champion_exists) or ds.weekday() == settings.training_weekday


def champion_exists(settings: Settings) -> bool:
    """True when both registered models have a ``champion`` alias."""
    from training.promotion import REGISTERED, current_champion
    from training.train import setup_mlflow

    setup_mlflow(settings)
    import mlflow

    client = mlflow.MlflowClient()
    return all(current_champion(client, name) is not None for name in REGISTERED.values())


def run_range(
    settings: Settings,
    start: date,
    end: date,
    train_conf: dict[str, Any] | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
) -> list[RunRecord]:
    """Run the DAG chain for every day in ``[start, end]``, training on schedule.

    Raises:
        ValueError: if ``end`` is before ``start``.
        DagRunFailed: at the first failed DAG run (later days are not run).
    """
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    ensure_airflow_db(settings)
    dags = load_dags(settings)
    records: list[RunRecord] = []

    def _run(dag_id: str, ds: date, conf: dict[str, Any] | None = None) -> None:
        record = run_dag(dags[dag_id], ds, conf)
        records.append(record)
        log.info("%s ds=%s: %s in %.1fs", dag_id, ds, record.state, record.seconds)
        if on_run is not None:
            on_run(record)

    day = start
    while day <= end:
        _run("clm_ingest", day)
        _run("clm_features", day)
        if is_training_day(settings, day, champion_exists(settings)):
            _run("clm_train", day, train_conf)
        _run("clm_score", day)
        day += timedelta(days=1)
    return records
