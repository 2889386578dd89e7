from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from clm.core.io import list_partitions, partition_dir, read_partition, write_partition
from clm.core.settings import Settings, get_settings
from clm.data.ingest import ingest, pending_days
from clm.data.validation import BatchValidationError

LAST = date(2024, 2, 9)


def _tree(root, table):
    return {d: read_partition(root, table, d) for d in list_partitions(root, table)}


def test_catch_up_equals_day_by_day(small_shop: Settings, tmp_path, monkeypatch) -> None:
    ingest(small_shop, LAST)  # catch-up: one run
    monkeypatch.setenv("CLM_HOME", str(tmp_path / "daily"))
    daily = get_settings()
    import shutil

    shutil.copytree(small_shop.landing_dir, daily.landing_dir)
    # The daily home catches up to 6 days before LAST in one run, then goes day by day:
    # each daily run's rules then see only earlier, already written partitions.
    day = LAST - timedelta(days=5)
    assert len(ingest(daily, day - timedelta(days=1)).days) == 34
    while day <= LAST:
        assert ingest(daily, day).days == [day.isoformat()]
        day += timedelta(days=1)
    for root_a, root_b in (
        (small_shop.validated_dir, daily.validated_dir),
        (small_shop.quarantine_dir, daily.quarantine_dir),
    ):
        for table in ("customers", "orders", "events"):
            a, b = _tree(root_a, table), _tree(root_b, table)
            assert a.keys() == b.keys()
            for d in a:
                pd.testing.assert_frame_equal(a[d], b[d])


def test_chunked_catch_up_equals_one_run(small_shop: Settings, tmp_path, monkeypatch) -> None:
    import shutil

    ingest(small_shop, LAST)
    monkeypatch.setenv("CLM_HOME", str(tmp_path / "chunked"))
    monkeypatch.setenv("CLM_INGEST_CHUNK_MB", "0.1")  # about 100 KB of landing per GX run
    chunked = get_settings()
    shutil.copytree(small_shop.landing_dir, chunked.landing_dir)
    from clm.data.ingest import _chunks

    assert len(_chunks(chunked, pending_days(chunked, LAST))) > 3
    report = ingest(chunked, LAST)
    assert len(report.days) == (LAST - date(2024, 1, 1)).days + 1
    for root_a, root_b in (
        (small_shop.validated_dir, chunked.validated_dir),
        (small_shop.quarantine_dir, chunked.quarantine_dir),
    ):
        for table in ("customers", "orders", "events"):
            a, b = _tree(root_a, table), _tree(root_b, table)
            assert a.keys() == b.keys()
            for d in a:
                pd.testing.assert_frame_equal(a[d], b[d])


def test_no_row_is_lost_and_rerun_is_a_no_op(small_shop: Settings) -> None:
    report = ingest(small_shop, LAST)
    for table in ("customers", "orders", "events"):
        assert report.landed[table] == report.validated[table] + report.quarantined[table]
    assert sum(report.quarantined.values()) > 0
    quarantined = read_partition(
        small_shop.quarantine_dir, "orders", list_partitions(small_shop.quarantine_dir, "orders")[0]
    )
    assert quarantined["reason"].str.len().gt(0).all()
    assert pending_days(small_shop, LAST) == []
    assert ingest(small_shop, LAST).days == []


def test_relanded_day_is_reprocessed(small_shop: Settings) -> None:
    ingest(small_shop, LAST)
    day = date(2024, 1, 5)
    orders = read_partition(small_shop.landing_dir, "orders", day)
    write_partition(orders.head(3), small_shop.landing_dir, "orders", day)
    assert pending_days(small_shop, LAST) == [day]
    report = ingest(small_shop, LAST)
    assert report.landed["orders"] == 3
    assert len(read_partition(small_shop.validated_dir, "orders", day)) <= 3


def test_missing_column_fails_and_writes_nothing(small_shop: Settings) -> None:
    day = date(2024, 1, 3)
    orders = read_partition(small_shop.landing_dir, "orders", day)
    write_partition(orders.drop(columns="status"), small_shop.landing_dir, "orders", day)
    with pytest.raises(
        BatchValidationError, match=r"orders ds=2024-01-03: .*missing column.*status"
    ):
        ingest(small_shop, LAST)
    assert not partition_dir(small_shop.validated_dir, "orders", date(2024, 1, 1)).exists()
    assert pending_days(small_shop, LAST)[0] == date(2024, 1, 1)


def test_nothing_is_ingested_or_computed_for_a_day_past_the_landed_data(
    small_shop: Settings,
) -> None:
    """A run for a day that has not landed writes nothing, and says where the data ends."""
    from clm.core.io import BatchError
    from clm.data.features import write_snapshot
    from clm.data.ingest import ingest
    from clm.data.validation import BatchValidationError

    last = date(2024, 2, 9)  # small_shop lands 2024-01-01 + 40 days
    with pytest.raises(
        BatchValidationError, match=f"has not landed: the newest landed day is {last}"
    ):
        ingest(small_shop, last + timedelta(days=1))
    assert not small_shop.validated_dir.exists()
    ingest(small_shop, date(2024, 1, 20))
    with pytest.raises(BatchError, match="the validated data ends at 2024-01-20"):
        write_snapshot(small_shop.features_dir, small_shop.validated_dir, date(2024, 1, 21))
    assert not small_shop.features_dir.exists()


def test_memory_is_budgeted_by_what_files_hold_not_their_size(
    settings: Settings, monkeypatch
) -> None:
    import gzip

    from clm.core.io import uncompressed_bytes
    from clm.data.ingest import _chunks

    text = "order_id,amount\n" + "o1,1.0\n" * 300_000  # 2.1 MB that gzip packs into ~10 KB
    days = [date(2024, 3, 1), date(2024, 3, 2)]
    for day in days:
        folder = partition_dir(settings.landing_dir, "orders", day)
        folder.mkdir(parents=True)
        with gzip.open(folder / "orders.csv.gz", "wt") as fh:
            fh.write(text)
        pd.DataFrame({"category": ["home" * 50] * 50_000}).to_parquet(folder / "more.parquet")
    gz = partition_dir(settings.landing_dir, "orders", days[0]) / "orders.csv.gz"
    assert gz.stat().st_size < 50_000 and uncompressed_bytes(gz) == len(text)
    parquet = gz.with_name("more.parquet")
    assert uncompressed_bytes(parquet) > 20 * parquet.stat().st_size
    monkeypatch.setenv("CLM_INGEST_CHUNK_MB", "3")  # one day fits, two do not
    assert _chunks(get_settings(), days) == [[days[0]], [days[1]]]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns), ignore_index=True, key=lambda c: c.astype(str))


def _runs(settings: Settings) -> pd.DataFrame:
    from clm.data.warehouse import query

    return query(
        settings.warehouse,
        "SELECT ds, table_name, landed, validated, quarantined, status, failures, warnings "
        "FROM validation_runs ORDER BY ds, table_name",
    )


def test_a_day_over_the_budget_is_validated_in_slices_with_the_same_result(
    small_shop: Settings, tmp_path, monkeypatch, caplog
) -> None:
    """A day too large to hold is streamed to disk and validated slice by slice.

    Slices split by key, so a duplicate id in another file of the day, a
    malformed line and every row rule give what one whole-day run gives.
    """
    import logging
    import shutil

    last = day = date(2024, 1, 5)  # the day with a late export, and the days before it
    orders = read_partition(small_shop.landing_dir, "orders", day)
    late = orders.head(6).copy()
    late.loc[late.index[1:], "order_id"] = [f"late-{i}" for i in range(5)]  # row 0: a duplicate
    folder = partition_dir(small_shop.landing_dir, "orders", day)
    text = late.to_csv(index=False) + "broken,line\n"
    (folder / "late-export.CSV").write_text(text)

    sliced_home = tmp_path / "sliced"
    shutil.copytree(small_shop.landing_dir, sliced_home / "landing")
    dead = sliced_home / "tmp" / "ingest-999999999-0"  # left by an ingest killed mid-spill
    dead.mkdir(parents=True)
    ingest(small_shop, last)
    monkeypatch.setenv("CLM_HOME", str(sliced_home))
    monkeypatch.setenv("CLM_INGEST_CHUNK_MB", "0.002")  # 2 KB: the days are sliced
    sliced = get_settings()
    with caplog.at_level(logging.INFO, logger="clm.data.ingest"):
        ingest(sliced, last)
    assert "orders ds=2024-01-05: slice 3/" in caplog.text
    for root_a, root_b in (
        (small_shop.validated_dir, sliced.validated_dir),
        (small_shop.quarantine_dir, sliced.quarantine_dir),
    ):
        for table in ("customers", "orders", "events"):
            a, b = _tree(root_a, table), _tree(root_b, table)
            assert a.keys() == b.keys()
            for d in a:
                pd.testing.assert_frame_equal(_sorted(a[d]), _sorted(b[d]))
    pd.testing.assert_frame_equal(_runs(small_shop), _runs(sliced))
    bad = read_partition(sliced.quarantine_dir, "orders", day)
    duplicate = bad[bad["order_id"] == orders["order_id"].iloc[0]]
    assert len(duplicate) == 2 and duplicate["reason"].str.contains("repeated within the day").all()
    assert bad["raw_line"].eq("broken,line").sum() == 1
    assert list(sliced.home.joinpath("tmp").iterdir()) == []  # the spill is cleaned up


def test_a_sliced_day_judges_a_column_over_the_whole_day(settings: Settings, monkeypatch) -> None:
    """Whether a column is wrong "as a whole" is decided over the day, not per slice.

    Every value of one slice is unparseable, a quarter of the day: those rows
    are quarantined; a per-slice judgement would refuse the whole day.
    """
    import math

    from clm.core.io import slice_of, uncompressed_bytes

    day, budget_mb = date(2024, 3, 1), 0.004
    ids = pd.Series([f"c{i:04d}" for i in range(400)])
    good, bad = "2024-03-01T10:00:00", "not-a-timestamp-at"  # the same length: the same size

    def land(signups: list[str]) -> Path:
        folder = partition_dir(settings.landing_dir, "customers", day)
        folder.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(
            {"customer_id": ids, "signup_ts": signups, "country": "DE", "acquisition_channel": "w"}
        )
        frame.to_csv(folder / "customers.csv", index=False)
        return folder / "customers.csv"

    path = land([good] * len(ids))
    slices = math.ceil(uncompressed_bytes(path) / (budget_mb * 2**20))
    assert slices >= 3
    in_first = slice_of(ids, slices) == 0
    land([bad if first else good for first in in_first])
    monkeypatch.setenv("CLM_INGEST_CHUNK_MB", str(budget_mb))
    report = ingest(get_settings(), day)
    assert report.quarantined["customers"] == in_first.sum() < 0.5 * len(ids)
    quarantined = read_partition(settings.quarantine_dir, "customers", day)
    assert quarantined["reason"].str.contains("signup_ts is not a timestamp").all()
    # A day where most values are wrong is still refused as a whole, with nothing written.
    land([bad if i % 3 else good for i in range(len(ids))])
    with pytest.raises(
        BatchValidationError, match=r"customers ds=2024-03-01: rule type\(signup_ts\) .* 266 of 400"
    ):
        ingest(get_settings(), day)
    assert len(read_partition(settings.quarantine_dir, "customers", day)) == in_first.sum()
