"""Customer features as of ds, computed set-based in DuckDB (DESIGN §5).

"As of ds" means data up to the end of day ds and nothing later. Each snapshot
is stamped ``event_timestamp = ds 00:00 UTC``: a training row for cutoff t has
the same stamp, so Feast's point-in-time join picks the snapshot of t and
never a later one.

Three views, grouped by source:
- ``order_features``: every customer with a completed order on or before ds;
- ``profile_features``: every customer signed up by ds (the ``customers`` table);
- ``engagement_features``: both populations, so a prospect (signed up, no
  order yet) has the visits and views the conversion model reads, and nobody
  leaves the view when they convert.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from clm.core.io import (
    BatchError,
    list_partitions,
    newest_partition,
    partition_dir,
    partition_glob,
    read_partition,
    write_partition,
)
from clm.core.settings import LANDING_TABLES
from clm.data import sentiment

log = logging.getLogger(__name__)

ORDER_VIEW = "order_features"
ENGAGEMENT_VIEW = "engagement_features"
PROFILE_VIEW = "profile_features"

# name -> description; the Feast views are built from these, so they cannot drift.
ORDER_FEATURES: dict[str, str] = {
    "recency_days": "Days since the last completed order.",
    "tenure_days": "Days since the first completed order.",
    "frequency_30d": "Completed orders in the last 30 days.",
    "frequency_90d": "Completed orders in the last 90 days.",
    "frequency_365d": "Completed orders in the last 365 days.",
    "frequency_lifetime": "Completed orders ever.",
    "monetary_30d": "Spend on completed orders in the last 30 days.",
    "monetary_90d": "Spend on completed orders in the last 90 days.",
    "monetary_365d": "Spend on completed orders in the last 365 days.",
    "monetary_lifetime": "Spend on completed orders ever.",
    "avg_order_value": "Mean completed order amount.",
    "ipt_mean_days": "Mean days between consecutive purchase days (null with one).",
    "ipt_std_days": "Std of days between purchase days (null with fewer than three).",
    "max_gap_days": "Longest gap between purchase days.",
    "last_gap_days": "Days between the last two purchase days (null with one).",
    "ipt_cv": "Regularity: std over mean of the days between purchase days (null with fewer "
    "than three).",
    "repeat_days": "Purchase days after the first (BG/NBD's frequency).",
    "repeat_spend_mean": "Mean spend per purchase day after the first (0 with one purchase day; "
    "Gamma-Gamma's monetary value).",
    "trend_ratio_30_90": "Orders in the last 30 days over the monthly rate of the 90 before.",
    "category_breadth": "Distinct categories bought.",
    "discount_share": "Share of completed orders with a discount.",
    "cancel_rate": "Share of all orders cancelled.",
    "return_rate": "Share of all orders returned.",
}
ENGAGEMENT_FEATURES: dict[str, str] = {
    "visits_30d": "Site visits in the last 30 days.",
    "visits_90d": "Site visits in the last 90 days.",
    "product_views_30d": "Product views in the last 30 days.",
    "add_to_cart_30d": "Add-to-cart events in the last 30 days.",
    "visit_trend_30_90": "Visits in the last 30 days over the monthly rate of the 90 before.",
    "days_since_last_visit": "Days since the last visit (null if none).",
    "support_tickets_90d": "Support tickets in the last 90 days.",
    "low_ratings_90d": "Reviews rated 1 or 2 in the last 90 days.",
    "avg_rating": "Mean review rating ever (null if none).",
    "review_sentiment_90d": "Mean VADER compound sentiment (-1 to 1) of the review texts of the "
    "last 90 days (null if none).",
    "negative_review_share_90d": "Share of the review texts of the last 90 days whose VADER "
    "compound sentiment is below -0.05 (null if none).",
}
# What the profile view stores: the signup record. The channel is text, never a
# model input itself: the on-demand view ``acquisition`` turns it into the
# channel's conversion record as of the day asked about (:mod:`clm.data.acquisition`).
PROFILE_FEATURES: dict[str, str] = {
    "signup_day": "Day number (days since 1970-01-01) of the signup.",
    "acquisition_channel": "The channel the customer signed up through (text; null if unknown).",
}
# Derived at read time by the on-demand view ``acquisition`` (the conversion model's).
ACQUISITION_FEATURES: dict[str, str] = {
    "days_since_signup": "Days since the signup.",
    "channel_conversion_rate": "Share of the customer's channel's signups of the year before "
    "(ds - H) who placed a first order within H days of their signup day, shrunk towards the "
    "shop's rate (null before any signup window has closed).",
}
# Scale-free features: lifetime counts and sums grow with the history, so at a
# later cutoff trees meet values they never saw in training; these mean the same
# at any cutoff. They divide by an age, so they change every day a customer does
# nothing: the on-demand view ``time_relative`` derives them at read time, with
# :func:`scale_free` (the snapshot uses the same function).
SCALE_FREE: dict[str, str] = {
    "orders_per_30d": "Completed orders per 30 days since the first order (at least 30 days "
    "counted).",
    "spend_per_30d": "Spend on completed orders per 30 days since the first order (at least "
    "30 days counted).",
    "recency_over_ipt": "Days since the last order over the customer's mean days between "
    "purchase days: above 1, overdue by their own rhythm (null with one purchase day).",
    "recency_share": "Days since the last order over days since the first: 0 bought on the "
    "last day, 1 never came back (0 for a first order that day).",
}
# The classic customer-base models' outputs (:mod:`clm.data.btyd`): the on-demand
# view ``btyd_expectations`` derives them at read time from the order view and the
# population parameters fit as of the day asked about, over the label horizon.
BTYD_FEATURES: dict[str, str] = {
    "btyd_p_alive": "BG/NBD probability that the customer is still active (1 with one "
    "purchase day).",
    "btyd_expected_purchases": "BG/NBD expected purchase days in the label horizon.",
    "gg_expected_order_value": "Gamma-Gamma expected spend per purchase day (the shop's mean "
    "with one purchase day).",
    "btyd_expected_spend": "BG/NBD expected purchase days times Gamma-Gamma spend per day: "
    "expected spend in the label horizon.",
}
FEATURE_DESCRIPTIONS = {
    **ORDER_FEATURES,
    **ENGAGEMENT_FEATURES,
    **SCALE_FREE,
    **BTYD_FEATURES,
    **ACQUISITION_FEATURES,
}
# Where the BG/NBD and Gamma-Gamma parameters fit as of a day are kept, beside the
# snapshots; rewriting a day's snapshot drops its parameters, so they are refit.
BTYD_PARAMS_TABLE = "btyd_params"

# Features that grow by one every day a customer does nothing. The online store
# keeps their anchor day instead, and Feast's on-demand view ``time_relative``
# derives them at read time from the day asked about (``as_of_day``), so a day's
# materialization writes only the customers whose stored values changed.
# feature -> (anchor column, its view, its description)
TIME_RELATIVE: dict[str, tuple[str, str, str]] = {
    "recency_days": (
        "last_order_day",
        ORDER_VIEW,
        "Day number (days since 1970-01-01) of the last completed order.",
    ),
    "tenure_days": ("first_order_day", ORDER_VIEW, "Day number of the first completed order."),
    "days_since_last_visit": (
        "last_visit_day",
        ENGAGEMENT_VIEW,
        "Day number of the last visit (null if none).",
    ),
}
AS_OF = "as_of_day"  # the request field of ``time_relative``: the day number asked about
EPOCH = date(1970, 1, 1)


def day_number(ds: date) -> float:
    """Days since 1970-01-01: how anchors and ``as_of_day`` are stored (Float64 in Feast)."""
    return float((ds - EPOCH).days)


def stored_features(view: str) -> dict[str, str]:
    """The columns of ``view`` that Feast stores (name -> description): anchors, not ages."""
    if view == PROFILE_VIEW:
        return dict(PROFILE_FEATURES)
    features = ORDER_FEATURES if view == ORDER_VIEW else ENGAGEMENT_FEATURES
    stored = {n: d for n, d in features.items() if n not in TIME_RELATIVE}
    stored |= {a: d for a, v, d in TIME_RELATIVE.values() if v == view}
    return stored


def scale_free(frame: pd.DataFrame) -> pd.DataFrame:
    """The :data:`SCALE_FREE` features of each row of ``frame``, which has the ages
    (``recency_days``, ``tenure_days``) and the order view's stored columns."""
    tenure = frame["tenure_days"].astype("float64")
    recency = frame["recency_days"].astype("float64")
    counted = tenure.clip(lower=30.0)
    ipt = frame["ipt_mean_days"].astype("float64")
    return pd.DataFrame(
        {
            "orders_per_30d": frame["frequency_lifetime"] * 30.0 / counted,
            "spend_per_30d": frame["monetary_lifetime"] * 30.0 / counted,
            "recency_over_ipt": recency / ipt.where(ipt > 0),
            "recency_share": (recency / tenure.where(tenure > 0)).mask(tenure == 0, 0.0),
        },
        index=frame.index,
    ).astype("float64")


def on_positions(
    inputs: pd.DataFrame, derive: Callable[[pd.DataFrame], pd.DataFrame]
) -> pd.DataFrame:
    """``derive`` on ``inputs`` by position, the result under the inputs' own index:
    Feast's offline store can hand an on-demand view a frame whose labels repeat."""
    out = derive(inputs.reset_index(drop=True))
    out.index = inputs.index
    return out


def with_ages(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the :data:`TIME_RELATIVE` ages derived from their anchor days and
    :data:`AS_OF` (replacing any already there)."""
    ages = {
        name: (frame[AS_OF] - frame[anchor]).astype("float64")
        for name, (anchor, _, _) in TIME_RELATIVE.items()
        if anchor in frame
    }
    return frame.assign(**ages)


def time_relative_features(inputs: pd.DataFrame) -> pd.DataFrame:
    """What the on-demand view ``time_relative`` returns: the ages and :data:`SCALE_FREE`."""

    def derive(frame: pd.DataFrame) -> pd.DataFrame:
        aged = with_ages(frame)
        return pd.concat([aged[list(TIME_RELATIVE)], scale_free(aged)], axis=1)

    return on_positions(inputs, derive)


def with_anchors(frame: pd.DataFrame, view: str, ds: date) -> pd.DataFrame:
    """Add the anchor day of each time-relative feature of ``view`` as of ``ds``."""
    for name, (anchor, owner, _) in TIME_RELATIVE.items():
        if owner == view:
            frame[anchor] = day_number(ds) - frame[name]
    return frame


@dataclass(frozen=True)
class SnapshotPaths:
    """Files written for one ds."""

    orders: Path
    engagement: Path
    customers: int
    profile: Path | None = None
    signed_up: int = 0  # customers in the profile view: buyers and prospects


def snapshot_timestamp(ds: date) -> datetime:
    """The Feast event timestamp of the snapshot as of ``ds``."""
    return datetime(ds.year, ds.month, ds.day, tzinfo=UTC)


_ORDER_SQL = """
WITH o AS (
    -- DECIMAL sums are exact, so a re-run gives the same bits whatever the thread order.
    SELECT customer_id, order_id, CAST(amount AS DECIMAL(18, 4)) AS amount, category,
           discount, status,
           CAST(order_ts AS DATE) AS d
    FROM read_parquet($orders, hive_partitioning = true)
    WHERE ds <= $ds
),
c AS (SELECT * FROM o WHERE status = 'completed'),
days AS (
    SELECT customer_id, d, spend, d - LAG(d) OVER (PARTITION BY customer_id ORDER BY d) AS gap
    FROM (SELECT customer_id, d, SUM(amount) AS spend FROM c GROUP BY customer_id, d)
),
ipt AS (
    SELECT customer_id, AVG(gap) AS ipt_mean_days,
           COUNT(gap) AS repeat_days,
           COALESCE(AVG(spend) FILTER (WHERE gap IS NOT NULL), 0) AS repeat_spend_mean,
           -- the sample standard deviation from exact integer sums (STDDEV_SAMP's
           -- parallel merge can differ in the last bit between runs)
           CASE WHEN COUNT(gap) > 1 THEN SQRT(GREATEST(
               (COUNT(gap) * SUM(gap * gap) - SUM(gap) * SUM(gap))::DOUBLE
               / (COUNT(gap) * (COUNT(gap) - 1)), 0)) END AS ipt_std_days,
           COALESCE(MAX(gap), 0) AS max_gap_days, ARG_MAX(gap, d) AS last_gap_days
    FROM days GROUP BY customer_id
),
agg AS (
    SELECT customer_id,
        $ds - MAX(d) AS recency_days,
        $ds - MIN(d) AS tenure_days,
        COUNT(*) FILTER (WHERE d > $ds - 30) AS frequency_30d,
        COUNT(*) FILTER (WHERE d > $ds - 90) AS frequency_90d,
        COUNT(*) FILTER (WHERE d > $ds - 365) AS frequency_365d,
        COUNT(*) AS frequency_lifetime,
        COALESCE(SUM(amount) FILTER (WHERE d > $ds - 30), 0) AS monetary_30d,
        COALESCE(SUM(amount) FILTER (WHERE d > $ds - 90), 0) AS monetary_90d,
        COALESCE(SUM(amount) FILTER (WHERE d > $ds - 365), 0) AS monetary_365d,
        SUM(amount) AS monetary_lifetime,
        AVG(amount) AS avg_order_value,
        COUNT(*) FILTER (WHERE d > $ds - 120 AND d <= $ds - 30) AS prev_90d,
        COUNT(DISTINCT category) AS category_breadth,
        AVG(CASE WHEN discount > 0 THEN 1.0 ELSE 0.0 END) AS discount_share
    FROM c GROUP BY customer_id
),
st AS (
    SELECT customer_id,
        AVG(CASE WHEN status = 'cancelled' THEN 1.0 ELSE 0.0 END) AS cancel_rate,
        AVG(CASE WHEN status = 'returned' THEN 1.0 ELSE 0.0 END) AS return_rate
    FROM o GROUP BY customer_id
)
SELECT agg.customer_id,
    CAST(agg.recency_days AS DOUBLE) AS recency_days,
    CAST(agg.tenure_days AS DOUBLE) AS tenure_days,
    CAST(frequency_30d AS DOUBLE) AS frequency_30d,
    CAST(frequency_90d AS DOUBLE) AS frequency_90d,
    CAST(frequency_365d AS DOUBLE) AS frequency_365d,
    CAST(frequency_lifetime AS DOUBLE) AS frequency_lifetime,
    CAST(monetary_30d AS DOUBLE) AS monetary_30d,
    CAST(monetary_90d AS DOUBLE) AS monetary_90d,
    CAST(monetary_365d AS DOUBLE) AS monetary_365d,
    CAST(monetary_lifetime AS DOUBLE) AS monetary_lifetime,
    CAST(avg_order_value AS DOUBLE) AS avg_order_value,
    CAST(ipt_mean_days AS DOUBLE) AS ipt_mean_days,
    CAST(ipt_std_days AS DOUBLE) AS ipt_std_days,
    CAST(max_gap_days AS DOUBLE) AS max_gap_days,
    CAST(last_gap_days AS DOUBLE) AS last_gap_days,
    CASE WHEN ipt_mean_days > 0 THEN ipt_std_days / ipt_mean_days END AS ipt_cv,
    CAST(repeat_days AS DOUBLE) AS repeat_days,
    CAST(repeat_spend_mean AS DOUBLE) AS repeat_spend_mean,
    CASE WHEN prev_90d > 0 THEN frequency_30d / (prev_90d / 3.0) END AS trend_ratio_30_90,
    CAST(category_breadth AS DOUBLE) AS category_breadth,
    CAST(discount_share AS DOUBLE) AS discount_share,
    CAST(st.cancel_rate AS DOUBLE) AS cancel_rate,
    CAST(st.return_rate AS DOUBLE) AS return_rate
FROM agg JOIN ipt USING (customer_id) JOIN st USING (customer_id)
ORDER BY agg.customer_id
"""

_PROFILE_SQL = """
SELECT customer_id,
    CAST(date_diff('day', DATE '1970-01-01', CAST(ARG_MAX(signup_ts, ds) AS DATE)) AS DOUBLE)
        AS signup_day,
    CAST(ARG_MAX(acquisition_channel, ds) AS VARCHAR) AS acquisition_channel
FROM read_parquet($customers, hive_partitioning = true)
WHERE ds <= $ds AND CAST(signup_ts AS DATE) <= $ds
GROUP BY customer_id
ORDER BY customer_id
"""
# A customer row landed again later (a correction) wins over the earlier one.

_ENGAGEMENT_SQL = """
WITH e AS (
    SELECT customer_id, event_type, rating, CAST(event_ts AS DATE) AS d
    -- by name: partitions validated before an optional column (review_text) was added lack it
    FROM read_parquet($events, hive_partitioning = true, union_by_name = true)
    WHERE ds <= $ds
),
agg AS (
    SELECT customer_id,
        COUNT(*) FILTER (WHERE event_type = 'visit' AND d > $ds - 30) AS visits_30d,
        COUNT(*) FILTER (WHERE event_type = 'visit' AND d > $ds - 90) AS visits_90d,
        COUNT(*) FILTER (WHERE event_type = 'visit' AND d > $ds - 120 AND d <= $ds - 30)
            AS visits_prev_90d,
        COUNT(*) FILTER (WHERE event_type = 'product_view' AND d > $ds - 30) AS product_views_30d,
        COUNT(*) FILTER (WHERE event_type = 'add_to_cart' AND d > $ds - 30) AS add_to_cart_30d,
        $ds - MAX(d) FILTER (WHERE event_type = 'visit') AS days_since_last_visit,
        COUNT(*) FILTER (WHERE event_type = 'support_ticket' AND d > $ds - 90)
            AS support_tickets_90d,
        COUNT(*) FILTER (WHERE event_type = 'review' AND rating <= 2 AND d > $ds - 90)
            AS low_ratings_90d,
        AVG(rating) FILTER (WHERE event_type = 'review') AS avg_rating
    FROM e GROUP BY customer_id
),
s AS (
    -- the review texts of the last 90 days, scored once per day (clm.data.sentiment)
    SELECT customer_id, AVG(compound) AS review_sentiment_90d,
        AVG(CASE WHEN compound < $negative THEN 1.0 ELSE 0.0 END) AS negative_review_share_90d
    FROM sentiment GROUP BY customer_id
)
SELECT p.customer_id,
    CAST(COALESCE(visits_30d, 0) AS DOUBLE) AS visits_30d,
    CAST(COALESCE(visits_90d, 0) AS DOUBLE) AS visits_90d,
    CAST(COALESCE(product_views_30d, 0) AS DOUBLE) AS product_views_30d,
    CAST(COALESCE(add_to_cart_30d, 0) AS DOUBLE) AS add_to_cart_30d,
    CASE WHEN visits_prev_90d > 0 THEN visits_30d / (visits_prev_90d / 3.0) END
        AS visit_trend_30_90,
    CAST(days_since_last_visit AS DOUBLE) AS days_since_last_visit,
    CAST(COALESCE(support_tickets_90d, 0) AS DOUBLE) AS support_tickets_90d,
    CAST(COALESCE(low_ratings_90d, 0) AS DOUBLE) AS low_ratings_90d,
    CAST(avg_rating AS DOUBLE) AS avg_rating,
    CAST(review_sentiment_90d AS DOUBLE) AS review_sentiment_90d,
    CAST(negative_review_share_90d AS DOUBLE) AS negative_review_share_90d
FROM population p LEFT JOIN agg USING (customer_id) LEFT JOIN s USING (customer_id)
ORDER BY p.customer_id
"""


def compute_profile(validated_dir: Path, ds: date) -> pd.DataFrame:
    """The profile view's stored columns for every customer signed up by ``ds``."""
    if not list_partitions(validated_dir, "customers"):
        return pd.DataFrame(
            {
                "customer_id": pd.Series(dtype=object),
                "signup_day": pd.Series(dtype="float64"),
                "acquisition_channel": pd.Series(dtype="string"),
            }
        )
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        profile = con.execute(
            _PROFILE_SQL, {"customers": partition_glob(validated_dir, "customers"), "ds": ds}
        ).df()
    # the same Parquet type (string) whether or not any channel is known
    return profile.astype({"acquisition_channel": "string"})


def compute_features(
    validated_dir: Path,
    ds: date,
    sentiment_dir: Path | None = None,
    profile: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute the order view for every customer with a completed order by ``ds``, and
    the engagement view for them and every other customer signed up by then.

    Review texts are scored by :mod:`clm.data.sentiment`, each day once when
    ``sentiment_dir`` keeps the scores (the features directory does). ``profile``:
    :func:`compute_profile` of the same day, when the caller has it already.

    Returns:
        ``(order_features, engagement_features)``, one row per customer each,
        with ``customer_id`` and ``event_timestamp``.

    Raises:
        FileNotFoundError: if no validated orders exist on or before ``ds``.
    """
    order_days = list_partitions(validated_dir, "orders")
    if not order_days or order_days[0] > ds:
        raise FileNotFoundError(f"no validated orders on or before {ds} under {validated_dir}")
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # task logs, not a terminal
    try:
        orders = con.execute(
            _ORDER_SQL, {"orders": partition_glob(validated_dir, "orders"), "ds": ds}
        ).df()
        if profile is None:
            profile = compute_profile(validated_dir, ds)
        signed_up = profile["customer_id"]
        population = pd.DataFrame(
            {"customer_id": sorted(set(orders["customer_id"]) | set(signed_up))}
        )
        con.register("population", population)
        if list_partitions(validated_dir, "events"):
            con.register("sentiment", sentiment.window(validated_dir, sentiment_dir, ds))
            engagement = con.execute(
                _ENGAGEMENT_SQL,
                {
                    "events": partition_glob(validated_dir, "events"),
                    "ds": ds,
                    "negative": sentiment.NEGATIVE_BELOW,
                },
            ).df()
        else:
            engagement = population.assign(**{name: float("nan") for name in ENGAGEMENT_FEATURES})
    finally:
        con.close()
    orders = orders.join(scale_free(orders))
    with_anchors(orders, ORDER_VIEW, ds)
    with_anchors(engagement, ENGAGEMENT_VIEW, ds)
    stamp = pd.Timestamp(snapshot_timestamp(ds))
    for frame in (orders, engagement):
        frame["event_timestamp"] = stamp
        frame["created_timestamp"] = stamp
    return orders, engagement


def write_snapshot(features_dir: Path, validated_dir: Path, ds: date) -> SnapshotPaths:
    """Compute and write the ds snapshot of both views (replacing that partition).

    Raises:
        BatchError: if ds is past the validated data; a snapshot of a day
            that has not landed would describe every customer as lapsed.
    """
    newest = newest_partition(validated_dir, LANDING_TABLES)
    if newest is None or ds > newest:
        raise BatchError(
            f"no feature snapshot for ds={ds}: the validated data ends at {newest}; "
            "ingest that day first"
        )
    profile = compute_profile(validated_dir, ds)
    orders, engagement = compute_features(validated_dir, ds, features_dir, profile)
    profile = profile.copy()
    stamp = pd.Timestamp(snapshot_timestamp(ds))
    profile["event_timestamp"] = stamp
    profile["created_timestamp"] = stamp
    order_path = write_partition(orders, features_dir, ORDER_VIEW, ds)
    engagement_path = write_partition(engagement, features_dir, ENGAGEMENT_VIEW, ds)
    profile_path = write_partition(profile, features_dir, PROFILE_VIEW, ds)
    params = partition_dir(features_dir, BTYD_PARAMS_TABLE, ds)
    if params.exists():
        shutil.rmtree(params)  # fit on the rows just replaced
    log.info(
        "features as of %s: %d customers with an order, %d signed up, %d features",
        ds,
        len(orders),
        len(profile),
        len(FEATURE_DESCRIPTIONS),
    )
    return SnapshotPaths(order_path, engagement_path, len(orders), profile_path, len(profile))


VIEWS = (ORDER_VIEW, ENGAGEMENT_VIEW, PROFILE_VIEW)


def snapshot_path(features_dir: Path, view: str, ds: date) -> Path:
    """Where one view's snapshot of ``ds`` lives (the Feast file source's partition)."""
    return partition_dir(features_dir, view, ds)


def snapshot_days(features_dir: Path) -> list[date]:
    """Every day with a feature snapshot, oldest first."""
    return list_partitions(features_dir, ORDER_VIEW)


def has_snapshot(features_dir: Path, ds: date) -> bool:
    """Whether the snapshot of ``ds`` has been written."""
    return snapshot_path(features_dir, ORDER_VIEW, ds).exists()


def snapshot_customers(features_dir: Path, view: str, ds: date) -> int:
    """Rows of one view's snapshot of ``ds`` (0 when there is none)."""
    path = snapshot_path(features_dir, view, ds)
    return len(pd.read_parquet(path, columns=["customer_id"])) if path.exists() else 0


def read_snapshot(features_dir: Path, ds: date) -> pd.DataFrame:
    """Both views as of ``ds``, one row per customer, without Feast's timestamps.

    Raises:
        BatchError: if the snapshot for ds has not been computed.
    """
    if not has_snapshot(features_dir, ds):
        raise BatchError(f"no feature snapshot for ds={ds}; run clm_features for that day first")
    orders = read_partition(features_dir, ORDER_VIEW, ds)
    engagement = read_partition(features_dir, ENGAGEMENT_VIEW, ds)
    drop = ["event_timestamp", "created_timestamp"]
    drop += [a for a, _, _ in TIME_RELATIVE.values()]  # the online store's, not a model's
    return orders.drop(columns=drop, errors="ignore").merge(
        engagement.drop(columns=drop, errors="ignore"),
        on="customer_id",
        how="left",
        validate="one_to_one",
    )


def read_prospects(features_dir: Path, ds: date) -> pd.DataFrame:
    """The prospects as of ``ds`` (in the profile view, not in the order view): their
    signup record and engagement columns, one row each, in customer order; empty for a
    snapshot written before the profile view existed.

    Raises:
        BatchError: if the snapshot for ds has not been computed.
    """
    if not has_snapshot(features_dir, ds):
        raise BatchError(f"no feature snapshot for ds={ds}; run clm_features for that day first")
    columns = ["customer_id", *PROFILE_FEATURES]
    if not snapshot_path(features_dir, PROFILE_VIEW, ds).exists():
        return pd.DataFrame(columns=columns)
    profile = read_partition(features_dir, PROFILE_VIEW, ds)[columns]
    buyers = read_partition(features_dir, ORDER_VIEW, ds)["customer_id"]
    engagement = read_partition(features_dir, ENGAGEMENT_VIEW, ds).drop(
        columns=["event_timestamp", "created_timestamp"], errors="ignore"
    )
    engagement = engagement.drop(columns=[a for a, _, _ in TIME_RELATIVE.values()], errors="ignore")
    prospects = profile[~profile["customer_id"].isin(buyers)]
    return prospects.merge(
        engagement, on="customer_id", how="left", validate="one_to_one"
    ).sort_values("customer_id", ignore_index=True)


def snapshot_columns(view: str) -> set[str]:
    """The columns a current snapshot of ``view`` has (what the Feast views and scoring read)."""
    if view == PROFILE_VIEW:
        return set(PROFILE_FEATURES)
    extra = set(SCALE_FREE) if view == ORDER_VIEW else set()
    features = ORDER_FEATURES if view == ORDER_VIEW else ENGAGEMENT_FEATURES
    return set(stored_features(view)) | set(features) | extra


def outdated_snapshots(features_dir: Path) -> list[date]:
    """Days whose snapshot lacks a column the current feature definitions have.

    Feast reads every partition of a view's source, so one snapshot written
    before a feature was added breaks every join; the rows are recomputed from
    the validated data, as of their day, by :func:`refresh_outdated`.
    """
    import pyarrow.parquet as pq

    out = []
    for day in snapshot_days(features_dir):
        for view in VIEWS:
            files = sorted(snapshot_path(features_dir, view, day).glob("*.parquet"))
            if not files or not snapshot_columns(view) <= set(pq.read_schema(files[0]).names):
                out.append(day)
                break
    return out


def refresh_outdated(features_dir: Path, validated_dir: Path) -> list[date]:
    """Recompute every snapshot written before the current feature definitions."""
    days = outdated_snapshots(features_dir)
    if days:
        log.warning(
            "%d feature snapshots (%s .. %s) predate the current feature definitions: "
            "recomputing them from the validated data",
            len(days),
            days[0],
            days[-1],
        )
    for day in days:
        write_snapshot(features_dir, validated_dir, day)
    return days


def ensure_snapshots(features_dir: Path, validated_dir: Path, days: list[date]) -> list[date]:
    """Compute the snapshots that are missing for ``days``, and any written before the
    current feature definitions; return the days computed."""
    made = refresh_outdated(features_dir, validated_dir)
    for day in days:
        if not has_snapshot(features_dir, day):
            write_snapshot(features_dir, validated_dir, day)
            made.append(day)
    return made


def training_cutoffs(ds: date, horizon_days: int, n_train: int, spacing_days: int) -> list[date]:
    """Cutoffs a training run at ``ds`` needs, oldest first; the last is the test cutoff.

    The test cutoff is the latest whose label window (t, t+H] is complete by ds.
    The ``n_train`` training cutoffs are ``spacing_days`` apart, the latest the
    last whose label window closes by the test cutoff: no training label looks
    into the test window, so the test metrics are out of time.
    """
    test = ds - timedelta(days=horizon_days)
    last = test - timedelta(days=horizon_days)
    return [last - timedelta(days=spacing_days * k) for k in range(n_train - 1, -1, -1)] + [test]
