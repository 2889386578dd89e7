"""Labels at a cutoff t with horizon H (DESIGN §5).

``churned`` = no completed order in (t, t+H]; ``future_spend`` = the sum of
completed order amounts in (t, t+H]. Only customers with a completed order on
or before t are labelled.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from clm.core.io import list_partitions, partition_glob

_LABEL_SQL = """
WITH c AS (
    SELECT customer_id, amount, CAST(order_ts AS DATE) AS d
    FROM read_parquet($orders, hive_partitioning = true)
    WHERE status = 'completed' AND ds <= $end
),
population AS (SELECT DISTINCT customer_id FROM c WHERE d <= $cutoff)
SELECT p.customer_id,
    CAST(COUNT(c.amount) = 0 AS INTEGER) AS churned,
    CAST(COALESCE(SUM(CAST(c.amount AS DECIMAL(18, 4))), 0) AS DOUBLE) AS future_spend
FROM population p LEFT JOIN c ON c.customer_id = p.customer_id AND c.d > $cutoff
GROUP BY p.customer_id
ORDER BY p.customer_id
"""
# DECIMAL sums are exact, so labels do not depend on DuckDB's thread order.


_CONVERSION_SQL = """
WITH c AS (
    SELECT customer_id, CAST(order_ts AS DATE) AS d
    FROM read_parquet($orders, hive_partitioning = true)
    WHERE status = 'completed' AND ds <= $end
),
signed AS (
    SELECT DISTINCT customer_id
    FROM read_parquet($customers, hive_partitioning = true)
    WHERE ds <= $cutoff AND CAST(signup_ts AS DATE) <= $cutoff
),
prospects AS (
    SELECT customer_id FROM signed
    ANTI JOIN (SELECT customer_id FROM c WHERE d <= $cutoff) USING (customer_id)
)
SELECT p.customer_id, CAST(COUNT(c.d) > 0 AS INTEGER) AS converted
FROM prospects p LEFT JOIN c ON c.customer_id = p.customer_id AND c.d > $cutoff
GROUP BY p.customer_id
ORDER BY p.customer_id
"""


def _window_end(validated_dir: Path, cutoff: date, horizon_days: int) -> date:
    end = cutoff + timedelta(days=horizon_days)
    days = list_partitions(validated_dir, "orders")
    if not days or days[-1] < end:
        last = days[-1] if days else None
        raise ValueError(
            f"label window ({cutoff}, {end}] is not complete: validated orders end at {last}"
        )
    return end


def compute_conversion_labels(validated_dir: Path, cutoff: date, horizon_days: int) -> pd.DataFrame:
    """``converted`` for every prospect at ``cutoff`` (signed up by then, no completed
    order by then); empty when no customers have landed.

    Raises:
        ValueError: if validated orders do not cover the whole window (t, t+H].
    """
    end = _window_end(validated_dir, cutoff, horizon_days)
    if not list_partitions(validated_dir, "customers"):
        return pd.DataFrame({"customer_id": pd.Series(dtype=object), "converted": []})
    with duckdb.connect() as con:
        return con.execute(
            _CONVERSION_SQL,
            {
                "orders": partition_glob(validated_dir, "orders"),
                "customers": partition_glob(validated_dir, "customers"),
                "cutoff": cutoff,
                "end": end,
            },
        ).df()


def compute_labels(validated_dir: Path, cutoff: date, horizon_days: int) -> pd.DataFrame:
    """Labels for every customer with a completed order on or before ``cutoff``.

    Raises:
        ValueError: if validated orders do not cover the whole window (t, t+H].
    """
    end = _window_end(validated_dir, cutoff, horizon_days)
    with duckdb.connect() as con:
        return con.execute(
            _LABEL_SQL,
            {"orders": partition_glob(validated_dir, "orders"), "cutoff": cutoff, "end": end},
        ).df()
