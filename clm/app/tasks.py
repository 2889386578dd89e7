"""The functions Airflow tasks call: find the days to process, call one library function, log.

DAG files stay wiring only. Everything heavy is imported here, at run time.

Which days a run processes (see :mod:`clm.data.ledger`): ``clm_ingest`` processes
its ds (the ``ds`` param, else the logical date) once the data has landed.
Downstream DAGs process every day that is *due* in the ledger, oldest first,
whatever events woke them up; with the ``ds`` param they process the due days
up to ds, and with ``force`` they redo ds. Each task holds the ``CLM_HOME``
lock while it works, so ``clm run`` and the scheduler never process a day
twice or at the same time.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from clm.core.settings import Settings, get_settings, parse_ds
from clm.data.validation import quiet_gx

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
# The cause of the last failed task in this process: `clm run` prints it at once.
LAST_ERROR: list[str] = []


def _permanent() -> tuple[type[BaseException], ...]:
    from clm.core.io import BatchError
    from clm.data.validation import BatchValidationError

    return (ValueError, LookupError, FileNotFoundError, BatchError, BatchValidationError)


def fail_fast(func: F) -> F:
    """Fail a task without retries when the error cannot heal (bad input, missing data).

    The same input fails the same way, so Airflow's retries would only delay
    the message. Other errors (a lost connection, a held lock) keep their retries.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        try:
            return func(*args, **kwargs)
        except AirflowSkipException:
            raise
        except _permanent() as exc:
            LAST_ERROR[:] = [f"{type(exc).__name__}: {exc}"]
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            LAST_ERROR[:] = [f"{type(exc).__name__}: {exc}"]
            raise

    return wrapper  # type: ignore[return-value]


def param_ds(context: dict[str, Any]) -> date | None:
    """The ``ds`` param of the run, if given."""
    value = (context.get("params") or {}).get("ds")
    return parse_ds(value) if value else None


def resolve_ds(context: dict[str, Any]) -> date:
    """The run's ds: the ``ds`` param, else the logical date (the day a daily interval covers).

    Raises:
        ValueError: if neither gives a date (an Asset-triggered run has no logical date).
    """
    found = param_ds(context)
    if found:
        return found
    logical = context.get("logical_date")
    if logical is not None:
        return logical.date()
    raise ValueError("cannot tell the ds of this run: pass the `ds` param (YYYY-MM-DD)")


def _settings() -> Settings:
    quiet_gx()
    settings = get_settings()
    settings.export_env()
    return settings


@contextmanager
def _locked(settings: Settings, context: dict[str, Any]) -> Iterator[None]:
    from clm.data.ledger import home_lock

    ti = context.get("ti")
    owner = f"{getattr(ti, 'dag_id', '?')}.{getattr(ti, 'task_id', '?')} ({context.get('run_id')})"
    with home_lock(settings, owner, wait_seconds=settings.lock_wait_minutes * 60):
        yield


def _emit(context: dict[str, Any], asset: Any, ds: date | None, **extra: Any) -> None:
    outlet_events = context.get("outlet_events")
    if outlet_events is not None:
        outlet_events[asset].extra = {"ds": ds.isoformat() if ds else None, **extra}


def _force(context: dict[str, Any]) -> bool:
    return bool((context.get("params") or {}).get("force"))


# --- clm_ingest ---------------------------------------------------------------------


def wait_for_data(context: dict[str, Any], stage: str, ds: str | None = None) -> Any:
    """Sensor body: done when the data of ds has landed (``stage`` landing) or been validated.

    A ds far past the newest landed day (more than ``landing_grace_days``: a
    historical shop, a typo) fails at once; a ds just past it waits, up to
    ``landing_timeout_minutes`` from the start of the run, then fails.

    Raises:
        AirflowFailException: with the ds, the newest landed day and what to do.
    """
    from airflow.sdk import PokeReturnValue
    from airflow.sdk.exceptions import AirflowFailException

    from clm.core.io import newest_partition
    from clm.core.settings import LANDING_TABLES

    settings = _settings()
    day = parse_ds(ds) if ds else resolve_ds(context)
    root = settings.landing_dir if stage == "landing" else settings.validated_dir
    newest = newest_partition(root, LANDING_TABLES)
    if newest is not None and day <= newest:
        log.info("ds=%s: %s data is there (newest day %s)", day, stage, newest)
        return PokeReturnValue(is_done=True, xcom_value=day.isoformat())
    if newest is None:
        raise AirflowFailException(
            f"ds={day}: nothing has {'landed' if stage == 'landing' else 'been validated'} "
            f"under {root}; land data first (clm simulate, clm import)"
        )
    gap = (day - newest).days
    if gap > settings.landing_grace_days:
        raise AirflowFailException(
            f"ds={day} is past the {stage} data, which ends at {newest} ({gap} days earlier); "
            f"nothing is written for it. Trigger a ds on or before {newest} "
            "(the `ds` param of the trigger form)."
        )
    run = context.get("dag_run")
    started = getattr(run, "start_date", None) or datetime.now(UTC)
    waited = (datetime.now(UTC) - started).total_seconds()
    if waited > settings.landing_timeout_minutes * 60:
        raise AirflowFailException(
            f"ds={day} has not landed after {waited / 60:.0f} minutes (newest {stage} day "
            f"{newest}); nothing is written for it"
        )
    log.info("ds=%s has not landed yet (newest %s day %s); waiting", day, stage, newest)
    return PokeReturnValue(is_done=False)


@fail_fast
def ingest(context: dict[str, Any]) -> dict[str, Any]:
    """Validate every pending landed day up to ds; quarantine failing rows; announce ds."""
    from clm.app.assets import VALIDATED
    from clm.data import ledger
    from clm.data.ingest import ingest as run_ingest
    from clm.data.ingest import validated_generation

    settings = _settings()
    ds = resolve_ds(context)
    with _locked(settings, context):
        report = run_ingest(settings, ds)
        gen = validated_generation(settings, ds)
        previous = ledger.generation(settings, "validated", ds)
        ledger.record(settings, "validated", ds, gen)
    if previous == gen:
        log.info("ds=%s: validated data unchanged since it was announced; nothing is due", ds)
    _emit(context, VALIDATED, ds, ingested_days=len(report.days), generation=gen)
    return report.as_dict()


# --- clm_features -------------------------------------------------------------------


def _days_for(settings: Settings, context: dict[str, Any], stage: str) -> list[tuple[date, str]]:
    """The (ds, generation) pairs this run processes for ``stage``."""
    from clm.data import ledger

    until = param_ds(context)
    if until is not None and _force(context):
        upstream = ledger.generation(settings, ledger.UPSTREAM[stage], until)
        if upstream is None:
            raise ValueError(
                f"ds={until} was never announced to {stage}: run clm_ingest for it first"
            )
        return [(until, upstream)]
    days = ledger.due(settings, stage, until)
    if not days:
        log.info(
            "nothing due for %s%s: every announced day is processed",
            stage,
            f" up to {until}" if until else "",
        )
    return days


@fail_fast
def compute_features(context: dict[str, Any]) -> dict[str, Any]:
    """Compute the feature snapshots (Feast offline source) of every due day."""
    from clm.data import ledger
    from clm.data.features import refresh_outdated, write_snapshot

    settings = _settings()
    done = []
    with _locked(settings, context):
        refresh_outdated(settings.features_dir, settings.validated_dir)
        for ds, gen in _days_for(settings, context, "snapshot"):
            paths = write_snapshot(settings.features_dir, settings.validated_dir, ds)
            ledger.record(settings, "snapshot", ds, gen)
            done.append({"ds": ds.isoformat(), "customers": paths.customers})
    return {"days": done}


def apply_feature_repo(context: dict[str, Any]) -> bool:
    """`feast apply` feature_repo/ when its definitions changed."""
    from clm.data.feature_store import apply_repo

    settings = _settings()
    with _locked(settings, context):
        return apply_repo(settings)


@fail_fast
def materialize(context: dict[str, Any]) -> dict[str, Any]:
    """Materialize the due snapshots into the online store."""
    from clm.data import ledger
    from clm.data.feature_store import materialize_range

    settings = _settings()
    with _locked(settings, context):
        days = _days_for(settings, context, "online")
        counts: dict[str, int] = {}
        if days:
            counts = materialize_range(settings, days[0][0], days[-1][0])
            for ds, gen in days:
                ledger.record(settings, "online", ds, gen)
    return {"days": [ds.isoformat() for ds, _ in days], "rows": counts}


def route(result: dict[str, Any], context: dict[str, Any]) -> list[str]:
    """Branch: ask for training (no champion, a champion trained on other features, or a
    training day) or announce the features.

    Returns the task ids to follow; none when the run processed no day.
    """
    from clm.data import ledger
    from clm.ml.registry import training_needed

    days = [parse_ds(d) for d in result.get("days", [])]
    if not days:
        return []
    settings = _settings()
    with _locked(settings, context):
        needed = training_needed(settings)
        if needed is not None:
            due: date | None = days[-1]
            why = needed
        else:
            weekly = [d for d in days if d.weekday() == settings.training_weekday]
            due = weekly[-1] if weekly else None
            why = f"{due} is a training day (CLM_TRAINING_WEEKDAY={settings.training_weekday})"
        if due is None:
            return ["announce_features"]
        ledger.request_training(settings, due)
    log.info("training requested for ds=%s: %s; scoring from that day waits for it", due, why)
    return ["request_training"]


def announce(context: dict[str, Any], asset_name: str, result: dict[str, Any]) -> dict[str, Any]:
    """Emit the Asset event that wakes the next DAG, with the days it concerns."""
    from clm.app import assets
    from clm.data import ledger

    asset = {"features": assets.FEATURES, "training": assets.TRAINING}[asset_name]
    days = result.get("days", [])
    if asset_name == "training":
        request = ledger.training_request(_settings())
        ds = request[0] if request else parse_ds(days[-1])
        _emit(context, asset, ds, days=days)
        return {"ds": ds.isoformat(), "days": days}
    _emit(context, asset, parse_ds(days[-1]), days=days)
    return {"ds": days[-1], "days": days}


# --- clm_train ----------------------------------------------------------------------


def training_ds(context: dict[str, Any]) -> date | None:
    """The cutoff of a training run: the ``ds`` param, the open request, drift, the schedule.

    None when the run was woken by a training request that is no longer open
    (``clm run`` or an earlier run trained already).
    """
    from clm.data import ledger

    found = param_ds(context)
    if found:
        return found
    request = ledger.training_request(_settings())
    if request is not None:
        return request[0]
    events = context.get("triggering_asset_events") or {}
    drift = sorted(
        parse_ds(event.extra["ds"])
        for key, asset_events in events.items()
        if "drift" in str(getattr(key, "name", key))
        for event in asset_events
        if (event.extra or {}).get("ds")
    )
    if drift:
        return drift[-1]
    if events:
        return None
    return resolve_ds(context)


@fail_fast
def plan_training(context: dict[str, Any]) -> str:
    """Pick the training cutoff (skips when the requested training is done already)."""
    from airflow.sdk.exceptions import AirflowSkipException

    ds = training_ds(context)
    if ds is None:
        raise AirflowSkipException("the requested training was done already; nothing to do")
    log.info("training cutoff ds=%s", ds)
    return ds.isoformat()


@fail_fast
def cutoff_features(ds: str, context: dict[str, Any]) -> list[str]:
    """Compute any missing feature snapshots at the training cutoffs."""
    from clm.data.features import ensure_snapshots, training_cutoffs

    settings = _settings()
    cutoff = parse_ds(ds)
    params = context.get("params") or {}
    horizon = int(params.get("horizon_days") or settings.horizon_days)
    cutoffs = training_cutoffs(
        cutoff, horizon, settings.train_cutoffs, settings.cutoff_spacing_days
    )
    with _locked(settings, context):
        available = [c for c in cutoffs if c >= _first_validated(settings)]
        return [
            d.isoformat()
            for d in ensure_snapshots(settings.features_dir, settings.validated_dir, available)
        ]


def _first_validated(settings: Settings) -> date:
    from clm.core.io import list_partitions

    days = list_partitions(settings.validated_dir, "orders")
    if not days:
        raise ValueError(f"no validated orders under {settings.validated_dir}")
    return days[0]


@fail_fast
def train(ds: str, context: dict[str, Any]) -> dict[str, Any]:
    """Train XGBoost and LightGBM for churn and clv, track in MLflow, promote if better."""
    from clm.app.assets import CHAMPION
    from clm.data import ledger
    from clm.ml.train import train as run_train

    settings = _settings()
    cutoff = parse_ds(ds)
    params = context.get("params") or {}
    families = params.get("model_families") or None
    trials = params.get("tuning_trials")
    with _locked(settings, context):
        try:
            result = run_train(
                settings,
                cutoff,
                horizon_days=params.get("horizon_days") or None,
                families=list(families) if families else None,
                n_trials=None if trials is None else int(trials),
                force_promotion=bool(params.get("force_promotion")),
                airflow_run_id=str(context.get("run_id", "manual")),
            )
        except BaseException:
            ledger.finish_training(settings, cutoff, ok=False)
            raise
        ledger.finish_training(settings, cutoff, ok=True)
    _emit(context, CHAMPION, cutoff)
    return asdict(result)


# --- clm_score ----------------------------------------------------------------------


@fail_fast
def score(context: dict[str, Any]) -> dict[str, Any]:
    """Score every due day with @champion and write its segment partitions."""
    from clm.app.assets import SEGMENTS
    from clm.data import ledger
    from clm.ml.registry import champion_exists
    from clm.ml.scoring import score_day

    settings = _settings()
    reports = []
    with _locked(settings, context):
        days = _days_for(settings, context, "scored")
        request = ledger.training_request(settings)
        if days and request is not None and request[1] == "requested":
            waiting = [d for d, _ in days if d >= request[0]]
            days = [(d, g) for d, g in days if d < request[0]]
            if waiting:
                log.info("days %s wait for the training requested at ds=%s", waiting, request[0])
        if days and not champion_exists(settings):
            why = (
                f"the training requested at ds={request[0]} failed; see clm_train"
                if request
                else "trigger clm_train (or clm run) first"
            )
            raise LookupError(f"no champion to score {days[0][0]}..{days[-1][0]} with: {why}")
        for ds, gen in days:
            report = score_day(settings, ds)
            ledger.record(settings, "scored", ds, gen)
            reports.append(asdict(report))
    if reports:
        _emit(context, SEGMENTS, parse_ds(reports[-1]["ds"]), days=[r["ds"] for r in reports])
    return {
        "days": [r["ds"] for r in reports],
        "customers": sum(r["customers"] for r in reports),
        "retrain": any(r["retrain"] for r in reports),
        "drifted": sorted({f for r in reports for f in r["drifted"]}),
        "ds": reports[-1]["ds"] if reports else None,
        "reports": reports,
    }


def signal_drift(report: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Emit the Asset ``clm_drift`` when the scoring run asked for retraining; else skip.

    A skipped task emits no Asset event, so clm_train does not run.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    from clm.app.assets import DRIFT

    if not report.get("retrain"):
        drifted = report.get("drifted") or []
        raise AirflowSkipException(
            f"drifted above threshold, within the retraining cooldown: {drifted}"
            if drifted
            else "no drift above the thresholds"
        )
    _emit(context, DRIFT, parse_ds(report["ds"]), features=report["drifted"])
    log.warning("retraining requested: drift in %s", ", ".join(report["drifted"]))
    return {"ds": report["ds"], "drifted": report["drifted"]}
