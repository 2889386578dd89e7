"""The CLM_HOME lock and the ledger that make every day processed exactly once."""

from __future__ import annotations

import multiprocessing
import time
from datetime import date

import pytest

from clm.core.settings import Settings
from clm.data import ledger

D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)


def _hold(home: str, ready, release) -> None:  # type: ignore[no-untyped-def]
    from clm.core.settings import get_settings

    with ledger.home_lock(get_settings(home=home), "another clm run"):
        ready.set()
        release.wait(30)


def test_the_lock_keeps_a_second_process_out_and_names_the_holder(settings: Settings) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(str(settings.home), ready, release))
    other.start()
    try:
        assert ready.wait(60)
        started = time.monotonic()
        with pytest.raises(ledger.HomeLocked, match=r"another clm run \(pid \d+"):
            with ledger.home_lock(settings, "me", wait_seconds=1):
                pass
        assert time.monotonic() - started >= 1
    finally:
        release.set()
        other.join(30)
    with ledger.home_lock(settings, "me", wait_seconds=5):  # free again once released
        with ledger.home_lock(settings, "me, again"):  # re-entrant in one process
            ledger.record(settings, "validated", D1, "g1")
    assert ledger.generation(settings, "validated", D1) == "g1"


def test_the_ledger_is_written_only_under_the_lock(settings: Settings) -> None:
    with pytest.raises(RuntimeError, match="only under the CLM_HOME lock"):
        ledger.record(settings, "validated", D1, "g1")


def test_due_days_are_announced_and_not_yet_processed_at_that_content(settings: Settings) -> None:
    with ledger.home_lock(settings, "test"):
        for day in (D3, D1, D2):
            ledger.record(settings, "validated", day, f"g-{day}")
        assert [d for d, _ in ledger.due(settings, "snapshot")] == [D1, D2, D3]  # oldest first
        assert [d for d, _ in ledger.due(settings, "snapshot", until=D2)] == [D1, D2]
        ledger.record(settings, "snapshot", D1, f"g-{D1}")
        ledger.record(settings, "snapshot", D2, f"g-{D2}")
        assert [d for d, _ in ledger.due(settings, "snapshot")] == [D3]
        # Re-landed data changes the generation of D2: due again, once.
        ledger.record(settings, "validated", D2, "g-new")
        assert ledger.due(settings, "snapshot") == [(D2, "g-new"), (D3, f"g-{D3}")]
        # Downstream stages follow their own upstream.
        assert ledger.due(settings, "online") == [(D1, f"g-{D1}"), (D2, f"g-{D2}")]
        with pytest.raises(ValueError, match="unknown stage"):
            ledger.record(settings, "bogus", D1, "x")


def test_a_training_request_is_closed_or_marked_failed(settings: Settings) -> None:
    with ledger.home_lock(settings, "test"):
        assert ledger.training_request(settings) is None
        ledger.request_training(settings, D2)
        assert ledger.training_request(settings) == (D2, "requested")
        ledger.finish_training(settings, D1, ok=True)  # another day: the request stays open
        assert ledger.training_request(settings) == (D2, "requested")
        ledger.finish_training(settings, D2, ok=False)
        assert ledger.training_request(settings) == (D2, "failed")
        ledger.finish_training(settings, D2, ok=True)
        assert ledger.training_request(settings) is None


def test_a_second_clm_run_on_a_busy_home_says_who_holds_it(small_shop: Settings) -> None:
    """Two `clm run` on one home: the second waits, then stops with a clear line."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(str(small_shop.home), ready, release))
    other.start()
    try:
        assert ready.wait(60)
        env = os.environ | {"CLM_HOME": str(small_shop.home), "CLM_LOCK_WAIT_MINUTES": "0.02"}
        second = subprocess.run(
            [str(Path(sys.executable).parent / "clm"), "run", "--start", "2024-01-10",
             "--end", "2024-01-10"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        release.set()
        other.join(30)
    assert second.returncode == 1
    assert "is locked by another clm run (pid" in second.stdout, second.stdout + second.stderr
    assert "Traceback" not in second.stdout + second.stderr
    assert "IntegrityError" not in second.stdout + second.stderr
    assert not (small_shop.home / "ledger.json").exists()  # the second run wrote nothing
