"""The task layer: data-aware dates and failures that do not wait for retries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from clm.app import tasks
from clm.core.io import write_partition
from clm.core.settings import Settings

LAST = date(2024, 3, 10)


@pytest.fixture
def landed(settings: Settings) -> Settings:
    import pandas as pd

    frame = pd.DataFrame({"order_id": ["o1"]})
    for day in (LAST - timedelta(days=1), LAST):
        write_partition(frame, settings.landing_dir, "orders", day)
    return settings


def _context(ds: date, started: datetime | None = None) -> dict:
    run = SimpleNamespace(start_date=started or datetime.now(UTC))
    return {"params": {"ds": ds.isoformat()}, "dag_run": run}


def test_a_landed_day_is_ready(landed: Settings) -> None:
    result = tasks.wait_for_data(_context(LAST), "landing")
    assert result.is_done and result.xcom_value == LAST.isoformat()


def test_a_day_just_past_the_data_waits(landed: Settings) -> None:
    result = tasks.wait_for_data(_context(LAST + timedelta(days=1)), "landing")
    assert not result.is_done


def test_a_day_just_past_the_data_fails_after_the_timeout(
    landed: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLM_LANDING_TIMEOUT_MINUTES", "10")
    started = datetime.now(UTC) - timedelta(minutes=11)
    with pytest.raises(AirflowFailException, match="has not landed after 11 minutes"):
        tasks.wait_for_data(_context(LAST + timedelta(days=1), started), "landing")


def test_a_day_far_past_the_data_fails_at_once_naming_where_it_ends(landed: Settings) -> None:
    far = LAST + timedelta(days=400)
    with pytest.raises(AirflowFailException, match=f"past the landing data, which ends at {LAST}"):
        tasks.wait_for_data(_context(far), "landing")


def test_nothing_landed_says_what_to_do(settings: Settings) -> None:
    with pytest.raises(AirflowFailException, match="nothing has landed.*clm simulate"):
        tasks.wait_for_data(_context(LAST), "landing")


def test_permanent_errors_fail_without_retries_and_keep_their_cause() -> None:
    @tasks.fail_fast
    def bad_input() -> None:
        raise ValueError("ds=2024-01-01: no orders")

    @tasks.fail_fast
    def lost_connection() -> None:
        raise ConnectionError("server closed the connection")

    with pytest.raises(AirflowFailException, match="ValueError: ds=2024-01-01: no orders"):
        bad_input()
    assert tasks.LAST_ERROR == ["ValueError: ds=2024-01-01: no orders"]
    with pytest.raises(ConnectionError):  # may heal: Airflow retries it
        lost_connection()
    assert tasks.LAST_ERROR == ["ConnectionError: server closed the connection"]


def test_an_asset_triggered_run_without_ds_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="pass the `ds` param"):
        tasks.resolve_ds({"params": {}, "logical_date": None})
