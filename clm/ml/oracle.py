"""The oracle on the simulated shop: the best any model could do, from the latent truth.

From each customer's latent state at the cutoff (state, purchase rate,
engagement, accumulated risk) the generator's own dynamics are run forward
over the horizon many times. Completed orders are a thinned Poisson process,
so given a path of states the chance of no completed order is
``exp(-integrated rate)``; averaging over paths gives P(churn), and the mean
integrated rate times the expected order value gives expected spend. Only
evaluation reads the latent truth.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from clm.core.io import list_partitions, partition_dir
from clm.data.simulate import DISCOUNTS, DYNAMICS, season


def latent_days(truth_dir: Path) -> list[date]:
    """Days that have a latent snapshot."""
    return list_partitions(truth_dir, "latent")


def oracle_scores(
    truth_dir: Path,
    cutoff: date,
    horizon_days: int,
    customer_ids: pd.Series,
    *,
    paths: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """P(churn) and expected spend in (cutoff, cutoff + H] for each customer, from the truth.

    Raises:
        ValueError: if there is no latent snapshot at ``cutoff``.
    """
    part = partition_dir(truth_dir, "latent", cutoff)
    if not part.exists():
        raise ValueError(
            f"no latent snapshot at {cutoff}; the oracle needs a cutoff on one of "
            f"the snapshot days (every 7th simulated day)"
        )
    latent = pd.read_parquet(part).set_index("customer_id")
    static = pd.read_parquet(truth_dir / "customers.parquet").set_index("customer_id")
    ids = pd.Index(customer_ids)
    lat = latent.reindex(ids)
    st = static.reindex(ids)
    n = len(ids)
    rng = np.random.default_rng(seed)

    state = np.repeat(lat["state"].fillna("gone").to_numpy()[:, None], paths, axis=1)
    cooling = state == "cooling"
    active = state == "active"
    engagement = lat["engagement"].fillna(0).to_numpy()
    dyn = DYNAMICS
    cool_days = np.where(
        lat["state"].to_numpy() == "cooling",
        -np.log(np.clip(engagement, 1e-12, 1)) / dyn.cooling_decay,
        0.0,
    )
    cool_days = np.repeat(cool_days[:, None], paths, axis=1)
    risk = np.repeat(lat["risk_score"].fillna(0).to_numpy()[:, None], paths, axis=1)
    rate = lat["purchase_rate"].fillna(0).to_numpy()[:, None]
    hazard = st["base_cooling_hazard"].fillna(0).to_numpy()[:, None]
    intensity = np.zeros((n, paths))

    for k in range(1, horizon_days + 1):
        day = cutoff + timedelta(days=k)
        eng = np.where(cooling, np.exp(-dyn.cooling_decay * cool_days), 1.0) * (active | cooling)
        lam = rate * season(day) * eng
        return_p = dyn.return_p(cooling)
        intensity += lam * (1 - dyn.cancel_p - return_p)
        tickets = rng.poisson(dyn.tickets(cooling) * (eng > 0))
        troubles = rng.poisson(lam * (dyn.review_p * dyn.low_rating_p(cooling) + return_p))
        risk = risk * dyn.risk_memory + tickets + troubles
        start_cooling = active & (
            rng.random((n, paths)) < 1 - np.exp(-hazard * (1 + dyn.risk_weight * risk))
        )
        gone = cooling & (rng.random((n, paths)) < dyn.gone_per_day)
        cool_days = np.where(cooling, cool_days + 1, 0.0)
        cooling = (cooling & ~gone) | start_cooling
        active = active & ~start_cooling

    sensitivity = st["discount_sensitivity"].fillna(0).to_numpy()
    discount = 1 - DISCOUNTS.mean() * (dyn.discount_base + dyn.discount_slope * sensitivity)
    order_value = st["mean_order_value"].fillna(0).to_numpy() * np.exp(dyn.amount_sigma**2 / 2)
    order_value = order_value * dyn.items_factor(1 + dyn.extra_items) * discount
    return pd.DataFrame(
        {
            "customer_id": ids,
            "churn_probability": np.exp(-intensity).mean(axis=1),
            "expected_spend": intensity.mean(axis=1) * order_value,
        }
    )
