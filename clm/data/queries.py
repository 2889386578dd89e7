"""The warehouse reads the CLI, the report and the Airflow page share.

Every read of the daily tables goes through here, in SQL that DuckDB and
Postgres both run, so the three surfaces cannot disagree on what "the latest
day" or "a day's validation" means. Writes stay in :mod:`clm.data.warehouse`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from clm.data import warehouse

# The order each per-day table is shown in.
_DAY_ORDER = {
    "segment_summary": "segment",
    "segment_transitions": "from_segment, to_segment",
    "feature_importance": "mean_abs_contribution DESC, feature",
    "drift": "psi DESC, name",
    "validation_runs": "table_name",
}
SEGMENT_COLUMNS = (
    "customer_id",
    "lifecycle_stage",
    "churn_probability",
    "expected_spend",
    "value_tier",
    "rfm_segment",
    "segment",
    "next_best_action",
    "recommended_categories",
    "behaviour_cluster",
    "conversion_probability",
)


def _as_date(value: Any) -> date | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def _known(table: str) -> str:
    if table not in warehouse.TABLES:
        raise ValueError(f"unknown warehouse table {table!r}; known: {', '.join(warehouse.TABLES)}")
    return table


def latest_ds(
    url: str,
    table: str = "customer_segments",
    before: date | None = None,
    wait_seconds: float | None = None,
) -> date | None:
    """The latest ``ds`` in ``table`` (before ``before`` when given), or None when empty.

    Raises:
        ValueError: ``table`` is not a warehouse table.
    """
    sql = f"SELECT MAX(ds) AS ds FROM {_known(table)}"
    params: list[Any] = []
    if before is not None:
        sql += " WHERE ds < ?"
        params.append(before)
    found = warehouse.query(url, sql, params, wait_seconds=wait_seconds)
    return None if found.empty else _as_date(found["ds"].iloc[0])


def day(url: str, table: str, ds: date, wait_seconds: float | None = None) -> pd.DataFrame:
    """Every row of one day of a per-day table, in the order it is shown.

    Raises:
        ValueError: ``table`` has no shown order (it is not a per-day summary table).
    """
    if table not in _DAY_ORDER:
        raise ValueError(f"{table!r} is not one of {', '.join(_DAY_ORDER)}")
    sql = f"SELECT * FROM {table} WHERE ds = ? ORDER BY {_DAY_ORDER[table]}"
    return warehouse.query(url, sql, [ds], wait_seconds=wait_seconds)


def segments(url: str, ds: date) -> pd.DataFrame:
    """The customer rows of one scored day (the columns the report draws)."""
    sql = f"SELECT {', '.join(SEGMENT_COLUMNS)} FROM customer_segments WHERE ds = ?"
    return warehouse.query(url, sql, [ds])


def stage_actions(url: str, ds: date) -> pd.DataFrame:
    """Customers per lifecycle stage and next best action on ``ds``."""
    sql = (
        "SELECT lifecycle_stage, next_best_action, COUNT(*) AS n FROM customer_segments "
        "WHERE ds = ? GROUP BY lifecycle_stage, next_best_action "
        "ORDER BY lifecycle_stage, next_best_action"
    )
    return warehouse.query(url, sql, [ds])


# registered model -> the customer_segments column naming the version that made a value
VERSION_COLUMNS = {
    "clm-churn": "churn_model_version",
    "clm-clv": "clv_model_version",
    "clm-conversion": "conversion_model_version",
    "clm-reco": "reco_model_version",
    "clm-clusters": "cluster_model_version",
}


def model_versions(url: str, ds: date) -> pd.DataFrame:
    """``(model, version)`` of every model version that scored ``ds``, in the order of
    :data:`VERSION_COLUMNS` (a model without a champion that day has no row)."""
    sql = " UNION ALL ".join(
        f"SELECT * FROM (SELECT DISTINCT {i} AS k, '{name}' AS model, {column} AS version "
        f"FROM customer_segments WHERE ds = ? AND {column} IS NOT NULL) AS m{i}"
        for i, (name, column) in enumerate(VERSION_COLUMNS.items())
    )
    found = warehouse.query(url, f"{sql} ORDER BY k, version", [ds] * len(VERSION_COLUMNS))
    return found.drop(columns="k").reset_index(drop=True)


def customer(url: str, customer_id: str) -> pd.DataFrame:
    """The customer's latest segment row (empty when never scored)."""
    sql = "SELECT * FROM customer_segments WHERE customer_id = ? ORDER BY ds DESC LIMIT 1"
    return warehouse.query(url, sql, [customer_id])


def promotions(url: str) -> pd.DataFrame:
    """Every promotion decision, oldest first."""
    return warehouse.query(url, "SELECT * FROM model_promotions ORDER BY ds, model_name")


def latest_validations(url: str, wait_seconds: float | None = None) -> pd.DataFrame:
    """The latest validation run of each table."""
    sql = (
        "SELECT v.* FROM validation_runs v JOIN (SELECT table_name, MAX(ds) AS ds "
        "FROM validation_runs GROUP BY table_name) m "
        "ON v.table_name = m.table_name AND v.ds = m.ds ORDER BY v.table_name"
    )
    return warehouse.query(url, sql, wait_seconds=wait_seconds)
