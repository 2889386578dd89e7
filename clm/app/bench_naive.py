"""The naive peer of clm.data.features for `clm bench`: the same features with pandas group-bys.

This is what a data team writes first: load every order and event into
pandas and aggregate per customer. The benchmark checks that it computes the
same values as the DuckDB path, then times both.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from clm.core.io import list_partitions
from clm.data.features import ENGAGEMENT_FEATURES, ORDER_FEATURES, scale_free
from clm.data.sentiment import NEGATIVE_BELOW, compound


def _read(validated_dir: Path, table: str, ds: date, columns: list[str]) -> pd.DataFrame:
    frames = [
        pd.read_parquet(validated_dir / table / f"ds={d.isoformat()}", columns=columns)
        for d in list_partitions(validated_dir, table)
        if d <= ds
    ]
    return pd.concat(frames, ignore_index=True)


def _days_before(ds: date, values: pd.Series) -> pd.Series:
    """Whole days from each timestamp's UTC date to ds."""
    day = values.dt.tz_convert("UTC").dt.floor("D").dt.tz_localize(None)
    return (pd.Timestamp(ds) - day).dt.days


def naive_features(validated_dir: Path, ds: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both views as of ``ds``: orders for every customer with a completed order,
    engagement for them and every other customer signed up by ``ds``."""
    o = _read(
        validated_dir,
        "orders",
        ds,
        ["customer_id", "order_ts", "amount", "category", "discount", "status"],
    )
    o["age"] = _days_before(ds, o["order_ts"])
    c = o[o["status"] == "completed"]
    g = c.groupby("customer_id")
    out = pd.DataFrame(index=pd.Index(sorted(c["customer_id"].unique()), name="customer_id"))
    out["recency_days"] = g["age"].min()
    out["tenure_days"] = g["age"].max()
    for window in (30, 90, 365):
        recent = c[c["age"] < window].groupby("customer_id")
        out[f"frequency_{window}d"] = recent.size()
        out[f"monetary_{window}d"] = recent["amount"].sum()
    out["frequency_lifetime"] = g.size()
    out["monetary_lifetime"] = g["amount"].sum()
    out["avg_order_value"] = g["amount"].mean()
    days = c[["customer_id", "age"]].drop_duplicates().sort_values(["customer_id", "age"])
    days["gap"] = days.groupby("customer_id")["age"].diff()  # age descends in time order
    gaps = days.dropna(subset=["gap"]).groupby("customer_id")["gap"]
    out["ipt_mean_days"] = gaps.mean()
    out["ipt_std_days"] = gaps.std()
    out["max_gap_days"] = gaps.max()
    out["last_gap_days"] = gaps.first()  # the smallest age: the latest gap
    out["ipt_cv"] = out["ipt_std_days"] / out["ipt_mean_days"].where(out["ipt_mean_days"] > 0)
    out["repeat_days"] = gaps.size().reindex(out.index).fillna(0)
    daily = c.groupby(["customer_id", "age"])["amount"].sum().reset_index()
    first = daily["age"] == daily.groupby("customer_id")["age"].transform("max")
    out["repeat_spend_mean"] = (
        daily[~first].groupby("customer_id")["amount"].mean().reindex(out.index).fillna(0.0)
    )
    prev = c[(c["age"] >= 30) & (c["age"] < 120)].groupby("customer_id").size()
    out["category_breadth"] = g["category"].nunique()
    out["discount_share"] = (c["discount"] > 0).groupby(c["customer_id"]).mean()
    out["cancel_rate"] = (o["status"] == "cancelled").groupby(o["customer_id"]).mean()
    out["return_rate"] = (o["status"] == "returned").groupby(o["customer_id"]).mean()
    for col in ("frequency_30d", "frequency_90d", "frequency_365d"):
        out[col] = out[col].fillna(0)
    for col in ("monetary_30d", "monetary_90d", "monetary_365d", "max_gap_days"):
        out[col] = out[col].fillna(0.0)
    prev = prev.reindex(out.index)
    out["trend_ratio_30_90"] = (out["frequency_30d"] / (prev / 3.0)).where(prev > 0)
    orders = out.reset_index()[["customer_id", *ORDER_FEATURES]].astype(
        dict.fromkeys(ORDER_FEATURES, "float64")
    )
    orders = orders.join(scale_free(orders))  # arithmetic on the row: one definition

    landed = _read(validated_dir, "customers", ds, ["customer_id", "signup_ts"])
    signed = landed.loc[_days_before(ds, landed["signup_ts"]) >= 0, "customer_id"]
    ids: set[str] = {str(c) for c in out.index} | {str(c) for c in signed}
    population = pd.Index(sorted(ids), name="customer_id")
    e = _read(validated_dir, "events", ds, ["customer_id", "event_ts", "event_type", "rating"])
    e["age"] = _days_before(ds, e["event_ts"])
    e = e[e["customer_id"].isin(population)]
    eng = pd.DataFrame(index=population)

    def count(mask: pd.Series) -> pd.Series:
        return e[mask].groupby("customer_id").size().reindex(eng.index).fillna(0)

    visit = e["event_type"] == "visit"
    eng["visits_30d"] = count(visit & (e["age"] < 30))
    eng["visits_90d"] = count(visit & (e["age"] < 90))
    prev_visits = count(visit & (e["age"] >= 30) & (e["age"] < 120))
    eng["product_views_30d"] = count((e["event_type"] == "product_view") & (e["age"] < 30))
    eng["add_to_cart_30d"] = count((e["event_type"] == "add_to_cart") & (e["age"] < 30))
    eng["visit_trend_30_90"] = (eng["visits_30d"] / (prev_visits / 3.0)).where(prev_visits > 0)
    eng["days_since_last_visit"] = e[visit].groupby("customer_id")["age"].min()
    eng["support_tickets_90d"] = count((e["event_type"] == "support_ticket") & (e["age"] < 90))
    review = e["event_type"] == "review"
    eng["low_ratings_90d"] = count(review & (e["rating"] <= 2) & (e["age"] < 90))
    eng["avg_rating"] = e[review].groupby("customer_id")["rating"].mean()
    # every review text of the 90 days scored again at each snapshot (ours: once per day)
    t = _read(validated_dir, "events", ds, ["customer_id", "event_ts", "event_type", "review_text"])
    t = t[
        (t["event_type"] == "review")
        & t["review_text"].notna()
        & (_days_before(ds, t["event_ts"]) < 90)
        & t["customer_id"].isin(population)
    ]
    scored = t.assign(compound=compound(t["review_text"]))
    scored["negative"] = (scored["compound"] < NEGATIVE_BELOW).astype(float)
    by_customer = scored.groupby("customer_id")
    eng["review_sentiment_90d"] = by_customer["compound"].mean()
    eng["negative_review_share_90d"] = by_customer["negative"].mean()
    engagement = eng.reset_index()[["customer_id", *ENGAGEMENT_FEATURES]].astype(
        dict.fromkeys(ENGAGEMENT_FEATURES, "float64")
    )
    return orders, engagement


def assert_same(ours: pd.DataFrame, naive: pd.DataFrame) -> None:
    """The two paths agree on every customer and feature (NaN = NaN)."""
    a = ours.sort_values("customer_id", ignore_index=True)
    b = naive.sort_values("customer_id", ignore_index=True)
    assert list(a["customer_id"]) == list(b["customer_id"]), "different customers"
    for col in b.columns.drop("customer_id"):
        x, y = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
        if not np.allclose(x, y, equal_nan=True, rtol=1e-9, atol=1e-9):
            bad = np.flatnonzero(~np.isclose(x, y, equal_nan=True))[:3]
            raise AssertionError(f"{col} differs, e.g. rows {bad}: {x[bad]} vs {y[bad]}")
