"""Great Expectations gate: type a landing batch, validate it, split pass from fail.

Every rule lives in a GX suite under ``expectations/`` that the data team edits.
What a failing expectation does depends on its ``severity`` and its kind:

- ``critical`` and row-level (a column-map rule): the failing rows go to
  quarantine, each with every reason that applies (the expectation's
  ``description``);
- ``critical`` and table-level (column set, row count): the whole batch is
  refused with :class:`BatchValidationError`, naming table, ds, rule and counts;
- ``warning``: nothing is held back; the rule and its count are recorded as a
  flag in ``validation_runs`` and logged.

Some rules need facts from outside the rows, so the gate adds *helper
columns* before GX runs (each suite's ``notes`` lists them):

- ``ds``, ``ds_start``, ``ds_end``: the partition's day and its bounds in UTC;
- ``first_seen_ds``: the first day this row's id landed, over earlier
  partitions (validated or quarantined) and this batch;
- ``known_customer``: whether the row's customer was validated on or before
  the row's ds.

Each GX run is a Checkpoint in a file data context under ``CLM_HOME/gx``: the
validation result is stored and the HTML data docs are updated. GX's renderers
put values into the docs' HTML as they are, so the stored copy has every
landed value escaped (:func:`inert_result`): a ``<script>`` in a status column
shows as text, never runs.
"""

from __future__ import annotations

import copy
import difflib
import html
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from clm.core.contracts import Contract

log = logging.getLogger(__name__)

QUIET_LOGGERS = ("great_expectations", "great_expectations._docs_decorators")
HELPER_COLUMNS = ("ds", "ds_start", "ds_end", "first_seen_ds", "known_customer")
# A column is wrong "as a whole" on a day when more than this share of its
# non-null values cannot be parsed (and at least MIN_VALUES_FOR_COLUMN_RULE are present).
DEFAULT_COLUMN_TYPE_ERROR_SHARE = 0.5
MIN_VALUES_FOR_COLUMN_RULE = 5


class BatchValidationError(RuntimeError):
    """A whole batch is refused. The message names table, ds, rule and counts."""

    def __init__(
        self,
        message: str,
        *,
        table: str | None = None,
        days: list[date] | None = None,
        identifier: Any = None,
    ) -> None:
        super().__init__(message)
        self.table = table
        self.days = list(days or [])
        self.identifier = identifier  # the stored GX result, when GX ran
        self.docs_url: str | None = None


@dataclass(frozen=True)
class ValidationRun:
    """One row of the ``validation_runs`` table: one table's validation on one day.

    The status follows from the counts and the error, so every writer (ingest,
    the output check) states it the same way: ``failed`` when the batch was
    refused, ``quarantined`` when some rows were, else ``passed``.
    """

    ds: date
    table_name: str
    landed: int
    validated: int = 0
    quarantined: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    docs_url: str | None = None

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "quarantined" if self.quarantined else "passed"

    @property
    def success(self) -> bool:
        return self.error is None and self.quarantined == 0

    def row(self) -> dict[str, Any]:
        """The warehouse row, in the table's column order."""
        return {
            "ds": self.ds,
            "table_name": self.table_name,
            "landed": self.landed,
            "validated": self.validated,
            "quarantined": self.quarantined,
            "success": self.success,
            "status": self.status,
            "failures": json.dumps(dict(sorted(self.failures.items()))),
            "warnings": json.dumps(dict(sorted(self.warnings.items()))),
            "error": self.error,
            "docs_url": self.docs_url,
        }


def validation_frame(runs: list[ValidationRun]) -> pd.DataFrame:
    """``validation_runs`` rows for the warehouse."""
    return pd.DataFrame([run.row() for run in runs])


@dataclass
class ValidationOutcome:
    """Rows that passed (typed), rows quarantined (raw strings + ``reason``), flags, docs."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    rule_failures: dict[str, int]
    warnings: dict[date, dict[str, int]] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    identifier: Any = None
    gx_success: bool = True
    type_failures: pd.DataFrame = field(default_factory=pd.DataFrame)


def quiet_gx() -> None:
    """GX logs one line per registered function at import; keep that out of task logs."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _label(table: str, days: list[date]) -> str:
    if not days:
        return table
    return f"{table} ds={days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")


def require_columns(raw: pd.DataFrame, contract: Contract, label: str) -> None:
    """Refuse a batch that lacks a required column of the contract, or repeats a column.

    A missing column next to an unexpected one with a similar name is reported
    as a probable rename.

    Raises:
        BatchValidationError: naming the table and ds, the missing and found columns.
    """
    repeated = sorted({str(c) for c in raw.columns[raw.columns.duplicated()]})
    if repeated:
        raise BatchValidationError(
            f"{label}: rule expect_table_columns_to_match_set failed: column(s) {repeated} "
            f"appear more than once in the header; {len(raw)} row(s) refused, nothing written",
            table=contract.table,
        )
    missing = [c for c in contract.required if c not in raw.columns]
    if not missing:
        return
    found = sorted(c for c in raw.columns if c != "ds")
    unexpected = [c for c in found if c not in contract.columns]
    hints = []
    for column in missing:
        close = difflib.get_close_matches(column, unexpected, n=1, cutoff=0.5)
        if close:
            hints.append(f"{close[0]!r} looks like a renamed {column!r}")
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise BatchValidationError(
        f"{label}: rule expect_table_columns_to_match_set failed: missing column(s) "
        f"{missing}{hint}; found {found}; {len(raw)} row(s) refused, nothing written",
        table=contract.table,
    )


def check_storage_types(raw: pd.DataFrame, contract: Contract, label: str) -> None:
    """Refuse columns whose stored type cannot hold the contract's type (e.g. a bool amount).

    Strings are always accepted here: they are parsed value by value in :func:`coerce`.

    Raises:
        BatchValidationError: naming the column, its stored type and the expected one.
    """
    for col, kind in contract.columns.items():
        if col not in raw.columns or len(raw) == 0:
            continue
        dtype = raw[col].dtype
        if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            continue
        if raw[col].isna().all():
            continue
        numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        ok = {
            "timestamp": pd.api.types.is_datetime64_any_dtype(dtype),
            "float": numeric,
            "int": numeric,
            "string": not pd.api.types.is_datetime64_any_dtype(dtype),
        }[kind]
        if not ok:
            raise BatchValidationError(
                f"{label}: rule type({col}) failed for the whole column: stored as {dtype}, "
                f"expected {kind}; {len(raw)} row(s) refused, nothing written",
                table=contract.table,
            )


def coerce(raw: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, pd.Series]:
    """Cast raw columns to the contract's types.

    Timestamps without a zone are read as UTC (the contract's zone); timestamps
    with another offset are converted to UTC.

    Returns:
        The typed frame (contract columns only, same index) and a per-row reason
        string for values that were present but could not be parsed.
    """
    reasons = pd.Series("", index=raw.index, dtype=object)
    typed = pd.DataFrame(index=raw.index)
    for col, kind in contract.columns.items():
        if col not in raw.columns:
            typed[col] = pd.Series(pd.NA, index=raw.index, dtype="object")
            continue
        values = raw[col]
        out: pd.Series
        if kind == "timestamp":
            out = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
        elif kind == "float":
            out = pd.to_numeric(values, errors="coerce").astype("float64")
        elif kind == "int":
            num = pd.to_numeric(values, errors="coerce")
            whole = num.isna() | (num == np.floor(num))
            num = num.where(whole)
            out = num.astype("Int64")
        else:
            out = values.astype("string").astype(object).where(values.notna(), None)
        bad = values.notna() & pd.Series(pd.isna(out), index=raw.index)
        if bad.any():
            reasons[bad] = reasons[bad] + f"{col} is not a {kind};"
        typed[col] = out
    return typed, reasons


def type_failures(raw: pd.DataFrame, typed: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Per (ds, column): values present, values that failed to parse, and one example."""
    columns = ["ds", "column", "present", "failed", "example"]
    out = []
    for col in contract.columns:
        if col not in raw.columns or len(raw) == 0:
            continue
        present = raw[col].notna()
        failed = present & typed[col].isna()
        # Counted also when nothing failed: a sliced day sums its slices.
        per_day = pd.DataFrame({"ds": raw["ds"], "present": present, "failed": failed})
        per_day = per_day.groupby("ds")[["present", "failed"]].sum().reset_index()
        examples = raw.loc[failed, col].groupby(raw.loc[failed, "ds"]).first()
        per_day["example"] = per_day["ds"].map(examples)
        out.append(per_day.assign(column=col))
    return pd.concat(out, ignore_index=True)[columns] if out else pd.DataFrame(columns=columns)


def refuse_unparseable_columns(
    failures: pd.DataFrame, contract: Contract, max_share: float
) -> None:
    """A column that is mostly unparseable on a day is a wrong type, not bad rows.

    ``failures`` holds :func:`type_failures` rows, possibly from several slices
    of one day: they are summed first, so a sliced day is judged as a whole.

    Raises:
        BatchValidationError: naming the first such column and day.
    """
    if failures.empty:
        return
    totals = failures.groupby(["ds", "column"], sort=False).agg(
        present=("present", "sum"), failed=("failed", "sum"), example=("example", "first")
    )
    wrong = totals[
        (totals["present"] >= MIN_VALUES_FOR_COLUMN_RULE)
        & (totals["failed"] > max_share * totals["present"])
    ]
    if len(wrong):
        (day, col), first = wrong.index[0], wrong.iloc[0]
        raise BatchValidationError(
            f"{contract.table} ds={day}: rule type({col}) failed for the whole column: "
            f"{int(first['failed'])} of {int(first['present'])} value(s) are not a "
            f"{contract.columns[col]} (e.g. {first['example']!r}); nothing written",
            table=contract.table,
            days=sorted({d for d, _ in wrong.index}),
        )


def column_type_error_share(suite_path: Path) -> float:
    meta = load_suite_json(suite_path).get("meta", {})
    return float(meta.get("column_type_error_share", DEFAULT_COLUMN_TYPE_ERROR_SHARE))


_ARROW_TYPES = {
    "string": pa.string(),
    "timestamp": pa.timestamp("ns", tz="UTC"),
    "float": pa.float64(),
    "int": pa.int64(),
}


def valid_schema(contract: Contract) -> pa.Schema:
    """How validated rows are stored: the contract's columns, typed."""
    return pa.schema([(c, _ARROW_TYPES[kind]) for c, kind in contract.columns.items()])


def quarantine_schema(contract: Contract) -> pa.Schema:
    """How quarantined rows are stored: every value as landed (text), the line, the reason."""
    names = [*contract.columns, "raw_line", "reason"]
    return pa.schema([(c, pa.string()) for c in names])


# --- GX plumbing ---------------------------------------------------------------------


def load_suite_json(path: Path) -> dict[str, Any]:
    """The suite file as a dict (also read for its ``meta``)."""
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@cache
def _context(gx_dir: str) -> Any:
    quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", context_root_dir=gx_dir)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    return context


@cache
def _checkpoint(gx_dir: str, suite_path: str, mtime_ns: int, name: str) -> Any:
    """Register the suite file, its validation definition and checkpoint (once per edit)."""
    import great_expectations as gx

    context = _context(gx_dir)
    payload = load_suite_json(Path(suite_path))
    payload.pop("id", None)
    suite = context.suites.add_or_update(gx.ExpectationSuite(**{**payload, "name": name}))
    try:
        source = context.data_sources.get("clm_batches")
    except (KeyError, ValueError, LookupError):
        source = context.data_sources.add_pandas("clm_batches")
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        definition = asset.get_batch_definition("whole")
    except KeyError:
        definition = asset.add_batch_definition_whole_dataframe("whole")
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=definition, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"clm_{name}",
            validation_definitions=[validation],
            result_format={"result_format": "COMPLETE"},
        )
    )


@dataclass
class SuiteRun:
    """One checkpoint run: the GX result and its identifier in the results store."""

    result: Any
    identifier: Any


def run_suite(
    df: pd.DataFrame, suite_path: Path, gx_dir: Path, name: str, run_name: str
) -> SuiteRun:
    """Validate ``df`` against the suite file through a GX Checkpoint.

    The result is kept in the context's validation results store; call
    :func:`publish_docs` to render it into the data docs.
    """
    from great_expectations.core.run_identifier import RunIdentifier

    gx_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = _checkpoint(str(gx_dir), str(suite_path), suite_path.stat().st_mtime_ns, name)
    outcome = checkpoint.run(
        batch_parameters={"dataframe": df},
        run_id=RunIdentifier(run_name=run_name, run_time=datetime.now(UTC)),
    )
    identifier, result = next(iter(outcome.run_results.items()))
    # The store feeds the data docs: keep only the inert copy there.
    _context(str(gx_dir)).validation_results_store.set(identifier, inert_result(result))
    return SuiteRun(result=result, identifier=identifier)


MAX_SHOWN_CHARS = 200  # a landed value longer than this is cut in the data docs


def _escape_strings(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_SHOWN_CHARS:
            value = f"{value[:MAX_SHOWN_CHARS]}... ({len(value):,} characters)"
        return html.escape(value)
    if isinstance(value, dict):
        return {_escape_strings(k): _escape_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_escape_strings(v) for v in value)
    return value


def inert_result(result: Any) -> Any:
    """A copy of a suite result with every value that came from the data HTML-escaped.

    The observed values (unexpected lists and counts, observed values, details)
    and exception messages come from landed rows (long ones are cut); the expectation
    configurations come from the suite, which the data team owns.
    """
    safe = copy.deepcopy(result)
    for item in safe.results:
        if item.result:
            item.result = _escape_strings(dict(item.result))
        if item.exception_info:
            item.exception_info = _escape_strings(dict(item.exception_info))
    return safe


def publish_docs(gx_dir: Path, identifiers: list[Any]) -> dict[Any, str]:
    """Render stored validation results into the HTML data docs (one build for all).

    Returns:
        identifier -> ``file://`` URL of its page. Empty when the docs could not
        be built: they are a view, the stored results are the record.
    """
    if not identifiers:
        return {}
    context = _context(str(gx_dir))
    try:
        context.build_data_docs(resource_identifiers=identifiers)
        urls = {}
        for identifier in identifiers:
            sites = context.get_docs_sites_urls(resource_identifier=identifier)
            if sites and sites[0].get("site_url"):
                urls[identifier] = sites[0]["site_url"]
        return urls
    except Exception as exc:
        log.warning("could not build the data docs under %s: %s", gx_dir, exc)
        return {}


def docs_index(gx_dir: Path) -> Path:
    """The data docs home page."""
    return gx_dir / "uncommitted" / "data_docs" / "local_site" / "index.html"


def rule_name(config: Any) -> str:
    """A readable name of an expectation: its description, else type(column)."""
    if getattr(config, "description", None):
        return str(config.description)
    kwargs = config.kwargs
    target = (
        kwargs.get("column")
        or ",".join(kwargs.get("column_list") or [])
        or ",".join(filter(None, [kwargs.get("column_A"), kwargs.get("column_B")]))
        or "table"
    )
    return f"{config.type}({target})"


def _severity(config: Any) -> str:
    severity = getattr(config, "severity", None)
    return str(getattr(severity, "value", severity) or "critical")


def _positions(indices: list[Any]) -> np.ndarray:
    return np.asarray(
        [i if isinstance(i, int | np.integer) else i.get("index") for i in indices], dtype=int
    )


def add_helper_columns(
    typed: pd.DataFrame,
    contract: Contract,
    seen_before: pd.Series | None = None,
    customers_first_ds: pd.Series | None = None,
) -> pd.DataFrame:
    """Add the helper columns GX rules refer to (see the module docstring).

    Args:
        typed: contract columns plus ``ds``.
        seen_before: id -> first ds it landed on, over partitions outside this batch.
        customers_first_ds: customer_id -> first ds it was validated on.
    """
    out = typed.copy()
    days = pd.to_datetime(pd.Series(out["ds"], index=out.index).astype(str)).dt.tz_localize(UTC)
    out["ds_start"] = days
    out["ds_end"] = days + pd.Timedelta(days=1)
    key = out[contract.key]
    # min over datetime64 is vectorised; over date objects it is a Python loop per id
    first_in_batch = pd.to_datetime(out["ds"]).groupby(key, dropna=True).transform("min")
    first = pd.Series(first_in_batch.dt.date, index=out.index).where(key.notna(), out["ds"])
    if seen_before is not None and len(seen_before):
        earlier = key.map(seen_before)
        earlier = earlier.where(earlier.notna(), date.max)
        first = first.where(first <= earlier, earlier)
    out["first_seen_ds"] = first.astype(object)
    if contract.references:
        known = (
            out["customer_id"].map(customers_first_ds)
            if customers_first_ds is not None
            else pd.Series(None, index=out.index, dtype=object)
        )
        known = known.where(known.notna(), date.max)
        out["known_customer"] = (known <= out["ds"]) | out["customer_id"].isna()
    return out


def validate_batch(
    raw: pd.DataFrame,
    contract: Contract,
    suite_path: Path,
    gx_dir: Path,
    days: list[date],
    *,
    malformed: pd.DataFrame | None = None,
    seen_before: pd.Series | None = None,
    customers_first_ds: pd.Series | None = None,
    judge_columns: bool = True,
) -> ValidationOutcome:
    """Validate one or more days of a landing table in one GX run.

    ``raw`` carries a ``ds`` column. Rules are per row, per (ds, id) or per ds,
    so one run over many days flags exactly the rows that day-by-day runs would.
    ``malformed`` holds CSV lines that could not be split into fields; they go
    to quarantine with their raw text. With ``judge_columns=False`` the caller
    judges whole columns itself from ``outcome.type_failures`` (a day validated
    in slices is judged over all of them).

    Raises:
        BatchValidationError: a required column is missing or of the wrong type,
            or a critical table-level expectation fails.
    """
    label = _label(contract.table, days)
    require_columns(raw, contract, label)
    check_storage_types(raw, contract, label)
    extra = sorted(set(raw.columns) - set(contract.columns) - {"ds"})
    if extra:
        log.warning("%s: column(s) outside the contract are not carried on: %s", label, extra)

    raw = raw.reset_index(drop=True)
    typed, reasons = coerce(raw, contract)
    typed["ds"] = raw["ds"].to_numpy()
    failures = type_failures(raw, typed, contract)
    if judge_columns:
        refuse_unparseable_columns(failures, contract, column_type_error_share(suite_path))
    batch = add_helper_columns(typed, contract, seen_before, customers_first_ds)
    run = run_suite(batch, suite_path, gx_dir, contract.table, label)

    rule_failures: dict[str, int] = {}
    warnings: dict[date, Counter[str]] = {}
    for item in run.result.results:
        config = item.expectation_config
        rule = rule_name(config)
        raised = (item.exception_info or {}).get("raised_exception")
        if raised:
            message = (item.exception_info or {}).get("exception_message")
            raise BatchValidationError(
                f"{label}: rule {rule} could not run ({message}); "
                f"{len(raw)} row(s) refused, nothing written",
                table=contract.table,
                days=days,
            )
        if item.success:
            continue
        result = item.result or {}
        indices = result.get("unexpected_index_list")
        severity = _severity(config)
        if indices is None:  # a table-level rule
            if severity == "critical":
                raise BatchValidationError(
                    f"{label}: rule {rule} failed for the whole batch "
                    f"(observed {result.get('observed_value')!r}); "
                    f"{len(raw)} row(s) refused, nothing written",
                    table=contract.table,
                    days=days,
                    identifier=run.identifier,
                )
            for day in days:
                warnings.setdefault(day, Counter())[rule] += 1
            continue
        positions = _positions(indices)
        if severity == "critical":
            reasons.iloc[positions] = reasons.iloc[positions] + rule + ";"
            rule_failures[rule] = len(positions)
        else:
            for day, count in Counter(batch["ds"].to_numpy()[positions]).items():
                warnings.setdefault(day, Counter())[rule] += int(count)
            log.warning("%s: %d row(s) flagged by %s", label, len(positions), rule)

    for rule, count in rule_failures.items():
        log.info("%s: %d row(s) failed %s", label, count, rule)

    bad = reasons != ""
    columns = list(contract.columns)
    quarantine = (
        pd.DataFrame({c: (raw.loc[bad, c] if c in raw.columns else None) for c in columns})
        .astype("string")
        .astype(object)
    )
    quarantine = quarantine.where(quarantine.notna(), None)
    quarantine["raw_line"] = None
    quarantine["reason"] = reasons[bad].str.rstrip(";").to_numpy()
    quarantine["ds"] = raw.loc[bad, "ds"].to_numpy()
    if malformed is not None and len(malformed):
        lines = pd.DataFrame({c: None for c in columns}, index=range(len(malformed)), dtype=object)
        lines["raw_line"] = malformed["raw_line"].to_numpy()
        lines["reason"] = (malformed["file"] + ": " + malformed["reason"]).to_numpy()
        lines["ds"] = malformed["ds"].to_numpy()
        quarantine = pd.concat([quarantine, lines], ignore_index=True)
        rule_failures["csv: wrong number of fields"] = len(malformed)
    valid = typed[~bad].reset_index(drop=True)
    return ValidationOutcome(
        valid=valid,
        quarantine=quarantine.reset_index(drop=True),
        rule_failures=rule_failures,
        warnings={d: dict(c) for d, c in warnings.items()},
        extra_columns=extra,
        identifier=run.identifier,
        gx_success=bool(run.result.success),
        type_failures=failures,
    )


def trailing_volume(counts: pd.DataFrame, window: int = 7) -> pd.DataFrame:
    """Row counts per (table, ds) with the mean of the ``window`` calendar days before.

    ``counts`` has columns table, ds, rows and may hold history before the
    days to check; missing days count as 0 rows.
    """
    out = []
    for table, group in counts.groupby("table"):
        by_day = dict(zip(group["ds"], group["rows"], strict=True))
        first = min(by_day)
        for day, rows in by_day.items():
            before = [day - timedelta(days=i) for i in range(1, window + 1)]
            known = [by_day.get(d, 0) for d in before if d >= first]
            mean = float(np.mean(known)) if known else None
            out.append(
                {
                    "table": table,
                    "ds": day,
                    "rows": int(rows),
                    "trailing_mean_7d": mean,
                    "ratio": (rows / mean) if mean else None,
                }
            )
    return pd.DataFrame(out, columns=["table", "ds", "rows", "trailing_mean_7d", "ratio"])


def check_volume(
    volume: pd.DataFrame, suite_path: Path, gx_dir: Path, days: list[date]
) -> tuple[dict[tuple[str, date], dict[str, int]], Any]:
    """Validate daily row counts against the volume suite.

    Returns:
        Warnings per (table, ds) as rule -> 1, and the stored result's identifier.

    Raises:
        BatchValidationError: a critical volume rule failed (an empty required table).
    """
    run = run_suite(
        volume.reset_index(drop=True), suite_path, gx_dir, "volume", _label("volume", days)
    )
    flags: dict[tuple[str, date], dict[str, int]] = {}
    for item in run.result.results:
        if item.success:
            continue
        config = item.expectation_config
        rule = rule_name(config)
        positions = _positions((item.result or {}).get("unexpected_index_list") or [])
        rows = volume.reset_index(drop=True).iloc[positions]
        if _severity(config) == "critical":
            first = rows.iloc[0]
            raise BatchValidationError(
                f"{first['table']} ds={first['ds']}: rule {rule} failed: "
                f"{int(first['rows'])} row(s) landed"
                + (
                    f" against a trailing 7-day mean of {first['trailing_mean_7d']:.1f}"
                    if pd.notna(first["trailing_mean_7d"])
                    else ""
                )
                + "; nothing written. If the day really had none (a closed shop), accept it "
                "with CLM_QUIET_DAYS=accept for that run (README: Quiet days)",
                table=str(first["table"]),
                days=sorted(set(rows["ds"])),
                identifier=run.identifier,
            )
        for table, day in zip(rows["table"], rows["ds"], strict=True):
            flags.setdefault((table, day), {})[rule] = 1
            log.warning("%s ds=%s: flagged by %s", table, day, rule)
    return flags, run.identifier


def check_output(
    frame: pd.DataFrame, suite_path: Path, gx_dir: Path, name: str, ds: date
) -> str | None:
    """Validate a table the pipeline wrote itself; any critical failure refuses it.

    Returns:
        The data docs URL of the run.

    Raises:
        BatchValidationError: naming the table, ds, every failed rule and its count.
    """
    batch = frame.reset_index(drop=True)
    run = run_suite(batch, suite_path, gx_dir, name, _label(name, [ds]))
    failed = []
    for item in run.result.results:
        if item.success or _severity(item.expectation_config) != "critical":
            continue
        result = item.result or {}
        count = result.get("unexpected_count", result.get("observed_value"))
        failed.append(f"{rule_name(item.expectation_config)} ({count})")
    url = publish_docs(gx_dir, [run.identifier]).get(run.identifier)
    if failed:
        err = BatchValidationError(
            f"{name} ds={ds}: output check failed: {'; '.join(failed)}; "
            f"{len(batch)} row(s) not written",
            table=name,
            days=[ds],
            identifier=run.identifier,
        )
        err.docs_url = url
        raise err
    return url
