from datetime import date

import duckdb
import pandas as pd
import pytest

from clm import warehouse


def _summary(ds, n):
    return pd.DataFrame(
        {
            "ds": [ds] * n,
            "segment": [f"s{i}" for i in range(n)],
            "customers": range(n),
            "mean_churn_probability": [0.5] * n,
            "total_expected_spend": [1.0] * n,
        }
    )


def test_replace_partition_is_idempotent_and_keyed(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    d1, d2 = date(2024, 1, 1), date(2024, 1, 2)
    warehouse.replace_partition(url, "segment_summary", _summary(d1, 3), ds=d1)
    warehouse.replace_partition(url, "segment_summary", _summary(d2, 2), ds=d2)
    warehouse.replace_partition(url, "segment_summary", _summary(d1, 3), ds=d1)
    counts = warehouse.query(
        url, "SELECT ds, COUNT(*) n FROM segment_summary GROUP BY ds ORDER BY ds"
    )
    assert list(counts["n"]) == [3, 2]


def test_failed_write_keeps_the_previous_partition(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    d1 = date(2024, 1, 1)
    warehouse.replace_partition(url, "segment_summary", _summary(d1, 3), ds=d1)
    broken = _summary(d1, 2)
    broken.loc[1, "segment"] = "s0"  # duplicate primary key -> the insert fails
    with pytest.raises(duckdb.ConstraintException):
        warehouse.replace_partition(url, "segment_summary", broken, ds=d1)
    assert len(warehouse.query(url, "SELECT * FROM segment_summary")) == 3


def test_rows_must_match_the_partition_key(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with pytest.raises(ValueError, match="every row must have ds"):
        warehouse.replace_partition(
            url, "segment_summary", _summary(date(2024, 1, 1), 1), ds=date(2024, 1, 2)
        )
    with pytest.raises(ValueError, match="unsupported warehouse URL"):
        warehouse.query("sqlite:///x.db", "SELECT 1")
