"""Score every customer as of ds with the champions and write the segment tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from clm import warehouse
from clm.io import BatchError, partition_dir, read_partition
from clm.segments import assign_segments, load_rules, summarize, transitions
from clm.settings import Settings
from clm.validation import BatchValidationError, check_output

log = logging.getLogger(__name__)
TOP_REASONS = 3


@dataclass
class ScoreReport:
    """What one scoring run wrote."""

    ds: str
    customers: int
    churn_model_version: str
    clv_model_version: str
    segments: dict[str, int]


def load_snapshot(settings: Settings, ds: date) -> pd.DataFrame:
    """Both feature views as of ds, one row per customer.

    Raises:
        BatchError: if the snapshot for ds has not been computed.
    """
    if not partition_dir(settings.features_dir, "order_features", ds).exists():
        raise BatchError(f"no feature snapshot for ds={ds}; run clm_features for that day first")
    orders = read_partition(settings.features_dir, "order_features", ds)
    engagement = read_partition(settings.features_dir, "engagement_features", ds)
    drop = ["event_timestamp", "created_timestamp"]
    return orders.drop(columns=drop).merge(
        engagement.drop(columns=drop), on="customer_id", how="left", validate="one_to_one"
    )


def top_reasons(contrib: np.ndarray, names: list[str], k: int = TOP_REASONS) -> list[str]:
    """The ``k`` features pushing each churn score up the most, comma-joined."""
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    labels = np.asarray(names, dtype=object)[order]
    positive = np.take_along_axis(contrib, order, axis=1) > 0
    return [", ".join(row[mask]) or "none" for row, mask in zip(labels, positive, strict=True)]


def _check_output(settings: Settings, out: pd.DataFrame, ds: date) -> None:
    """Run the output suite on the day's rows; refuse the write if it fails. Record the run."""
    row = {"ds": ds, "table_name": "customer_segments", "landed": len(out), "quarantined": 0}
    try:
        docs_url = check_output(
            out,
            settings.expectations_dir / "customer_segments.json",
            settings.gx_dir,
            "customer_segments",
            ds,
        )
    except BatchValidationError as err:
        row |= {"validated": 0, "success": False, "status": "failed", "error": str(err)}
        warehouse.replace_rows(
            settings.warehouse,
            "validation_runs",
            pd.DataFrame([row | {"failures": "{}", "warnings": "{}", "docs_url": err.docs_url}]),
            ("ds", "table_name"),
        )
        raise
    row |= {"validated": len(out), "success": True, "status": "passed", "error": None}
    warehouse.replace_rows(
        settings.warehouse,
        "validation_runs",
        pd.DataFrame([row | {"failures": "{}", "warnings": "{}", "docs_url": docs_url}]),
        ("ds", "table_name"),
    )


def score_day(settings: Settings, ds: date) -> ScoreReport:
    """Load ``@champion`` of clm-churn and clm-clv, score, segment, write ds partitions."""
    from training import models
    from training.promotion import ALIAS, REGISTERED, load_version, model_features
    from training.train import setup_mlflow

    setup_mlflow(settings)
    snapshot = load_snapshot(settings, ds)
    scored = snapshot[["customer_id"]].copy()
    versions = {}
    for task in ("churn", "clv"):
        uri = f"models:/{REGISTERED[task]}@{ALIAS}"
        from mlflow import MlflowClient

        try:
            version = MlflowClient().get_model_version_by_alias(REGISTERED[task], ALIAS).version
        except Exception as exc:
            raise RuntimeError(
                f"no {uri}: train a model first (trigger clm_train or `clm run`)"
            ) from exc
        # Load by number: the alias may move while this task runs.
        trained = load_version(f"models:/{REGISTERED[task]}/{version}")
        names = model_features(f"models:/{REGISTERED[task]}/{version}")
        missing = sorted(set(names) - set(snapshot.columns))
        if missing:
            raise BatchError(f"ds={ds}: features {missing} needed by {uri} are not in the snapshot")
        x = snapshot[names].astype("float64")
        prediction = trained.predict(x)
        if task == "churn":
            scored["churn_probability"] = prediction
            scored["top_reasons"] = top_reasons(models.contributions(trained, x), names)
        else:
            scored["expected_spend"] = prediction
        versions[task] = str(version)
        log.info("scored %d customers with %s (v%s, %s)", len(x), uri, version, trained.family)

    frame = snapshot.merge(scored, on="customer_id")
    rules = load_rules(settings.segments_config)
    segments = assign_segments(frame, rules, settings.horizon_days)
    segments["ds"] = ds
    segments["churn_model_version"] = versions["churn"]
    segments["clv_model_version"] = versions["clv"]
    out = segments.sort_values("customer_id", ignore_index=True)

    url = settings.warehouse
    out = out[warehouse.table_columns(url, "customer_segments")]
    _check_output(settings, out, ds)
    warehouse.replace_partition(url, "customer_segments", out, ds=ds)
    summary = summarize(out)
    warehouse.replace_partition(url, "segment_summary", summary, ds=ds)
    previous = warehouse.query(
        url,
        "SELECT customer_id, segment FROM customer_segments WHERE ds = "
        "(SELECT MAX(ds) FROM customer_segments WHERE ds < ?)",
        [ds],
    )
    warehouse.replace_partition(url, "segment_transitions", transitions(previous, out), ds=ds)
    counts = dict(zip(summary["segment"], summary["customers"].astype(int), strict=True))
    log.info("ds=%s: %d customers in segments %s", ds, len(out), counts)
    return ScoreReport(ds.isoformat(), len(out), versions["churn"], versions["clv"], counts)
