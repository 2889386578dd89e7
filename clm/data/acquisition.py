"""Acquisition features: a prospect's age and their channel's conversion record.

A prospect at day t signed up on or before t and has no completed order on or
before t (:func:`clm.data.labels.compute_conversion_labels` labels them). The
conversion model reads their visits and views (the engagement view), how long
ago they signed up, and how well their acquisition channel has converted:

    the channel's record as of t = among the channel's customers who signed up
    in the 365 days up to t - H and placed no order on their signup day, the
    share whose first completed order came within H days of the signup day,
    shrunk towards the shop's rate by :data:`PRIOR_SIGNUPS` pseudo-signups.

Every such window has closed by t, so the record never looks past t. It
changes every day for every prospect of the channel, so it is never stored:
the on-demand view ``acquisition`` derives it at read time from the stored
channel and the day's record, passed as request data (``channel_rates``, a
JSON object channel -> rate), as the BG/NBD parameters are. A training row
carries the record of its own cutoff.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from clm.core.io import list_partitions, partition_glob
from clm.data.features import AS_OF, EPOCH, on_positions

log = logging.getLogger(__name__)

RATES = "channel_rates"  # request field: the day's record, JSON {channel: rate, "*": shop}
SHOP = "*"  # the key of the shop's own rate: a customer without a known channel gets it
LOOKBACK_DAYS = 365
PRIOR_SIGNUPS = 20.0

_SIGNUPS_SQL = """
WITH c AS (
    SELECT customer_id,
        CAST(ARG_MAX(signup_ts, ds) AS DATE) AS signup_d,
        CAST(ARG_MAX(acquisition_channel, ds) AS VARCHAR) AS channel,
        MIN(ds) AS landed
    FROM read_parquet($customers, hive_partitioning = true)
    WHERE ds <= $last
    GROUP BY customer_id
),
o AS (
    SELECT customer_id, MIN(CAST(order_ts AS DATE)) AS first_order_d
    FROM read_parquet($orders, hive_partitioning = true)
    WHERE status = 'completed' AND ds <= $last
    GROUP BY customer_id
)
SELECT c.customer_id, c.signup_d, c.channel, c.landed, o.first_order_d
FROM c LEFT JOIN o USING (customer_id)
ORDER BY c.customer_id
"""


def signups(validated_dir: Path, last: date) -> pd.DataFrame:
    """Every customer landed by ``last``: signup day, channel, landing day and the day of
    their first completed order (NaT without one)."""
    if not list_partitions(validated_dir, "customers") or not list_partitions(
        validated_dir, "orders"
    ):
        return pd.DataFrame(
            columns=["customer_id", "signup_d", "channel", "landed", "first_order_d"]
        )
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        return con.execute(
            _SIGNUPS_SQL,
            {
                "customers": partition_glob(validated_dir, "customers"),
                "orders": partition_glob(validated_dir, "orders"),
                "last": last,
            },
        ).df()


def rates_at(table: pd.DataFrame, day: date, horizon_days: int) -> dict[str, float]:
    """Each channel's conversion record as of ``day`` from :func:`signups` (with
    :data:`SHOP`), or ``{}`` when no signup window has closed by then."""
    closed = pd.Timestamp(day - timedelta(days=horizon_days))
    signed = pd.to_datetime(table["signup_d"])
    first = pd.to_datetime(table["first_order_d"])
    landed = pd.to_datetime(table["landed"])
    window = (
        (signed <= closed)
        & (signed > closed - pd.Timedelta(days=LOOKBACK_DAYS))
        & (landed <= pd.Timestamp(day))
        & ~(first <= signed).fillna(False)  # a prospect at the end of their signup day
    )
    rows = table.loc[window]
    if rows.empty:
        return {}
    converted = (first[window] <= signed[window] + pd.Timedelta(days=horizon_days)).fillna(False)
    shop = float(converted.mean())
    by = converted.groupby(rows["channel"].fillna(SHOP)).agg(["sum", "count"])
    out = {
        str(channel): float((row["sum"] + PRIOR_SIGNUPS * shop) / (row["count"] + PRIOR_SIGNUPS))
        for channel, row in by.iterrows()
        if channel != SHOP
    }
    out[SHOP] = shop
    return dict(sorted(out.items()))


def channel_rates(validated_dir: Path, days: list[date], horizon_days: int) -> dict[date, str]:
    """The record of each of ``days``, as the JSON the request field carries."""
    if not days:
        return {}
    table = signups(validated_dir, max(days))
    return {d: json.dumps(rates_at(table, d, horizon_days)) for d in sorted(set(days))}


def request_columns(validated_dir: Path, days: pd.Series, horizon_days: int) -> pd.DataFrame:
    """The request data of ``acquisition`` for rows as of ``days``: each row gets the
    record of its own day."""
    keys = pd.to_datetime(days).dt.date
    record = channel_rates(validated_dir, sorted(set(keys)), horizon_days)
    return pd.DataFrame({RATES: [record[d] for d in keys]}, index=days.index)


def _parse(record: object) -> dict[str, float]:
    """A record as the request field carries it; anything else (Feast's schema
    inference feeds placeholder text) is no record."""
    try:
        rates = json.loads(str(record))
    except ValueError:
        return {}
    return rates if isinstance(rates, dict) else {}


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """``days_since_signup`` and ``channel_conversion_rate`` of each row of ``frame``,
    which has ``signup_day``, ``acquisition_channel``, :data:`AS_OF` and :data:`RATES`."""
    rate = np.full(len(frame), np.nan)
    channel = frame["acquisition_channel"].astype("object")
    for record, rows in frame.groupby(RATES, sort=False).indices.items():
        rates = _parse(record)
        if not rates:
            continue
        shop = rates.get(SHOP, np.nan)
        rate[rows] = [
            rates.get(c, shop) if isinstance(c, str) else shop for c in channel.iloc[rows]
        ]
    signup = frame["signup_day"].astype("float64")
    rate[signup.isna().to_numpy()] = np.nan  # not in the profile view: no channel to rate
    return pd.DataFrame(
        {
            "days_since_signup": (frame[AS_OF] - signup).astype("float64"),
            "channel_conversion_rate": rate,
        },
        index=frame.index,
    )


def on_demand(inputs: pd.DataFrame) -> pd.DataFrame:
    """What the on-demand view ``acquisition`` returns: :func:`derive` by position."""
    return on_positions(inputs, derive)


def with_acquisition(
    frame: pd.DataFrame, validated_dir: Path, ds: date, horizon_days: int
) -> pd.DataFrame:
    """``frame`` (profile columns as of ``ds``) with the acquisition features as of ``ds``:
    what Feast's ``acquisition`` gives for the same customers and day."""
    record = channel_rates(validated_dir, [ds], horizon_days)[ds]
    as_of = float((ds - EPOCH).days)
    request = frame.assign(**{AS_OF: as_of}).assign(**{RATES: record})
    return frame.join(derive(request))
