"""Feast, for real: point-in-time correctness, offline = online, safe re-runs and backfills.

A 200-customer shop is ingested; feature snapshots are written for a few days
and the repo in feature_repo/ is applied to a registry under the test's
CLM_HOME. Every check goes through Feast's own APIs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clm.core.io import read_partition, write_partition
from clm.core.settings import PROJECT_ROOT, Settings
from clm.data.btyd import HORIZON, params_at
from clm.data.feature_store import (
    apply_repo,
    forget_online_state,
    get_store,
    historical_features,
    materialize_day,
    materialize_range,
    online_features,
)
from clm.data.features import (
    ACQUISITION_FEATURES,
    AS_OF,
    FEATURE_DESCRIPTIONS,
    day_number,
    read_snapshot,
    snapshot_timestamp,
    write_snapshot,
)
from clm.data.ingest import ingest
from clm.ml.scoring import load_snapshot

CUTOFF = date(2024, 2, 1)
DAYS = [CUTOFF + timedelta(days=i) for i in range(4)]
FEATURES = [f for f in FEATURE_DESCRIPTIONS if f not in ACQUISITION_FEATURES]  # churn_v1


@pytest.fixture
def store(small_shop: Settings) -> Settings:
    ingest(small_shop, date(2024, 2, 9))
    for day in DAYS:
        write_snapshot(small_shop.features_dir, small_shop.validated_dir, day)
    apply_repo(small_shop)
    return small_shop


def _entities(settings: Settings, day: date, hours: int = 0) -> pd.DataFrame:
    ids = read_partition(settings.features_dir, "order_features", day)["customer_id"]
    stamp = pd.Timestamp(snapshot_timestamp(day)) + pd.Timedelta(hours=hours)
    return pd.DataFrame({"customer_id": ids.to_numpy(), "event_timestamp": stamp})


def _training_rows(settings: Settings) -> pd.DataFrame:
    entities = pd.concat([_entities(settings, CUTOFF), _entities(settings, CUTOFF, hours=12)])
    frame = historical_features(settings, entities, "churn_v1")
    return frame.sort_values(["customer_id", "event_timestamp"], ignore_index=True)[
        ["customer_id", "event_timestamp", *FEATURES]
    ]


def _online(settings: Settings, ids: list[str], day: date = DAYS[-1]) -> pd.DataFrame:
    """Every feature of ``ids`` as of ``day``, read from the online store through Feast."""
    feature_store = get_store(settings)
    request = {**params_at(settings.features_dir, day), HORIZON: float(settings.horizon_days)}
    response = feature_store.get_online_features(
        features=feature_store.get_feature_service("churn_v1"),
        entity_rows=[{"customer_id": i, AS_OF: day_number(day), **request} for i in ids],
    )
    return pd.DataFrame(response.to_dict())[["customer_id", *FEATURES]]


def _plant_after(settings: Settings, day: date) -> None:
    """Big orders and many events for every customer, on ``day`` (after the cutoff)."""
    customers = read_partition(settings.features_dir, "order_features", CUTOFF)["customer_id"]
    ts = pd.Timestamp(datetime(day.year, day.month, day.day, 0, 0, 1), tz="UTC")
    orders = read_partition(settings.validated_dir, "orders", day)
    planted = pd.DataFrame(
        {
            "order_id": [f"planted-{day}-{c}" for c in customers],
            "customer_id": customers.to_numpy(),
            "order_ts": ts,
            "amount": 9_999.0,
            "n_items": 7,
            "category": "planted",
            "discount": 0.5,
            "status": "completed",
        }
    ).astype(orders.dtypes.to_dict())
    write_partition(pd.concat([orders, planted]), settings.validated_dir, "orders", day)
    events = read_partition(settings.validated_dir, "events", day)
    planted_events = pd.DataFrame(
        {
            "event_id": [f"planted-{day}-{c}" for c in customers],
            "customer_id": customers.to_numpy(),
            "event_ts": ts,
            "event_type": "support_ticket",
            "rating": pd.NA,
            "review_text": None,
        }
    ).astype(events.dtypes.to_dict())
    write_partition(pd.concat([events, planted_events]), settings.validated_dir, "events", day)


def test_nothing_after_the_cutoff_moves_a_training_row(store: Settings) -> None:
    before = _training_rows(store)
    assert len(before) == 2 * len(_entities(store, CUTOFF)) and before[FEATURES].notna().any().all()
    later_before = read_partition(store.features_dir, "order_features", DAYS[1])
    for day in DAYS[1:]:
        _plant_after(store, day)
    for day in DAYS:  # recompute every snapshot, the cutoff's included
        write_snapshot(store.features_dir, store.validated_dir, day)
    later_after = read_partition(store.features_dir, "order_features", DAYS[1])
    moved = later_before.merge(later_after, on="customer_id", suffixes=("_before", "_after"))
    planted = moved["customer_id"].isin(before["customer_id"])
    assert planted.sum() == len(before) // 2  # every customer of the cutoff got planted orders
    assert (moved["monetary_lifetime_after"] > moved["monetary_lifetime_before"])[planted].all()
    pd.testing.assert_frame_equal(before, _training_rows(store))


def test_offline_equals_online_for_the_same_customer_and_day(store: Settings) -> None:
    day = DAYS[-1]
    materialize_day(store, day)
    offline = historical_features(store, _entities(store, day), "churn_v1")
    offline = offline.sort_values("customer_id", ignore_index=True)[["customer_id", *FEATURES]]
    online = _online(store, list(offline["customer_id"]))
    online = online.sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(offline, online, check_dtype=False)
    # Scoring reads the snapshot itself: the same values, the derived ones included.
    snapshot = load_snapshot(store, day).sort_values("customer_id", ignore_index=True)
    pd.testing.assert_frame_equal(snapshot[["customer_id", *FEATURES]], online, check_dtype=False)
    # re-running an older day never rolls the online store back
    materialize_day(store, DAYS[1])
    pd.testing.assert_frame_equal(online, _online(store, list(offline["customer_id"])))


def test_a_prospect_reads_the_same_conversion_features_offline_online_and_when_scored(
    store: Settings,
) -> None:
    """conversion_v1 for the prospects of a day: Feast's point-in-time join, its online
    lookup, and the snapshot scoring reads agree, the on-demand channel record included."""
    from clm.core.settings import get_settings
    from clm.data.feature_store import feature_names
    from clm.ml.scoring import load_prospects

    settings = get_settings(home=store.home, horizon_days=14)  # signup windows have closed
    day = DAYS[-1]
    materialize_day(settings, day)
    scored = load_prospects(settings, day)
    names = feature_names(settings, "conversion_v1")
    assert {"days_since_signup", "channel_conversion_rate", "visits_30d"} <= set(names)
    assert len(scored) >= 5 and scored["channel_conversion_rate"].notna().all()
    assert scored["channel_conversion_rate"].nunique() > 1  # one record per channel
    ids = list(scored["customer_id"])
    stamp = pd.Timestamp(snapshot_timestamp(day))
    offline = historical_features(
        settings, pd.DataFrame({"customer_id": ids, "event_timestamp": stamp}), "conversion_v1"
    ).sort_values("customer_id", ignore_index=True)[["customer_id", *names]]
    store_ = get_store(settings)
    online = pd.DataFrame(
        [
            {"customer_id": i, **online_features(settings, i, "conversion_v1", store=store_)}
            for i in ids
        ]
    )[["customer_id", *names]]
    pd.testing.assert_frame_equal(offline, online, check_dtype=False)
    pd.testing.assert_frame_equal(scored[["customer_id", *names]], online, check_dtype=False)


def test_feast_apply_between_runs_cannot_make_materialization_skip_a_day(store: Settings) -> None:
    for later in DAYS[2:]:  # as in a daily run: D1 is the newest snapshot when it runs
        shutil.rmtree(store.features_dir / "order_features" / f"ds={later}")
        shutil.rmtree(store.features_dir / "engagement_features" / f"ds={later}")
        shutil.rmtree(store.features_dir / "profile_features" / f"ds={later}")
    materialize_day(store, DAYS[0])
    # What Feast issue 2905 reports: a re-apply resets the incremental watermark.
    apply_repo(store, force=True)
    materialize_day(store, DAYS[1])  # an explicit interval, never the watermark
    ids = list(read_partition(store.features_dir, "order_features", DAYS[1])["customer_id"])
    expected = read_partition(store.features_dir, "order_features", DAYS[1]).sort_values(
        "customer_id", ignore_index=True
    )
    online = _online(store, ids, DAYS[1]).sort_values("customer_id", ignore_index=True)
    assert np.allclose(online["recency_days"], expected["recency_days"])
    # and nothing in the pipeline relies on the watermark
    for path in [*(PROJECT_ROOT / "clm").glob("*.py"), *(PROJECT_ROOT / "dags").glob("*.py")]:
        assert "materialize_incremental" not in path.read_text(), path


def test_rerun_and_backfill_give_the_same_online_values_as_day_by_day(store: Settings) -> None:
    for day in DAYS:
        materialize_day(store, day)
    ids = sorted(
        set().union(
            *(read_partition(store.features_dir, "order_features", d)["customer_id"] for d in DAYS)
        )
    )
    day_by_day = _online(store, ids)
    materialize_day(store, DAYS[-1])  # a re-run of the last day
    pd.testing.assert_frame_equal(day_by_day, _online(store, ids))
    shutil.rmtree(store.feast_dir)  # a fresh registry and online store
    apply_repo(store, force=True)
    assert _online(store, ids)[FEATURES].isna().all().all()
    materialize_range(store, DAYS[0], DAYS[-1])  # one backfill call
    pd.testing.assert_frame_equal(day_by_day, _online(store, ids))


def _feast_plan(repo: Path, settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        "CLM_FEAST_DIR": str(settings.feast_dir),
        "CLM_FEATURES_DIR": str(settings.features_dir),
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(settings.home),
    }
    feast = str(Path(sys.executable).parent / "feast")
    return subprocess.run(
        [feast, "-c", str(repo), "-f", str(repo / "feature_store.yaml"), "plan"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_feast_plan_accepts_the_repo_and_refuses_a_broken_definition(
    settings: Settings, tmp_path: Path
) -> None:
    repo = tmp_path / "feature_repo"
    shutil.copytree(PROJECT_ROOT / "feature_repo", repo)
    (settings.features_dir / "order_features").mkdir(parents=True)
    (settings.features_dir / "engagement_features").mkdir(parents=True)
    ok = _feast_plan(repo, settings)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert "order_features" in ok.stdout and "churn_v1" in ok.stdout
    # a second view under a name that is already taken
    (repo / "broken.py").write_text(
        "from feature_views import order_features\n"
        "from feast import FeatureView\n"
        "clash = FeatureView(name='order_features', entities=order_features.entities,\n"
        "    ttl=order_features.ttl, schema=order_features.schema[:1],\n"
        "    source=order_features.batch_source)\n"
    )
    broken = _feast_plan(repo, settings)
    assert broken.returncode != 0
    assert "order_features" in broken.stdout + broken.stderr


def test_a_copy_of_a_home_never_touches_the_original(store: Settings, tmp_path: Path) -> None:
    from clm.core.settings import get_settings

    materialize_day(store, DAYS[-1])
    ids = _entities(store, DAYS[-1])["customer_id"].head(20).tolist()
    before = _online(store, ids)
    assert before.drop(columns="customer_id").notna().any().any()
    backup = get_settings(home=tmp_path / "backup")
    shutil.copytree(store.home, backup.home)  # a backup or staging copy of the home
    assert apply_repo(backup, force=True)  # `feast apply` in the copy
    materialize_day(backup, DAYS[-1])
    pd.testing.assert_frame_equal(_online(store, ids), before)  # the original's store survives
    pd.testing.assert_frame_equal(_online(backup, ids), before)  # the copy serves its own


def test_a_day_writes_only_the_changed_customers_and_equals_a_full_materialization(
    store: Settings, tmp_path: Path
) -> None:
    """Day by day, only changed rows are written; the online values (ages derived at read
    time) equal a full materialization of the same day into a fresh online store."""
    from clm.core.settings import get_settings

    for later in DAYS[1:]:  # as in daily runs: each day's snapshot is the newest when it runs
        shutil.rmtree(store.features_dir / "order_features" / f"ds={later}")
        shutil.rmtree(store.features_dir / "engagement_features" / f"ds={later}")
        shutil.rmtree(store.features_dir / "profile_features" / f"ds={later}")
    written = []
    for day in DAYS:
        write_snapshot(store.features_dir, store.validated_dir, day)
        written.append(materialize_day(store, day))
    ids = sorted(read_partition(store.features_dir, "order_features", DAYS[-1])["customer_id"])
    for before, after in zip(DAYS, DAYS[1:], strict=False):
        customers = len(read_partition(store.features_dir, "order_features", after))
        assert 0 < written[DAYS.index(after)]["order_features"] < customers, (before, written)
    incremental = _online(store, ids)

    full = get_settings(home=tmp_path / "full")
    shutil.copytree(store.home, full.home)
    shutil.rmtree(full.feast_dir)  # a fresh registry and online store
    apply_repo(full, force=True)
    forget_online_state(full)
    counts = materialize_range(full, DAYS[-1], DAYS[-1])
    assert counts["order_features"] == len(ids)
    pd.testing.assert_frame_equal(incremental, _online(full, ids))

    # The ages are the snapshot's, derived from the anchor days at read time.
    snapshot = read_snapshot(store.features_dir, DAYS[-1]).set_index("customer_id").loc[ids]
    for name in ("recency_days", "tenure_days", "days_since_last_visit"):
        assert np.allclose(
            incremental.set_index("customer_id")[name], snapshot[name], equal_nan=True
        ), name
    # A lookup defaults to the day the online store holds.
    one = online_features(store, ids[0], "churn_v1")
    assert one["recency_days"] == snapshot.loc[ids[0], "recency_days"]
    # Re-running the day, or rewriting the same snapshot, writes nothing.
    nothing = {"order_features": 0, "engagement_features": 0, "profile_features": 0}
    assert materialize_day(store, DAYS[-1]) == nothing
    write_snapshot(store.features_dir, store.validated_dir, DAYS[-1])
    assert materialize_day(store, DAYS[-1]) == nothing
    # A snapshot whose content changed since it went online is written in full.
    corrected = read_partition(store.features_dir, "order_features", DAYS[-1])
    corrected.loc[0, "monetary_lifetime"] += 1.0
    write_partition(corrected, store.features_dir, "order_features", DAYS[-1])
    assert materialize_day(store, DAYS[-1])["order_features"] == len(ids)
    online = _online(store, ids).set_index("customer_id")
    assert (
        online.loc[corrected.loc[0, "customer_id"], "monetary_lifetime"]
        == (corrected.loc[0, "monetary_lifetime"])
    )


def test_time_relative_is_positional_whatever_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """Feast's offline store can hand the on-demand view a frame whose index labels repeat;
    the derived rows must still be one per input row, in order."""
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "feature_repo"))
    from feature_views import time_relative

    inputs = pd.DataFrame(
        {
            AS_OF: [100.0, 100.0, 100.0],
            "last_order_day": [90.0, 95.0, 100.0],
            "first_order_day": [0.0, 95.0, 100.0],
            "last_visit_day": [np.nan, 99.0, 98.0],
            "frequency_lifetime": [3.0, 1.0, 1.0],
            "monetary_lifetime": [60.0, 5.0, 5.0],
            "ipt_mean_days": [50.0, np.nan, np.nan],
        },
        index=[7, 7, 3],
    )
    out = time_relative.udf(inputs)
    assert list(out.index) == [7, 7, 3]
    assert list(out["recency_days"]) == [10.0, 5.0, 0.0]
    assert list(out["tenure_days"]) == [100.0, 5.0, 0.0]
    assert out["recency_over_ipt"].iloc[0] == pytest.approx(0.2)
    assert list(out["recency_share"]) == [0.1, 1.0, 0.0]
    assert list(out["orders_per_30d"]) == [0.9, 1.0, 1.0]


def test_btyd_expectations_are_positional_whatever_the_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "feature_repo"))
    from feature_views import btyd_expectations

    from clm.data.btyd import PARAMS, expectations

    inputs = pd.DataFrame(
        {
            AS_OF: [100.0, 100.0, 100.0],
            "last_order_day": [90.0, 95.0, 100.0],
            "first_order_day": [0.0, 95.0, 40.0],
            "repeat_days": [4.0, 0.0, 1.0],
            "repeat_spend_mean": [20.0, 0.0, 8.0],
            **{name: [0.8, 30.0, 0.7, 2.5, 6.0, 4.0, 15.0][i] for i, name in enumerate(PARAMS)},
            HORIZON: 30.0,
        },
        index=[7, 7, 3],
    )
    out = btyd_expectations.udf(inputs)
    assert list(out.index) == [7, 7, 3]
    ages = inputs.reset_index(drop=True).assign(
        recency_days=[10.0, 5.0, 0.0], tenure_days=[100.0, 5.0, 60.0]
    )
    expected = expectations(ages)
    np.testing.assert_allclose(out.to_numpy(), expected.to_numpy())
    assert out["btyd_p_alive"].iloc[1] == 1.0 and out["btyd_p_alive"].iloc[0] < 1.0
