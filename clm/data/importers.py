"""Import a real transaction log into landing partitions (DESIGN section 4).

``import_transactions`` maps any CSV or Parquet log (gzip allowed) onto the
``orders`` and ``customers`` landing contracts, one partition per day:

- lines are summed into orders (by order id, or by customer and timestamp);
- orders whose id starts with the cancel prefix become ``status=cancelled``
  with their absolute amount and item count;
- each customer lands once, on the day of its first line, unless an earlier
  day of landing already holds it;
- lines without a customer id are reported and left out.

The importer maps; it does not judge. An order that breaks the contract (a
zero amount, say) lands as it is and the GX gate quarantines it with its
reason, so every line is accounted for either in the import report or in
``validation_runs``. Each source writes its own file in each partition
(``import-<source>.parquet``), so re-importing a source replaces exactly its
own rows and several sources can share a day.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from clm.core.io import BatchError, list_partitions, partition_dir, read_csv_strings, sha256_file

log = logging.getLogger(__name__)
IMPORTS_DIR = "_imports"
ONLINE_RETAIL_SHA256 = "fa32d75fa5a67ff5b04e7f16475d1aee0e1318f7521b6aa914927f35a1ec40fa"
UNKNOWN = "unknown"


class ImportInputError(ValueError):
    """The input cannot be mapped: a missing column, an unreadable file or bad rows."""


@dataclass(frozen=True)
class ColumnMap:
    """Which source column feeds which contract field. ``amount`` or ``price`` is required."""

    customer: str
    timestamp: str
    amount: str | None = None
    price: str | None = None  # amount = quantity x price
    order_id: str | None = None
    quantity: str | None = None
    category: str | None = None
    country: str | None = None
    # A product description, mapped to a category by DESCRIPTION_CATEGORIES (when
    # there is no category column).
    description: str | None = None

    def columns(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


ONLINE_RETAIL = ColumnMap(
    customer="CustomerID",
    timestamp="InvoiceDate",
    price="UnitPrice",
    order_id="InvoiceNo",
    quantity="Quantity",
    country="Country",
    description="Description",
)
# Bumped whenever the preset maps the file differently, so a landed copy is re-imported.
ONLINE_RETAIL_PRESET = 2

# A product description's category: the first rule whose pattern is in the upper-cased
# description, else "home" (frames, cushions, clocks, signs: UCI's house decor). Service
# lines (postage, fees, manual adjustments) get none and do not vote for their order's
# category. The names are the simulated shop's, so both speak one vocabulary.
DESCRIPTION_CATEGORIES: tuple[tuple[str, str | None], ...] = (
    (r"POSTAGE|CARRIAGE|^MANUAL|DISCOUNT|BANK CHARGES|AMAZON FEE|ADJUST|SAMPLES|CRUK", None),
    (r"CHRISTMAS|XMAS|ADVENT|SANTA|REINDEER|SNOWFLAKE|NATIVITY", "christmas"),
    (r"PARTY|BUNTING|BALLOON|BIRTHDAY|CONFETTI|CAKE CASES|PAPER CUPS|PAPER PLATES", "party"),
    (r"BABY|NURSERY|\bBIB\b", "baby"),
    (r"TOY|GAME|DOLL|PLAYHOUSE|SPACEBOY|JIGSAW|DOMINOES|SKITTLES|CHILDREN|TEDDY|PUPPET", "toys"),
    (r"CRAFT|SEWING|KNITTING|FELT|RIBBON|BUTTON|STENCIL|GLITTER|CROCHET|EMBROIDER", "craft"),
    (r"\bBAGS?\b|TOTE|PURSE|SHOPPER", "bags"),
    (r"LIGHT|LANTERN|CANDLE|LAMP", "lighting"),
    (
        r"MUG|CUP|PLATE|BOWL|\bTEA\b|TEACUP|COFFEE|CAKE|BAKING|\bJAR\b|LUNCH BOX|BOTTLE|JUG"
        r"|SPOON|TRAY|KITCHEN|APRON|OVEN|\bTINS?\b|NAPKIN|CUTLERY|EGG|BREAD|RECIPE|COASTER"
        r"|JAM MAKING|PANTRY|JELLY|COOKIE|POPCORN",
        "kitchen",
    ),
    (
        r"\bCARDS?\b|WRAP|PAPER|NOTEBOOK|NOTE BOOK|PENCIL|\bPENS?\b|STICKER|ENVELOPE|DIARY"
        r"|CALENDAR|JOURNAL|ERASER|BOOKMARK|\bTAGS?\b",
        "stationery",
    ),
    (r"GARDEN|PLANT|FLOWER POT|WATERING|\bBIRD|HERB|GNOME", "garden"),
    (r"GIFT|HEART|LOVE|\bBOX|KEYRING|KEY RING|CHARM", "gifts"),
)
DEFAULT_CATEGORY = "home"


def categories_from_descriptions(descriptions: pd.Series) -> pd.Series:
    """Each description's category by :data:`DESCRIPTION_CATEGORIES` (None: a service
    line, or no description)."""
    text = descriptions.astype("string").str.upper().str.strip()
    out = pd.Series(DEFAULT_CATEGORY, index=descriptions.index, dtype=object)
    decided = pd.Series(False, index=descriptions.index)
    for pattern, category in DESCRIPTION_CATEGORIES:
        hit = text.str.contains(pattern, regex=True, na=False) & ~decided
        out[hit] = category
        decided |= hit
    out[text.isna() | (text == "")] = None
    return out


@dataclass
class ImportReport:
    """Where every input line went."""

    source: str
    lines_read: int = 0
    malformed_lines: int = 0
    lines_without_customer: int = 0
    lines_rejected: int = 0
    cancellation_lines: int = 0
    sale_lines: int = 0
    orders: int = 0
    completed_orders: int = 0
    cancelled_orders: int = 0
    customers: int = 0
    customers_already_landed: int = 0
    days: int = 0
    first_day: str | None = None
    last_day: str | None = None
    rejected_path: str | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _source_name(path: Path) -> str:
    stem = path.name
    for suffix in (".gz", ".csv", ".parquet"):
        stem = stem.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)


def _read_source(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not path.exists():
        raise ImportInputError(f"{path}: no such file")
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            frame = table.to_pandas()
            return frame, pd.DataFrame(columns=["file", "line", "raw_line", "reason"])
        if path.name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
            return read_csv_strings(path)
    except BatchError as exc:
        raise ImportInputError(str(exc)) from exc
    except Exception as exc:
        raise ImportInputError(f"{path}: cannot read: {exc}") from exc
    raise ImportInputError(f"{path}: expected a .csv, .csv.gz or .parquet file")


def _check_columns(frame: pd.DataFrame, mapping: ColumnMap, path: Path) -> None:
    if mapping.amount is None and mapping.price is None:
        raise ImportInputError("map an amount column (--amount) or a unit price (--price)")
    if mapping.price is not None and mapping.quantity is None:
        raise ImportInputError("--price needs --quantity: amount = quantity x price")
    found = [str(c) for c in frame.columns]
    for field_name, column in mapping.columns().items():
        if column not in frame.columns:
            close = difflib.get_close_matches(column, found, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ImportInputError(
                f"{path.name}: column {column!r} (mapped to {field_name}) is not in the file{hint} "
                f"Columns found: {found}"
            )


def _customer_ids(values: pd.Series) -> pd.Series:
    """Strings, stripped; '17850.0' (a float-typed id) becomes '17850'; empty becomes null."""
    text = values.astype("string").str.strip()
    text = text.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    return text.where(text.notna() & (text != ""), None).astype(object)


def _timestamps(values: pd.Series, timezone: str) -> tuple[pd.Series, list[str]]:
    """Parse to UTC. Naive values are local times in ``timezone``.

    At a daylight-saving change some local times do not exist (the spring
    gap) and some happen twice (the autumn hour). The policy, stated in the
    returned notes: a time in the gap is moved forward by the gap (02:30 in a
    02:00-03:00 gap reads as 03:30, as a clock that was not yet changed would
    show); a repeated time is read as its first occurrence (summer time).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        text = values.astype("string")
        try:
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except (ValueError, TypeError):
            parsed = pd.to_datetime(text, format="mixed", errors="coerce", utc=True)
    notes: list[str] = []
    if getattr(parsed.dt, "tz", None) is None:
        first = np.ones(len(parsed), dtype=bool)  # True: the summer-time reading
        gap = parsed.dt.tz_localize(timezone, ambiguous=first, nonexistent="NaT").isna()
        twice = parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="shift_forward")
        gap, twice = gap & parsed.notna(), twice.isna() & parsed.notna()
        if gap.any():
            notes.append(
                f"{int(gap.sum()):,} local time(s) in {timezone} fall in a daylight-saving gap "
                "and do not exist; moved forward by the gap"
            )
        if twice.any():
            notes.append(
                f"{int(twice.sum()):,} local time(s) in {timezone} happen twice at a "
                "daylight-saving change; read as the first (summer-time) occurrence"
            )
        parsed = parsed.dt.tz_localize(timezone, ambiguous=first, nonexistent=pd.Timedelta(hours=1))
    return parsed.dt.tz_convert("UTC"), notes


def _numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def import_transactions(
    path: Path,
    landing_dir: Path,
    mapping: ColumnMap,
    *,
    timezone: str = "UTC",
    cancel_prefix: str | None = None,
    skip_bad_rows: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ImportReport:
    """Write ``orders`` and ``customers`` landing partitions from a transaction log.

    Raises:
        ImportInputError: a mapped column is missing, the file cannot be read, or
            (unless ``skip_bad_rows``) a line has an unparseable timestamp,
            amount, price or quantity. The message names the column, the line
            and the value.
    """
    step = progress or (lambda _msg: None)
    source = _source_name(path)
    report = ImportReport(source=str(path))
    step(f"reading {path.name}")
    frame, malformed = _read_source(path)
    _check_columns(frame, mapping, path)
    report.lines_read = len(frame) + len(malformed)
    report.malformed_lines = len(malformed)
    # CSV line numbers: header is line 1; malformed lines are not in ``frame``.
    line_no = pd.Series(np.arange(len(frame)) + 2, index=frame.index)

    step("parsing")
    lines = pd.DataFrame(index=frame.index)
    lines["customer_id"] = _customer_ids(frame[mapping.customer])
    lines["ts"], notes = _timestamps(frame[mapping.timestamp], timezone)
    report.notes += notes
    quantity = (
        _numbers(frame[mapping.quantity]) if mapping.quantity else pd.Series(1.0, index=frame.index)
    )
    if mapping.amount:
        amount = _numbers(frame[mapping.amount])
    else:
        assert mapping.price is not None
        amount = quantity * _numbers(frame[mapping.price])
    lines["quantity"], lines["amount"] = quantity, amount
    lines["order_id"] = (
        frame[mapping.order_id].astype("string").str.strip().astype(object)
        if mapping.order_id
        else None
    )
    if mapping.category:
        lines["category"] = frame[mapping.category].astype(object)
    elif mapping.description:
        lines["category"] = categories_from_descriptions(frame[mapping.description])
    else:
        lines["category"] = UNKNOWN
    lines["country"] = frame[mapping.country].astype(object) if mapping.country else UNKNOWN

    no_customer = lines["customer_id"].isna()
    report.lines_without_customer = int(no_customer.sum())
    problems = pd.Series("", index=frame.index, dtype=object)
    raw_checks = [
        ("ts", mapping.timestamp, "not a timestamp"),
        ("amount", mapping.amount or mapping.price, "not a number"),
        ("quantity", mapping.quantity, "not a number"),
    ]
    for column, source_col, what in raw_checks:
        if source_col is None:
            continue
        bad = lines[column].isna() & frame[source_col].notna() & ~no_customer
        problems[bad] += f"{source_col} {what};"
        missing = lines[column].isna() & frame[source_col].isna() & ~no_customer
        problems[missing] += f"{source_col} is empty;"
    if mapping.order_id:
        problems[lines["order_id"].isna() & ~no_customer] += f"{mapping.order_id} is empty;"
    rejected = problems != ""
    if rejected.any() and not skip_bad_rows:
        first = problems[rejected].index[:3]
        detail = "; ".join(
            f"line {line_no[i]}: {problems[i].rstrip(';')} "
            f"({ {c: frame.at[i, c] for c in mapping.columns().values()} })"
            for i in first
        )
        raise ImportInputError(
            f"{path.name}: {int(rejected.sum())} line(s) cannot be mapped, e.g. {detail}. "
            "Fix the file, or pass --skip-bad-rows to set them aside in a rejects file."
        )
    imports_dir = landing_dir / IMPORTS_DIR
    if rejected.any() or len(malformed):
        imports_dir.mkdir(parents=True, exist_ok=True)
        rejects = (
            frame[rejected]
            .astype("string")
            .assign(line=line_no[rejected], reason=problems[rejected].str.rstrip(";"))
        )
        if len(malformed):
            rejects = pd.concat([rejects, malformed], ignore_index=True)
        rejects_path = imports_dir / f"{source}-rejected.csv"
        rejects.to_csv(rejects_path, index=False)
        report.rejected_path = str(rejects_path)
    report.lines_rejected = int(rejected.sum())
    if len(malformed) and not skip_bad_rows:
        reason, raw_line = malformed["reason"].iloc[0], malformed["raw_line"].iloc[0]
        raise ImportInputError(
            f"{path.name}: {len(malformed)} malformed line(s), e.g. {reason}: "
            f"{raw_line!r}. Fix the file, or pass --skip-bad-rows (rejects written to "
            f"{report.rejected_path})."
        )

    kept = lines[~no_customer & ~rejected].copy()
    kept["cancelled"] = (
        kept["order_id"].str.startswith(cancel_prefix)
        if cancel_prefix and mapping.order_id
        else False
    )
    report.cancellation_lines = int(kept["cancelled"].sum())
    report.sale_lines = len(kept) - report.cancellation_lines

    step("building orders and customers")
    orders = _orders(kept, mapping)
    customers = _customers(kept)
    report.orders = len(orders)
    report.cancelled_orders = int((orders["status"] == "cancelled").sum())
    report.completed_orders = report.orders - report.cancelled_orders

    own_file = f"import-{source}.parquet"
    known = _landed_customers(landing_dir, exclude_file=own_file)
    first_known = customers["customer_id"].map(known)
    first_known = first_known.where(first_known.notna(), date.max)
    earlier = first_known < customers["signup_ts"].dt.date
    report.customers_already_landed = int(earlier.sum())
    customers = customers[~earlier]
    report.customers = len(customers)

    step("writing landing partitions")
    days = _write_by_day(orders, "order_ts", landing_dir, "orders", own_file)
    days |= _write_by_day(customers, "signup_ts", landing_dir, "customers", own_file)
    report.days = len(days)
    if days:
        report.first_day, report.last_day = min(days).isoformat(), max(days).isoformat()
    imports_dir.mkdir(parents=True, exist_ok=True)
    (imports_dir / f"{source}.json").write_text(json.dumps(report.as_dict(), indent=1))
    log.info(
        "imported %s: %d lines -> %d orders, %d customers over %d days",
        path.name,
        report.lines_read,
        report.orders,
        report.customers,
        report.days,
    )
    return report


def _orders(kept: pd.DataFrame, mapping: ColumnMap) -> pd.DataFrame:
    if mapping.order_id:
        keys = ["order_id", "customer_id"]
    else:  # one order per customer and timestamp
        keys = ["customer_id", "ts"]
    grouped = kept.groupby(keys, sort=True, dropna=False)
    orders = grouped.agg(
        order_ts=("ts", "min"),
        amount=("amount", "sum"),
        n_items=("quantity", "sum"),
        cancelled=("cancelled", "max"),
    ).reset_index()
    if not mapping.order_id:
        digest = (orders["customer_id"] + "|" + orders["ts"].astype(str)).map(
            lambda s: hashlib.sha1(s.encode()).hexdigest()[:16]
        )
        orders["order_id"] = "t-" + digest
    category = kept.groupby(keys, sort=True, dropna=False)["category"].agg(
        lambda s: s.mode().iloc[0] if s.notna().any() else UNKNOWN
    )
    orders["category"] = category.to_numpy()
    cancelled = orders["cancelled"].astype(bool)
    orders["amount"] = orders["amount"].round(2).where(~cancelled, orders["amount"].abs().round(2))
    items = orders["n_items"].where(~cancelled, orders["n_items"].abs())
    orders["n_items"] = items.round().astype("int64")
    orders["discount"] = 0.0
    orders["status"] = np.where(cancelled, "cancelled", "completed")
    return orders[
        [
            "order_id",
            "customer_id",
            "order_ts",
            "amount",
            "n_items",
            "category",
            "discount",
            "status",
        ]
    ]


def _customers(kept: pd.DataFrame) -> pd.DataFrame:
    first = kept.sort_values(["customer_id", "ts"], kind="stable").groupby("customer_id").head(1)
    return pd.DataFrame(
        {
            "customer_id": first["customer_id"].to_numpy(),
            "signup_ts": first["ts"].to_numpy(),
            "country": first["country"].fillna(UNKNOWN).astype(str).to_numpy(),
            "acquisition_channel": UNKNOWN,
        }
    ).assign(signup_ts=lambda f: pd.to_datetime(f["signup_ts"], utc=True))


def _landed_customers(landing_dir: Path, exclude_file: str) -> pd.Series:
    """customer_id -> first landing day, from Parquet files other than ``exclude_file``."""
    firsts: dict[str, date] = {}
    for day in list_partitions(landing_dir, "customers"):
        for path in partition_dir(landing_dir, "customers", day).glob("*.parquet"):
            if path.name == exclude_file:
                continue
            ids = pq.read_table(path, columns=["customer_id"]).column(0).to_pylist()
            for cid in ids:
                if cid is not None and str(cid) not in firsts:
                    firsts[str(cid)] = day
    return pd.Series(firsts, dtype=object)


def _write_by_day(
    frame: pd.DataFrame, ts_col: str, landing_dir: Path, table: str, file_name: str
) -> set[date]:
    """Write ``file_name`` into each day's partition; remove it from days no longer covered."""
    days = frame[ts_col].dt.date
    written: set[date] = set()
    for day, part in frame.groupby(days, sort=True):
        folder = partition_dir(landing_dir, table, day)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{file_name}.tmp"
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp)
        os.replace(tmp, folder / file_name)
        written.add(day)
    for day in list_partitions(landing_dir, table):
        stale = partition_dir(landing_dir, table, day) / file_name
        if day not in written and stale.exists():
            stale.unlink()
            if not any(stale.parent.iterdir()):
                stale.parent.rmdir()
            log.info("%s ds=%s: removed %s, no longer in the source", table, day, file_name)
    return written


def import_online_retail(
    path: Path, landing_dir: Path, progress: Callable[[str], None] | None = None
) -> ImportReport:
    """The UCI Online Retail preset: invoices are orders, 'C' invoices are cancellations.

    Times are UK local time (Europe/London) and are converted to UTC.
    """
    report = import_transactions(
        path,
        landing_dir,
        ONLINE_RETAIL,
        timezone="Europe/London",
        cancel_prefix="C",
        progress=progress,
    )
    if sha256_file(path) != ONLINE_RETAIL_SHA256:
        report.notes.append("sha256 differs from the published file; counts may differ")
    return report
