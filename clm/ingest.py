"""Ingest: move every pending landed day through the GX gate.

A day is *pending* when its landing files differ from what was last ingested
(never ingested, or re-landed). A daily run finds one pending day; a first run
finds them all and validates them in one GX run per table. Both write the same
partitions, because every rule is per row or per (ds, id).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from clm.contracts import CONTRACTS
from clm.io import (
    BatchError,
    fingerprint,
    list_partitions,
    partition_dir,
    read_partition,
    remove_partition,
    write_partition,
)
from clm.settings import LANDING_TABLES, Settings
from clm.validation import BatchValidationError, require_columns, validate_batch

log = logging.getLogger(__name__)
MANIFEST = "_ingested.json"


@dataclass
class IngestReport:
    """What one ingest run did, per table."""

    days: list[str] = field(default_factory=list)
    landed: dict[str, int] = field(default_factory=dict)
    validated: dict[str, int] = field(default_factory=dict)
    quarantined: dict[str, int] = field(default_factory=dict)
    rule_failures: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _manifest_path(settings: Settings) -> Path:
    return settings.validated_dir / MANIFEST


def _load_manifest(settings: Settings) -> dict[str, str]:
    path = _manifest_path(settings)
    return json.loads(path.read_text()) if path.exists() else {}


def _landing_fingerprint(settings: Settings, ds: date) -> str:
    files = []
    for table in LANDING_TABLES:
        folder = partition_dir(settings.landing_dir, table, ds)
        if folder.exists():
            files += [p for p in folder.iterdir() if p.is_file()]
    return fingerprint(files)


def pending_days(settings: Settings, until: date) -> list[date]:
    """Landed days up to ``until`` whose files were not ingested as they are now."""
    manifest = _load_manifest(settings)
    landed: set[date] = set()
    for table in LANDING_TABLES:
        landed.update(d for d in list_partitions(settings.landing_dir, table) if d <= until)
    return sorted(
        d for d in landed if manifest.get(d.isoformat()) != _landing_fingerprint(settings, d)
    )


def _read_days(settings: Settings, table: str, days: list[date]) -> pd.DataFrame:
    """Read the landed partitions of ``table`` for ``days``, each tagged with its ds.

    Raises:
        BatchValidationError: a partition lacks a required column (checked per
            day, since concatenating days would hide it behind nulls).
    """
    contract = CONTRACTS[table]
    frames = []
    for ds in days:
        if not partition_dir(settings.landing_dir, table, ds).exists():
            continue
        try:
            frame = read_partition(settings.landing_dir, table, ds)
        except BatchError as exc:
            raise BatchValidationError(f"{exc}; nothing written") from exc
        require_columns(frame, contract, f"{table} ds={ds}")
        frame["ds"] = ds
        frames.append(frame)
    if not frames:
        return pd.DataFrame({c: [] for c in [*contract.columns, "ds"]})
    return pd.concat(frames, ignore_index=True)


def ingest(settings: Settings, ds: date) -> IngestReport:
    """Validate every pending landed day up to ``ds`` and write the results.

    Passing rows go to ``validated/<table>/ds=...``; failing rows go to
    ``quarantine/<table>/ds=...`` with a ``reason``. Nothing is written for a
    table whose batch is refused, and the manifest only records days whose
    every table was written.

    Raises:
        BatchValidationError: a whole batch is refused (see :func:`validate_batch`).
    """
    days = pending_days(settings, ds)
    report = IngestReport(days=[d.isoformat() for d in days])
    if not days:
        log.info("ingest up to %s: nothing pending", ds)
        return report
    log.info("ingest up to %s: %d pending day(s) %s..%s", ds, len(days), days[0], days[-1])

    outcomes = {}
    for table in LANDING_TABLES:
        contract = CONTRACTS[table]
        raw = _read_days(settings, table, days)
        outcomes[table] = validate_batch(
            raw,
            contract,
            settings.expectations_dir / f"{table}.json",
            settings.gx_dir,
            days,
            results_dir=settings.gx_dir / "results" / f"ds={ds.isoformat()}",
        )
        report.landed[table] = len(raw)

    # Every table passed its batch rules: now write, day by day.
    for table, outcome in outcomes.items():
        valid_by_day = dict(tuple(outcome.valid.groupby("ds"))) if len(outcome.valid) else {}
        bad_by_day = (
            dict(tuple(outcome.quarantine.groupby("ds"))) if len(outcome.quarantine) else {}
        )
        for day in days:
            valid = valid_by_day.get(day)
            if valid is not None:
                write_partition(valid.drop(columns="ds"), settings.validated_dir, table, day)
            else:
                remove_partition(settings.validated_dir, table, day)
            bad = bad_by_day.get(day)
            if bad is not None:
                write_partition(bad.drop(columns="ds"), settings.quarantine_dir, table, day)
            else:
                remove_partition(settings.quarantine_dir, table, day)
        report.validated[table] = len(outcome.valid)
        report.quarantined[table] = len(outcome.quarantine)
        report.rule_failures[table] = outcome.rule_failures
        log.info(
            "%s: %d landed, %d validated, %d quarantined",
            table,
            report.landed[table],
            len(outcome.valid),
            len(outcome.quarantine),
        )

    manifest = _load_manifest(settings)
    for day in days:
        manifest[day.isoformat()] = _landing_fingerprint(settings, day)
    _manifest_path(settings).parent.mkdir(parents=True, exist_ok=True)
    _manifest_path(settings).write_text(json.dumps(manifest, indent=0, sort_keys=True))
    return report
