"""The baselines a data team would otherwise pick, scored on the same rows as the models.

Churn:
- ``recency``: days since the last order, nothing else;
- ``rfm_logreg``: logistic regression on log recency, frequency and monetary value;
- ``bgnbd``: BG/NBD, ranked by expected purchase days in the horizon.

Spend:
- ``run_rate``: last year's spend, pro-rated to the horizon;
- ``bgnbd_gg``: BG/NBD expected purchases times Gamma-Gamma spend per purchase.

Conversion (prospects):
- ``channel_rate``: the prospect's acquisition channel's conversion record;
- ``recent_visits``: visits in the last 30 days.

A score that is not a probability (recency, expected purchases) is mapped to one
by a one-feature logistic fit on the training rows. That keeps its ranking, so
ROC AUC and lift are the score's own, and gives log loss and calibration a fair
chance. BG/NBD and Gamma-Gamma need no labels: they are fit at each cutoff on
every customer's history up to that cutoff, which is how they are used in
practice, and their expectations reach every row as features
(:mod:`clm.data.btyd`), the same the boosted models see. Churn is ranked by
expected purchases, not by P(alive): P(alive) is 1 for every one-time buyer,
so it ranks them worse than chance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

CHURN_BASELINES = ("recency", "rfm_logreg", "bgnbd")
VALUE_BASELINES = ("run_rate", "bgnbd_gg")
CONVERSION_BASELINES = ("channel_rate", "recent_visits")
RFM_FEATURES = ("recency_days", "frequency_lifetime", "monetary_lifetime")

PURCHASES = "btyd_expected_purchases"
SPEND = "btyd_expected_spend"


def _purchases(x: pd.DataFrame) -> np.ndarray:
    return np.log1p(x[PURCHASES].fillna(0).clip(lower=0).to_numpy(dtype=float))


def _logit_fit(score: np.ndarray, y: np.ndarray, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(random_state=seed).fit(score.reshape(-1, 1), y)


@dataclass
class Fitted:
    """A fitted baseline: its predictions on the rows asked for, and what it learned."""

    name: str
    task: str
    predict: Any
    params: dict[str, float]
    importance: dict[str, float]
    description: str


def _rfm_matrix(x: pd.DataFrame) -> np.ndarray:
    return np.log1p(x[list(RFM_FEATURES)].clip(lower=0).fillna(0).to_numpy(dtype=float))


def fit_baseline(
    name: str,
    train: pd.DataFrame,
    y_train: np.ndarray,
    *,
    horizon_days: int,
    seed: int,
) -> Fitted:
    """Fit one baseline on the training rows (features plus ``customer_id, cutoff``).

    Raises:
        ValueError: for an unknown baseline name.
    """
    if name == "recency":
        lr = _logit_fit(train["recency_days"].fillna(0).to_numpy(dtype=float), y_train, seed)

        def predict_recency(x: pd.DataFrame) -> np.ndarray:
            score = x["recency_days"].fillna(0).to_numpy(dtype=float).reshape(-1, 1)
            return np.asarray(lr.predict_proba(score)[:, 1])

        return Fitted(
            name,
            "churn",
            predict_recency,
            {"coef": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])},
            {"recency_days": 1.0},
            "days since the last order",
        )
    if name == "rfm_logreg":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        model = make_pipeline(StandardScaler(), LogisticRegression(random_state=seed))
        model.fit(_rfm_matrix(train), y_train)
        coef = model[-1].coef_[0]

        def predict_rfm(x: pd.DataFrame) -> np.ndarray:
            return np.asarray(model.predict_proba(_rfm_matrix(x))[:, 1])

        return Fitted(
            name,
            "churn",
            predict_rfm,
            {f"coef_{f}": float(c) for f, c in zip(RFM_FEATURES, coef, strict=True)},
            {f: float(abs(c)) for f, c in zip(RFM_FEATURES, coef, strict=True)},
            "logistic regression on log recency, frequency and monetary value",
        )
    if name == "bgnbd":
        lr = _logit_fit(_purchases(train), y_train, seed)

        def predict_bgnbd(x: pd.DataFrame) -> np.ndarray:
            return np.asarray(lr.predict_proba(_purchases(x).reshape(-1, 1))[:, 1])

        return Fitted(
            name,
            "churn",
            predict_bgnbd,
            {"coef": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])},
            {PURCHASES: 1.0},
            "BG/NBD expected purchase days in the horizon",
        )
    if name in ("channel_rate", "recent_visits"):
        column = "channel_conversion_rate" if name == "channel_rate" else "visits_30d"

        def score(x: pd.DataFrame) -> np.ndarray:
            values = x[column].to_numpy(dtype=float)
            if name == "recent_visits":
                return np.log1p(np.nan_to_num(values).clip(min=0))
            # no record yet: the mean record of the training rows
            return np.where(np.isnan(values), fill, values)

        fill = float(np.nanmean(train[column])) if train[column].notna().any() else 0.0
        lr = _logit_fit(score(train), y_train, seed)

        def predict_one_feature(x: pd.DataFrame) -> np.ndarray:
            return np.asarray(lr.predict_proba(score(x).reshape(-1, 1))[:, 1])

        return Fitted(
            name,
            "conversion",
            predict_one_feature,
            {"coef": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])},
            {column: 1.0},
            "the acquisition channel's conversion record"
            if name == "channel_rate"
            else "visits in the last 30 days",
        )
    if name == "run_rate":
        factor = horizon_days / 365.0

        def predict_run_rate(x: pd.DataFrame) -> np.ndarray:
            return x["monetary_365d"].fillna(0).to_numpy(dtype=float) * factor

        return Fitted(
            name,
            "clv",
            predict_run_rate,
            {"factor": factor},
            {"monetary_365d": 1.0},
            "spend in the last 365 days, pro-rated to the horizon",
        )
    if name == "bgnbd_gg":

        def predict_gg(x: pd.DataFrame) -> np.ndarray:
            return x[SPEND].fillna(0).clip(lower=0).to_numpy(dtype=float)

        return Fitted(
            name,
            "clv",
            predict_gg,
            {},
            {SPEND: 1.0},
            "BG/NBD expected purchase days x Gamma-Gamma spend per day",
        )
    raise ValueError(
        f"unknown baseline {name!r}; expected one of "
        f"{CHURN_BASELINES + VALUE_BASELINES + CONVERSION_BASELINES}"
    )
