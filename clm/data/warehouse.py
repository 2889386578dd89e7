"""Warehouse tables: every write replaces its partitions in one transaction.

Two backends behind one set of functions, chosen by the URL:

- ``duckdb:///path/clm.duckdb``, the embedded default;
- ``postgresql://user:password@host:port/db``, production (psycopg 3, ``COPY``);
  ``postgres://`` and SQLAlchemy's ``postgresql+psycopg://`` mean the same.

Messages name the URL without its credentials (:mod:`clm.core.redact`).

A reader sees a day's old rows or its new rows, never a mix: the delete and
the inserts of all the tables a run writes commit together or not at all, and
a crash in between leaves the previous partition as it was.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from clm.core.redact import redact_url, scrub

log = logging.getLogger(__name__)

# Column types are written once, in a dialect both backends read (DOUBLE is
# spelled DOUBLE PRECISION for Postgres). The primary key is the partition key.
_DDL = {
    "customer_segments": """
        ds DATE NOT NULL, customer_id VARCHAR NOT NULL, lifecycle_stage VARCHAR NOT NULL,
        churn_probability DOUBLE, expected_spend DOUBLE,
        value_tier VARCHAR, rfm_segment VARCHAR, segment VARCHAR NOT NULL,
        next_best_action VARCHAR NOT NULL, top_reasons VARCHAR,
        churn_model_version VARCHAR, clv_model_version VARCHAR,
        recommended_categories VARCHAR, reco_model_version VARCHAR,
        behaviour_cluster VARCHAR, cluster_model_version VARCHAR,
        conversion_probability DOUBLE, conversion_model_version VARCHAR,
        PRIMARY KEY (ds, customer_id)""",
    "segment_summary": """
        ds DATE NOT NULL, segment VARCHAR NOT NULL, customers BIGINT NOT NULL,
        mean_churn_probability DOUBLE, total_expected_spend DOUBLE NOT NULL,
        mean_conversion_probability DOUBLE,
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
    "drift": """
        ds DATE NOT NULL, model_name VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, name VARCHAR NOT NULL, psi DOUBLE NOT NULL,
        threshold DOUBLE NOT NULL, drifted BOOLEAN NOT NULL,
        PRIMARY KEY (ds, model_name, name)""",
    "feature_importance": """
        ds DATE NOT NULL, model_name VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
        feature VARCHAR NOT NULL, mean_abs_contribution DOUBLE NOT NULL,
        PRIMARY KEY (ds, model_name, feature)""",
}
TABLES = tuple(_DDL)

# Columns created NOT NULL by an earlier version and nullable since; a writer relaxes
# them once in a warehouse that still has the constraint (DuckDB and Postgres alike).
# top_reasons: NULL for customers whose action needs no explanation (clm/config/segments.yaml).
# The churn and spend columns: NULL for prospects, who are scored by clm-conversion instead.
_RELAXED = (
    ("customer_segments", "top_reasons"),
    ("customer_segments", "churn_probability"),
    ("customer_segments", "expected_spend"),
    ("customer_segments", "value_tier"),
    ("customer_segments", "rfm_segment"),
    ("customer_segments", "churn_model_version"),
    ("customer_segments", "clv_model_version"),
    ("segment_summary", "mean_churn_probability"),
)


# Columns added since a table was first created, in DDL order (each one nullable, at
# the end of the table, so the rows an older version wrote read as NULL there).
# recommended_categories: a JSON array of category names (clm-reco), reco_model_version;
# behaviour_cluster: the named cluster (clm-clusters), cluster_model_version;
# conversion_probability: a prospect's first order in H days (clm-conversion).
_ADDED = (
    ("customer_segments", "recommended_categories", "VARCHAR"),
    ("customer_segments", "reco_model_version", "VARCHAR"),
    ("customer_segments", "behaviour_cluster", "VARCHAR"),
    ("customer_segments", "cluster_model_version", "VARCHAR"),
    ("customer_segments", "conversion_probability", "DOUBLE PRECISION"),
    ("customer_segments", "conversion_model_version", "VARCHAR"),
    ("segment_summary", "mean_conversion_probability", "DOUBLE PRECISION"),
)


def _migrate(execute: Any, fetch: Any) -> None:
    """Bring tables created by an earlier version to the current columns (idempotent)."""
    for table, column, kind in _ADDED:
        execute(
            "SELECT COUNT(*) FROM information_schema.columns "
            f"WHERE table_schema = current_schema() AND table_name = '{table}' "
            f"AND column_name = '{column}'"
        )
        if fetch()[0][0] == 0:
            execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            log.info("warehouse: added column %s.%s", table, column)
    for table, column in _RELAXED:
        execute(
            "SELECT is_nullable FROM information_schema.columns "
            f"WHERE table_schema = current_schema() AND table_name = '{table}' "
            f"AND column_name = '{column}'"
        )
        if [tuple(r) for r in fetch()] == [("NO",)]:
            execute(f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL")


def primary_key(table: str) -> list[str]:
    """The primary-key columns of a warehouse table."""
    ddl = _DDL[table]
    inside = ddl[ddl.index("PRIMARY KEY (") + len("PRIMARY KEY (") : ddl.rindex(")")]
    return [c.strip() for c in inside.split(",")]


def columns(table: str) -> list[str]:
    """Column names of a warehouse table, in order.

    Raises:
        ValueError: if ``table`` is unknown.
    """
    if table not in _DDL:
        raise ValueError(f"unknown warehouse table {table!r}")
    ddl = _DDL[table]
    parts = ddl[: ddl.index("PRIMARY KEY")].split(",")
    return [part.split()[0] for part in parts if part.strip()]


@dataclass(frozen=True)
class Partition:
    """Replace the rows of ``table`` matching ``keys`` by ``frame``."""

    table: str
    frame: pd.DataFrame
    keys: dict[str, Any] = field(default_factory=dict)


class _Transaction(Protocol):
    def delete(self, table: str, keys: dict[str, Any]) -> None: ...
    def delete_matching(self, table: str, frame: pd.DataFrame, key: Sequence[str]) -> None: ...
    def insert(self, table: str, frame: pd.DataFrame) -> None: ...


def _where(keys: dict[str, Any], mark: str) -> str:
    return " AND ".join(f"{k} = {mark}" for k in keys) or "TRUE"


# DuckDB ---------------------------------------------------------------------------------------
def _duckdb_path(url: str) -> Path:
    prefix = "duckdb:///"
    return Path("/" + url[len(prefix) :].lstrip("/"))


class DuckDBTransaction:
    """Statements inside one open DuckDB transaction."""

    def __init__(self, con: Any) -> None:
        self.con = con

    def delete(self, table: str, keys: dict[str, Any]) -> None:
        self.con.execute(f"DELETE FROM {table} WHERE {_where(keys, '?')}", list(keys.values()))

    def delete_matching(self, table: str, frame: pd.DataFrame, key: Sequence[str]) -> None:
        self.con.register("incoming_keys", frame[list(key)])
        match = " AND ".join(f"{table}.{k} = incoming_keys.{k}" for k in key)
        self.con.execute(
            f"DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM incoming_keys WHERE {match})"
        )
        self.con.unregister("incoming_keys")

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        self.con.register("incoming", frame[columns(table)])
        self.con.execute(f"INSERT INTO {table} SELECT * FROM incoming")
        self.con.unregister("incoming")


class WarehouseBusy(RuntimeError):
    """The DuckDB file stayed locked by another process for longer than the wait."""


# DuckDB lets one process write a file, or several read it, never both at once.
# A connection is held only for one query or one transaction, and a process
# that meets the other's lock waits (doubling pauses) before it says who holds it:
# CLM_WAREHOUSE_WAIT_SECONDS, 120 by default.
DUCKDB_LOCK_WAIT_SECONDS = 120.0
_wait_limit: ContextVar[float | None] = ContextVar("duckdb_wait_limit", default=None)


@contextmanager
def waiting_at_most(seconds: float) -> Iterator[None]:
    """Within this block, DuckDB lock waits last at most ``seconds`` (a web page's patience)."""
    token = _wait_limit.set(seconds)
    try:
        yield
    finally:
        _wait_limit.reset(token)


def _connect_duckdb(path: Path, read_only: bool, wait_seconds: float) -> Any:
    import duckdb

    deadline = time.monotonic() + wait_seconds
    pause = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() + pause > deadline:
                holder = re.search(r"PID (\d+)", str(exc))
                raise WarehouseBusy(
                    f"the warehouse {path} is in use by another process"
                    + (f" (pid {holder.group(1)})" if holder else "")
                    + f"; waited {wait_seconds:.0f}s"
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


@contextmanager
def _duckdb(url: str, read_only: bool = False, wait_seconds: float | None = None) -> Iterator[Any]:
    path = _duckdb_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    if read_only and not path.exists():
        read_only = False  # the first reader creates the tables
    configured = float(os.environ.get("CLM_WAREHOUSE_WAIT_SECONDS", DUCKDB_LOCK_WAIT_SECONDS))
    wait = configured if wait_seconds is None else wait_seconds
    limit = _wait_limit.get()
    wait = wait if limit is None else min(wait, limit)
    con = _connect_duckdb(path, read_only, wait)
    if read_only:
        found = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        have = {
            tuple(r)
            for r in con.execute("SELECT table_name, column_name FROM duckdb_columns()").fetchall()
        }
        added = {(table, column) for table, column, _ in _ADDED}
        if not (set(_DDL) <= found and added <= have):
            # a file from an older version: create the tables and add the columns once
            con.close()
            con = _connect_duckdb(path, False, wait)
            read_only = False
    try:
        if not read_only:
            for table, ddl in _DDL.items():
                con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({ddl})")
            _migrate(con.execute, con.fetchall)
        yield con
    finally:
        con.close()


# Postgres -------------------------------------------------------------------------------------
def _pg_ddl(ddl: str) -> str:
    return re.sub(r"\bDOUBLE\b", "DOUBLE PRECISION", ddl)


class PostgresTransaction:
    """Statements inside one open Postgres transaction; inserts go through ``COPY``."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def delete(self, table: str, keys: dict[str, Any]) -> None:
        self.cur.execute(f"DELETE FROM {table} WHERE {_where(keys, '%s')}", list(keys.values()))

    def delete_matching(self, table: str, frame: pd.DataFrame, key: Sequence[str]) -> None:
        for row in frame[list(key)].itertuples(index=False):
            self.cur.execute(
                f"DELETE FROM {table} WHERE {_where(dict(zip(key, row, strict=True)), '%s')}",
                list(row),
            )

    def insert(self, table: str, frame: pd.DataFrame) -> None:
        names = columns(table)
        buffer = io.StringIO()
        rows = frame[names]
        # float32 would print as its own shortest repr, not the double DuckDB stores.
        narrow = [c for c in names if rows[c].dtype == "float32"]
        if narrow:
            rows = rows.astype(dict.fromkeys(narrow, "float64"))
        # repr-exact floats; an empty unquoted field is NULL in COPY's csv format.
        rows.to_csv(buffer, index=False, header=False, quoting=csv.QUOTE_MINIMAL)
        with self.cur.copy(
            f"COPY {table} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            copy.write(buffer.getvalue())


def _libpq_url(url: str) -> str:
    """The URL libpq understands: SQLAlchemy's driver suffix (``+psycopg``) dropped."""
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


@contextmanager
def _postgres(url: str) -> Iterator[Any]:
    import psycopg

    try:
        con = psycopg.connect(_libpq_url(url))
    except psycopg.Error as exc:
        # No chained cause: the driver's own message may quote the password.
        raise ConnectionError(
            f"cannot connect to the warehouse {redact_url(url)}: {scrub(str(exc), url)}"
        ) from None
    try:
        with con.cursor() as cur:
            for table, ddl in _DDL.items():
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_pg_ddl(ddl)})")
            _migrate(cur.execute, cur.fetchall)
        con.commit()
        yield con
    finally:
        con.close()


def backend(url: str) -> str:
    """``duckdb`` or ``postgres``.

    Raises:
        ValueError: for any other URL.
    """
    if url.startswith("duckdb:///"):
        return "duckdb"
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "postgres"
    raise ValueError(
        f"unsupported warehouse URL {redact_url(url)!r}: expected duckdb:///<path> or "
        "postgresql://user:password@host:port/db"
    )


@contextmanager
def transaction(url: str) -> Iterator[_Transaction]:
    """One write transaction: committed on exit, rolled back on any error."""
    if backend(url) == "duckdb":
        with _duckdb(url) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield DuckDBTransaction(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    else:
        with _postgres(url) as con:
            try:
                with con.cursor() as cur:
                    yield PostgresTransaction(cur)
                con.commit()
            except BaseException:
                con.rollback()
                raise


def replace_partitions(url: str, partitions: Sequence[Partition]) -> None:
    """Replace every partition in ``partitions`` in one transaction.

    Raises:
        ValueError: if a table is unknown or a frame disagrees with its keys.
    """
    for p in partitions:
        columns(p.table)  # unknown tables fail before anything is written
        for key, value in p.keys.items():
            if len(p.frame) and not (p.frame[key] == value).all():
                raise ValueError(f"{p.table}: every row must have {key}={value}")
    with transaction(url) as tx:
        for p in partitions:
            tx.delete(p.table, p.keys)
            if len(p.frame):
                tx.insert(p.table, p.frame)
    for p in partitions:
        log.info("%s: replaced partition %s with %d row(s)", p.table, p.keys, len(p.frame))


def replace_partition(url: str, table: str, frame: pd.DataFrame, **keys: Any) -> int:
    """Delete the rows matching ``keys`` and insert ``frame``, in one transaction.

    Raises:
        ValueError: if ``table`` is unknown or ``frame`` disagrees with ``keys``.
    """
    replace_partitions(url, [Partition(table, frame, keys)])
    return len(frame)


def table_columns(url: str, table: str) -> list[str]:
    """Column names of a warehouse table, in order (the same on every backend)."""
    backend(url)
    return columns(table)


def replace_rows(url: str, table: str, frame: pd.DataFrame, key: tuple[str, ...]) -> int:
    """Upsert ``frame`` by ``key``: delete rows with the same key, then insert, in one transaction.

    Raises:
        ValueError: if ``table`` is unknown.
    """
    columns(table)
    with transaction(url) as tx:
        tx.delete_matching(table, frame, key)
        tx.insert(table, frame)
    return len(frame)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Give Postgres results the dtypes DuckDB's ``.df()`` gives (dates, floats)."""
    for name in frame.columns:
        sample = frame[name].dropna()
        if sample.empty:
            continue
        first = sample.iloc[0]
        if isinstance(first, date | datetime):
            frame[name] = pd.to_datetime(frame[name])
        elif isinstance(first, Decimal):
            frame[name] = frame[name].astype("float64")
    return frame


def query(
    url: str, sql: str, params: list[Any] | None = None, wait_seconds: float | None = None
) -> pd.DataFrame:
    """Run a read query (``?`` placeholders) and return a DataFrame.

    On DuckDB the file is opened read-only, so readers never block each other,
    and a reader meeting a writer waits up to ``wait_seconds``.

    Raises:
        WarehouseBusy: DuckDB stayed locked by a writer for ``wait_seconds``.
    """
    if backend(url) == "duckdb":
        with _duckdb(url, read_only=True, wait_seconds=wait_seconds) as con:
            return con.execute(sql, params or []).df()
    with _postgres(url) as con, con.cursor() as cur:
        if params:
            cur.execute(sql.replace("%", "%%").replace("?", "%s"), params)
        else:
            cur.execute(sql)
        names = [d.name for d in cur.description or []]
        return _normalise(pd.DataFrame(cur.fetchall(), columns=names))


@contextmanager
def connect(url: str, read_only: bool = False) -> Iterator[Any]:
    """A raw DuckDB connection (embedded warehouse only), every table created.

    Raises:
        ValueError: if ``url`` is not a DuckDB URL.
    """
    if backend(url) != "duckdb":
        raise ValueError("connect() is for the DuckDB warehouse; use query() for Postgres")
    with _duckdb(url, read_only=read_only) as con:
        yield con


def checksum(url: str, table: str, **keys: Any) -> str:
    """SHA-256 of a partition's rows in key order, the same for the same rows on any backend.

    Floats are hashed by their exact ``repr``, dates as ISO strings.
    """
    where = _where(keys, "?") if keys else "TRUE"
    order = ", ".join(primary_key(table))
    frame = query(
        url,
        f"SELECT {', '.join(columns(table))} FROM {table} WHERE {where} ORDER BY {order}",
        list(keys.values()),
    )
    digest = hashlib.sha256()
    for row in frame.itertuples(index=False):
        digest.update(repr(tuple(_canonical(v) for v in row)).encode())
    return digest.hexdigest()


def _canonical(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.strftime("%Y-%m-%d")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
