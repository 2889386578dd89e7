"""The baselines a data team would otherwise pick, scored on the same rows as the models.

Churn:
- ``recency``: days since the last order, nothing else;
- ``rfm_logreg``: logistic regression on log recency, frequency and monetary value;
- ``bgnbd``: BG/NBD (pymc-marketing), ranked by expected purchases in the horizon.

Spend:
- ``run_rate``: last year's spend, pro-rated to the horizon;
- ``bgnbd_gg``: BG/NBD expected purchases times Gamma-Gamma spend per purchase.

A score that is not a probability (recency, expected purchases) is mapped to one
by a one-feature logistic fit on the training rows. That keeps its ranking, so
ROC AUC and lift are the score's own, and gives log loss and calibration a fair
chance. BG/NBD and Gamma-Gamma need no labels: they are fit at each cutoff on
every customer's history up to that cutoff, which is how they are used in
practice. Churn is ranked by expected purchases, not by P(alive): P(alive) is 1
for every one-time buyer, so it ranks them worse than chance.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from clm.core.io import partition_glob

log = logging.getLogger(__name__)

CHURN_BASELINES = ("recency", "rfm_logreg", "bgnbd")
VALUE_BASELINES = ("run_rate", "bgnbd_gg")
RFM_FEATURES = ("recency_days", "frequency_lifetime", "monetary_lifetime")

_SUMMARY_SQL = """
WITH d AS (
    SELECT customer_id, CAST(order_ts AS DATE) AS day,
        CAST(SUM(CAST(amount AS DECIMAL(18, 4))) AS DOUBLE) AS spend
    FROM read_parquet($orders, hive_partitioning = true)
    WHERE status = 'completed' AND ds <= $cutoff
    GROUP BY ALL
),
f AS (
    SELECT customer_id, MIN(day) AS first_day, MAX(day) AS last_day,
        COUNT(*) - 1 AS frequency, SUM(spend) AS total, ARG_MIN(spend, day) AS first_spend
    FROM d WHERE day <= $cutoff GROUP BY customer_id
)
SELECT customer_id,
    CAST(frequency AS DOUBLE) AS frequency,
    CAST(last_day - first_day AS DOUBLE) AS recency,
    CAST($cutoff - first_day AS DOUBLE) AS "T",
    CASE WHEN frequency > 0 THEN (total - first_spend) / frequency ELSE 0 END AS monetary_value
FROM f ORDER BY customer_id
"""
# Sums are DECIMAL: exact, so the result does not depend on DuckDB's thread order.


def btyd_summary(validated_dir: Path, cutoff: date) -> pd.DataFrame:
    """Per customer with a completed order by ``cutoff``: the BTYD inputs, in days.

    ``frequency`` counts repeat purchase days, ``recency`` is first to last
    purchase day, ``T`` is first purchase day to the cutoff, and
    ``monetary_value`` is the mean spend of the repeat purchase days.
    """
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(
            _SUMMARY_SQL, {"orders": partition_glob(validated_dir, "orders"), "cutoff": cutoff}
        ).df()


def _quiet_pymc() -> None:
    for name in ("pymc", "pytensor", "pymc_marketing", "pymc_extras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytensor")
    warnings.filterwarnings("ignore", module="pymc")
    warnings.filterwarnings("ignore", module="pymc_marketing")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="arviz")


# Below this many customers a BG/NBD or Gamma-Gamma fit is mostly PyTensor compiling
# its graphs to C: FAST_COMPILE skips that and fits a 2,000-customer shop in 2.2 s
# instead of 6.1 s, with the same parameters. At 100,000 customers the compiled
# graph wins (2 to 7 s against 25 s), so large shops keep PyTensor's default.
FAST_COMPILE_BELOW = 20_000


def pytensor_flags(customers: int) -> dict[str, str]:
    """PyTensor flags for a fit on ``customers`` rows (none: PyTensor's configured default)."""
    return {"mode": "FAST_COMPILE"} if customers < FAST_COMPILE_BELOW else {}


@dataclass
class BTYD:
    """BG/NBD and Gamma-Gamma, fit once per cutoff on every customer's history."""

    validated_dir: Path
    horizon_days: int
    fits: dict[date, pd.DataFrame] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)

    def predictions(self, cutoff: date) -> pd.DataFrame:
        """``customer_id, expected_purchases, expected_spend`` at ``cutoff``."""
        if cutoff in self.fits:
            return self.fits[cutoff]
        _quiet_pymc()
        import pytensor
        from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

        summary = btyd_summary(self.validated_dir, cutoff)
        with pytensor.config.change_flags(**pytensor_flags(len(summary))):
            bg = BetaGeoModel(data=summary[["customer_id", "frequency", "recency", "T"]])
            bg.fit(method="map", progressbar=False)
            purchases = np.asarray(
                bg.expected_purchases(data=summary, future_t=self.horizon_days)
            ).reshape(-1)
            repeat = summary[summary["frequency"] > 0]
            gg = GammaGammaModel(data=repeat[["customer_id", "frequency", "monetary_value"]])
            gg.fit(method="map", progressbar=False)
            per_purchase = np.asarray(gg.expected_customer_spend(data=summary)).reshape(-1)
        out = pd.DataFrame(
            {
                "customer_id": summary["customer_id"],
                "expected_purchases": purchases,
                "expected_spend": purchases * per_purchase,
            }
        )
        self.params = {
            **{f"bgnbd_{k}": float(v) for k, v in bg.fit_summary().items()},
            **{f"gg_{k}": float(v) for k, v in gg.fit_summary().items()},
        }
        log.info(
            "BG/NBD x Gamma-Gamma at %s on %d customers (%d repeat): %s",
            cutoff,
            len(summary),
            len(repeat),
            {k: round(v, 3) for k, v in self.params.items()},
        )
        self.fits[cutoff] = out
        return out

    def column(self, rows: pd.DataFrame, name: str) -> np.ndarray:
        """``name`` for each ``(customer_id, cutoff)`` row, in row order."""
        parts = []
        for cutoff, group in rows.groupby("cutoff", sort=False):
            fit = self.predictions(cutoff)  # type: ignore[arg-type]
            pred = fit.set_index("customer_id")[name].reindex(group["customer_id"])
            parts.append(pd.Series(pred.to_numpy(), group.index))
        return pd.concat(parts).reindex(rows.index).fillna(0.0).to_numpy(dtype=float)


# BG/NBD and Gamma-Gamma are fit once per cutoff (about 10 s at a million customers).
# The one-feature map from expected purchases to a probability needs few rows, so
# the BTYD baselines learn it on the training rows of the latest cutoffs only:
# with weekly cutoffs, fitting at all twenty would cost minutes and change nothing.
BTYD_TRAINING_CUTOFFS = 4


def _latest_cutoffs(rows: pd.DataFrame, y: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows (and labels) of the latest :data:`BTYD_TRAINING_CUTOFFS` cutoffs."""
    kept = sorted(rows["cutoff"].unique())[-BTYD_TRAINING_CUTOFFS:]
    mask = rows["cutoff"].isin(kept).to_numpy()
    return rows.loc[mask], y[mask]


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
    btyd: BTYD,
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
        recent, y_recent = _latest_cutoffs(train, y_train)
        purchases = np.log1p(btyd.column(recent, "expected_purchases"))
        lr = _logit_fit(purchases, y_recent, seed)

        def predict_bgnbd(x: pd.DataFrame) -> np.ndarray:
            score = np.log1p(btyd.column(x, "expected_purchases")).reshape(-1, 1)
            return np.asarray(lr.predict_proba(score)[:, 1])

        return Fitted(
            name,
            "churn",
            predict_bgnbd,
            dict(btyd.params),
            {},
            "BG/NBD expected purchases in the horizon (pymc-marketing)",
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
            return btyd.column(x, "expected_spend")

        predict_gg(_latest_cutoffs(train, y_train)[0])  # fit there too: params are logged
        return Fitted(
            name,
            "clv",
            predict_gg,
            dict(btyd.params),
            {},
            "BG/NBD expected purchases x Gamma-Gamma spend per purchase (pymc-marketing)",
        )
    raise ValueError(
        f"unknown baseline {name!r}; expected one of {CHURN_BASELINES + VALUE_BASELINES}"
    )
