"""The simulated shop: customers, orders and events with known latent behaviour.

Each customer has a purchase rate and a dropout process with heterogeneity
across customers (BG/NBD-like), shifted by acquisition channel, weekly and
holiday seasonality, category preferences shared by taste, and discount sensitivity.

Dropout goes through a *cooling* state: engagement (visits, views, purchases)
decays before the customer is gone, and support tickets, low ratings and
returns raise the hazard of starting to cool. So features beyond RFM carry
real signal. The latent state is written beside the data (``truth/``), which
only evaluation reads.

The generator loops over days and draws every customer at once with NumPy, so
1,000 customers (tests) and 1,000,000 (benchmarks) come from the same code and
the same seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from clm.core.io import write_partition

log = logging.getLogger(__name__)

CHANNELS = np.array(["organic", "paid_search", "social", "email", "referral"])
CHANNEL_P = np.array([0.35, 0.25, 0.15, 0.15, 0.10])
CHANNEL_RATE = np.array([1.0, 0.9, 0.7, 1.2, 1.3])
CHANNEL_HAZARD = np.array([1.0, 1.2, 1.5, 0.8, 0.7])
COUNTRIES = np.array(["GB", "DE", "FR", "NL", "ES", "IE", "US"])
COUNTRY_P = np.array([0.55, 0.12, 0.1, 0.07, 0.06, 0.05, 0.05])
CATEGORIES = np.array(
    [
        "home",
        "garden",
        "kitchen",
        "gifts",
        "toys",
        "stationery",
        "lighting",
        "party",
        "christmas",
        "bags",
        "baby",
        "craft",
    ]
)
# Customers share tastes: each has one, and prefers its categories. This is the
# structure collaborative filtering can find (a customer who bought toys and party
# goods is likely to want baby things too), and the latent truth that the
# recommendation evaluation checks against.
TASTES: dict[str, tuple[str, ...]] = {
    "home maker": ("home", "kitchen", "lighting", "garden"),
    "gift giver": ("gifts", "party", "stationery", "christmas"),
    "young family": ("toys", "baby", "party", "craft"),
    "crafter": ("craft", "stationery", "bags", "home"),
}
TASTE_WEIGHT = 4.0  # Dirichlet weight of a taste's categories; every category gets 0.3
WEEKDAY_FACTOR = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.25, 1.2])
RATING_ACTIVE = np.array([0.03, 0.04, 0.13, 0.35, 0.45])
RATING_COOLING = np.array([0.22, 0.22, 0.24, 0.18, 0.14])
DISCOUNTS = np.array([0.05, 0.1, 0.15, 0.2, 0.3])

ACTIVE, COOLING, GONE = 1, 2, 3
LATENT_EVERY_DAYS = 7


@dataclass(frozen=True)
class Dynamics:
    """The day-to-day dynamics of a customer, stated once.

    The simulator draws from them; the oracle (``clm/ml/oracle.py``) runs them
    forward from the latent truth. Changing one here changes both.
    """

    cooling_decay: float = 0.06  # engagement of a cooling customer: exp(-decay * days cooling)
    gone_per_day: float = 0.05  # P(a cooling customer is gone for good), per day
    cancel_p: float = 0.03  # P(an order is cancelled)
    return_p_active: float = 0.03  # P(an order is returned), active customer
    return_p_cooling: float = 0.10  # ... and cooling customer
    tickets_active: float = 0.002  # support tickets per day, active customer
    tickets_cooling_extra: float = 0.015  # ... more when cooling
    review_p: float = 0.2  # P(an order is reviewed)
    cart_p: float = 0.2  # P(a product view adds to the cart)
    extra_items: float = 1.2  # items per order: 1 + Poisson(extra_items)
    amount_sigma: float = 0.3  # log-normal noise of an order's amount
    discount_base: float = 0.1  # P(discount) = base + slope * sensitivity
    discount_slope: float = 0.6
    risk_memory: float = 0.97  # troubles decay by this factor a day
    risk_weight: float = 1.5  # hazard of cooling: base * (1 + weight * risk)

    def return_p(self, cooling: np.ndarray) -> np.ndarray:
        """P(an order is returned) for cooling (True) or active (False) customers."""
        return np.where(cooling, self.return_p_cooling, self.return_p_active)

    def tickets(self, cooling: np.ndarray) -> np.ndarray:
        """Expected support tickets a day for cooling (True) or active (False) customers."""
        return self.tickets_active + self.tickets_cooling_extra * cooling

    def low_rating_p(self, cooling: np.ndarray) -> np.ndarray:
        """P(a review rates 1 or 2) for cooling (True) or active (False) customers."""
        return np.where(cooling, RATING_COOLING[:2].sum(), RATING_ACTIVE[:2].sum())

    @staticmethod
    def items_factor(n_items: np.ndarray | float) -> np.ndarray | float:
        """How an order's amount grows with its number of items (linear, so means carry)."""
        return 0.6 + 0.4 * n_items


DYNAMICS = Dynamics()


@dataclass
class SimulationResult:
    """Row counts of what a simulation wrote."""

    customers: int
    orders: int
    events: int
    dirty_rows: int
    days: int
    partitions: dict[str, int] = field(default_factory=dict)


def season(day: date) -> float:
    """Demand factor of a day: the weekday's, and 1.5 over the Christmas weeks."""
    factor = WEEKDAY_FACTOR[day.weekday()]
    if (day.month == 11 and day.day >= 20) or (day.month == 12 and day.day <= 23):
        factor *= 1.5
    return float(factor)


def _pick_categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a row-stochastic matrix, vectorised."""
    u = np.asarray(rng.random(probs.shape[0]))[:, None]
    return (probs.cumsum(axis=1) < u).sum(axis=1).clip(max=probs.shape[1] - 1)


# Review texts: a sentence of the review's tone, sometimes a neutral remark, sometimes a
# turn ("but ..."). Negations and faint praise ("not bad at all", "could be better")
# keep a lexicon model from being trivially right.
REVIEW_PHRASES: dict[str, tuple[str, ...]] = {
    "positive": (
        "Love it.",
        "Great quality, exactly as described.",
        "Arrived quickly and well packed.",
        "Really pleased with this.",
        "Lovely colours and beautifully made.",
        "Would happily buy again.",
        "The perfect gift, she was delighted.",
        "Excellent value for money.",
        "Not bad at all, better than I expected.",
        "Can't fault it.",
        "No complaints whatsoever.",
        "Sturdy and charming.",
    ),
    "neutral": (
        "It is okay.",
        "Does the job.",
        "Smaller than I expected.",
        "Average quality for the price.",
        "Delivery took about a week.",
        "Nothing special.",
        "Bought it for my sister.",
        "Second order from this shop.",
        "Not great, not terrible.",
        "As shown in the picture, more or less.",
    ),
    "negative": (
        "Arrived broken.",
        "Very disappointed.",
        "Poor quality, not as pictured.",
        "Took forever to arrive.",
        "Cheap and flimsy.",
        "A waste of money.",
        "Customer service never replied to my emails.",
        "Would not recommend.",
        "Fell apart after a week.",
        "Wasn't as good as I hoped.",
        "Could be better.",
        "Didn't love it, sadly.",
    ),
}
REVIEW_TURNS: dict[str, tuple[str, ...]] = {
    "positive": ("But the box was a bit damaged.", "Shame it took so long to come."),
    "negative": ("The colour is nice though.", "Packaging was fine at least."),
}


def review_texts(rng: np.random.Generator, rating: np.ndarray, cooling: np.ndarray) -> np.ndarray:
    """A review text per rating, whose tone follows the customer's latent state (a
    cooling customer writes worse than their stars say) as well as the rating."""
    n = len(rating)
    mood = 0.5 * (rating - 3.0) - 0.8 * cooling + rng.normal(0.0, 0.6, n)
    tone = np.where(mood > 0.35, "positive", np.where(mood < -0.35, "negative", "neutral"))
    filler = rng.random(n) < 0.35
    turn = rng.random(n) < 0.15
    picks = rng.random((n, 3))
    out = []
    for i in range(n):
        phrases = REVIEW_PHRASES[tone[i]]
        parts = [phrases[int(picks[i, 0] * len(phrases))]]
        if filler[i]:
            neutral = REVIEW_PHRASES["neutral"]
            parts.append(neutral[int(picks[i, 1] * len(neutral))])
        if turn[i] and tone[i] in REVIEW_TURNS:
            turns = REVIEW_TURNS[tone[i]]
            parts.append(turns[int(picks[i, 2] * len(turns))])
        out.append(" ".join(parts))
    return np.array(out, dtype=object)


def category_preferences(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's taste (index into :data:`TASTES`) and category probabilities.

    From a stream of their own, so the rest of the simulation does not move.
    """
    rng = np.random.default_rng([seed, 3])
    taste = rng.integers(len(TASTES), size=n)
    profiles = np.array([[c in cats for c in CATEGORIES] for cats in TASTES.values()], float)
    weights = rng.gamma(0.3 + TASTE_WEIGHT * profiles[taste])  # a Dirichlet draw per row
    return taste, weights / weights.sum(axis=1, keepdims=True)


def _ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    if len(numbers) == 0:
        return np.array([], dtype=object)
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width)).astype(object)


def _timestamps(rng: np.random.Generator, day: date, n: int) -> np.ndarray:
    midnight = np.datetime64(datetime(day.year, day.month, day.day), "us")
    seconds = np.sort(rng.integers(0, 86_400, n))
    return midnight + seconds.astype("timedelta64[s]").astype("timedelta64[us]")


def simulate_shop(
    out_dir: Path,
    truth_dir: Path,
    n_customers: int = 2000,
    start: date = date(2024, 1, 1),
    days: int = 180,
    seed: int = 42,
    dirty_rate: float = 0.002,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Simulate a shop and write daily landing partitions plus the latent truth.

    Args:
        out_dir: landing root; writes ``<table>/ds=YYYY-MM-DD/part-0.parquet``.
        truth_dir: where the latent state goes (``latent/ds=...``, ``dirty_rows``).
        n_customers: customers who sign up over the period.
        start: first simulated day.
        days: number of days.
        seed: the only source of randomness.
        dirty_rate: share of order and event rows deliberately broken, so the
            validation gate has something to quarantine.
        progress: called with the number of days done.

    Returns:
        Row counts.

    Raises:
        ValueError: on a non-positive size or a dirty rate outside [0, 0.5].
    """
    if n_customers <= 0 or days <= 0:
        raise ValueError(f"n_customers and days must be positive, got {n_customers}, {days}")
    if not 0 <= dirty_rate <= 0.5:
        raise ValueError(f"dirty_rate must be in [0, 0.5], got {dirty_rate}")
    rng = np.random.default_rng(seed)
    n = n_customers

    # Static latent parameters ------------------------------------------------------
    launch = rng.random(n) < 0.3
    signup_day = np.where(
        launch,
        rng.integers(0, max(1, min(14, days)), n),
        rng.integers(0, max(1, int(days * 0.9)), n),
    )
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_P)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_P)
    rate = rng.gamma(1.2, 1 / 30 / 1.2, n) * CHANNEL_RATE[channel]
    cool_hazard = rng.gamma(2.0, 0.004 / 2.0, n) * CHANNEL_HAZARD[channel]
    visit_rate = 0.02 + rate * rng.gamma(2.0, 1.5, n)
    mean_order_value = np.exp(rng.normal(np.log(45.0), 0.5, n))
    discount_sensitivity = rng.beta(2.0, 5.0, n)
    # The six-category draw from before tastes existed, kept so that the rest of the
    # stream, and every other simulated figure, stays the same.
    rng.dirichlet(np.full(6, 0.6), n)
    taste, category_pref = category_preferences(n, seed)

    state = np.zeros(n, dtype=np.int8)
    cooling_days = np.zeros(n)
    risk = np.zeros(n)
    customer_ids = _ids("C", np.arange(n), 7)

    # Orders, events and latent state are written as each day is generated, so
    # memory holds one day of rows, not the whole history.
    written = {"customers": 0, "orders": 0, "events": 0}
    n_order_rows = n_event_rows = 0
    dirty: list[pd.DataFrame] = []
    next_order = 0
    next_event = 0

    for d in range(days):
        day = start + timedelta(days=d)
        dyn = DYNAMICS
        factor = season(day)

        joined = signup_day == d
        state[joined] = ACTIVE
        live = (state == ACTIVE) | (state == COOLING)
        engagement = (
            np.where(state == COOLING, np.exp(-dyn.cooling_decay * cooling_days), 1.0) * live
        )

        # Orders: a first order on most signup days, then Poisson at the latent rate.
        n_orders = rng.poisson(rate * factor * engagement).clip(max=3)
        first = joined & (rng.random(n) < 0.6)
        n_orders[first] = np.maximum(n_orders[first], 1)
        who = np.repeat(np.arange(n), n_orders)
        k = len(who)
        status = np.full(k, "completed", dtype=object)
        if k:
            return_p = dyn.return_p(state[who] == COOLING)
            u = rng.random(k)
            status[u < dyn.cancel_p] = "cancelled"
            status[(u >= dyn.cancel_p) & (u < dyn.cancel_p + return_p)] = "returned"
            has_discount = (
                rng.random(k) < dyn.discount_base + dyn.discount_slope * discount_sensitivity[who]
            )
            discount = np.where(has_discount, rng.choice(DISCOUNTS, k), 0.0)
            n_items = 1 + rng.poisson(dyn.extra_items, k)
            amount = (
                mean_order_value[who]
                * np.exp(rng.normal(0, dyn.amount_sigma, k))
                * dyn.items_factor(n_items)
                * (1 - discount)
            ).round(2)
            category = CATEGORIES[_pick_categorical(rng, category_pref[who])]
            orders = pd.DataFrame(
                {
                    "order_id": _ids("O", np.arange(next_order, next_order + k), 9),
                    "customer_id": customer_ids[who],
                    "order_ts": _timestamps(rng, day, k),
                    "amount": amount,
                    "n_items": n_items.astype(np.int64),
                    "category": category,
                    "discount": discount,
                    "status": status,
                }
            )
            next_order += k
        else:
            orders = pd.DataFrame()

        # Events: visits with views and add-to-carts, tickets, reviews of orders.
        n_visits = rng.poisson(visit_rate * factor * engagement)
        v_who = np.repeat(np.arange(n), n_visits)
        n_views = rng.poisson(2.5, len(v_who))
        views_who = np.repeat(v_who, n_views)
        carts_who = views_who[rng.random(len(views_who)) < dyn.cart_p]
        tickets = rng.poisson(dyn.tickets(state == COOLING) * live)
        t_who = np.repeat(np.arange(n), tickets)
        reviewed = who[rng.random(k) < dyn.review_p] if k else np.array([], dtype=int)
        cooling_reviewer = state[reviewed] == COOLING
        rating = (
            np.where(
                cooling_reviewer,
                rng.choice(5, len(reviewed), p=RATING_COOLING),
                rng.choice(5, len(reviewed), p=RATING_ACTIVE),
            )
            + 1
        )
        e_who = np.concatenate([v_who, views_who, carts_who, t_who, reviewed])
        e_type = np.concatenate(
            [
                np.full(len(v_who), "visit", dtype=object),
                np.full(len(views_who), "product_view", dtype=object),
                np.full(len(carts_who), "add_to_cart", dtype=object),
                np.full(len(t_who), "support_ticket", dtype=object),
                np.full(len(reviewed), "review", dtype=object),
            ]
        )
        e_rating = np.concatenate([np.full(len(e_who) - len(reviewed), np.nan), rating])
        # From a stream of their own per day, so the rest of the simulation does not move.
        texts = review_texts(np.random.default_rng([seed, 4, d]), rating, cooling_reviewer)
        e_text = np.concatenate([np.full(len(e_who) - len(reviewed), None, dtype=object), texts])
        m = len(e_who)
        events = pd.DataFrame(
            {
                "event_id": _ids("E", np.arange(next_event, next_event + m), 10),
                "customer_id": customer_ids[e_who],
                "event_ts": _timestamps(rng, day, m),
                "event_type": e_type,
                "rating": pd.array(e_rating, dtype="Int64"),
                "review_text": e_text,
            }
        )
        next_event += m

        # Dirty rows: broken on purpose, each kind a different rule.
        if dirty_rate > 0 and len(orders):
            bad = np.flatnonzero(rng.random(len(orders)) < dirty_rate)
            kinds = rng.integers(0, 4, len(bad))
            for i, kind in zip(bad, kinds, strict=True):
                col, value = [
                    ("amount", -abs(float(orders["amount"].iloc[i]))),
                    ("discount", 1.5),
                    ("status", "unknown"),
                    ("customer_id", None),
                ][kind]
                orders.at[i, col] = value
            if len(bad):
                dirty.append(
                    pd.DataFrame(
                        {"table": "orders", "id": orders["order_id"].to_numpy()[bad], "kind": kinds}
                    )
                )
        if dirty_rate > 0 and m:
            bad = np.flatnonzero((rng.random(m) < dirty_rate) & (e_type == "review"))
            events.loc[bad, "rating"] = 9
            if len(bad):
                dirty.append(
                    pd.DataFrame(
                        {"table": "events", "id": events["event_id"].to_numpy()[bad], "kind": 9}
                    )
                )

        # Latent dynamics: troubles raise the hazard of starting to cool.
        low = np.bincount(reviewed[rating <= 2], minlength=n) if len(reviewed) else 0
        returns = np.bincount(who[status == "returned"], minlength=n) if k else 0
        risk = risk * dyn.risk_memory + tickets + low + returns
        start_cooling = (state == ACTIVE) & (
            rng.random(n) < 1 - np.exp(-cool_hazard * (1 + dyn.risk_weight * risk))
        )
        gone = (state == COOLING) & (rng.random(n) < dyn.gone_per_day)
        cooling_days = np.where(state == COOLING, cooling_days + 1, 0.0)
        state[start_cooling] = COOLING
        state[gone] = GONE

        for table, chunk, ts_col in (
            ("orders", orders, "order_ts"),
            ("events", events, "event_ts"),
        ):
            if len(chunk):
                chunk[ts_col] = pd.to_datetime(chunk[ts_col]).dt.tz_localize(UTC)
                write_partition(chunk, out_dir, table, day)
                written[table] += 1
        n_order_rows += len(orders)
        n_event_rows += len(events)
        if d % LATENT_EVERY_DAYS == LATENT_EVERY_DAYS - 1 or d == days - 1:
            known = state > 0
            write_partition(
                pd.DataFrame(
                    {
                        "customer_id": customer_ids[known],
                        "state": np.array(["", "active", "cooling", "gone"])[state[known]],
                        "purchase_rate": rate[known],
                        "engagement": np.where(
                            state[known] == COOLING,
                            np.exp(-dyn.cooling_decay * cooling_days[known]),
                            1.0,
                        )
                        * (state[known] != GONE),
                        "cooling_hazard": (cool_hazard * (1 + dyn.risk_weight * risk))[known],
                        "risk_score": risk[known],
                    }
                ),
                truth_dir,
                "latent",
                day,
            )
        if progress is not None:
            progress(d + 1)

    # Write ----------------------------------------------------------------------------
    signup_ts = np.datetime64(datetime(start.year, start.month, start.day), "us") + (
        signup_day.astype("timedelta64[D]").astype("timedelta64[us]")
        + rng.integers(0, 86_400, n).astype("timedelta64[s]").astype("timedelta64[us]")
    )
    customers = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "signup_ts": pd.to_datetime(signup_ts).tz_localize(UTC),
            "country": COUNTRIES[country],
            "acquisition_channel": CHANNELS[channel],
        }
    )
    for d in range(days):
        day = start + timedelta(days=d)
        write_partition(customers[signup_day == d], out_dir, "customers", day)
        written["customers"] += 1

    latent_static = customers[["customer_id", "acquisition_channel"]].assign(
        signup_day=signup_day,
        purchase_rate=rate,
        base_cooling_hazard=cool_hazard,
        visit_rate=visit_rate,
        mean_order_value=mean_order_value,
        discount_sensitivity=discount_sensitivity,
        taste=np.array(list(TASTES))[taste],
        **{f"pref_{c}": category_pref[:, i] for i, c in enumerate(CATEGORIES)},
    )
    truth_dir.mkdir(parents=True, exist_ok=True)
    latent_static.to_parquet(truth_dir / "customers.parquet", index=False)
    dirty_df = (
        pd.concat(dirty, ignore_index=True)
        if dirty
        else pd.DataFrame({"table": pd.Series(dtype=str), "id": pd.Series(dtype=str), "kind": []})
    )
    dirty_df.to_parquet(truth_dir / "dirty_rows.parquet", index=False)

    log.info(
        "simulated %d customers, %d orders, %d events over %d days (%d dirty rows)",
        n,
        n_order_rows,
        n_event_rows,
        days,
        len(dirty_df),
    )
    return SimulationResult(
        customers=n,
        orders=n_order_rows,
        events=n_event_rows,
        dirty_rows=len(dirty_df),
        days=days,
        partitions=written,
    )
