"""Thin I/O layer: date-partitioned Parquet folders under ``CLM_HOME``.

Every write replaces its partition atomically: the new file is written beside
the old one and renamed into place, so a reader never sees half a day.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

PARTITION_FILE = "part-0.parquet"
# What a landing partition may hold; matched case-insensitively (ORDERS.CSV is a CSV).
READABLE = (".parquet", ".csv", ".csv.gz")
CSV_BLOCK_SIZES = (1 << 22, 1 << 26, 1 << 28)  # 4, 64, 256 MiB


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


def newest_partition(root: Path, tables: Iterable[str]) -> date | None:
    """The latest ``ds`` with a partition of any of ``tables`` under ``root`` (None if none)."""
    days = [d for table in tables for d in list_partitions(root, table)[-1:]]
    return max(days, default=None)


def write_partition(df: pd.DataFrame, root: Path, table: str, ds: date) -> Path:
    """Replace the ``ds`` partition of ``table`` with ``df`` (atomic rename)."""
    staged = StagedPartition(root, table, ds)
    staged.write(df)
    staged.commit()
    return partition_dir(root, table, ds) / PARTITION_FILE


class StagedPartition:
    """A partition written part by part beside the old one, swapped in by :meth:`commit`.

    Readers see the old partition until the commit renames the new one into
    place; :meth:`abort` (or never committing) leaves the old one untouched.
    A commit with no part written removes the partition.
    """

    def __init__(self, root: Path, table: str, ds: date, schema: pa.Schema | None = None) -> None:
        self.target = partition_dir(root, table, ds)
        self.schema = schema
        self.staging: Path | None = None
        self.parts = 0
        self.rows = 0

    def write(self, df: pd.DataFrame) -> None:
        """Add ``df`` as the next part file (cast to ``schema`` when one was given)."""
        if self.staging is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.staging = self.target.parent / f".staging-{uuid.uuid4().hex}"
            self.staging.mkdir()
        table = pa.Table.from_pandas(df, schema=self.schema, preserve_index=False)
        pq.write_table(table, self.staging / f"part-{self.parts}.parquet")
        self.parts += 1
        self.rows += len(df)

    def commit(self) -> None:
        if self.staging is None:
            if self.target.exists():
                shutil.rmtree(self.target)
            return
        backup = None
        if self.target.exists():
            backup = self.target.parent / f".old-{uuid.uuid4().hex}"
            os.replace(self.target, backup)
        os.replace(self.staging, self.target)
        self.staging = None
        if backup is not None:
            shutil.rmtree(backup)

    def abort(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None


def remove_partition(root: Path, table: str, ds: date) -> None:
    """Delete the ``ds`` partition of ``table`` if it exists."""
    target = partition_dir(root, table, ds)
    if target.exists():
        shutil.rmtree(target)


@dataclass
class Landed:
    """One landed partition: its rows (raw), malformed CSV lines and the files read."""

    frame: pd.DataFrame
    malformed: pd.DataFrame  # columns: file, line, raw_line, reason
    files: list[Path]


def landed_files(folder: Path) -> list[Path]:
    """Every file of a partition folder, sorted: all are fingerprinted and hashed.

    :func:`read_landed` reads them all, or refuses the batch naming the file it
    cannot read; only empty marker files (``_SUCCESS``, ``.keep``) are skipped.
    """
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file())


def _marker(path: Path) -> bool:
    """A hidden or ``_`` file: skipped when empty (a marker), refused otherwise."""
    return path.name.startswith((".", "_"))


def _format(path: Path) -> str | None:
    name = path.name.lower()
    return next((suffix for suffix in READABLE if name.endswith(suffix)), None)


def uncompressed_bytes(path: Path) -> int:
    """What a landed file holds once decompressed: the budget of memory is this, not its size.

    A gzip file records its decompressed size (modulo 4 GiB) in its last four
    bytes; a Parquet file records its encoded size and its rows and columns (at
    least 8 bytes a cell once decoded).
    Unreadable files count their size on disk (the reader refuses them later).
    """
    size = path.stat().st_size
    kind = _format(path)
    try:
        if kind == ".csv.gz" and size >= 18:
            with open(path, "rb") as fh:
                fh.seek(-4, os.SEEK_END)
                recorded = int.from_bytes(fh.read(4), "little")
            # A wrapped counter (over 4 GiB) or a multi-member file reads small: never below 1x.
            return max(recorded, size)
        if kind == ".parquet":
            meta = pq.ParquetFile(path).metadata
            total = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            # Dictionary encoding packs repeated values far below their decoded size:
            # count at least 8 bytes per cell, what a plain value takes once decoded.
            return max(int(total), meta.num_rows * meta.num_columns * 8, size)
    except Exception:
        return size
    return size


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_hash(paths: Iterable[Path]) -> str:
    """Identity of files by name and content (sha256), independent of modification time."""
    return "|".join(f"{p.name}:{sha256_file(p)}" for p in sorted(paths))


def printable(text: str, limit: int = 300) -> str:
    """``text`` for a message: control characters escaped, cut to ``limit`` characters."""
    shown = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[:limit] + f"... ({len(shown):,} characters)"


def _check_text(path: Path) -> None:
    """Refuse a CSV that is not UTF-8 text before the parser meets it.

    Raises:
        BatchError: a NUL byte (binary content), invalid UTF-8, or a broken gzip stream.
    """
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    offset = 0
    try:
        with opener(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                nul = block.find(b"\x00")
                if nul >= 0:
                    raise BatchError(
                        f"cannot read {path}: binary content "
                        f"(a NUL byte at byte {offset + nul:,}), not CSV text"
                    )
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    raise BatchError(
                        f"cannot read {path}: not valid UTF-8 ({_first_bad_utf8(path)}); "
                        "re-export the file as UTF-8"
                    ) from exc
                offset += len(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise BatchError(f"cannot read {path}: not valid UTF-8 (it ends mid-character)") from exc
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise BatchError(f"cannot read {path}: {printable(str(exc))}") from exc


def _first_bad_utf8(path: Path) -> str:
    """Where a file stops being UTF-8: 'line N, byte 0xXX'."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number}, byte 0x{line[exc.start]:02x} at column {exc.start + 1}"
    return "an unknown position"


MALFORMED_COLUMNS = ["file", "line", "raw_line", "reason"]


def _csv_options(path: Path) -> tuple[list[str], pa_csv.ConvertOptions]:
    """Header names and options that read every column of ``path`` as a string.

    Raises:
        BatchError: the file is empty, has no header, or is not UTF-8.
    """
    _check_text(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        header_line = fh.readline()
    if not header_line.strip():
        raise BatchError(f"cannot read {path}: the file is empty (no header line)")
    # Arrow drops a UTF-8 byte order mark from the first name: so must the options,
    # or that column would be type-inferred ("00123" read as the number 123).
    names = next(csv.reader([header_line.removeprefix("\ufeff")]))
    return names, pa_csv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=False,
    )


def _keep_aside(path: Path, bad: list[dict[str, object]]) -> Callable[[Any], str]:
    def handler(row: Any) -> str:
        bad.append(
            {
                "file": path.name,
                "line": row.number,
                "raw_line": row.text,
                "reason": f"csv: line {row.number} has {row.actual_columns} field(s), "
                f"expected {row.expected_columns}",
            }
        )
        return "skip"

    return handler


def _raise_unless_straddling(path: Path, exc: pa.ArrowInvalid) -> None:
    """A field longer than the parse block is retried with larger blocks; else refuse."""
    if "UTF8" in str(exc) or "utf8" in str(exc).lower():
        raise BatchError(
            f"cannot read {path}: not valid UTF-8 ({_first_bad_utf8(path)}); "
            "re-export the file as UTF-8"
        ) from exc
    if "straddl" not in str(exc):
        raise exc


def _all_strings(path: Path, schema: pa.Schema) -> None:
    """Every CSV column is read as text; a typed one means the header was misread."""
    typed = [f"{f.name} ({f.type})" for f in schema if f.type != pa.string()]
    if typed:
        raise BatchError(f"cannot read {path}: column(s) {typed} were not read as text")


def read_csv_strings(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read a CSV (optionally gzip) with every column as a string.

    Lines with the wrong number of fields are kept aside, not dropped: they
    come back as ``malformed`` rows with their line number and raw text.

    Raises:
        BatchError: the file is empty, has no header, or is not UTF-8.
    """
    names, options = _csv_options(path)
    # A field must fit in one parse block: start small, grow for files with huge
    # fields (the suites then quarantine over-long values row by row).
    for block_size in CSV_BLOCK_SIZES:
        bad: list[dict[str, object]] = []
        try:
            table = pa_csv.read_csv(
                path,
                read_options=pa_csv.ReadOptions(use_threads=False, block_size=block_size),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=_keep_aside(path, bad)),
                convert_options=options,
            )
            _all_strings(path, table.schema)
            return table.to_pandas(), pd.DataFrame(bad, columns=MALFORMED_COLUMNS)
        except pa.ArrowInvalid as exc:
            _raise_unless_straddling(path, exc)
    raise BatchError(f"cannot read {path}: a field is longer than {CSV_BLOCK_SIZES[-1] >> 20} MiB")


def readable_files(root: Path, table: str, ds: date) -> list[Path]:
    """The files of one landing partition that hold rows, every one of them readable.

    Raises:
        BatchError: the partition is missing, a hidden or marker file has
            content, a file is of no readable format, or two files hold
            identical content (the same file landed twice).
    """
    folder = partition_dir(root, table, ds)
    if not folder.exists():
        raise BatchError(f"{table} ds={ds}: no partition at {folder}")
    files = landed_files(folder)
    hidden = [p.name for p in files if _marker(p) and p.stat().st_size > 0]
    if hidden:
        raise BatchError(
            f"{table} ds={ds}: {', '.join(hidden)}: a hidden or marker file with content "
            f"(an upload still in progress?); rename it or move it out of {folder}"
        )
    files = [p for p in files if not _marker(p)]
    unknown = [p.name for p in files if _format(p) is None]
    if unknown:
        raise BatchError(
            f"{table} ds={ds}: cannot read {', '.join(unknown)}: not a "
            f"{', '.join(READABLE)} file; convert it or move it out of {folder}"
        )
    if len(files) > 1:
        seen: dict[str, Path] = {}
        for path in files:
            digest = sha256_file(path)
            if digest in seen:
                raise BatchError(
                    f"{table} ds={ds}: {path.name} and {seen[digest].name} have identical "
                    "content (the same file landed twice); remove one and re-run"
                )
            seen[digest] = path
    return files


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f.columns) or len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_landed(root: Path, table: str, ds: date) -> Landed:
    """Read every Parquet or CSV file of one landing partition.

    Raises:
        BatchError: see :func:`readable_files`, or a file cannot be read.
    """
    files = readable_files(root, table, ds)
    frames, malformed = [], []
    for path in files:
        with _reading(table, ds, path):
            if _format(path) == ".parquet":
                frames.append(pq.read_table(path).to_pandas())
            else:
                frame, bad = read_csv_strings(path)
                frames.append(frame)
                malformed.append(bad)
    frame = pd.DataFrame()
    if frames:
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return Landed(frame=frame, malformed=_concat(malformed, MALFORMED_COLUMNS), files=files)


@contextmanager
def _reading(table: str, ds: date, path: Path) -> Iterator[None]:
    """Turn any failure to read ``path`` into a :class:`BatchError` naming it."""
    try:
        yield
    except BatchError as exc:
        raise BatchError(f"{table} ds={ds}: {exc}") from exc
    except Exception as exc:  # the reader's own message names what broke
        raise BatchError(f"{table} ds={ds}: cannot read {path}: {printable(str(exc))}") from exc


# --- a day too large to hold: spilled to disk in slices by key ----------------------


@dataclass
class SpilledDay:
    """One landing partition split into slices on disk; every row of an id is in one slice.

    Slices are Arrow IPC files, one per (slice, landed file), so a slice reads
    back as the rows of every file whose key hashes to it. Malformed CSV lines
    (no key to hash) travel with slice 0.
    """

    rows: int
    malformed: pd.DataFrame
    files: list[Path]
    slices: list[list[Path]]

    def read(self, number: int) -> pd.DataFrame:
        frames = [pa.ipc.open_file(path).read_all().to_pandas() for path in self.slices[number]]
        return _concat(frames, [])


def slice_of(keys: pd.Series, slices: int) -> np.ndarray:
    """Stable slice number of each key (as its string; a missing key hashes as itself)."""
    text = keys.astype("string")
    hashed = pd.util.hash_pandas_object(text, index=False).to_numpy()
    return (hashed % np.uint64(slices)).astype(np.int64)


def spill_landed(
    root: Path, table: str, ds: date, key: str, slices: int, spill_dir: Path
) -> SpilledDay:
    """Stream one landing partition into ``slices`` slices by ``key`` under ``spill_dir``.

    Memory stays at one read block whatever the size of the day.

    Raises:
        BatchError: as :func:`read_landed`, or a file lacks the ``key`` column.
    """
    files = readable_files(root, table, ds)
    spill_dir.mkdir(parents=True, exist_ok=True)
    paths: list[list[Path]] = [[] for _ in range(slices)]
    malformed, rows = [], 0
    for number, path in enumerate(files):
        with _reading(table, ds, path):
            if _format(path) == ".parquet":
                batches: Iterator[pa.RecordBatch] = pq.ParquetFile(path).iter_batches(1 << 16)
                bad = pd.DataFrame(columns=MALFORMED_COLUMNS)
                rows += _spill_batches(batches, key, slices, spill_dir, number, paths, path)
            else:
                n, bad = _spill_csv(path, key, slices, spill_dir, number, paths)
                rows += n
            malformed.append(bad)
    return SpilledDay(
        rows=rows, malformed=_concat(malformed, MALFORMED_COLUMNS), files=files, slices=paths
    )


def _spill_batches(
    batches: Iterator[pa.RecordBatch],
    key: str,
    slices: int,
    spill_dir: Path,
    file_number: int,
    paths: list[list[Path]],
    source: Path,
) -> int:
    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    rows = 0
    try:
        for batch in batches:
            if key not in batch.schema.names:
                raise BatchError(f"cannot read {source}: no {key!r} column")
            numbers = slice_of(batch.column(key).to_pandas(), slices)
            for number in np.unique(numbers):
                part = batch.filter(pa.array(numbers == number))
                if number not in writers:
                    target = spill_dir / f"slice-{number}-file-{file_number}.arrow"
                    writers[number] = pa.ipc.new_file(target, batch.schema)
                    paths[number].append(target)
                writers[number].write_batch(part)
            rows += batch.num_rows
    finally:
        for writer in writers.values():
            writer.close()
    return rows


def _spill_csv(
    path: Path,
    key: str,
    slices: int,
    spill_dir: Path,
    file_number: int,
    paths: list[list[Path]],
) -> tuple[int, pd.DataFrame]:
    names, options = _csv_options(path)
    for block_size in CSV_BLOCK_SIZES:
        bad: list[dict[str, object]] = []
        kept = [list(p) for p in paths]
        try:
            reader = pa_csv.open_csv(
                path,
                read_options=pa_csv.ReadOptions(use_threads=False, block_size=block_size),
                parse_options=pa_csv.ParseOptions(invalid_row_handler=_keep_aside(path, bad)),
                convert_options=options,
            )
            _all_strings(path, reader.schema)
            rows = _spill_batches(iter(reader), key, slices, spill_dir, file_number, paths, path)
            return rows, pd.DataFrame(bad, columns=MALFORMED_COLUMNS)
        except pa.ArrowInvalid as exc:
            _raise_unless_straddling(path, exc)
            for number, before in enumerate(kept):  # start this file again, larger blocks
                for spilled in paths[number][len(before) :]:
                    spilled.unlink(missing_ok=True)
                paths[number][:] = before
    raise BatchError(f"cannot read {path}: a field is longer than {CSV_BLOCK_SIZES[-1] >> 20} MiB")


def read_partition(root: Path, table: str, ds: date) -> pd.DataFrame:
    """Read every Parquet or CSV file of one partition into one DataFrame.

    Raises:
        BatchError: if the partition is missing or a file cannot be read.
    """
    return read_landed(root, table, ds).frame


def partition_glob(root: Path, table: str) -> str:
    """Glob over every partition file of ``table``, for DuckDB's ``read_parquet``."""
    return str(root / table / "ds=*" / "*.parquet")


def fingerprint(paths: Iterable[Path]) -> str:
    """Cheap change detector of files: names, sizes, inodes, modification and change times.

    Any write changes it, even one that keeps size and modification time (as
    ``cp -p``, ``rsync -t`` or ``tar`` leave a file): the kernel sets the
    change time (ctime) on every write and no tool can set it back. A changed
    fingerprint only means "look": the content hash then decides.
    """
    parts = []
    for path in sorted(paths):
        stat = path.stat()
        parts.append(
            f"{path.name}:{stat.st_size}:{stat.st_ino}:{stat.st_mtime_ns}:{stat.st_ctime_ns}"
        )
    return "|".join(parts)
