"""The figures each MLflow run carries: ROC, PR, calibration, lift, deciles, importance,
and the recommenders' hit rate and NDCG.

Each function returns a Matplotlib figure; :mod:`clm.ml.tracking` logs it
with ``mlflow.log_figure`` and closes it.
"""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402


def _figure(title: str) -> tuple[Any, Any]:
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig, ax


def roc(y: np.ndarray, preds: dict[str, np.ndarray]) -> Any:
    """ROC curves, one line per candidate."""
    fig, ax = _figure("ROC")
    for name, p in preds.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr(y: np.ndarray, preds: dict[str, np.ndarray]) -> Any:
    """Precision-recall curves with the churn rate as the chance line."""
    fig, ax = _figure("Precision-recall")
    for name, p in preds.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=name)
    ax.axhline(float(np.mean(y)), color="k", ls=":", lw=1)
    ax.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    ax.legend(loc="upper right", fontsize=8)
    return fig


def calibration(y: np.ndarray, preds: dict[str, np.ndarray], bins: int = 10) -> Any:
    """Reliability diagram: observed churn rate against the mean predicted, per bin."""
    fig, ax = _figure("Calibration")
    for name, p in preds.items():
        which = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
        count = np.bincount(which, minlength=bins)
        seen = count > 0
        observed = np.bincount(which, weights=y, minlength=bins)[seen] / count[seen]
        predicted = np.bincount(which, weights=p, minlength=bins)[seen] / count[seen]
        ax.plot(predicted, observed, "o-", ms=3, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="mean predicted probability", ylabel="observed churn rate")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _deciles(score: np.ndarray) -> np.ndarray:
    order = np.argsort(-np.asarray(score), kind="stable")
    decile = np.empty(len(score), dtype=int)
    decile[order] = np.arange(len(score)) * 10 // len(score)
    return decile


def lift(y: np.ndarray, preds: dict[str, np.ndarray]) -> Any:
    """Lift per score decile (1 = the top-scored 10%)."""
    fig, ax = _figure("Lift by decile")
    base = float(np.mean(y))
    width = 0.8 / max(1, len(preds))
    for i, (name, p) in enumerate(preds.items()):
        d = _deciles(p)
        rate = np.bincount(d, weights=y, minlength=10) / np.maximum(np.bincount(d, minlength=10), 1)
        ax.bar(np.arange(1, 11) + (i - len(preds) / 2) * width, rate / base, width, label=name)
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set(xlabel="score decile (1 = highest)", ylabel="lift", xticks=range(1, 11))
    ax.legend(fontsize=8)
    return fig


def spend_deciles(y: np.ndarray, pred: np.ndarray, name: str) -> Any:
    """Mean predicted against mean actual spend per predicted decile."""
    fig, ax = _figure(f"Spend by predicted decile: {name}")
    d = _deciles(pred)
    n = np.maximum(np.bincount(d, minlength=10), 1)
    x = np.arange(1, 11)
    ax.bar(x - 0.2, np.bincount(d, weights=y, minlength=10) / n, 0.4, label="actual")
    ax.bar(x + 0.2, np.bincount(d, weights=pred, minlength=10) / n, 0.4, label="predicted")
    ax.set(xlabel="predicted decile (1 = highest)", ylabel="mean spend", xticks=x)
    ax.legend(fontsize=8)
    return fig


def gains(y: np.ndarray, preds: dict[str, np.ndarray]) -> Any:
    """Cumulative share of actual spend captured, customers ranked by prediction."""
    fig, ax = _figure("Spend captured (gains)")
    share = np.arange(1, len(y) + 1) / len(y)
    total = float(np.sum(y)) or 1.0
    for name, p in preds.items():
        order = np.argsort(-np.asarray(p), kind="stable")
        ax.plot(share, np.cumsum(np.asarray(y)[order]) / total, label=name)
    ax.plot(share, np.cumsum(np.sort(y)[::-1]) / total, "k--", lw=1, label="perfect")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="share of customers (ranked)", ylabel="share of actual spend")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def importance(values: dict[str, float], title: str, top: int = 20) -> Any:
    """Horizontal bars of the largest importances."""
    items = sorted(values.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.25 * len(items) + 1.2), dpi=100)
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=8)
    return fig


def recommendation(scores: dict[str, dict[str, float]], metrics: tuple[str, ...]) -> Any:
    """Grouped bars: each recommender's metrics (hit rate and NDCG at 3), side by side."""
    fig, ax = _figure("Recommendation on the test window")
    names = list(scores)
    width = 0.8 / max(1, len(metrics))
    for i, metric in enumerate(metrics):
        x = np.arange(len(names)) + i * width
        ax.bar(x, [scores[n][metric] for n in names], width, label=metric)
    ax.set_xticks(np.arange(len(names)) + width * (len(metrics) - 1) / 2, names)
    ax.set(ylim=(0, 1), ylabel="share of customers / NDCG")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def silhouettes(values: dict[int, float], chosen: int) -> Any:
    """Silhouette of each k of the behavioural clustering, the chosen k marked."""
    fig, ax = _figure("Behavioural clusters: silhouette by k")
    ks = sorted(values)
    ax.plot(ks, [values[k] for k in ks], "o-")
    ax.axvline(chosen, color="k", ls=":", lw=1)
    ax.set(xlabel="k (clusters)", ylabel="silhouette (higher: better separated)")
    return fig


def close(fig: Any) -> None:
    plt.close(fig)
