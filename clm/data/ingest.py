"""Ingest: move every pending landed day through the GX gate.

A day is *pending* when its landing files differ from what was last ingested
(never ingested, or re-landed with new content). A daily run finds one pending
day; a first run finds them all and validates them in one GX run per table.
Both write the same partitions, because every rule is per row, per (ds, id) or
per ds, and "earlier days" mean the same thing in both.

Per table and ds, landed rows = validated rows + quarantined rows; the counts,
the GX outcome and a link to the data docs go to the ``validation_runs``
warehouse table, also when a batch is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from clm.core.contracts import CONTRACTS
from clm.core.io import (
    BatchError,
    Landed,
    SpilledDay,
    StagedPartition,
    content_hash,
    fingerprint,
    landed_files,
    list_partitions,
    newest_partition,
    partition_dir,
    read_landed,
    spill_landed,
    uncompressed_bytes,
)
from clm.core.settings import LANDING_TABLES, Settings
from clm.data import warehouse
from clm.data.ledger import pid_alive
from clm.data.validation import (
    BatchValidationError,
    ValidationOutcome,
    ValidationRun,
    check_volume,
    column_type_error_share,
    docs_index,
    publish_docs,
    quarantine_schema,
    refuse_unparseable_columns,
    require_columns,
    trailing_volume,
    valid_schema,
    validate_batch,
    validation_frame,
)

log = logging.getLogger(__name__)
MANIFEST = "_ingested.json"
MALFORMED_RULE = "csv: wrong number of fields"


@dataclass
class IngestReport:
    """What one ingest run did, per table."""

    days: list[str] = field(default_factory=list)
    landed: dict[str, int] = field(default_factory=dict)
    validated: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    rule_failures: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: dict[str, dict[str, int]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)  # re-landed with identical content

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# --- manifest: what was ingested, as which files, with how many rows -----------------


def _manifest_path(settings: Settings) -> Path:
    return settings.validated_dir / MANIFEST


def _load_manifest(settings: Settings) -> dict[str, dict[str, Any]]:
    path = _manifest_path(settings)
    if not path.exists():
        return {}
    raw = json.loads(path.read_text())
    # Older manifests stored only the fingerprint string.
    return {k: (v if isinstance(v, dict) else {"fingerprint": v}) for k, v in raw.items()}


def _save_manifest(settings: Settings, manifest: dict[str, dict[str, Any]]) -> None:
    path = _manifest_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=0, sort_keys=True))
    tmp.replace(path)


def _landing_files(settings: Settings, ds: date) -> list[Path]:
    return [
        p
        for table in LANDING_TABLES
        for p in landed_files(partition_dir(settings.landing_dir, table, ds))
    ]


def pending_days(settings: Settings, until: date) -> list[date]:
    """Landed days up to ``until`` whose files changed since they were ingested.

    This is the cheap check (names, sizes, modification times); :func:`ingest`
    then skips days whose content is byte-identical to what was ingested.
    """
    manifest = _load_manifest(settings)
    landed: set[date] = set()
    for table in LANDING_TABLES:
        landed.update(d for d in list_partitions(settings.landing_dir, table) if d <= until)
    return sorted(
        d
        for d in landed
        if manifest.get(d.isoformat(), {}).get("fingerprint")
        != fingerprint(_landing_files(settings, d))
    )


def validated_generation(settings: Settings, ds: date) -> str:
    """Identity of the validated data up to ``ds``: a hash of every ingested day's content.

    Features as of ds depend on exactly this data, so the ledger uses it to tell
    whether a day must be (re)processed downstream.
    """
    digest = hashlib.sha256()
    for day, entry in sorted(_load_manifest(settings).items()):
        if day <= ds.isoformat():
            digest.update(f"{day}:{entry.get('sha256', entry.get('fingerprint'))}\n".encode())
    return digest.hexdigest()[:16]


# --- facts from earlier days ------------------------------------------------------


def _first_ds(
    table: str,
    column: str,
    roots: list[Path],
    exclude: list[date],
    ids: pd.Series,
) -> pd.Series:
    """id -> first ds it appears on under ``roots``' ``table`` partitions, not in ``exclude``."""
    globs = [
        str(root / table / "ds=*" / "*.parquet")
        for root in roots
        if root.joinpath(table).exists() and any(root.joinpath(table).glob("ds=*/*.parquet"))
    ]
    wanted = pd.DataFrame({"id": ids.dropna().astype(str).unique()})
    if not globs or wanted.empty:
        return pd.Series(dtype=object)
    con = duckdb.connect()
    try:
        con.register("wanted", wanted)
        con.register(
            "excluded", pd.DataFrame({"ds": pd.to_datetime(pd.Series(exclude, dtype=object))})
        )
        scans = " UNION ALL ".join(
            f"SELECT CAST({column} AS VARCHAR) AS id, ds FROM read_parquet('{g}', "
            "hive_partitioning = true, hive_types = {'ds': DATE}, union_by_name = true)"
            for g in globs
        )
        found = con.execute(
            f"SELECT id, min(ds) AS first_ds FROM ({scans}) "
            "WHERE id IN (SELECT id FROM wanted) "
            "AND ds NOT IN (SELECT CAST(ds AS DATE) FROM excluded) GROUP BY id"
        ).df()
    finally:
        con.close()
    return pd.Series(
        pd.to_datetime(found["first_ds"]).dt.date.to_numpy(), index=found["id"].to_numpy()
    )


def _merge_first(a: pd.Series, b: pd.Series) -> pd.Series:
    both = pd.concat([a, b])
    if both.empty:
        return both
    return both.groupby(level=0).min()


# --- reading ----------------------------------------------------------------------


def _read_days(
    settings: Settings, table: str, days: list[date]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Landed rows and malformed CSV lines of ``table`` for ``days``, each tagged with its ds.

    Raises:
        BatchValidationError: a file cannot be read, or is the same as another.
    """
    contract = CONTRACTS[table]
    frames, bad = [], []
    for ds in days:
        if not partition_dir(settings.landing_dir, table, ds).exists():
            continue
        try:
            landed: Landed = read_landed(settings.landing_dir, table, ds)
        except BatchError as exc:
            raise BatchValidationError(f"{exc}; nothing written", table=table, days=[ds]) from exc
        if len(landed.frame.columns) or len(landed.frame):
            require_columns(landed.frame, contract, f"{table} ds={ds}")
        frame = (
            landed.frame
            if len(landed.frame.columns)
            else pd.DataFrame(columns=list(contract.columns))
        )
        frames.append(frame.assign(ds=ds))
        if len(landed.malformed):
            bad.append(landed.malformed.assign(ds=ds))
    raw = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({c: [] for c in [*contract.columns, "ds"]})
    )
    malformed = (
        pd.concat(bad, ignore_index=True)
        if bad
        else pd.DataFrame(columns=["file", "line", "raw_line", "reason", "ds"])
    )
    return raw, malformed


@dataclass
class _Source:
    """One table's landed rows for a chunk of days: held in memory, or one day spilled in slices.

    A day larger than ``ingest_chunk_mb`` is streamed to disk in slices by its
    key, so every row of an id is in one slice: per-(ds, id) rules judge a
    slice exactly as they would the whole day, and memory holds one slice.
    """

    table: str
    days: list[date]
    rows: dict[date, int]
    raw: pd.DataFrame | None = None
    malformed: pd.DataFrame | None = None
    spilled: SpilledDay | None = None

    @property
    def slices(self) -> int:
        return 1 if self.spilled is None else len(self.spilled.slices)

    def pieces(self) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        """(landed rows, malformed lines) of each piece, each tagged with its ds."""
        if self.spilled is None:
            assert self.raw is not None and self.malformed is not None
            yield self.raw, self.malformed
            return
        contract, (day,) = CONTRACTS[self.table], self.days
        for number in range(self.slices):
            frame = self.spilled.read(number)
            if not len(frame.columns):
                frame = pd.DataFrame(columns=list(contract.columns))
            require_columns(frame, contract, f"{self.table} ds={day}")
            malformed = self.spilled.malformed if number == 0 else self.spilled.malformed[:0]
            yield frame.assign(ds=day), malformed.assign(ds=day)


def _open_source(settings: Settings, table: str, days: list[date], spill_dir: Path) -> _Source:
    """Read ``table``'s landed rows for ``days``, or spill a day too large to hold."""
    budget = settings.ingest_chunk_mb * 2**20
    folder = partition_dir(settings.landing_dir, table, days[0])
    size = sum(uncompressed_bytes(p) for p in landed_files(folder)) if len(days) == 1 else 0
    if size > budget:
        slices = math.ceil(size / budget)
        log.info(
            "%s ds=%s: %.2f MB landed, over the %.2f MB budget: validating in %d slices",
            table,
            days[0],
            size / 2**20,
            settings.ingest_chunk_mb,
            slices,
        )
        try:
            spilled = spill_landed(
                settings.landing_dir,
                table,
                days[0],
                CONTRACTS[table].key,
                slices,
                spill_dir / table,
            )
        except BatchError as exc:
            raise BatchValidationError(f"{exc}; nothing written", table=table, days=days) from exc
        rows = {days[0]: spilled.rows + len(spilled.malformed)}
        return _Source(table, days, rows, spilled=spilled)
    raw, malformed = _read_days(settings, table, days)
    per_day = raw["ds"].value_counts().add(malformed["ds"].value_counts(), fill_value=0)
    rows = {day: int(per_day.get(day, 0)) for day in days}
    return _Source(table, days, rows, raw=raw, malformed=malformed)


# --- validation_runs ----------------------------------------------------------------


def _reason_counts(quarantine: pd.DataFrame) -> dict[date, dict[str, int]]:
    out: dict[date, dict[str, int]] = {}
    if quarantine.empty:
        return out
    for key, group in quarantine.groupby("ds"):
        day: date = key  # type: ignore[assignment]
        counts: Counter[str] = Counter()
        for reason, raw_line in zip(group["reason"], group["raw_line"], strict=True):
            if raw_line is not None and not pd.isna(raw_line):
                counts[MALFORMED_RULE] += 1
            else:
                counts.update(r for r in str(reason).split(";") if r)
        out[day] = dict(sorted(counts.items()))
    return out


def _record(settings: Settings, runs: list[ValidationRun]) -> None:
    if runs:
        warehouse.replace_rows(
            settings.warehouse, "validation_runs", validation_frame(runs), ("ds", "table_name")
        )


def _failure_rows(
    err: BatchValidationError,
    days: list[date],
    landed_rows: dict[tuple[str, date], int],
    docs_url: str | None,
) -> list[ValidationRun]:
    tables = [err.table] if err.table else list(LANDING_TABLES)
    return [
        ValidationRun(
            ds=day,
            table_name=table,
            landed=landed_rows.get((table, day), 0),
            error=str(err),
            docs_url=docs_url,
        )
        for table in tables
        for day in (err.days or days)
    ]


# --- the task -----------------------------------------------------------------------


def ingest(settings: Settings, ds: date) -> IngestReport:
    """Validate every pending landed day up to ``ds`` and write the results.

    Passing rows go to ``validated/<table>/ds=...``; failing rows go to
    ``quarantine/<table>/ds=...`` with a ``reason``. Nothing is written when a
    batch is refused, and the manifest only records days whose every table was
    written.

    Raises:
        BatchValidationError: a whole batch is refused (see :func:`validate_batch`).
    """
    newest = newest_partition(settings.landing_dir, LANDING_TABLES)
    if newest is None or ds > newest:
        raise BatchValidationError(
            f"ds={ds} has not landed: the newest landed day is {newest}; nothing written",
            table=None,
            days=[ds],
        )
    manifest = _load_manifest(settings)
    days, report = [], IngestReport()
    for day in pending_days(settings, ds):
        entry = manifest.get(day.isoformat(), {})
        files = _landing_files(settings, day)
        if entry.get("sha256") and entry["sha256"] == content_hash(files):
            entry["fingerprint"] = fingerprint(files)
            report.unchanged.append(day.isoformat())
            log.info("ds=%s: re-landed with identical content; nothing to do", day)
        else:
            days.append(day)
    if report.unchanged:
        _save_manifest(settings, manifest)
    report.days = [d.isoformat() for d in days]
    if not days:
        if not _landing_files(settings, ds):
            log.warning("ds=%s: no files landed for this day in any table", ds)
        log.info("ingest up to %s: nothing pending", ds)
        return report
    log.info("ingest up to %s: %d pending day(s) %s..%s", ds, len(days), days[0], days[-1])
    chunks = _chunks(settings, days)
    for number, chunk in enumerate(chunks, start=1):
        if len(chunks) > 1:
            log.info("chunk %d/%d: %s..%s", number, len(chunks), chunk[0], chunk[-1])
        _ingest_days(settings, chunk, manifest, report)
    log.info("data docs: %s", docs_index(settings.gx_dir))
    return report


def _chunks(settings: Settings, days: list[date]) -> list[list[date]]:
    """Split pending days into runs of at most ``ingest_chunk_mb`` of landing data.

    Sizes are decompressed sizes (a 0.3 MB gzip may hold 2 million rows).

    Rules look at one day, or at earlier days that earlier chunks have already
    written, so chunked and unchunked runs write the same partitions.
    """
    budget = settings.ingest_chunk_mb * 2**20
    chunks: list[list[date]] = [[]]
    size = 0
    for day in days:
        day_size = sum(uncompressed_bytes(p) for p in _landing_files(settings, day))
        if chunks[-1] and size + day_size > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(day)
        size += day_size
    return chunks


def _ingest_days(
    settings: Settings,
    days: list[date],
    manifest: dict[str, dict[str, Any]],
    report: IngestReport,
) -> None:
    """Validate ``days``, stage their partitions, commit them when every table passed; record."""
    _forget_dead_spills(settings.home / "tmp")
    spill_dir = settings.home / "tmp" / f"ingest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staged: list[StagedPartition] = []
    landed_rows: dict[tuple[str, date], int] = {}
    try:
        sources = {
            table: _open_source(settings, table, days, spill_dir) for table in LANDING_TABLES
        }
        for table, source in sources.items():
            for day in days:
                landed_rows[(table, day)] = source.rows.get(day, 0)
        volume_flags, volume_run = _check_volume(settings, manifest, days, landed_rows)
        tallies = _validate_tables(settings, days, sources, staged)
    except BatchValidationError as err:
        for partition in staged:
            partition.abort()
        urls = publish_docs(settings.gx_dir, [err.identifier] if err.identifier else [])
        _record(settings, _failure_rows(err, days, landed_rows, urls.get(err.identifier)))
        raise
    except BaseException:
        for partition in staged:
            partition.abort()
        raise
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    identifiers = [i for tally in tallies.values() for i in tally.identifiers]
    urls = publish_docs(settings.gx_dir, [volume_run, *identifiers])

    # Every table passed its batch rules: make the staged partitions visible.
    for partition in staged:
        partition.commit()
    runs: list[ValidationRun] = []
    for table, tally in tallies.items():
        for day in days:
            run = ValidationRun(
                ds=day,
                table_name=table,
                landed=landed_rows[(table, day)],
                validated=tally.validated[day],
                quarantined=tally.quarantined[day],
                failures=tally.reasons.get(day, {}),
                warnings={**tally.warnings.get(day, {}), **volume_flags.get((table, day), {})},
                docs_url=urls.get(tally.docs_identifier(day)),
            )
            if run.landed != run.validated + run.quarantined:
                raise AssertionError(f"{table} ds={day}: rows were lost: {run}")
            runs.append(run)
        landed = sum(landed_rows[(table, d)] for d in days)
        validated, quarantined = sum(tally.validated.values()), sum(tally.quarantined.values())
        _add(report.landed, table, landed)
        _add(report.validated, table, validated)
        _add(report.quarantined, table, quarantined)
        for rule, count in tally.rule_failures.items():
            _add(report.rule_failures.setdefault(table, {}), rule, count)
        for day in days:
            for rule in {**tally.warnings.get(day, {}), **volume_flags.get((table, day), {})}:
                _add(report.warnings.setdefault(table, {}), rule, 1)
        log.info(
            "%s: %d landed, %d validated, %d quarantined", table, landed, validated, quarantined
        )
    _record(settings, runs)

    for day in days:
        files = _landing_files(settings, day)
        manifest[day.isoformat()] = {
            "fingerprint": fingerprint(files),
            "sha256": content_hash(files),
            "rows": {t: landed_rows[(t, day)] for t in LANDING_TABLES},
        }
    _save_manifest(settings, manifest)


def _forget_dead_spills(tmp: Path) -> None:
    """Remove what an ingest killed mid-run (kill -9, a lost worker) left spilled."""
    if not tmp.exists():
        return
    for folder in tmp.glob("ingest-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            log.info("removing %s, left by an ingest that did not finish", folder)
            shutil.rmtree(folder, ignore_errors=True)


def _add(counts: dict[str, int], key: str, value: int) -> None:
    counts[key] = counts.get(key, 0) + value


def _check_volume(
    settings: Settings,
    manifest: dict[str, dict[str, Any]],
    days: list[date],
    landed_rows: dict[tuple[str, date], int],
) -> tuple[dict[tuple[str, date], dict[str, int]], Any]:
    """Volume rules per (table, ds), against the 7 days before (from the manifest or this batch)."""
    history = []
    pending = set(days)
    for key, entry in manifest.items():
        day = date.fromisoformat(key)
        if day in pending or "rows" not in entry:
            continue
        history += [{"table": t, "ds": day, "rows": n} for t, n in entry["rows"].items()]
    current = [{"table": t, "ds": d, "rows": n} for (t, d), n in landed_rows.items()]
    counts = pd.DataFrame(history + current, columns=["table", "ds", "rows"])
    volume = trailing_volume(counts)
    volume = volume[volume["ds"].isin(pending)].sort_values(["table", "ds"])
    policy = settings.quiet_days
    volume["must_have_rows"] = must_have_rows(volume, policy, settings.quiet_day_orders)
    return check_volume(volume, settings.expectations_dir / "volume.json", settings.gx_dir, days)


def must_have_rows(volume: pd.DataFrame, policy: str, expected_orders: float) -> pd.Series:
    """The quiet-day policy: which (table, ds) rows must have landed rows.

    Only orders can be required: customers and events may be quiet on any day.
    ``refuse``: every day must have orders; ``accept``: none must (an empty day
    is flagged, not refused); ``auto``: days whose 7 days before averaged at
    least ``expected_orders`` orders must.
    """
    orders = volume["table"] == "orders"
    if policy == "refuse":
        return orders
    if policy == "accept":
        return pd.Series(False, index=volume.index)
    busy = pd.to_numeric(volume["trailing_mean_7d"], errors="coerce").fillna(0) >= expected_orders
    return orders & busy


@dataclass
class _Tally:
    """What the pieces of one table's validation added up to, per day."""

    validated: Counter[date] = field(default_factory=Counter)
    quarantined: Counter[date] = field(default_factory=Counter)
    reasons: dict[date, Counter[str]] = field(default_factory=dict)
    warnings: dict[date, Counter[str]] = field(default_factory=dict)
    rule_failures: Counter[str] = field(default_factory=Counter)
    identifiers: list[Any] = field(default_factory=list)
    failing: dict[date, Any] = field(default_factory=dict)  # the first result with failures

    def add(self, outcome: ValidationOutcome) -> None:
        self.identifiers.append(outcome.identifier)
        self.validated.update(Counter(outcome.valid["ds"].to_list()))
        self.quarantined.update(Counter(outcome.quarantine["ds"].to_list()))
        for day, counts in _reason_counts(outcome.quarantine).items():
            self.reasons.setdefault(day, Counter()).update(counts)
            self.failing.setdefault(day, outcome.identifier)
        for day, flags in outcome.warnings.items():
            self.warnings.setdefault(day, Counter()).update(flags)
        self.rule_failures.update(outcome.rule_failures)

    def docs_identifier(self, day: date) -> Any:
        """The result to link for ``day``: the first piece that quarantined rows of it."""
        return self.failing.get(day, self.identifiers[0] if self.identifiers else None)


def _validate_tables(
    settings: Settings,
    days: list[date],
    sources: dict[str, _Source],
    staged: list[StagedPartition],
) -> dict[str, _Tally]:
    """Validate every table piece by piece, staging each piece's partitions as it passes.

    Customers go first, so orders and events can check their customer is known.
    """
    roots = [settings.validated_dir, settings.quarantine_dir]
    tallies: dict[str, _Tally] = {}
    customers_first_ds = pd.Series(dtype=object)
    for table in LANDING_TABLES:
        contract = CONTRACTS[table]
        suite = settings.expectations_dir / f"{table}.json"
        source = sources[table]
        valid_out = {
            d: StagedPartition(settings.validated_dir, table, d, valid_schema(contract))
            for d in days
        }
        bad_out = {
            d: StagedPartition(settings.quarantine_dir, table, d, quarantine_schema(contract))
            for d in days
        }
        staged += [*valid_out.values(), *bad_out.values()]
        tally, type_failures = _Tally(), []
        for number, (raw, malformed) in enumerate(source.pieces(), start=1):
            if source.slices > 1:
                log.info("%s ds=%s: slice %d/%d", table, days[0], number, source.slices)
            known = None
            if contract.references:
                ids = raw.get("customer_id", pd.Series(dtype=object))
                earlier = _first_ds(
                    contract.references, "customer_id", [settings.validated_dir], days, ids
                )
                known = _merge_first(earlier, customers_first_ds)
            key_ids = raw.get(contract.key, pd.Series(dtype=object))
            outcome = validate_batch(
                raw,
                contract,
                suite,
                settings.gx_dir,
                days,
                malformed=malformed,
                seen_before=_first_ds(table, contract.key, roots, days, key_ids),
                customers_first_ds=known,
                judge_columns=source.slices == 1,
            )
            type_failures.append(outcome.type_failures)
            for day, rows in outcome.valid.groupby("ds"):
                valid_out[day].write(rows.drop(columns="ds"))  # type: ignore[index]
            for day, rows in outcome.quarantine.groupby("ds"):
                bad_out[day].write(rows.drop(columns="ds"))  # type: ignore[index]
            tally.add(outcome)
            if table == "customers" and len(outcome.valid):
                firsts = outcome.valid.groupby("customer_id")["ds"].min()
                customers_first_ds = _merge_first(customers_first_ds, firsts)
        if source.slices > 1:
            failures = pd.concat(type_failures, ignore_index=True)
            refuse_unparseable_columns(failures, contract, column_type_error_share(suite))
        tallies[table] = tally
    return tallies


def adopt_clean_history(settings: Settings, until: date) -> list[date]:
    """Record every landed day up to ``until`` as validated, without running the suites.

    For ``clm bench`` only, never called by the pipeline: a benchmark's history is
    simulated clean (no dirty rows), and validating a year of a million
    customers would take longer than everything it measures. Each day's files
    are hard-linked (copied across file systems) into ``validated/`` and entered
    in the manifest as :func:`ingest` enters them, so the next :func:`ingest`
    sees only the days after ``until``.

    Returns:
        The days adopted.
    """
    import pyarrow.parquet as pq

    manifest = _load_manifest(settings)
    adopted = []
    for day in sorted(
        set().union(*(list_partitions(settings.landing_dir, t) for t in LANDING_TABLES))
    ):
        if day > until or day.isoformat() in manifest:
            continue
        rows = {}
        for table in LANDING_TABLES:
            source = partition_dir(settings.landing_dir, table, day)
            target = partition_dir(settings.validated_dir, table, day)
            target.mkdir(parents=True, exist_ok=True)
            rows[table] = 0
            for path in landed_files(source):
                if path.suffix != ".parquet":
                    raise ValueError(f"{path}: only Parquet landings can be adopted")
                rows[table] += pq.ParquetFile(path).metadata.num_rows
                try:
                    os.link(path, target / path.name)
                except OSError:
                    shutil.copy2(path, target / path.name)
        files = _landing_files(settings, day)
        manifest[day.isoformat()] = {
            "fingerprint": fingerprint(files),
            "sha256": content_hash(files),
            "rows": rows,
        }
        adopted.append(day)
    _save_manifest(settings, manifest)
    return adopted
