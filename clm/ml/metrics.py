"""Metrics with the same names for every candidate (DESIGN §5)."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    roc_auc_score,
)

BINARY = frozenset({"churn", "conversion"})  # probability tasks (clm.ml.models.BINARY)
CHURN_PRIMARY = "roc_auc"  # of both binary tasks
VALUE_PRIMARY = "normalized_gini"
# Metrics where smaller is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "calibration_error", "mae", "rmse"})


def top_decile_lift(y_true: np.ndarray, score: np.ndarray) -> float:
    """Positive rate in the top-scored 10% over the overall positive rate."""
    y_true = np.asarray(y_true, dtype=float)
    n_top = max(1, int(np.ceil(len(y_true) * 0.1)))
    order = np.argsort(-np.asarray(score), kind="stable")[:n_top]
    base = y_true.mean()
    return float(y_true[order].mean() / base) if base > 0 else float("nan")


def calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the row-weighted mean |observed - predicted| over
    ten equal-width probability bins."""
    y_true = np.asarray(y_true, dtype=float)
    proba = np.asarray(proba, dtype=float)
    which = np.minimum((proba * bins).astype(int), bins - 1)
    observed = np.bincount(which, weights=y_true, minlength=bins)
    predicted = np.bincount(which, weights=proba, minlength=bins)
    return float(np.abs(observed - predicted).sum() / len(y_true))


def churn_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """ROC AUC (primary), PR AUC, log loss, Brier score, top-decile lift and
    calibration error: the metrics of both binary tasks, churn and conversion.

    Raises:
        ValueError: if only one class is present.
    """
    y_true = np.asarray(y_true)
    if len(np.unique(y_true)) < 2:
        raise ValueError("binary metrics need both classes in y_true")
    proba = np.clip(np.asarray(proba, dtype=float), 1e-6, 1 - 1e-6)
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba)),
        "brier": float(brier_score_loss(y_true, proba)),
        "top_decile_lift": top_decile_lift(y_true, proba),
        "calibration_error": calibration_error(y_true, proba),
    }


def _gini(actual: np.ndarray, pred: np.ndarray) -> float:
    order = np.lexsort((np.arange(len(pred)), -pred))
    ranked = actual[order]
    cum = np.cumsum(ranked) / ranked.sum()
    n = len(actual)
    return float(cum.sum() / n - (n + 1) / (2 * n))


def normalized_gini(actual: np.ndarray, pred: np.ndarray) -> float:
    """Gini of the prediction's ordering over the Gini of the perfect ordering."""
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    if actual.sum() <= 0:
        return float("nan")
    return _gini(actual, pred) / _gini(actual, actual)


def value_metrics(actual: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, Spearman, normalised Gini (primary) and total predicted vs actual (%)."""
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    total = actual.sum()
    return {
        "mae": float(mean_absolute_error(actual, pred)),
        "rmse": float(np.sqrt(np.mean((actual - pred) ** 2))),
        "spearman": float(spearmanr(actual, pred).statistic),
        "normalized_gini": normalized_gini(actual, pred),
        "total_pred_vs_actual_pct": float(100 * pred.sum() / total) if total else float("nan"),
    }


def score(task: str, y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The task's metrics, with the same names for every candidate."""
    return churn_metrics(y_true, pred) if task in BINARY else value_metrics(y_true, pred)


def gain(metric: str, value: np.ndarray | float, other: np.ndarray | float) -> np.ndarray:
    """How much better ``value`` is than ``other`` on ``metric``: positive when better.

    Smaller is better for :data:`LOWER_IS_BETTER`; for the spend total (a
    percentage of the actual) closer to 100 is better.
    """
    a, b = np.asarray(value, dtype=float), np.asarray(other, dtype=float)
    if metric == "total_pred_vs_actual_pct":
        return np.abs(b - 100) - np.abs(a - 100)
    return b - a if metric in LOWER_IS_BETTER else a - b


def bootstrap_draws(
    task: str, y_true: np.ndarray, preds: dict[str, np.ndarray], *, n: int, seed: int
) -> dict[str, dict[str, np.ndarray]]:
    """Every metric of every candidate on ``n`` shared resamples of the rows.

    The resamples are shared by all candidates (a paired bootstrap), so two
    candidates' draws can be subtracted resample by resample.

    Returns:
        ``{candidate: {metric: array of n values}}``.
    """
    y_true = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    draws: dict[str, dict[str, list[float]]] = {c: {} for c in preds}
    done = 0
    while done < n:
        idx = rng.integers(0, len(y_true), len(y_true))
        y = y_true[idx]
        if task in BINARY and len(np.unique(y)) < 2:
            continue
        for cand, pred in preds.items():
            for metric, value in score(task, y, np.asarray(pred)[idx]).items():
                draws[cand].setdefault(metric, []).append(value)
        done += 1
    return {c: {m: np.asarray(v, dtype=float) for m, v in ms.items()} for c, ms in draws.items()}


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap draws."""
    tail = 100 * (1 - level) / 2
    return float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))


def bootstrap(
    task: str,
    y_true: np.ndarray,
    preds: dict[str, np.ndarray],
    *,
    n: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, dict[str, tuple[float, float]]]:
    """Percentile bootstrap intervals of every metric for every candidate (paired draws).

    Returns:
        ``{candidate: {metric: (low, high)}}``.
    """
    draws = bootstrap_draws(task, y_true, preds, n=n, seed=seed)
    return {c: {m: interval(v, level) for m, v in ms.items()} for c, ms in draws.items()}


def paired_gain(
    draws: dict[str, dict[str, np.ndarray]], metric: str, a: str, b: str, level: float = 0.95
) -> tuple[float, float]:
    """The interval of how much better ``a`` is than ``b`` on ``metric``, resample by
    resample. Above 0 throughout: ``a`` is better at that level."""
    return interval(gain(metric, draws[a][metric], draws[b][metric]), level)
