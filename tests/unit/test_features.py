import math
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from clm.core.io import write_partition
from clm.data.features import (
    ENGAGEMENT_FEATURES,
    FEATURE_DESCRIPTIONS,
    ORDER_FEATURES,
    SCALE_FREE,
    compute_features,
    training_cutoffs,
)
from clm.data.labels import compute_labels

DS = date(2024, 4, 30)


def _order(oid, cid, day, amount, status="completed", category="home", discount=0.0):
    ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return {
        "order_id": oid,
        "customer_id": cid,
        "order_ts": ts,
        "amount": amount,
        "n_items": 1,
        "category": category,
        "discount": discount,
        "status": status,
    }


@pytest.fixture
def validated(tmp_path):
    rows = [
        _order("o1", "a", date(2024, 1, 10), 10.0),
        _order("o2", "a", date(2024, 3, 10), 20.0, category="toys", discount=0.1),
        _order("o3", "a", date(2024, 4, 20), 30.0),
        _order("o4", "a", date(2024, 4, 25), 99.0, status="returned"),
        _order("o5", "b", date(2024, 4, 29), 5.0),
        _order("o6", "c", date(2024, 4, 1), 7.0, status="cancelled"),
        # after DS: must not be seen by features, must be seen by labels
        _order("o7", "a", date(2024, 5, 15), 40.0),
        _order("o8", "b", date(2024, 8, 15), 50.0),
    ]
    frame = pd.DataFrame(rows)
    frame["d"] = frame["order_ts"].dt.date
    for day, part in frame.groupby("d"):
        write_partition(part.drop(columns="d"), tmp_path, "orders", day)
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "customer_id": ["a", "a", "b", "a"],
            "event_ts": [
                datetime(2024, 4, 28, tzinfo=UTC),
                datetime(2024, 4, 29, tzinfo=UTC),
                datetime(2024, 4, 29, tzinfo=UTC),
                datetime(2024, 5, 2, tzinfo=UTC),
            ],
            "event_type": ["visit", "review", "support_ticket", "visit"],
            "rating": pd.array([None, 2, None, None], dtype="Int64"),
        }
    )
    events["d"] = events["event_ts"].dt.date
    for day, part in events.groupby("d"):
        write_partition(part.drop(columns="d"), tmp_path, "events", day)
    return tmp_path


def test_rfm_windows_and_rates_are_exact(validated) -> None:
    orders, engagement = compute_features(validated, DS)
    assert list(orders["customer_id"]) == ["a", "b"]  # c has no completed order
    a = orders.set_index("customer_id").loc["a"]
    assert a.recency_days == 10 and a.tenure_days == 111
    assert (a.frequency_30d, a.frequency_90d, a.frequency_lifetime) == (1, 2, 3)
    assert a.monetary_lifetime == 60.0 and a.monetary_30d == 30.0
    assert a.return_rate == pytest.approx(0.25) and a.discount_share == pytest.approx(1 / 3)
    assert a.category_breadth == 2 and a.last_gap_days == 41 and a.max_gap_days == 60
    ea = engagement.set_index("customer_id").loc["a"]
    assert ea.visits_30d == 1 and ea.low_ratings_90d == 1 and ea.avg_rating == 2
    assert set(orders.columns) >= set(ORDER_FEATURES) | {"event_timestamp"}
    assert set(engagement.columns) >= set(ENGAGEMENT_FEATURES)


def test_scale_free_features_are_exact(validated) -> None:
    orders, _ = compute_features(validated, DS)
    a, b = (orders.set_index("customer_id").loc[c] for c in ("a", "b"))
    # a: purchase days 01-10, 03-10, 04-20 (gaps 60 and 41), 3 orders, 60 spent; DS 04-30
    assert a.ipt_cv == pytest.approx(math.sqrt(((60 - 50.5) ** 2 + (41 - 50.5) ** 2) / 1) / 50.5)
    assert a.orders_per_30d == pytest.approx(3 * 30 / 111)
    assert a.spend_per_30d == pytest.approx(60 * 30 / 111)
    assert a.recency_over_ipt == pytest.approx(10 / 50.5)
    assert a.recency_share == pytest.approx(10 / 111)
    # b: one order the day before DS; a tenure under 30 days counts as 30
    assert b.orders_per_30d == 1.0 and b.spend_per_30d == 5.0 and b.recency_share == 1.0
    assert math.isnan(b.recency_over_ipt) and math.isnan(b.ipt_cv)
    # a snapshot of the day of a first order: nothing divides by zero
    first = compute_features(validated, date(2024, 1, 10))[0].set_index("customer_id").loc["a"]
    assert (first.recency_share, first.orders_per_30d) == (0.0, 1.0)
    assert set(SCALE_FREE) <= set(FEATURE_DESCRIPTIONS)


def test_btyd_inputs_are_exact(validated) -> None:
    orders, _ = compute_features(validated, DS)
    a, b = (orders.set_index("customer_id").loc[c] for c in ("a", "b"))
    # a: purchase days 01-10 (10), 03-10 (20), 04-20 (30); the returned order is no purchase
    assert (a.repeat_days, a.repeat_spend_mean) == (2.0, 25.0)
    assert (b.repeat_days, b.repeat_spend_mean) == (0.0, 0.0)


def test_a_snapshot_older_than_the_feature_definitions_is_recomputed(validated, tmp_path) -> None:
    from clm.data.features import (
        ORDER_VIEW,
        ensure_snapshots,
        outdated_snapshots,
        read_snapshot,
        snapshot_path,
    )

    features = tmp_path / "features"
    ensure_snapshots(features, validated, [DS])
    current = read_snapshot(features, DS)
    (path,) = snapshot_path(features, ORDER_VIEW, DS).glob("*.parquet")
    pd.read_parquet(path).drop(columns=["ipt_cv", "recency_share"]).to_parquet(path)
    assert outdated_snapshots(features) == [DS]
    assert ensure_snapshots(features, validated, [DS]) == [DS]  # recomputed, not kept
    assert outdated_snapshots(features) == []
    pd.testing.assert_frame_equal(read_snapshot(features, DS), current)


def test_nothing_after_ds_leaks_into_features(validated) -> None:
    before, before_e = compute_features(validated, DS)
    extra = pd.DataFrame([_order("late", "a", date(2024, 5, 1), 1000.0)])
    write_partition(extra, validated, "orders", date(2024, 5, 1))
    after, after_e = compute_features(validated, DS)
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(before_e, after_e)


def test_labels_use_the_future_window_only(validated) -> None:
    labels = compute_labels(validated, DS, 30).set_index("customer_id")
    assert labels.loc["a", "churned"] == 0 and labels.loc["a", "future_spend"] == 40.0
    assert labels.loc["b", "churned"] == 1 and labels.loc["b", "future_spend"] == 0.0
    assert "c" not in labels.index


def test_incomplete_label_window_is_refused(validated) -> None:
    with pytest.raises(ValueError, match="not complete"):
        compute_labels(validated, DS, 180)


def test_no_orders_is_an_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        compute_features(tmp_path, DS)


def test_training_cutoffs_end_at_the_last_complete_window() -> None:
    cutoffs = training_cutoffs(date(2024, 12, 31), 90, 3, 7)
    assert cutoffs == [date(2024, 6, 20), date(2024, 6, 27), date(2024, 7, 4), date(2024, 10, 2)]
    test = cutoffs[-1]
    assert test + timedelta(days=90) == date(2024, 12, 31)  # the test window is complete
    for cutoff in cutoffs[:-1]:  # and no training label window reaches into it
        assert cutoff + timedelta(days=90) <= test


def test_snapshots_have_one_layout_and_are_made_once(validated, tmp_path) -> None:
    from clm.core.io import BatchError
    from clm.data.features import (
        ENGAGEMENT_VIEW,
        ORDER_VIEW,
        ensure_snapshots,
        has_snapshot,
        read_snapshot,
        snapshot_customers,
        snapshot_days,
    )

    features = tmp_path / "features"
    earlier = date(2024, 4, 1)
    assert not has_snapshot(features, DS) and snapshot_days(features) == []
    with pytest.raises(BatchError, match="no feature snapshot for ds=2024-04-30"):
        read_snapshot(features, DS)
    assert ensure_snapshots(features, validated, [DS, earlier]) == [DS, earlier]
    assert ensure_snapshots(features, validated, [DS, earlier]) == []  # nothing missing
    assert snapshot_days(features) == [earlier, DS]
    both = read_snapshot(features, DS)
    assert set(both["customer_id"]) == {"a", "b"}  # c has no completed order
    assert {"event_timestamp", "created_timestamp"}.isdisjoint(both.columns)
    assert snapshot_customers(features, ORDER_VIEW, DS) == len(both) == 2
    assert snapshot_customers(features, ENGAGEMENT_VIEW, date(2024, 1, 1)) == 0


def _reviews(root, rows) -> None:
    """Land review events (customer, day, rating, text) as validated partitions."""
    events = pd.DataFrame(
        [
            {
                "event_id": f"r{i}",
                "customer_id": cid,
                "event_ts": datetime(day.year, day.month, day.day, 9, tzinfo=UTC),
                "event_type": "review",
                "rating": rating,
                "review_text": text,
            }
            for i, (cid, day, rating, text) in enumerate(rows)
        ]
    ).astype({"rating": "Int64"})
    for day, part in events.groupby(events["event_ts"].dt.date):
        write_partition(part, root, "events", day)


def test_review_sentiment_is_vader_over_the_last_90_days(validated, tmp_path_factory) -> None:
    from clm.data import sentiment

    happy, angry, flat = "Love it, works great!", "Terrible. Broke in a day, awful.", "It is a box."
    old = "Absolutely wonderful, the best!"  # 95 days before DS: out of the window
    _reviews(
        validated,
        [
            ("a", DS - timedelta(days=95), 5, old),
            ("a", date(2024, 4, 1), 5, happy),
            ("a", date(2024, 4, 27), 1, angry),
            ("b", date(2024, 4, 27), 3, flat),
            ("b", DS + timedelta(days=1), 1, angry),  # after DS
        ],
    )
    scores = dict(
        zip(
            [happy, angry, flat, old],
            sentiment.compound(pd.Series([happy, angry, flat, old])),
            strict=True,
        )
    )
    assert scores[happy] > 0.5 and scores[angry] < -0.5 and scores[old] > 0.5
    assert -0.05 <= scores[flat] <= 0.05  # neither
    cache = tmp_path_factory.mktemp("sentiment")
    _, engagement = compute_features(validated, DS, cache)
    e = engagement.set_index("customer_id")
    assert e.loc["a", "review_sentiment_90d"] == pytest.approx((scores[happy] + scores[angry]) / 2)
    assert e.loc["a", "negative_review_share_90d"] == 0.5
    assert e.loc["b", "review_sentiment_90d"] == pytest.approx(scores[flat])
    assert e.loc["b", "negative_review_share_90d"] == 0.0
    # the rated review of the fixture has no text: it counts for ratings, not here
    assert engagement.equals(compute_features(validated, DS)[1])  # kept scores = fresh ones
    # each day is scored once; a day whose validated events change is scored again
    days = [date(2024, 4, 1), date(2024, 4, 27)]  # the window's; the older day was never read
    assert sentiment.ensure_scored(validated, cache, days) == []
    _reviews(validated, [("b", date(2024, 4, 27), 1, angry)])  # a re-ingest of that day
    assert sentiment.ensure_scored(validated, cache, days) == [date(2024, 4, 27)]
    _, again = compute_features(validated, DS, cache)
    assert again.set_index("customer_id").loc["b", "negative_review_share_90d"] == 1.0


def test_events_without_review_texts_give_null_sentiment(validated) -> None:
    _, engagement = compute_features(validated, DS)  # the fixture's events have no text column
    assert engagement["review_sentiment_90d"].isna().all()
    assert engagement["negative_review_share_90d"].isna().all()
