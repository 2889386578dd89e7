"""Drive the four DAGs through Airflow for a range of days (``clm run``).

Each day runs ``clm_ingest`` -> ``clm_features`` -> (``clm_train`` when
clm_features asks for it) -> ``clm_score`` (-> ``clm_train`` when scoring
signals drift) as real DAG runs: ``dag.test()`` in this process, recorded in
the Airflow metadata database with their true start and end times and a note
naming ds, so they show in the UI beside the scheduler's runs. The runner
follows the same Asset chain the scheduler follows, and the same ledger
decides which days are due, so the tables come out the same either way.

``clm run`` holds the ``CLM_HOME`` lock for its whole range: scheduler tasks
wait for it and then find the days done, so no day is processed twice or by
two runtimes at once. Tasks run without retries here, so a failure is
reported at once with its cause.

Catch-up: the first day's ingest validates every pending landed day at once,
and the first training run computes features only at the cutoffs it needs.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clm.core.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from clm.data.ingest import IngestReport
    from clm.ml.train import TrainResult

log = logging.getLogger(__name__)
DAG_IDS = ("clm_ingest", "clm_features", "clm_train", "clm_score")


class DagRunFailed(RuntimeError):
    """A DAG run ended in a state other than success."""


# The task whose XCom is each DAG's result. tests/dags/test_dag_integrity.py checks
# that these tasks exist, so renaming one fails there instead of emptying a summary.
RESULT_TASKS = {
    "clm_ingest": "validate_landing",
    "clm_features": "materialize",
    "clm_train": "train_and_promote",
    "clm_score": "score_and_segment",
}


@dataclass
class RunRecord:
    """One DAG run that ``clm run`` made."""

    dag_id: str
    ds: str
    state: str
    seconds: float
    xcom: dict[str, Any] = field(default_factory=dict)
    log_path: str = ""

    @property
    def result(self) -> dict[str, Any]:
        """The DAG's result (its result task's XCom), empty when that task did not run."""
        value = self.xcom.get(RESULT_TASKS[self.dag_id])
        return dict(value) if isinstance(value, dict) else {}


def _ingest_report(**fields: Any) -> IngestReport:
    from clm.data.ingest import IngestReport

    return IngestReport(**fields)


@dataclass
class Tally:
    """What a range of ``clm run`` did, summed over its DAG runs (typed, for the summary)."""

    ingest: IngestReport = field(default_factory=_ingest_report)
    materialized: int = 0
    trainings: list[TrainResult] = field(default_factory=list)


def tally(records: list[RunRecord]) -> Tally:
    """Sum the results of ``records``: rows validated per table, rows materialized, trainings."""
    from clm.ml.train import TrainResult

    total = Tally()
    for record in records:
        if not record.result:
            continue
        if record.dag_id == "clm_ingest":
            day = _ingest_report(**record.result)
            for name in day.landed:
                for mine, theirs in (
                    (total.ingest.landed, day.landed),
                    (total.ingest.validated, day.validated),
                    (total.ingest.quarantined, day.quarantined),
                ):
                    mine[name] = mine.get(name, 0) + theirs.get(name, 0)
            for name, rules in day.rule_failures.items():
                summed = total.ingest.rule_failures.setdefault(name, {})
                for rule, n in rules.items():
                    summed[rule] = summed.get(rule, 0) + n
        elif record.dag_id == "clm_features":
            total.materialized += sum(record.result.get("rows", {}).values())
        elif record.dag_id == "clm_train":
            total.trainings.append(TrainResult(**record.result))
    return total


@contextmanager
def capture_output(path: Path) -> Iterator[None]:
    """Send everything written to stdout/stderr (Airflow's task logs included) to ``path``.

    ``dag.test()`` runs tasks in-process and logs to the console, not to the
    task log folder; this keeps one log file per DAG run instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


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


def _cause(log_path: Path | None) -> str:
    """The cause of the failed task: its exception, else the last error line of its log."""
    from clm.app import tasks

    if tasks.LAST_ERROR:
        return f"Cause: {tasks.LAST_ERROR[-1]}\n"
    if log_path is None or not log_path.exists():
        return ""
    lines = [
        line.strip()
        for line in log_path.read_text(errors="replace").splitlines()
        if ("Error" in line or "Exception" in line) and not line.lstrip().startswith("File ")
    ]
    return f"Cause: {lines[-1]}\n" if lines else ""


def _record_times(run: Any, started: datetime, ds: date) -> None:
    """Give a ``dag.test()`` run its true start and end, and a note naming ds, in the UI.

    ``dag.test()`` starts a run at its logical date, so durations would read
    in years.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.get(DagRun, run.id)
        if row is None:
            return
        row.start_date = started
        row.end_date = datetime.now(UTC)
        row.note = f"ds={ds} (clm run)"


def run_dag(
    dag: Any, ds: date, conf: dict[str, Any] | None = None, log_path: Path | None = None
) -> RunRecord:
    """Run one DAG for ``ds`` through Airflow and return its state and XComs.

    Tasks run without retries: a failure is reported at once, with its cause.

    Args:
        log_path: if given, the run's console output (task logs) goes there.

    Raises:
        DagRunFailed: naming the failed tasks, the cause and the log, if the run failed.
    """
    from clm.app import tasks

    for task in dag.tasks:
        task.retries = 0
    tasks.LAST_ERROR.clear()
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    logical = datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
    with capture_output(log_path) if log_path else nullcontext():
        run = dag.test(logical_date=logical, run_conf={"ds": ds.isoformat(), **(conf or {})})
    _record_times(run, started_at, ds)
    state = str(getattr(run, "state", "unknown"))
    seconds = time.perf_counter() - started
    if state != "success":
        failed = [
            ti.task_id
            for ti in run.get_task_instances()
            if str(ti.state) not in ("success", "skipped")
        ]
        raise DagRunFailed(
            f"{dag.dag_id} for ds={ds} ended {state}; tasks not successful: {failed}. "
            f"{_cause(log_path)}Task log: {log_path or 'above'}"
        )
    xcom = _xcom(run, list(dag.task_ids))
    return RunRecord(dag.dag_id, ds.isoformat(), state, seconds, xcom, str(log_path or ""))


def require_landed(settings: Settings, end: date) -> None:
    """Refuse a range that goes past the landed data.

    Raises:
        ValueError: naming the newest landed day.
    """
    from clm.core.io import newest_partition
    from clm.core.settings import LANDING_TABLES

    newest = newest_partition(settings.landing_dir, LANDING_TABLES)
    if newest is None:
        raise ValueError(f"nothing has landed under {settings.landing_dir}: run clm simulate first")
    if end > newest:
        raise ValueError(
            f"--end {end} is past the landed data, which ends at {newest}: nothing can be "
            "processed for later days"
        )


def run_range(
    settings: Settings,
    start: date,
    end: date,
    train_conf: dict[str, Any] | None = None,
    on_run: Callable[[RunRecord], None] | None = None,
    quiet: bool = True,
    train: bool = True,
) -> list[RunRecord]:
    """Run the DAG chain for every day in ``[start, end]``, training when it is due.

    With ``train=False`` nothing is trained (a backfill with the current
    champions); a champion must exist.

    With ``quiet``, each run's task logs go to
    ``$AIRFLOW_HOME/logs/clm-run/<dag_id>/ds=<ds>.log`` instead of the console.

    Raises:
        ValueError: if ``end`` is before ``start`` or past the landed data.
        HomeLocked: if another process holds ``CLM_HOME`` for too long.
        DagRunFailed: at the first failed DAG run (later days are not run).
    """
    from clm.data import ledger

    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    require_landed(settings, end)
    records: list[RunRecord] = []
    with ledger.home_lock(settings, "clm run", wait_seconds=settings.lock_wait_minutes * 60):
        _run = _runner(settings, records, on_run, quiet)
        day = start
        while day <= end:
            _run("clm_ingest", day)
            _run("clm_features", day)
            request = ledger.training_request(settings)
            if request is not None:
                if not train:
                    _drop_request(settings, request[0])
                else:
                    _run("clm_train", request[0], train_conf)
            _run("clm_score", day)
            # In production the Asset clm_drift starts clm_train; here the runner follows it.
            if train and records[-1].xcom.get("signal_drift"):
                _run("clm_train", day, train_conf)
            day += timedelta(days=1)
    return records


def _drop_request(settings: Settings, ds: date) -> None:
    """``--no-train``: score with the current champion instead of waiting for training."""
    from clm.data import ledger

    ledger.finish_training(settings, ds, ok=True)
    log.info("training due at ds=%s is not run (--no-train)", ds)


def _runner(
    settings: Settings,
    records: list[RunRecord],
    on_run: Callable[[RunRecord], None] | None,
    quiet: bool,
) -> Callable[..., None]:
    """A function running one DAG for one day, recording it in ``records``."""
    ensure_airflow_db(settings)
    runner_log = settings.airflow_home / "logs" / "clm-run" / "runner.log"
    with capture_output(runner_log) if quiet else nullcontext():
        dags = load_dags(settings)

    def _run(dag_id: str, ds: date, conf: dict[str, Any] | None = None) -> None:
        log_path = None
        if quiet:
            log_path = settings.airflow_home / "logs" / "clm-run" / dag_id / f"ds={ds}.log"
            log_path.unlink(missing_ok=True)
        record = run_dag(dags[dag_id], ds, conf, log_path)
        records.append(record)
        log.debug("%s ds=%s: %s in %.1fs", dag_id, ds, record.state, record.seconds)
        if on_run is not None:
            on_run(record)

    return _run


def score_range(
    settings: Settings,
    start: date,
    end: date,
    run_backwards: bool = False,
    on_run: Callable[[RunRecord], None] | None = None,
    quiet: bool = True,
) -> list[RunRecord]:
    """Backfill: re-score every day in ``[start, end]`` with the current champions.

    Each day must have been through clm_features (its snapshot materialized).
    ``run_backwards`` runs the latest day first, like ``airflow backfill create
    --run-backwards``; the tables come out the same either way.

    Raises:
        ValueError: if ``end`` is before ``start``.
        DagRunFailed: at the first failed DAG run.
    """
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    from clm.data import ledger

    records: list[RunRecord] = []
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    with ledger.home_lock(settings, "clm score", wait_seconds=settings.lock_wait_minutes * 60):
        _run = _runner(settings, records, on_run, quiet)
        for day in reversed(days) if run_backwards else days:
            _run("clm_score", day, {"force": True})
    return records
