from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from clm.core.contracts import CONTRACTS
from clm.core.io import list_partitions, read_partition
from clm.data.simulate import simulate_shop


def _run(root: Path, seed: int) -> None:
    simulate_shop(
        root / "landing",
        root / "truth",
        n_customers=150,
        start=date(2024, 3, 1),
        days=21,
        seed=seed,
        dirty_rate=0.05,
    )


def _table(root: Path, table: str) -> pd.DataFrame:
    days = list_partitions(root / "landing", table)
    return pd.concat([read_partition(root / "landing", table, d) for d in days], ignore_index=True)


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    _run(tmp_path / "a", 1)
    _run(tmp_path / "b", 1)
    for table in ("customers", "orders", "events"):
        pd.testing.assert_frame_equal(_table(tmp_path / "a", table), _table(tmp_path / "b", table))


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    _run(tmp_path / "a", 1)
    _run(tmp_path / "b", 2)
    assert not _table(tmp_path / "a", "orders").equals(_table(tmp_path / "b", "orders"))


def test_tables_follow_the_contract_and_partitions_by_day(tmp_path: Path) -> None:
    _run(tmp_path, 3)
    for table, contract in CONTRACTS.items():
        frame = _table(tmp_path, table)
        assert list(frame.columns) == list(contract.columns), table
        assert str(frame[contract.timestamp].dt.tz) == "UTC"
    days = list_partitions(tmp_path / "landing", "orders")
    for day in days:
        orders = read_partition(tmp_path / "landing", "orders", day)
        assert (orders["order_ts"].dt.date == day).all()
    customers = _table(tmp_path, "customers")
    assert customers["customer_id"].is_unique and len(customers) == 150


def test_latent_truth_and_dirty_rows_are_written(tmp_path: Path) -> None:
    _run(tmp_path, 4)
    latent_days = list_partitions(tmp_path / "truth", "latent")
    assert latent_days, "latent state snapshots missing"
    latent = read_partition(tmp_path / "truth", "latent", latent_days[-1])
    assert set(latent["state"]) <= {"active", "cooling", "gone"}
    dirty = pd.read_parquet(tmp_path / "truth" / "dirty_rows.parquet")
    assert len(dirty) > 0
    orders = _table(tmp_path, "orders")
    broken = orders[orders["order_id"].isin(dirty.loc[dirty.table == "orders", "id"])]
    is_bad = (
        (broken["amount"] <= 0)
        | (broken["discount"] > 1)
        | (broken["status"] == "unknown")
        | broken["customer_id"].isna()
    )
    assert is_bad.all()


@pytest.mark.parametrize("kwargs", [{"n_customers": 0}, {"days": 0}, {"dirty_rate": 0.9}])
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        simulate_shop(tmp_path / "l", tmp_path / "t", **kwargs)


def test_reviews_have_texts_whose_tone_follows_the_latent_state(tmp_path: Path) -> None:
    import numpy as np

    from clm.data.simulate import REVIEW_PHRASES, review_texts

    _run(tmp_path, 5)
    events = _table(tmp_path, "events")
    reviews = events["event_type"] == "review"
    assert reviews.any() and events.loc[reviews, "review_text"].notna().all()
    assert events.loc[~reviews, "review_text"].isna().all()

    # The tone follows the stars and, beyond them, whether the customer is cooling.
    n = 4_000
    texts = review_texts(np.random.default_rng(0), np.full(n, 3), np.repeat([False, True], n // 2))

    def negative(some: np.ndarray) -> float:
        return float(np.mean([t.split(".")[0] + "." in REVIEW_PHRASES["negative"] for t in some]))

    assert negative(texts[n // 2 :]) > negative(texts[: n // 2]) + 0.3
    five = review_texts(np.random.default_rng(1), np.full(n, 5), np.zeros(n, dtype=bool))
    assert negative(five) < 0.05 and len(set(texts)) > 100  # varied, not one line per tone
