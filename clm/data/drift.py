"""Population stability index (PSI) of features and scores against the training reference.

At training time :func:`profile` bins every feature (and the model's score) at
the deciles of the training rows and stores the bin edges and shares in the
model's MLflow metadata, so the reference is versioned with the model. At
scoring time :func:`psi_table` bins the day's rows at the same edges.

``PSI = sum((actual - expected) * ln(actual / expected))`` over the bins, a
missing-value bin included. The usual reading: below 0.1 stable, 0.1-0.25 a
moderate shift, above 0.25 a major shift.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
BINS = 10
EPSILON = 1e-4  # an empty bin counts as this share, so the logarithm stays finite


def _edges(values: np.ndarray, bins: int) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    inner = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1], method="linear")
    return sorted({float(e) for e in inner})


def _shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Shares of values in (-inf, e1], (e1, e2], ..., (ek, inf), then the missing bin."""
    values = np.asarray(values, dtype="float64")
    missing = ~np.isfinite(values)
    idx = np.searchsorted(np.asarray(edges, dtype="float64"), values[~missing], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype("float64")
    counts = np.append(counts, missing.sum())
    total = counts.sum()
    return (counts / total).tolist() if total else counts.tolist()


def profile(frame: pd.DataFrame, bins: int = BINS) -> dict[str, dict[str, list[float]]]:
    """Bin edges and shares of every column of ``frame``, for a later :func:`psi`.

    Raises:
        ValueError: if ``frame`` is empty.
    """
    if frame.empty:
        raise ValueError("cannot profile an empty frame")
    out = {}
    for name in frame.columns:
        values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
        edges = _edges(values, bins)
        out[str(name)] = {"edges": edges, "expected": _shares(values, edges)}
    return out


def psi(reference: dict[str, list[float]], values: np.ndarray | pd.Series) -> float:
    """PSI of ``values`` against one column's reference bins."""
    expected = np.clip(np.asarray(reference["expected"], dtype="float64"), EPSILON, None)
    actual = np.clip(
        np.asarray(_shares(np.asarray(values, dtype="float64"), reference["edges"])),
        EPSILON,
        None,
    )
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def psi_table(
    reference: dict[str, Any],
    frame: pd.DataFrame,
    *,
    score: str,
    feature_threshold: float,
    score_threshold: float,
    exempt: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """PSI of every referenced column present in ``frame``.

    Args:
        reference: a :func:`profile`, with the score under ``score``.
        score: the column of ``frame`` holding the model's score.
        exempt: columns measured and recorded but never flagged as drifted.

    Returns:
        Columns ``kind`` (feature or score), ``name``, ``psi``, ``threshold``, ``drifted``.
    """
    rows = []
    for name, ref in reference.items():
        if name not in frame.columns:
            continue
        kind = "score" if name == score else "feature"
        threshold = score_threshold if kind == "score" else feature_threshold
        value = psi(ref, frame[name].to_numpy(dtype="float64", na_value=np.nan))
        rows.append(
            {
                "kind": kind,
                "name": name,
                "psi": value,
                "threshold": threshold,
                "drifted": bool(value > threshold and name not in exempt),
            }
        )
    return pd.DataFrame(rows, columns=["kind", "name", "psi", "threshold", "drifted"])
