"""Prospects: the profile view, the engagement population, conversion labels, and each
channel's conversion record, exact on a hand-made shop."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from clm.core.io import write_partition
from clm.data.acquisition import PRIOR_SIGNUPS, RATES, SHOP, derive, rates_at, signups
from clm.data.features import AS_OF, compute_features, compute_profile, day_number
from clm.data.labels import compute_conversion_labels

DS = date(2024, 4, 30)
H = 30

# customer -> (signup day, channel)
CUSTOMERS = {
    "b1": (date(2024, 1, 5), "email"),  # ordered on the signup day: never a prospect
    "h1": (date(2024, 1, 10), "email"),  # first order 10 days later: converted
    "h2": (date(2024, 1, 15), "email"),  # never ordered
    "h3": (date(2024, 2, 1), "social"),  # first order 44 days later: not within H
    "p1": (date(2024, 4, 20), "email"),  # a prospect at DS who visits
    "p2": (date(2024, 4, 25), "social"),  # a prospect at DS, orders after DS
    "p3": (date(2024, 4, 25), None),  # a prospect at DS, whose only order is cancelled
    "late": (date(2024, 5, 5), "email"),  # signs up after DS
}


def _ts(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _by_day(frame: pd.DataFrame, column: str, root, table: str) -> None:
    days = frame[column].dt.date
    for day, part in frame.groupby(days):
        write_partition(part, root, table, day)


@pytest.fixture
def shop(tmp_path):
    customers = pd.DataFrame(
        {
            "customer_id": list(CUSTOMERS),
            "signup_ts": [_ts(d, 9) for d, _ in CUSTOMERS.values()],
            "country": "NL",
            "acquisition_channel": [c for _, c in CUSTOMERS.values()],
        }
    )
    _by_day(customers, "signup_ts", tmp_path, "customers")
    orders = [
        ("o1", "b1", date(2024, 1, 5), "completed"),
        ("o2", "h1", date(2024, 1, 20), "completed"),
        ("o3", "h3", date(2024, 3, 16), "completed"),
        ("o4", "p2", date(2024, 5, 10), "completed"),
        ("o5", "p3", date(2024, 5, 5), "cancelled"),
        ("o6", "b1", date(2024, 6, 1), "completed"),  # the label window is complete
    ]
    frame = pd.DataFrame(
        {
            "order_id": [o[0] for o in orders],
            "customer_id": [o[1] for o in orders],
            "order_ts": [_ts(o[2]) for o in orders],
            "amount": 10.0,
            "n_items": 1,
            "category": "home",
            "discount": 0.0,
            "status": [o[3] for o in orders],
        }
    )
    _by_day(frame, "order_ts", tmp_path, "orders")
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "customer_id": ["p1", "p1", "h1"],
            "event_ts": [_ts(date(2024, 4, 28)), _ts(date(2024, 4, 29)), _ts(date(2024, 4, 29))],
            "event_type": ["visit", "product_view", "visit"],
            "rating": pd.array([None, None, None], dtype="Int64"),
        }
    )
    _by_day(events, "event_ts", tmp_path, "events")
    return tmp_path


def test_prospects_have_a_profile_and_engagement_but_no_order_row(shop) -> None:
    orders, engagement = compute_features(shop, DS)
    assert list(orders["customer_id"]) == ["b1", "h1", "h3"]
    signed = ["b1", "h1", "h2", "h3", "p1", "p2", "p3"]  # not "late"
    assert list(engagement["customer_id"]) == signed
    p1 = engagement.set_index("customer_id").loc["p1"]
    assert (p1.visits_30d, p1.product_views_30d, p1.days_since_last_visit) == (1, 1, 2)
    profile = compute_profile(shop, DS).set_index("customer_id")
    assert list(profile.index) == signed
    assert profile.loc["p1", "signup_day"] == day_number(date(2024, 4, 20))
    assert profile.loc["p2", "acquisition_channel"] == "social"
    assert pd.isna(profile.loc["p3", "acquisition_channel"])


def test_conversion_labels_are_a_first_completed_order_within_h(shop) -> None:
    labels = compute_conversion_labels(shop, DS, H).set_index("customer_id")["converted"]
    # prospects at DS: signed up by then, no completed order by then
    assert labels.to_dict() == {"h2": 0, "p1": 0, "p2": 1, "p3": 0}  # p3's order was cancelled
    with pytest.raises(ValueError, match="not complete"):
        compute_conversion_labels(shop, date(2024, 5, 10), H)


def test_each_channel_record_is_exact_and_never_looks_past_the_day(shop) -> None:
    table = signups(shop, date(2024, 6, 1))
    rates = rates_at(table, DS, H)
    # windows closed by DS: h1 (converted), h2 (no), h3 (no); b1 bought on the signup day
    shop_rate = 1 / 3
    assert rates[SHOP] == pytest.approx(shop_rate)
    assert rates["email"] == pytest.approx((1 + PRIOR_SIGNUPS * shop_rate) / (2 + PRIOR_SIGNUPS))
    assert rates["social"] == pytest.approx((0 + PRIOR_SIGNUPS * shop_rate) / (1 + PRIOR_SIGNUPS))
    # the same record from the data landed by DS only: nothing after DS moves it
    assert rates_at(signups(shop, DS), DS, H) == rates
    # before any window has closed there is no record
    assert rates_at(table, date(2024, 1, 20), H) == {}


def test_derive_maps_each_channel_and_falls_back_to_the_shop(shop) -> None:
    record = json.dumps({"email": 0.4, SHOP: 0.25})
    frame = pd.DataFrame(
        {
            "signup_day": [day_number(date(2024, 4, 20))] * 4,
            "acquisition_channel": pd.array(["email", "tiktok", None, "email"], dtype="string"),
            AS_OF: [day_number(DS)] * 4,
            RATES: [record, record, record, "{}"],
        },
        index=[7, 7, 3, 1],  # Feast can hand over repeated labels
    )
    out = derive(frame)
    assert list(out["days_since_signup"]) == [10.0] * 4
    rates = list(out["channel_conversion_rate"])
    assert rates[:3] == [0.4, 0.25, 0.25] and math.isnan(rates[3])
