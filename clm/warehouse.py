"""Warehouse tables: each write replaces its partition in one transaction.

The embedded default is a DuckDB file (``duckdb:///path``). A reader sees the
old partition or the new one, never half of either.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

log = logging.getLogger(__name__)

_DDL = {
    "customer_segments": """
        ds DATE NOT NULL, customer_id VARCHAR NOT NULL, lifecycle_stage VARCHAR NOT NULL,
        churn_probability DOUBLE NOT NULL, expected_spend DOUBLE NOT NULL,
        value_tier VARCHAR NOT NULL, rfm_segment VARCHAR NOT NULL, segment VARCHAR NOT NULL,
        next_best_action VARCHAR NOT NULL, top_reasons VARCHAR NOT NULL,
        churn_model_version VARCHAR NOT NULL, clv_model_version VARCHAR NOT NULL,
        PRIMARY KEY (ds, customer_id)""",
    "segment_summary": """
        ds DATE NOT NULL, segment VARCHAR NOT NULL, customers BIGINT NOT NULL,
        mean_churn_probability DOUBLE NOT NULL, total_expected_spend DOUBLE NOT NULL,
        PRIMARY KEY (ds, segment)""",
    "segment_transitions": """
        ds DATE NOT NULL, from_segment VARCHAR NOT NULL, to_segment VARCHAR NOT NULL,
        customers BIGINT NOT NULL, PRIMARY KEY (ds, from_segment, to_segment)""",
    "model_promotions": """
        ds DATE NOT NULL, model_name VARCHAR NOT NULL, challenger_version VARCHAR NOT NULL,
        challenger_family VARCHAR NOT NULL, metric VARCHAR NOT NULL,
        challenger_score DOUBLE NOT NULL, champion_version VARCHAR, champion_score DOUBLE,
        decision VARCHAR NOT NULL, reasons VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
        PRIMARY KEY (ds, model_name)""",
    "validation_runs": """
        ds DATE NOT NULL, table_name VARCHAR NOT NULL, landed BIGINT NOT NULL,
        validated BIGINT NOT NULL, quarantined BIGINT NOT NULL, success BOOLEAN NOT NULL,
        status VARCHAR NOT NULL, failures VARCHAR NOT NULL, warnings VARCHAR NOT NULL,
        error VARCHAR, docs_url VARCHAR, PRIMARY KEY (ds, table_name)""",
}


def _duckdb_path(url: str) -> Path:
    prefix = "duckdb:///"
    if not url.startswith(prefix):
        raise ValueError(f"unsupported warehouse URL {url!r}: expected duckdb:///<path>")
    return Path("/" + url[len(prefix) :].lstrip("/"))


@contextmanager
def connect(url: str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse and make sure every table exists."""
    path = _duckdb_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    if read_only and not path.exists():
        read_only = False
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        if not read_only:
            for table, columns in _DDL.items():
                con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        yield con
    finally:
        con.close()


def replace_partition(url: str, table: str, frame: pd.DataFrame, **keys: Any) -> int:
    """Delete the rows matching ``keys`` and insert ``frame``, in one transaction.

    Raises:
        ValueError: if ``table`` is unknown or ``frame`` disagrees with ``keys``.
    """
    if table not in _DDL:
        raise ValueError(f"unknown warehouse table {table!r}")
    for key, value in keys.items():
        if len(frame) and not (frame[key] == value).all():
            raise ValueError(f"{table}: every row must have {key}={value}")
    where = " AND ".join(f"{k} = ?" for k in keys)
    with connect(url) as con:
        columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        con.register("incoming", frame[columns])
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {table} WHERE {where}", list(keys.values()))
            con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    log.info("%s: replaced partition %s with %d row(s)", table, keys, len(frame))
    return len(frame)


def table_columns(url: str, table: str) -> list[str]:
    """Column names of a warehouse table, in order."""
    with connect(url) as con:
        return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def replace_rows(url: str, table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> int:
    """Upsert ``frame`` by ``key``: delete rows with the same key, then insert, in one transaction.

    Raises:
        ValueError: if ``table`` is unknown.
    """
    if table not in _DDL:
        raise ValueError(f"unknown warehouse table {table!r}")
    with connect(url) as con:
        columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        con.register("incoming", frame[columns])
        match = " AND ".join(f"{table}.{k} = incoming.{k}" for k in key)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM incoming WHERE {match})")
            con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return len(frame)


def query(url: str, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """Run a read query and return a DataFrame."""
    with connect(url) as con:
        return con.execute(sql, params or []).df()
