"""The functions Airflow tasks call: resolve ds, call one library function, log, return small dicts.

DAG files stay wiring only. Everything heavy is imported here, at run time.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import date
from typing import Any

from clm.settings import Settings, get_settings, parse_ds
from clm.validation import quiet_gx

log = logging.getLogger(__name__)


def resolve_ds(context: dict[str, Any]) -> date:
    """The run's ds: the ``ds`` param, else the triggering Asset events, else the logical date.

    Raises:
        ValueError: if none of them gives a date.
    """
    param = (context.get("params") or {}).get("ds")
    if param:
        return parse_ds(param)
    events = context.get("triggering_asset_events") or {}
    found = [
        parse_ds(event.extra["ds"])
        for asset_events in events.values()
        for event in asset_events
        if (event.extra or {}).get("ds")
    ]
    if found:
        return max(found)
    logical = context.get("logical_date")
    if logical is not None:
        return logical.date()
    raise ValueError("cannot tell the ds of this run: pass the `ds` param")


def _settings() -> Settings:
    quiet_gx()
    settings = get_settings()
    settings.export_env()
    return settings


def _emit(context: dict[str, Any], asset: Any, ds: date, **extra: Any) -> None:
    outlet_events = context.get("outlet_events")
    if outlet_events is not None:
        outlet_events[asset].extra = {"ds": ds.isoformat(), **extra}


def ingest(context: dict[str, Any]) -> dict[str, Any]:
    """Validate every pending landed day up to ds; quarantine failing rows."""
    from airflow.sdk.exceptions import AirflowFailException

    from clm.assets import VALIDATED
    from clm.ingest import ingest as run_ingest
    from clm.validation import BatchValidationError

    ds = resolve_ds(context)
    try:
        report = run_ingest(_settings(), ds)
    except BatchValidationError as exc:
        # The same input fails the same way: retrying would not help.
        raise AirflowFailException(str(exc)) from exc
    _emit(context, VALIDATED, ds, days=len(report.days))
    return report.as_dict()


def compute_features(context: dict[str, Any]) -> dict[str, Any]:
    """Compute the customer feature snapshot as of ds (Feast offline source)."""
    from clm.features import write_snapshot

    settings = _settings()
    ds = resolve_ds(context)
    paths = write_snapshot(settings.features_dir, settings.validated_dir, ds)
    return {"ds": ds.isoformat(), "customers": paths.customers, "path": str(paths.orders.parent)}


def apply_feature_repo(context: dict[str, Any]) -> bool:
    """`feast apply` feature_repo/ when its definitions changed."""
    from clm.feature_store import apply_repo

    return apply_repo(_settings())


def materialize(context: dict[str, Any]) -> dict[str, int]:
    """Materialize the ds snapshot into the online store (the whole day ds)."""
    from clm.assets import FEATURES
    from clm.feature_store import materialize_day

    ds = resolve_ds(context)
    counts = materialize_day(_settings(), ds)
    _emit(context, FEATURES, ds, customers=max(counts.values(), default=0))
    return counts


def cutoff_features(context: dict[str, Any]) -> list[str]:
    """Compute any missing feature snapshots at the training cutoffs."""
    from clm.features import training_cutoffs
    from training.train import ensure_snapshots

    settings = _settings()
    ds = resolve_ds(context)
    params = context.get("params") or {}
    horizon = int(params.get("horizon_days") or settings.horizon_days)
    cutoffs = training_cutoffs(ds, horizon, settings.train_cutoffs, settings.cutoff_spacing_days)
    available = [c for c in cutoffs if c >= _first_validated(settings)]
    return [d.isoformat() for d in ensure_snapshots(settings, available)]


def _first_validated(settings: Settings) -> date:
    from clm.io import list_partitions

    days = list_partitions(settings.validated_dir, "orders")
    if not days:
        raise ValueError(f"no validated orders under {settings.validated_dir}")
    return days[0]


def train(context: dict[str, Any]) -> dict[str, Any]:
    """Train XGBoost and LightGBM for churn and clv, track in MLflow, promote if better."""
    from clm.assets import CHAMPION
    from training.train import train as run_train

    settings = _settings()
    ds = resolve_ds(context)
    params = context.get("params") or {}
    families = params.get("model_families") or None
    trials = params.get("tuning_trials")
    result = run_train(
        settings,
        ds,
        horizon_days=params.get("horizon_days") or None,
        families=list(families) if families else None,
        n_trials=None if trials is None else int(trials),
        force_promotion=bool(params.get("force_promotion")),
        airflow_run_id=str(context.get("run_id", "manual")),
    )
    _emit(context, CHAMPION, ds)
    return asdict(result)


def score(context: dict[str, Any]) -> dict[str, Any]:
    """Score every customer with @champion and write the ds segment partitions."""
    from clm.assets import SEGMENTS
    from clm.scoring import score_day

    ds = resolve_ds(context)
    report = score_day(_settings(), ds)
    _emit(context, SEGMENTS, ds, customers=report.customers)
    return asdict(report)


def signal_drift(report: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Emit the Asset ``clm_drift`` when the scoring run asked for retraining; else skip.

    A skipped task emits no Asset event, so clm_train does not run.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    from clm.assets import DRIFT

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
