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

from clm.io import list_partitions, partition_dir
from clm.simulate import DISCOUNTS, _season

# The generator's constants (clm/simulate.py), restated where the oracle needs them.
COOLING_DECAY = 0.06
GONE_PER_DAY = 0.05
CANCEL_P = 0.03
RETURN_P = {"active": 0.03, "cooling": 0.10}
TICKETS = {"active": 0.002, "cooling": 0.017}
LOW_RATING = {"active": 0.07, "cooling": 0.44}  # P(rating <= 2) of a review
REVIEW_P = 0.2
MEAN_ITEMS = 2.2


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
    cool_days = np.where(
        lat["state"].to_numpy() == "cooling",
        -np.log(np.clip(engagement, 1e-12, 1)) / COOLING_DECAY,
        0.0,
    )
    cool_days = np.repeat(cool_days[:, None], paths, axis=1)
    risk = np.repeat(lat["risk_score"].fillna(0).to_numpy()[:, None], paths, axis=1)
    rate = lat["purchase_rate"].fillna(0).to_numpy()[:, None]
    hazard = st["base_cooling_hazard"].fillna(0).to_numpy()[:, None]
    intensity = np.zeros((n, paths))

    for k in range(1, horizon_days + 1):
        day = cutoff + timedelta(days=k)
        eng = np.where(cooling, np.exp(-COOLING_DECAY * cool_days), 1.0) * (active | cooling)
        lam = rate * _season(day) * eng
        return_p = np.where(cooling, RETURN_P["cooling"], RETURN_P["active"])
        intensity += lam * (1 - CANCEL_P - return_p)
        tickets = rng.poisson(np.where(cooling, TICKETS["cooling"], TICKETS["active"]) * (eng > 0))
        low_p = np.where(cooling, LOW_RATING["cooling"], LOW_RATING["active"])
        troubles = rng.poisson(lam * (REVIEW_P * low_p + return_p))
        risk = risk * 0.97 + tickets + troubles
        start_cooling = active & (rng.random((n, paths)) < 1 - np.exp(-hazard * (1 + 1.5 * risk)))
        gone = cooling & (rng.random((n, paths)) < GONE_PER_DAY)
        cool_days = np.where(cooling, cool_days + 1, 0.0)
        cooling = (cooling & ~gone) | start_cooling
        active = active & ~start_cooling

    discount = 1 - DISCOUNTS.mean() * (0.1 + 0.6 * st["discount_sensitivity"].fillna(0).to_numpy())
    order_value = st["mean_order_value"].fillna(0).to_numpy() * np.exp(0.3**2 / 2)
    order_value = order_value * (0.6 + 0.4 * MEAN_ITEMS) * discount
    return pd.DataFrame(
        {
            "customer_id": ids,
            "churn_probability": np.exp(-intensity).mean(axis=1),
            "expected_spend": intensity.mean(axis=1) * order_value,
        }
    )
