"""Great Expectations gate: type a landing batch, validate it, split pass from fail.

Row-level rules (GX column-map expectations) send failing rows to quarantine
with every reason that applies. Batch-level rules (missing columns, an
unreadable file, an empty required table) raise :class:`BatchValidationError`
naming the table, the ds, the rule and the counts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clm.contracts import Contract

log = logging.getLogger(__name__)

QUIET_LOGGERS = ("great_expectations", "great_expectations._docs_decorators")


class BatchValidationError(RuntimeError):
    """A whole batch is refused. The message names table, ds, rule and counts."""


@dataclass
class ValidationOutcome:
    """Rows that passed (typed), rows quarantined (raw strings + ``reason``) and counts."""

    valid: pd.DataFrame
    quarantine: pd.DataFrame
    rule_failures: dict[str, int]
    gx_success: bool
    gx_statistics: dict[str, Any]


def quiet_gx() -> None:
    """GX logs one line per registered function at import; keep that out of task logs."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def require_columns(raw: pd.DataFrame, contract: Contract, label: str) -> None:
    """Refuse a batch that lacks a required column of the contract.

    Raises:
        BatchValidationError: naming the table and ds, the missing and found columns.
    """
    missing = [c for c in contract.required if c not in raw.columns]
    if missing:
        raise BatchValidationError(
            f"{label}: rule expect_table_columns_to_match_set failed: missing column(s) "
            f"{missing}; found {sorted(c for c in raw.columns if c != 'ds')}; "
            f"{len(raw)} row(s) refused, nothing written"
        )


def coerce(raw: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, pd.Series]:
    """Cast raw columns to the contract's types.

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
            reasons[bad] = reasons[bad] + f"type:{col} is not {kind};"
        typed[col] = out
    return typed, reasons


@cache
def _suite(path: str) -> Any:
    import great_expectations as gx

    with open(path, encoding="utf-8") as fh:
        return gx.ExpectationSuite(**json.load(fh))


def _context(gx_dir: Path) -> Any:
    quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(gx_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _rule_name(config: Any) -> str:
    kwargs = config.kwargs
    target = kwargs.get("column") or ",".join(kwargs.get("column_list") or []) or "table"
    return f"{config.type}({target})"


def run_suite(df: pd.DataFrame, suite_path: Path, gx_dir: Path, table: str) -> Any:
    """Validate ``df`` against the GX suite file; return the GX validation result."""
    context = _context(gx_dir)
    source = context.data_sources.add_or_update_pandas("clm_batches")
    try:
        asset = source.get_asset(table)
    except LookupError:
        asset = source.add_dataframe_asset(table)
    try:
        definition = asset.get_batch_definition("whole")
    except KeyError:
        definition = asset.add_batch_definition_whole_dataframe("whole")
    batch = definition.get_batch(batch_parameters={"dataframe": df})
    return batch.validate(_suite(str(suite_path)), result_format={"result_format": "COMPLETE"})


def validate_batch(
    raw: pd.DataFrame,
    contract: Contract,
    suite_path: Path,
    gx_dir: Path,
    days: list[date],
    results_dir: Path | None = None,
) -> ValidationOutcome:
    """Validate one or more days of a landing table in one GX run.

    ``raw`` carries a ``ds`` column. Rules are per row or per (ds, id), so one
    run over many days flags exactly the rows that day-by-day runs would.

    Raises:
        BatchValidationError: a required column is missing, a required table is
            empty on some day, or a table-level expectation fails.
    """
    label = f"{contract.table} ds={days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")
    require_columns(raw, contract, label)
    if contract.required_nonempty:
        counts = raw.groupby("ds").size() if len(raw) else pd.Series(dtype=int)
        empty = [d for d in days if int(counts.get(d, 0)) == 0]
        if empty:
            raise BatchValidationError(
                f"{contract.table} ds={','.join(map(str, empty))}: rule required_nonempty failed: "
                f"0 rows landed for a required table; nothing written"
            )
    extra = sorted(set(raw.columns) - set(contract.columns) - {"ds"})
    if extra:
        log.warning("%s: ignoring column(s) outside the contract: %s", label, extra)

    raw = raw.reset_index(drop=True)
    typed, reasons = coerce(raw, contract)
    typed["ds"] = raw["ds"].to_numpy()
    result = run_suite(typed, suite_path, gx_dir, contract.table)

    rule_failures: dict[str, int] = {}
    for item in result.results:
        rule = _rule_name(item.expectation_config)
        raised = (item.exception_info or {}).get("raised_exception")
        indices = (item.result or {}).get("unexpected_index_list")
        if raised or (not item.success and indices is None):
            message = (item.exception_info or {}).get("exception_message") or "table-level rule"
            raise BatchValidationError(
                f"{label}: rule {rule} failed for the whole batch ({message}); "
                f"{len(raw)} row(s) refused, nothing written"
            )
        if not item.success and indices:
            positions = np.asarray(
                [i if isinstance(i, int | np.integer) else i.get("index") for i in indices]
            )
            reasons.iloc[positions] = reasons.iloc[positions] + rule + ";"
            rule_failures[rule] = len(positions)

    for rule, count in rule_failures.items():
        log.info("%s: %d row(s) failed %s", label, count, rule)
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / f"{contract.table}.json").write_text(
            json.dumps(result.describe_dict(), default=str, indent=1), encoding="utf-8"
        )

    bad = reasons != ""
    quarantine = raw[bad].astype("string").astype(object)
    quarantine["reason"] = reasons[bad].str.rstrip(";")
    quarantine["ds"] = raw.loc[bad, "ds"].to_numpy()
    valid = typed[~bad].reset_index(drop=True)
    stats = result.statistics if isinstance(result.statistics, dict) else {}
    return ValidationOutcome(
        valid=valid,
        quarantine=quarantine.reset_index(drop=True),
        rule_failures=rule_failures,
        gx_success=bool(result.success),
        gx_statistics=stats,
    )
