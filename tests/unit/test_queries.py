"""The shared warehouse reads give the same answers on DuckDB and on Postgres."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from clm.data import queries, warehouse

D1, D2 = date(2024, 3, 1), date(2024, 3, 2)


def _segments(ds: date, version: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ds": [ds, ds, ds],
            "customer_id": ["C1", "C2", "C3"],
            "lifecycle_stage": ["active", "active", "at_risk"],
            "churn_probability": [0.1, 0.2, 0.8],
            "expected_spend": [10.0, 20.0, 5.0],
            "value_tier": ["mid", "high", "low"],
            "rfm_segment": ["Loyal", "Champions", "At risk"],
            "segment": ["mid_value_healthy", "high_value_healthy", "low_value_at_risk"],
            "next_best_action": ["cross_sell", "cross_sell", "no_action"],
            "top_reasons": ["a", "b", "c"],
            "churn_model_version": [version] * 3,
            "clv_model_version": ["1"] * 3,
            "recommended_categories": ['["toys"]', "[]", '["books", "garden"]'],
            "reco_model_version": ["4"] * 3,
            "behaviour_cluster": ["frequent, big spenders", "recent, one category", "lapsing"],
            "cluster_model_version": ["5"] * 3,
            "conversion_probability": [None] * 3,
            "conversion_model_version": [None] * 3,
        }
    )


def _validation(ds: date, table: str, status: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "ds": ds,
                "table_name": table,
                "landed": 3,
                "validated": 3,
                "quarantined": 0,
                "success": status == "passed",
                "status": status,
                "failures": "{}",
                "warnings": "{}",
                "error": None,
                "docs_url": None,
            }
        ]
    )


def _fill(url: str) -> None:
    for ds, version in ((D1, "1"), (D2, "2")):
        warehouse.replace_partition(url, "customer_segments", _segments(ds, version), ds=ds)
        summary = pd.DataFrame(
            {
                "ds": [ds, ds],
                "segment": ["b_segment", "a_segment"],
                "customers": [2, 1],
                "mean_churn_probability": [0.1, 0.8],
                "total_expected_spend": [30.0, 5.0],
                "mean_conversion_probability": [None, None],
            }
        )
        warehouse.replace_partition(url, "segment_summary", summary, ds=ds)
    warehouse.replace_partition(url, "validation_runs", _validation(D1, "orders", "failed"), ds=D1)
    warehouse.replace_partition(url, "validation_runs", _validation(D2, "orders", "passed"), ds=D2)
    events = _validation(D1, "events", "passed")
    warehouse.replace_rows(url, "validation_runs", events, ("ds", "table_name"))


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        found = f"duckdb:///{tmp_path / 'clm.duckdb'}"
    else:
        found = str(request.getfixturevalue("postgres_url"))
    _fill(found)
    return found


def test_the_latest_day_and_the_one_before(url: str) -> None:
    assert queries.latest_ds(url) == D2
    assert queries.latest_ds(url, before=D2) == D1
    assert queries.latest_ds(url, before=D1) is None
    assert queries.latest_ds(url, "validation_runs") == D2
    assert queries.latest_ds(url, "drift") is None


def test_a_day_comes_in_its_shown_order(url: str) -> None:
    summary = queries.day(url, "segment_summary", D1)
    assert summary["segment"].tolist() == ["a_segment", "b_segment"]
    assert queries.day(url, "drift", D1).empty


def test_the_counts_per_stage_and_action(url: str) -> None:
    stages = queries.stage_actions(url, D2)
    assert list(stages.itertuples(index=False, name=None)) == [
        ("active", "cross_sell", 2),
        ("at_risk", "no_action", 1),
    ]


def test_a_customer_and_the_model_versions_of_a_day(url: str) -> None:
    row = queries.customer(url, "C2")
    assert len(row) == 1 and pd.Timestamp(row["ds"].iloc[0]).date() == D2
    assert queries.customer(url, "nobody").empty
    versions = queries.model_versions(url, D1)
    used = dict(zip(versions["model"], versions["version"], strict=True))
    assert used["clm-churn"] == "1" and used["clm-reco"] == "4"
    assert "clm-conversion" not in used  # that day had no conversion model


def test_the_latest_validation_of_each_table(url: str) -> None:
    latest = queries.latest_validations(url)
    assert latest["table_name"].tolist() == ["events", "orders"]
    assert latest["status"].tolist() == ["passed", "passed"]
    assert [pd.Timestamp(d).date() for d in latest["ds"]] == [D1, D2]


def test_only_known_tables_are_read(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'clm.duckdb'}"
    with pytest.raises(ValueError, match="unknown warehouse table"):
        queries.latest_ds(url, "customer_segments; DROP TABLE drift")
    with pytest.raises(ValueError, match="is not one of"):
        queries.day(url, "customer_segments", D1)


OLD_SEGMENTS = """CREATE TABLE customer_segments (
    ds DATE NOT NULL, customer_id VARCHAR NOT NULL, lifecycle_stage VARCHAR NOT NULL,
    churn_probability DOUBLE PRECISION NOT NULL, expected_spend DOUBLE PRECISION NOT NULL,
    value_tier VARCHAR NOT NULL, rfm_segment VARCHAR NOT NULL, segment VARCHAR NOT NULL,
    next_best_action VARCHAR NOT NULL, top_reasons VARCHAR NOT NULL,
    churn_model_version VARCHAR NOT NULL, clv_model_version VARCHAR NOT NULL,
    PRIMARY KEY (ds, customer_id))"""
OLD_ROW = (
    "INSERT INTO customer_segments VALUES ('2024-02-01', 'C9', 'active', 0.1, 1.0, 'mid', "
    "'Loyal', 'mid_value_healthy', 'cross_sell', 'none', '1', '1')"
)


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_warehouse_of_an_earlier_version_gains_the_new_columns(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A table written before recommendations existed: its rows are kept (NULL in the new
    columns), new days are written whole, and a reader alone brings it up to date."""
    if kind == "duckdb":
        import duckdb

        url = f"duckdb:///{tmp_path / 'old.duckdb'}"
        with duckdb.connect(str(tmp_path / "old.duckdb")) as con:
            con.execute(OLD_SEGMENTS)
            con.execute(OLD_ROW)
    else:
        import psycopg

        url = str(request.getfixturevalue("postgres_url"))
        with psycopg.connect(url) as con:
            con.execute(OLD_SEGMENTS)
            con.execute(OLD_ROW)
    old = queries.customer(url, "C9")  # a read, before any write
    added = ["recommended_categories", "reco_model_version", "behaviour_cluster"]
    assert old[added].isna().all().all()
    _fill(url)
    new = queries.customer(url, "C2")
    assert new["recommended_categories"].tolist() == ["[]"]
    assert new["reco_model_version"].tolist() == ["4"]
    assert new["behaviour_cluster"].tolist() == ["recent, one category"]
    assert len(queries.customer(url, "C9")) == 1  # kept
