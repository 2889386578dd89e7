"""Thin I/O layer: date-partitioned Parquet folders under ``CLM_HOME``.

Every write replaces its partition atomically: the new file is written beside
the old one and renamed into place, so a reader never sees half a day.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTITION_FILE = "part-0.parquet"


class BatchError(RuntimeError):
    """A whole batch is unusable: a missing file or column, or an unreadable file."""


def partition_dir(root: Path, table: str, ds: date) -> Path:
    """Folder of one ``ds`` partition of ``table`` under ``root``."""
    return root / table / f"ds={ds.isoformat()}"


def list_partitions(root: Path, table: str) -> list[date]:
    """Sorted ``ds`` values that have a partition folder for ``table``."""
    base = root / table
    if not base.exists():
        return []
    out = []
    for child in base.iterdir():
        if child.is_dir() and child.name.startswith("ds="):
            out.append(date.fromisoformat(child.name[3:]))
    return sorted(out)


def write_partition(df: pd.DataFrame, root: Path, table: str, ds: date) -> Path:
    """Replace the ``ds`` partition of ``table`` with ``df`` (atomic rename)."""
    target = partition_dir(root, table, ds)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), staging / PARTITION_FILE)
    backup = None
    if target.exists():
        backup = target.parent / f".old-{uuid.uuid4().hex}"
        os.replace(target, backup)
    os.replace(staging, target)
    if backup is not None:
        shutil.rmtree(backup)
    return target / PARTITION_FILE


def remove_partition(root: Path, table: str, ds: date) -> None:
    """Delete the ``ds`` partition of ``table`` if it exists."""
    target = partition_dir(root, table, ds)
    if target.exists():
        shutil.rmtree(target)


def read_partition(root: Path, table: str, ds: date) -> pd.DataFrame:
    """Read every Parquet or CSV file of one partition into one DataFrame.

    Raises:
        BatchError: if the partition is missing or a file cannot be read.
    """
    folder = partition_dir(root, table, ds)
    if not folder.exists():
        raise BatchError(f"{table} ds={ds}: no partition at {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    frames = []
    for path in files:
        try:
            if path.suffix == ".parquet":
                frames.append(pq.read_table(path).to_pandas())
            elif path.name.endswith((".csv", ".csv.gz")):
                frames.append(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))
        except Exception as exc:  # the reader's own message names what broke
            raise BatchError(f"{table} ds={ds}: cannot read {path}: {exc}") from exc
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def partition_glob(root: Path, table: str) -> str:
    """Glob over every partition file of ``table``, for DuckDB's ``read_parquet``."""
    return str(root / table / "ds=*" / "*.parquet")


def fingerprint(paths: Iterable[Path]) -> str:
    """Cheap content identity of files: names, sizes and modification times."""
    parts = []
    for path in sorted(paths):
        stat = path.stat()
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "|".join(parts)
