"""The bad-input catalogue: every kind of broken landing file and what the gate does with it.

Each case lands a clean day D0, then a day D1 with one defect, and ingests D1.
The expected outcome is either a quarantine with a named reason (the rest of
the day passes) or a clear batch failure naming table, ds and rule, with
nothing written. Either way no row is lost: per table and ds, landed =
validated + quarantined, and a refused day leaves its landing files untouched.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from clm.core.io import partition_dir, read_partition, sha256_file
from clm.core.settings import Settings, get_settings
from clm.data.ingest import ingest, pending_days
from clm.data.validation import BatchValidationError, docs_index
from clm.data.warehouse import query

D0, D1 = date(2024, 3, 1), date(2024, 3, 2)
N_CUSTOMERS, N_ORDERS = 10, 10


def _ts(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:02d}" for i in range(N_CUSTOMERS)],
            "signup_ts": [_ts(D0, 8)] * N_CUSTOMERS,
            "country": ["DE"] * N_CUSTOMERS,
            "acquisition_channel": ["organic"] * N_CUSTOMERS,
        }
    )


def _orders(day: date, first: int, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [f"o{i:03d}" for i in range(first, first + n)],
            "customer_id": [f"c{i % N_CUSTOMERS:02d}" for i in range(n)],
            "order_ts": [_ts(day, 9 + i % 12) for i in range(n)],
            "amount": [20.0 + i for i in range(n)],
            "n_items": [1 + i % 3 for i in range(n)],
            "category": ["home"] * n,
            "discount": [0.1] * n,
            "status": ["completed"] * n,
        }
    )


def _events(day: date, first: int, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": [f"e{i:03d}" for i in range(first, first + n)],
            "customer_id": [f"c{i % N_CUSTOMERS:02d}" for i in range(n)],
            "event_ts": [_ts(day, 10)] * n,
            "event_type": ["review"] * n,
            "rating": [4] * n,
        }
    )


def land(settings: Settings, table: str, day: date, frame: pd.DataFrame, name: str) -> Path:
    """Replace the landing partition with one file; the suffix picks the format."""
    folder = partition_dir(settings.landing_dir, table, day)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / name
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with D0 landed and ingested and D1 landed, built once per module and worker."""
    home = tmp_path_factory.mktemp("two-days") / "clm"
    land_two_days(get_settings(home=home))
    return home


@pytest.fixture
def shop(settings: Settings, two_days: Path) -> Settings:
    """D0 landed and ingested cleanly; D1 landed cleanly (not yet ingested): a copy of a home,
    as a backup or a staging copy would be."""
    shutil.copytree(two_days, settings.home)
    return settings


def land_two_days(settings: Settings) -> Settings:
    """Land and ingest a clean D0, and land a clean D1."""
    land(settings, "customers", D0, _customers(), "part.parquet")
    land(settings, "orders", D0, _orders(D0, 0, N_ORDERS), "part.parquet")
    land(settings, "events", D0, _events(D0, 0, N_ORDERS), "part.parquet")
    ingest(settings, D0)
    land(settings, "customers", D1, _customers().iloc[0:0], "part.parquet")
    land(settings, "orders", D1, _orders(D1, 100, N_ORDERS), "part.parquet")
    land(settings, "events", D1, _events(D1, 100, N_ORDERS), "part.parquet")
    return settings


# --- the defects ---------------------------------------------------------------------


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.astype({column: object}) if isinstance(value, str) else frame
        frame.loc[row, column] = value
        return frame

    return apply


def _texts(by_row: dict[int, str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """A review_text column (optional in the contract): ``by_row``'s texts, None elsewhere."""

    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(review_text=[by_row.get(i) for i in range(len(frame))])

    return apply


def _csv_with(text_edit: Callable[[str], str]) -> Callable[[Settings], None]:
    def apply(settings: Settings) -> None:
        path = land(settings, "orders", D1, _orders(D1, 100, N_ORDERS), "orders.csv")
        path.write_text(text_edit(path.read_text()))

    return apply


def _truncated_parquet(settings: Settings) -> None:
    path = land(settings, "orders", D1, _orders(D1, 100, N_ORDERS), "part.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bad_encoding(settings: Settings) -> None:
    frame = _orders(D1, 100, N_ORDERS)
    frame.loc[3, "category"] = "café"
    folder = partition_dir(settings.landing_dir, "orders", D1)
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "orders.csv").write_bytes(frame.to_csv(index=False).encode("latin-1"))


def _empty_file(settings: Settings) -> None:
    land(settings, "orders", D1, _orders(D1, 100, N_ORDERS), "orders.csv").write_text("")


def _header_only(settings: Settings) -> None:
    land(settings, "orders", D1, _orders(D1, 100, 0), "orders.csv")


def _landed_twice(settings: Settings) -> None:
    path = partition_dir(settings.landing_dir, "orders", D1) / "part.parquet"
    shutil.copy(path, path.with_name("part (copy).parquet"))


def _gzip_csv_other_zone(settings: Settings) -> None:
    frame = _orders(D1, 100, N_ORDERS).astype({"order_ts": object})
    frame["order_ts"] = "2024-03-02T14:00:00+05:00"  # 09:00 UTC, inside D1
    frame.loc[0, "order_ts"] = "2024-03-02T02:00:00+05:00"  # 21:00 UTC on D0
    folder = partition_dir(settings.landing_dir, "orders", D1)
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with gzip.open(folder / "orders.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(frame.to_csv(index=False))


def _naive_csv(settings: Settings) -> None:
    frame = _orders(D1, 100, N_ORDERS)
    frame["order_ts"] = frame["order_ts"].dt.tz_localize(None)  # '2024-03-02 09:00:00'
    land(settings, "orders", D1, frame, "orders.csv")


def _orders_edit(
    edit: Callable[[pd.DataFrame], pd.DataFrame], name: str = "part.parquet"
) -> Callable[[Settings], None]:
    def apply(settings: Settings) -> None:
        land(settings, "orders", D1, edit(_orders(D1, 100, N_ORDERS)), name)

    return apply


def _events_edit(edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Settings], None]:
    def apply(settings: Settings) -> None:
        land(settings, "events", D1, edit(_events(D1, 100, N_ORDERS)), "part.parquet")

    return apply


def _unknown_file(settings: Settings) -> None:
    folder = partition_dir(settings.landing_dir, "orders", D1)
    (folder / "late-export.xlsx").write_bytes(b"PK\x03\x04 a spreadsheet")


def _hidden_file(settings: Settings) -> None:
    folder = partition_dir(settings.landing_dir, "orders", D1)
    _orders(D1, 500, 3).to_csv(folder / ".part-0001.csv", index=False)


def _success_marker(settings: Settings) -> None:
    (partition_dir(settings.landing_dir, "orders", D1) / "_SUCCESS").touch()


def _random_bytes(name: str) -> Callable[[Settings], None]:
    def apply(settings: Settings) -> None:
        folder = partition_dir(settings.landing_dir, "orders", D1)
        shutil.rmtree(folder)
        folder.mkdir(parents=True)
        # Fixed bytes with a NUL early and invalid UTF-8 throughout.
        (folder / name).write_bytes(bytes((i * 167 + 13) % 256 for i in range(5000)))

    return apply


def _spike(settings: Settings) -> None:
    land(settings, "orders", D1, _orders(D1, 100, 12 * N_ORDERS), "part.parquet")


def _bom_csv(settings: Settings) -> None:
    """Excel's "CSV UTF-8": a byte order mark before the header; ids with leading zeros."""
    frame = _orders(D1, 100, N_ORDERS).assign(order_id=lambda f: "00" + f["order_id"].str[1:])
    folder = partition_dir(settings.landing_dir, "orders", D1)
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "orders.csv").write_text("\ufeff" + frame.to_csv(index=False), encoding="utf-8")


def _ids_kept_as_text(settings: Settings) -> None:
    ids = read_partition(settings.validated_dir, "orders", D1)["order_id"]
    assert ids.str.startswith("00").all() and len(ids) == N_ORDERS, ids.tolist()


def _repeated_header(settings: Settings) -> None:
    frame = _orders(D1, 100, N_ORDERS)
    text = frame.to_csv(index=False).replace("discount,status", "amount,status", 1)
    folder = partition_dir(settings.landing_dir, "orders", D1)
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "orders.csv").write_text(text)


def _duplicate_within(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[1, "order_id"] = frame.loc[0, "order_id"]
    return frame


def _whole_column_wrong(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(amount=["twenty"] * len(frame))


@dataclass(frozen=True)
class Case:
    """One defect and its expected outcome: quarantined reason(s) or a failure message."""

    kind: str
    make: Callable[[Settings], None]
    quarantined: int = 0
    reason: str | None = None
    fails: str | None = None  # regex of the BatchValidationError message
    warning: str | None = None
    table: str = "orders"
    check: Callable[[Settings], None] | None = None  # what else must hold afterwards


CATALOGUE = [
    Case("missing column", _orders_edit(lambda f: f.drop(columns="status")),
         fails=r"orders ds=2024-03-02: rule expect_table_columns_to_match_set failed: "
         r"missing column\(s\) \['status'\]"),
    Case("extra column", _orders_edit(lambda f: f.assign(coupon="X")), quarantined=0),
    Case("renamed column", _orders_edit(lambda f: f.rename(columns={"amount": "amount_eur"})),
         fails=r"missing column\(s\) \['amount'\] \('amount_eur' looks like a renamed 'amount'\)"),
    Case("wrong type in one value", _orders_edit(_set("amount", 2, "12,50 EUR"), "orders.csv"),
         quarantined=1, reason="amount is not a float"),
    Case("wrong type for a whole column", _orders_edit(_whole_column_wrong),
         fails=r"rule type\(amount\) failed for the whole column: 10 of 10 value\(s\)"),
    Case("wrong stored type (Parquet)",
         _orders_edit(lambda f: f.assign(order_ts=f["order_ts"].astype("int64"))),
         fails=r"rule type\(order_ts\) failed for the whole column: stored as int64"),
    Case("null id", _orders_edit(_set("order_id", 4, None)),
         quarantined=1, reason="order_id is missing"),
    Case("null customer id", _orders_edit(_set("customer_id", 4, None)),
         quarantined=1, reason="customer_id is missing"),
    Case("duplicate order id within the batch", _orders_edit(_duplicate_within),
         quarantined=2, reason="order_id repeated within the day"),
    Case("duplicate order id across days", _orders_edit(_set("order_id", 0, "o003")),
         quarantined=1, reason="order_id already landed on an earlier day"),
    Case("negative amount", _orders_edit(_set("amount", 1, -5.0)),
         quarantined=1, reason="amount is not in (0, 1000000]"),
    Case("zero amount", _orders_edit(_set("amount", 1, 0.0)),
         quarantined=1, reason="amount is not in (0, 1000000]"),
    Case("discount above 1", _orders_edit(_set("discount", 5, 1.5)),
         quarantined=1, reason="discount is not in [0, 1]"),
    Case("status outside the set", _orders_edit(_set("status", 5, "shipped")),
         quarantined=1, reason="status is not completed, cancelled or returned"),
    Case("future timestamp", _orders_edit(_set("order_ts", 6, _ts(D1 + timedelta(days=3), 9))),
         quarantined=1, reason="order_ts is after the partition day (future of ds)"),
    Case("timestamp on an earlier day", _orders_edit(_set("order_ts", 6, _ts(D0, 9))),
         quarantined=1, reason="order_ts is before the partition day"),
    Case("timestamps without a zone (CSV, read as UTC)", _naive_csv, quarantined=0),
    Case("timestamps in another zone (gzip CSV, converted to UTC)", _gzip_csv_other_zone,
         quarantined=1, reason="order_ts is before the partition day"),
    Case("unparseable timestamp", _orders_edit(_set("order_ts", 7, "yesterday-ish"), "orders.csv"),
         quarantined=1, reason="order_ts is not a timestamp"),
    Case("empty file", _empty_file, fails=r"orders ds=2024-03-02: cannot read .*the file is empty"),
    Case("header only: a quiet day of a small shop (accepted, flagged)", _header_only,
         quarantined=0, warning="quiet day: no orders landed"),
    Case("truncated Parquet file", _truncated_parquet,
         fails=r"orders ds=2024-03-02: cannot read .*part.parquet"),
    Case("CSV in a bad encoding", _bad_encoding,
         fails=r"not valid UTF-8 \(line 5, byte 0xe9 at column \d+\); re-export the file as UTF-8"),
    Case("CSV line with a stray delimiter",
         _csv_with(lambda t: t.replace("o104,c04,", "o104,c04,extra,", 1)),
         quarantined=1, reason="orders.csv: csv: line 6 has 9 field(s), expected 8"),
    Case("order for an unknown customer", _orders_edit(_set("customer_id", 3, "c99")),
         quarantined=1, reason="customer_id is not a known customer"),
    Case("absurd outlier amount", _orders_edit(_set("amount", 8, 5e9)),
         quarantined=1, reason="amount is not in (0, 1000000]"),
    Case("same file landed twice in one partition", _landed_twice,
         fails=r"part.parquet and part \(copy\).parquet have identical content"),
    Case("rating outside 1..5", _events_edit(_set("rating", 2, 9)),
         quarantined=1, reason="rating is not in 1..5", table="events"),
    Case("review text with a control character",
         _events_edit(_texts({2: "Lovely\x00 mug", 3: "Fine."})),
         quarantined=1, reason="review_text holds control characters or undecodable bytes",
         table="events"),
    Case("review text over 2,000 characters", _events_edit(_texts({2: "great " * 400})),
         quarantined=1, reason="review_text is not 1 to 2000 characters", table="events"),
    Case("event for an unknown customer", _events_edit(_set("customer_id", 2, "zz")),
         quarantined=1, reason="customer_id is not a known customer", table="events"),
    Case("a file of a format the reader does not know", _unknown_file,
         fails=r"orders ds=2024-03-02: cannot read late-export.xlsx: not a .parquet, .csv, "
         r".csv.gz file"),
    Case("a hidden file with rows (an upload in progress)", _hidden_file,
         fails=r"orders ds=2024-03-02: .part-0001.csv: a hidden or marker file with content"),
    Case("an empty _SUCCESS marker (skipped)", _success_marker, quarantined=0),
    Case("a 10 MB field (CSV)", _orders_edit(_set("category", 3, "x" * 10_000_000), "o.csv"),
         quarantined=1, reason="category is not 1 to 128 characters"),
    Case("a 10 MB field (Parquet)", _orders_edit(_set("category", 3, "x" * 10_000_000)),
         quarantined=1, reason="category is not 1 to 128 characters"),
    Case("random bytes named .csv", _random_bytes("orders.csv"),
         fails=r"cannot read .*orders.csv: binary content \(a NUL byte at byte [\d,]+\), "
         r"not CSV text"),
    Case("random bytes named .csv.gz", _random_bytes("orders.csv.gz"),
         fails=r"cannot read .*orders.csv.gz: Not a gzipped file"),
    Case("random bytes named .parquet", _random_bytes("orders.parquet"),
         fails=r"cannot read .*orders.parquet: .*Parquet magic bytes not found"),
    Case("10x volume spike (flagged, not held back)", _spike, quarantined=0,
         warning="volume above 10x the trailing 7-day mean"),
    Case("CSV with a UTF-8 byte order mark (ids keep their leading zeros)", _bom_csv,
         quarantined=0, check=_ids_kept_as_text),
    Case("a column repeated in the header", _repeated_header,
         fails=r"orders ds=2024-03-02: .*column\(s\) \['amount'\] appear more than once"),
]  # fmt: skip


def _landed_rows(settings: Settings, table: str, day: date) -> int:
    runs = query(
        settings.warehouse,
        "SELECT landed FROM validation_runs WHERE ds = ? AND table_name = ?",
        [day, table],
    )
    return int(runs.landed.iloc[0])


def _count(root: Path, table: str, day: date) -> int:
    return len(read_partition(root, table, day)) if partition_dir(root, table, day).exists() else 0


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.kind for c in CATALOGUE])
def test_bad_input(shop: Settings, case: Case) -> None:
    case.make(shop)
    before = {p: sha256_file(p) for p in shop.landing_dir.rglob("*") if p.is_file()}

    if case.fails:
        with pytest.raises(BatchValidationError, match=case.fails):
            ingest(shop, D1)
        for table in ("customers", "orders", "events"):  # nothing written for D1
            assert not partition_dir(shop.validated_dir, table, D1).exists()
            assert not partition_dir(shop.quarantine_dir, table, D1).exists()
        assert pending_days(shop, D1) == [D1]  # it will be retried once fixed
        failed = query(
            shop.warehouse,
            "SELECT status, error FROM validation_runs WHERE ds = ? AND status = 'failed'",
            [D1],
        )
        assert len(failed) >= 1 and failed.error.str.contains("nothing written").all()
    else:
        report = ingest(shop, D1)
        for table in ("customers", "orders", "events"):
            landed = _landed_rows(shop, table, D1)
            validated = _count(shop.validated_dir, table, D1)
            quarantined = _count(shop.quarantine_dir, table, D1)
            assert landed == validated + quarantined, table
        bad = (
            read_partition(shop.quarantine_dir, case.table, D1)
            if case.quarantined
            else pd.DataFrame()
        )
        assert len(bad) == case.quarantined
        if case.reason:
            assert bad["reason"].str.contains(case.reason, regex=False).all(), bad["reason"]
        if case.warning:
            assert case.warning in report.warnings[case.table]
            warned = query(
                shop.warehouse,
                "SELECT warnings FROM validation_runs WHERE ds = ? AND table_name = ?",
                [D1, case.table],
            )
            assert case.warning in json.loads(warned.warnings.iloc[0])
        if case.check:
            case.check(shop)

    after = {p: sha256_file(p) for p in shop.landing_dir.rglob("*") if p.is_file()}
    assert after == before  # the gate never touches what landed


def test_extra_column_is_not_carried_but_stays_in_landing(shop: Settings) -> None:
    land(shop, "orders", D1, _orders(D1, 100, N_ORDERS).assign(coupon="X"), "part.parquet")
    ingest(shop, D1)
    assert "coupon" not in read_partition(shop.validated_dir, "orders", D1).columns
    assert "coupon" in read_partition(shop.landing_dir, "orders", D1).columns


def test_other_zone_is_converted_to_utc(shop: Settings) -> None:
    _gzip_csv_other_zone(shop)
    ingest(shop, D1)
    valid = read_partition(shop.validated_dir, "orders", D1)
    assert (valid["order_ts"] == pd.Timestamp("2024-03-02 09:00", tz="UTC")).all()


def test_fixing_a_refused_day_and_rerunning_lands_it(shop: Settings) -> None:
    _truncated_parquet(shop)
    with pytest.raises(BatchValidationError):
        ingest(shop, D1)
    land(shop, "orders", D1, _orders(D1, 100, N_ORDERS), "part.parquet")
    report = ingest(shop, D1)
    assert report.validated["orders"] == N_ORDERS
    runs = query(shop.warehouse, "SELECT status FROM validation_runs WHERE ds = ?", [D1])
    assert set(runs.status) == {"passed"}


def test_relanding_identical_content_is_a_no_op(shop: Settings) -> None:
    ingest(shop, D1)
    path = partition_dir(shop.landing_dir, "orders", D1) / "part.parquet"
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)  # same bytes, new modification time
    report = ingest(shop, D1)
    assert report.unchanged == [D1.isoformat()] and report.days == []
    assert pending_days(shop, D1) == []


def test_relanding_a_corrected_day_replaces_it_without_duplicates(shop: Settings) -> None:
    _orders_edit(_set("amount", 1, -5.0))(shop)
    ingest(shop, D1)
    assert _count(shop.quarantine_dir, "orders", D1) == 1
    land(shop, "orders", D1, _orders(D1, 100, N_ORDERS), "part.parquet")  # the correction
    report = ingest(shop, D1)
    assert report.days == [D1.isoformat()]
    assert _count(shop.validated_dir, "orders", D1) == N_ORDERS
    assert not partition_dir(shop.quarantine_dir, "orders", D1).exists()
    runs = query(shop.warehouse, "SELECT * FROM validation_runs WHERE ds = ?", [D1])
    assert len(runs) == 3 and runs[runs.table_name == "orders"].quarantined.iloc[0] == 0


def test_data_docs_are_built_and_linked(shop: Settings) -> None:
    ingest(shop, D1)
    runs = query(shop.warehouse, "SELECT docs_url FROM validation_runs WHERE ds = ?", [D1])
    for url in runs.docs_url:
        assert url.startswith("file://")
        page = Path(unquote(url.removeprefix("file://")))
        assert "Expectation Validation Result" in page.read_text()
    assert docs_index(shop.gx_dir).exists()


def test_every_file_is_read_whatever_the_case_of_its_suffix(shop: Settings) -> None:
    folder = partition_dir(shop.landing_dir, "orders", D1)
    _orders(D1, 500, 3).to_csv(folder / "late-export.CSV", index=False)
    report = ingest(shop, D1)
    assert report.landed["orders"] == N_ORDERS + 3
    assert _count(shop.validated_dir, "orders", D1) == N_ORDERS + 3


def test_a_correction_with_the_same_size_and_time_is_picked_up(shop: Settings) -> None:
    frame = _orders(D1, 100, N_ORDERS)
    frame.loc[1, "amount"] = -5.0
    path = land(shop, "orders", D1, frame, "orders.csv")
    ingest(shop, D1)
    assert _count(shop.quarantine_dir, "orders", D1) == 1
    stat = path.stat()
    corrected = path.read_text().replace(",-5.0,", ",15.0,")  # same length
    assert len(corrected) == stat.st_size
    path.write_text(corrected)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p / rsync -t leave it
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    report = ingest(shop, D1)
    assert report.days == [D1.isoformat()]
    assert _count(shop.validated_dir, "orders", D1) == N_ORDERS
    assert not partition_dir(shop.quarantine_dir, "orders", D1).exists()


def test_a_binary_file_gives_one_clean_line(shop: Settings, capfd: pytest.CaptureFixture) -> None:
    folder = partition_dir(shop.landing_dir, "orders", D1)
    (folder / "part.parquet").unlink()
    # Invalid UTF-8 but no NUL: it reaches the CSV parser's own checks.
    (folder / "orders.csv").write_bytes(b"order_id,customer_id\n" + bytes(range(128, 256)) * 40)
    with pytest.raises(BatchValidationError) as err:
        ingest(shop, D1)
    message = str(err.value)
    assert "not valid UTF-8 (line 2, byte 0x80" in message and "\n" not in message
    assert all(c.isprintable() for c in message), message
    captured = capfd.readouterr()
    assert "Exception ignored" not in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("policy", "orders_before", "refused"),
    [
        ("auto", N_ORDERS, False),  # 10 a day before: an empty day happens by chance
        ("auto", 30, True),  # 30 a day before: an empty day is a broken export
        ("refuse", N_ORDERS, True),
        ("accept", 30, False),
    ],
)
def test_the_quiet_day_policy(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
    orders_before: int,
    refused: bool,
) -> None:
    monkeypatch.setenv("CLM_QUIET_DAYS", policy)
    quiet = get_settings()
    land(quiet, "customers", D0, _customers(), "part.parquet")
    land(quiet, "orders", D0, _orders(D0, 0, orders_before), "part.parquet")
    land(quiet, "events", D0, _events(D0, 0, N_ORDERS), "part.parquet")
    ingest(quiet, D0)
    land(quiet, "customers", D1, _customers().iloc[0:0], "part.parquet")
    land(quiet, "orders", D1, _orders(D1, 100, 0), "part.parquet")  # no orders
    land(quiet, "events", D1, _events(D1, 100, N_ORDERS), "part.parquet")  # but events
    if refused:
        with pytest.raises(BatchValidationError, match="accept it with CLM_QUIET_DAYS=accept"):
            ingest(quiet, D1)
        monkeypatch.setenv("CLM_QUIET_DAYS", "accept")  # the operator's override for the day
        quiet = get_settings()
    report = ingest(quiet, D1)
    assert report.validated["events"] == N_ORDERS
    assert "quiet day: no orders landed" in report.warnings["orders"]
