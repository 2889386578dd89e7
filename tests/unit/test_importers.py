from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from clm.core.io import list_partitions, read_partition
from clm.data.importers import (
    ColumnMap,
    ImportInputError,
    categories_from_descriptions,
    import_transactions,
)

CSV = """txn,client,when,total,qty,cat,ctry
t1,17850.0,2024-06-01 23:30:00,10.5,1,toys,UK
t1,17850.0,2024-06-01 23:30:00,4.5,2,toys,UK
t2,13047,2024-06-02 09:00:00,20,1,home,UK
t3,,2024-06-02 10:00:00,5,1,home,UK
R4,13047,2024-06-03 11:00:00,-20,-1,home,UK
"""
MAP = ColumnMap(
    customer="client", timestamp="when", amount="total", order_id="txn",
    quantity="qty", category="cat", country="ctry",
)  # fmt: skip


def _write(tmp_path: Path, text: str, name: str = "log.csv") -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_lines_sum_into_orders_per_day(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    report = import_transactions(
        _write(tmp_path, CSV, "log.csv.gz"), landing, MAP, timezone="Europe/London",
        cancel_prefix="R",
    )  # fmt: skip
    assert (report.lines_read, report.lines_without_customer) == (5, 1)
    assert (report.completed_orders, report.cancelled_orders, report.customers) == (2, 1, 2)
    days = list_partitions(landing, "orders")
    # 23:30 in London (BST) is 22:30 UTC: still 2024-06-01
    assert [d.isoformat() for d in days] == ["2024-06-01", "2024-06-02", "2024-06-03"]
    first = read_partition(landing, "orders", days[0]).iloc[0]
    assert (first.order_id, first.customer_id, first.amount, first.n_items) == (
        "t1", "17850", 15.0, 3,
    )  # fmt: skip
    assert first.order_ts == pd.Timestamp("2024-06-01 22:30", tz="UTC")
    cancelled = read_partition(landing, "orders", days[2]).iloc[0]
    assert (cancelled.status, cancelled.amount, cancelled.n_items) == ("cancelled", 20.0, 1)
    customers = read_partition(landing, "customers", days[0])
    assert list(customers.customer_id) == ["17850"]


def test_without_an_order_id_each_customer_timestamp_is_an_order(tmp_path: Path) -> None:
    mapping = ColumnMap(customer="client", timestamp="when", amount="total")
    report = import_transactions(_write(tmp_path, CSV), tmp_path / "landing", mapping)
    assert report.orders == 3  # t1's two lines share customer and time


def test_a_missing_column_is_named_with_a_suggestion(tmp_path: Path) -> None:
    mapping = ColumnMap(customer="Client", timestamp="when", amount="total")
    with pytest.raises(ImportInputError, match=r"column 'Client' .*did you mean 'client'"):
        import_transactions(_write(tmp_path, CSV), tmp_path / "landing", mapping)


def test_bad_rows_are_named_or_set_aside(tmp_path: Path) -> None:
    text = CSV.replace("2024-06-02 09:00:00,20", "not a date,20")
    path = _write(tmp_path, text)
    with pytest.raises(ImportInputError, match=r"line 4: when not a timestamp"):
        import_transactions(path, tmp_path / "landing", MAP)
    assert not (tmp_path / "landing" / "orders").exists()
    report = import_transactions(path, tmp_path / "landing", MAP, skip_bad_rows=True)
    assert report.lines_rejected == 1
    rejects = pd.read_csv(report.rejected_path)
    assert list(rejects.line) == [4] and "not a timestamp" in rejects.reason[0]


def test_parquet_input_and_reimport_replace_own_files_only(tmp_path: Path) -> None:
    frame = pd.read_csv(_write(tmp_path, CSV), dtype=str)
    frame.to_parquet(tmp_path / "log.parquet")
    landing = tmp_path / "landing"
    import_transactions(tmp_path / "log.parquet", landing, MAP)
    other = _write(tmp_path, CSV.replace("t2,13047", "u2,99999"), "other.csv")
    import_transactions(other, landing, MAP)
    day = list_partitions(landing, "orders")[1]
    files = sorted(p.name for p in (landing / "orders" / f"ds={day}").iterdir())
    assert files == ["import-log.parquet", "import-other.parquet"]
    # 99999 first appears in other.csv; 13047 already landed from log.parquet on that day
    import_transactions(tmp_path / "log.parquet", landing, MAP)  # re-import
    assert sorted(p.name for p in (landing / "orders" / f"ds={day}").iterdir()) == files


def test_daylight_saving_changes_follow_the_stated_policy(tmp_path: Path) -> None:
    text = """txn,client,when,total,qty,cat,ctry
t1,1,2024-03-31 01:30:00,10,1,toys,UK
t2,1,2024-10-27 01:30:00,10,1,toys,UK
t3,1,2024-10-27 01:30:00,10,1,toys,UK
t4,1,2024-06-01 12:00:00,10,1,toys,UK
"""
    landing = tmp_path / "landing"
    report = import_transactions(_write(tmp_path, text), landing, MAP, timezone="Europe/London")
    assert report.notes == [
        "1 local time(s) in Europe/London fall in a daylight-saving gap and do not exist; "
        "moved forward by the gap",
        "2 local time(s) in Europe/London happen twice at a daylight-saving change; "
        "read as the first (summer-time) occurrence",
    ]
    orders = pd.concat(
        read_partition(landing, "orders", d) for d in list_partitions(landing, "orders")
    )
    stamps = dict(zip(orders.order_id, orders.order_ts, strict=True))
    assert stamps["t1"] == pd.Timestamp("2024-03-31 01:30", tz="UTC")  # 02:30 BST
    assert stamps["t2"] == stamps["t3"] == pd.Timestamp("2024-10-27 00:30", tz="UTC")  # BST
    assert stamps["t4"] == pd.Timestamp("2024-06-01 11:00", tz="UTC")


def test_descriptions_map_to_categories_and_orders_take_their_lines_majority(
    tmp_path: Path,
) -> None:
    descriptions = pd.Series(
        [
            "WHITE HANGING HEART T-LIGHT HOLDER",  # lighting before gifts: first rule wins
            "JUMBO BAG RED RETROSPOT",
            "PAPER CHAIN KIT 50'S CHRISTMAS ",
            "SPACEBOY LUNCH BOX ",
            "ALARM CLOCK BAKELIKE RED ",  # no rule: house decor
            "POSTAGE",  # a service line votes for nothing
            None,
        ]
    )
    assert categories_from_descriptions(descriptions).tolist() == [
        "lighting",
        "bags",
        "christmas",
        "toys",
        "home",
        None,
        None,
    ]
    csv = (
        "inv,cust,when,price,qty,desc\n"
        "1,7,2024-06-01 10:00,1.0,1,JUMBO BAG RED\n"
        "1,7,2024-06-01 10:00,1.0,1,LUNCH BAG PINK\n"
        "1,7,2024-06-01 10:00,1.0,1,REGENCY CAKESTAND\n"
        "1,7,2024-06-01 10:00,9.0,1,POSTAGE\n"
        "2,8,2024-06-01 11:00,9.0,1,POSTAGE\n"
    )
    mapping = ColumnMap(
        customer="cust", timestamp="when", price="price", order_id="inv", quantity="qty",
        description="desc",
    )  # fmt: skip
    import_transactions(_write(tmp_path, csv), tmp_path / "landing", mapping)
    day = list_partitions(tmp_path / "landing", "orders")[0]
    orders = read_partition(tmp_path / "landing", "orders", day).set_index("order_id")
    assert orders.loc["1", "category"] == "bags" and orders.loc["2", "category"] == "unknown"
