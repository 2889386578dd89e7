"""The warehouse on both backends: keyed replacement, atomic multi-table writes, crash safety."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date

import pandas as pd
import pytest

from clm.data import warehouse
from clm.data.warehouse import Partition

D1, D2 = date(2024, 1, 1), date(2024, 1, 2)


@pytest.fixture(params=["duckdb", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'w.duckdb'}"
    return str(request.getfixturevalue("postgres_url"))


def _summary(ds: date, n: int, spend: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ds": [ds] * n,
            "segment": [f"s{i}" for i in range(n)],
            "customers": range(n),
            "mean_churn_probability": [0.1 + 1e-17 * i for i in range(n)],
            "total_expected_spend": [spend / 3] * n,
            "mean_conversion_probability": [None] * n,
        }
    )


def _transitions(ds: date, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ds": [ds] * n,
            "from_segment": ["a"] * n,
            "to_segment": [f"b{i}" for i in range(n)],
            "customers": [7] * n,
        }
    )


def test_replace_partition_is_idempotent_and_keyed(url: str) -> None:
    warehouse.replace_partition(url, "segment_summary", _summary(D1, 3), ds=D1)
    warehouse.replace_partition(url, "segment_summary", _summary(D2, 2), ds=D2)
    first = warehouse.checksum(url, "segment_summary", ds=D1)
    warehouse.replace_partition(url, "segment_summary", _summary(D1, 3), ds=D1)
    counts = warehouse.query(
        url, "SELECT ds, COUNT(*) AS n FROM segment_summary GROUP BY ds ORDER BY ds"
    )
    assert list(counts["n"]) == [3, 2]
    assert warehouse.checksum(url, "segment_summary", ds=D1) == first
    # Floats survive the round trip bit for bit, so the checksum sees a change in the last bit.
    warehouse.replace_partition(url, "segment_summary", _summary(D1, 3, spend=1.0 + 2e-16), ds=D1)
    assert warehouse.checksum(url, "segment_summary", ds=D1) != first


def test_checksums_agree_across_backends(tmp_path, postgres_url: str) -> None:
    duck = f"duckdb:///{tmp_path / 'w.duckdb'}"
    summary = _summary(D1, 4)
    summary["mean_churn_probability"] = summary["mean_churn_probability"].astype("float32") / 3
    for target in (duck, postgres_url):
        warehouse.replace_partitions(
            target,
            [
                Partition("segment_summary", summary, {"ds": D1}),
                Partition("segment_transitions", _transitions(D1, 3), {"ds": D1}),
            ],
        )
    for table in ("segment_summary", "segment_transitions"):
        assert warehouse.checksum(duck, table, ds=D1) == warehouse.checksum(
            postgres_url, table, ds=D1
        )


def _write_day_one(url: str) -> dict[str, str]:
    """Write summary and transitions for D1; return their checksums."""
    warehouse.replace_partitions(
        url,
        [
            Partition("segment_summary", _summary(D1, 3), {"ds": D1}),
            Partition("segment_transitions", _transitions(D1, 2), {"ds": D1}),
        ],
    )
    return {
        t: warehouse.checksum(url, t, ds=D1) for t in ("segment_summary", "segment_transitions")
    }


def test_a_failure_midway_keeps_every_previous_partition(url: str) -> None:
    before = _write_day_one(url)
    broken = _transitions(D1, 2)
    broken.loc[1, "to_segment"] = "b0"  # duplicate primary key: the second insert fails
    with pytest.raises(Exception, match="(?i)constraint|duplicate|unique"):
        warehouse.replace_partitions(
            url,
            [
                Partition("segment_summary", _summary(D1, 5), {"ds": D1}),
                Partition("segment_transitions", broken, {"ds": D1}),
            ],
        )
    after = {t: warehouse.checksum(url, t, ds=D1) for t in before}
    assert after == before


CRASH = """
import os, sys
from datetime import date
import pandas as pd
from clm.data import warehouse
from clm.data.warehouse import Partition

url, rows = sys.argv[1], int(sys.argv[2])
calls = []
real = {cls: cls.insert for cls in (warehouse.DuckDBTransaction, warehouse.PostgresTransaction)}

def crash_on_second(self, table, frame):
    calls.append(table)
    if len(calls) == 2:
        os._exit(9)  # the process dies: no rollback, no cleanup
    real[type(self)](self, table, frame)

for cls in real:
    cls.insert = crash_on_second
d = date(2024, 1, 1)
summary = pd.DataFrame({"ds": [d] * rows, "segment": [f"new{i}" for i in range(rows)],
    "customers": 1, "mean_churn_probability": 0.5, "total_expected_spend": 2.0,
    "mean_conversion_probability": None})
moves = pd.DataFrame({"ds": [d] * rows, "from_segment": "a",
    "to_segment": [f"new{i}" for i in range(rows)], "customers": 1})
warehouse.replace_partitions(url, [Partition("segment_summary", summary, {"ds": d}),
    Partition("segment_transitions", moves, {"ds": d})])
"""


def test_a_crash_in_the_middle_of_a_write_leaves_the_previous_day(url: str, tmp_path) -> None:
    before = _write_day_one(url)
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(CRASH))
    crashed = subprocess.run(
        [sys.executable, str(script), url, "50000"], check=False, capture_output=True
    )
    assert crashed.returncode == 9, crashed.stderr.decode()[-2000:]
    assert {t: warehouse.checksum(url, t, ds=D1) for t in before} == before
    assert len(warehouse.query(url, "SELECT * FROM segment_summary WHERE segment LIKE 'new%'")) == 0


def test_bad_input_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="every row must have ds"):
        warehouse.replace_partition(url, "segment_summary", _summary(D1, 1), ds=D2)
    with pytest.raises(ValueError, match="unknown warehouse table"):
        warehouse.replace_partition(url, "segments", _summary(D1, 1), ds=D1)


def test_unsupported_urls_are_refused_without_leaking_the_password() -> None:
    with pytest.raises(ValueError, match="unsupported warehouse URL") as err:
        warehouse.query("mysql://u:secret@h/db", "SELECT 1")
    assert "secret" not in str(err.value)
    with pytest.raises(ConnectionError) as conn_err:
        warehouse.query("postgresql://u:secret@127.0.0.1:1/db", "SELECT 1")
    assert "secret" not in str(conn_err.value)


SECRET = "hunter2-s3cr@t"
LEAKY_URLS = [
    "postgresql://u:hunter2-s3cr%40t@127.0.0.1:1/db",
    "postgresql://u@127.0.0.1:1/db?password=hunter2-s3cr%40t&sslmode=disable",
    "postgresql+psycopg://u:hunter2-s3cr%40t@127.0.0.1:1/db",
    "postgres://u@127.0.0.1:1/db?sslpassword=hunter2-s3cr%40t&password=hunter2-s3cr%40t",
]


@pytest.mark.parametrize("leaky", LEAKY_URLS)
def test_no_form_of_url_leaks_its_password(leaky: str) -> None:
    import traceback

    from clm.core.redact import redact_url

    assert "hunter2" not in redact_url(leaky)
    with pytest.raises(ConnectionError) as err:
        warehouse.query(leaky, "SELECT 1")
    shown = "".join(traceback.format_exception(err.value))  # what a log or a crash prints
    assert "hunter2" not in shown and "s3cr" not in shown, shown
    assert "cannot connect to the warehouse" in shown


def test_the_psycopg_driver_form_reads_and_writes(postgres_url: str) -> None:
    driver_form = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    warehouse.replace_partition(driver_form, "segment_summary", _summary(D1, 3), ds=D1)
    assert len(warehouse.query(driver_form, "SELECT * FROM segment_summary")) == 3


def test_settings_never_print_their_urls() -> None:
    from clm.core.settings import get_settings

    settings = get_settings(warehouse_url=LEAKY_URLS[0], mlflow_tracking_uri=LEAKY_URLS[1])
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


def _hold_duckdb(path: str, read_only: bool, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({path!r}, read_only={read_only}); "
            f"print('held', flush=True); time.sleep({seconds}); c.close()",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_writer_waits_for_a_reader_and_a_reader_never_writes(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    warehouse.replace_partition(url, "segment_summary", _summary(D1, 2), ds=D1)
    reader = _hold_duckdb(str(tmp_path / "w.duckdb"), read_only=True, seconds=2)
    try:
        warehouse.replace_partition(url, "segment_summary", _summary(D2, 3), ds=D2)  # waits
    finally:
        reader.wait()
    assert len(warehouse.query(url, "SELECT * FROM segment_summary")) == 5
    readers = [_hold_duckdb(str(tmp_path / "w.duckdb"), read_only=True, seconds=5)]
    try:  # many readers at once: a read-only query does not wait for another reader
        assert len(warehouse.query(url, "SELECT * FROM segment_summary", wait_seconds=0)) == 5
    finally:
        readers[0].kill()
        readers[0].wait()


def test_a_cli_reader_meeting_a_long_write_names_the_holder(tmp_path) -> None:
    import os
    from pathlib import Path

    home = tmp_path / "clm"
    url = f"duckdb:///{home / 'warehouse' / 'clm.duckdb'}"
    warehouse.replace_partition(url, "segment_summary", _summary(D1, 2), ds=D1)
    writer = _hold_duckdb(str(home / "warehouse" / "clm.duckdb"), read_only=False, seconds=60)
    try:
        env = os.environ | {"CLM_HOME": str(home), "CLM_WAREHOUSE_WAIT_SECONDS": "1"}
        shown = subprocess.run(
            [str(Path(sys.executable).parent / "clm"), "segments"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        writer.kill()
        writer.wait()
    assert shown.returncode == 1
    assert f"is in use by another process (pid {writer.pid}); waited 1s" in shown.stdout, (
        shown.stdout + shown.stderr
    )
    assert "Traceback" not in shown.stdout + shown.stderr
