"""Behavioural clusters: customers grouped by how they buy and browse, each group named.

A clustering of the day's customers on a few behaviour features (:data:`FEATURES`),
log-scaled where they are counts or money, imputed with the training medians
and standardized. k-means (scikit-learn, seeded) for each k in :data:`K_RANGE`;
**k is the one with the best silhouette** (Rousseeuw, 1987), measured on a
seeded sample of the customers. Each cluster is named by its profile: the two
features whose centroid lies furthest from the shop's mean, in words
(:data:`WORDS`), e.g. ``frequent, big spenders``.

The fitted state (medians, scale, centroids, names) is small and stored as
plain arrays and JSON (:meth:`Clusters.save`), so the MLflow model version
that carries it unpickles nothing, and assigning a customer is a nearest
centroid.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# feature -> log-scaled (counts and money), and the words for a high and a low centroid
FEATURES: dict[str, tuple[bool, str, str]] = {
    "recency_days": (True, "lapsing", "recent"),
    "orders_per_30d": (True, "frequent", "occasional"),
    "spend_per_30d": (True, "big spenders", "small spenders"),
    "avg_order_value": (True, "large baskets", "small baskets"),
    "category_breadth": (False, "broad tastes", "one category"),
    "discount_share": (False, "deal seekers", "full price"),
    "return_rate": (False, "returners", "keepers"),
    "visits_30d": (True, "frequent visitors", "rare visitors"),
}
K_RANGE = range(3, 9)
FIT_SAMPLE = 50_000  # customers k-means learns from, drawn with the seed in a larger shop
SILHOUETTE_SAMPLE = 5_000  # customers the silhouette of each k is measured on


@dataclass
class Clusters:
    """A fitted clustering: what assigning a customer needs."""

    features: list[str]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    centroids: np.ndarray  # k x features, standardized
    names: list[str]
    silhouettes: dict[int, float]

    @property
    def k(self) -> int:
        return len(self.names)

    def assign(self, frame: pd.DataFrame) -> np.ndarray:
        """The cluster index of each row (nearest centroid)."""
        z = self._standardize(frame)
        dist = ((z[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(dist, axis=1)

    def label(self, frame: pd.DataFrame) -> list[str]:
        """The cluster name of each row."""
        names = np.asarray(self.names, dtype=object)
        return list(names[self.assign(frame)])

    def _standardize(self, frame: pd.DataFrame) -> np.ndarray:
        x = _transform(frame, self.features)
        x = np.where(np.isnan(x), self.medians, x)
        return (x - self.means) / self.scales

    def save(self, directory: Path) -> None:
        """Write the fitted state to ``directory`` (created)."""
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / "clusters.npz",
            medians=self.medians,
            means=self.means,
            scales=self.scales,
            centroids=self.centroids,
        )
        meta = {
            "features": self.features,
            "names": self.names,
            "silhouettes": {str(k): v for k, v in self.silhouettes.items()},
        }
        (directory / "clusters.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, directory: Path) -> Clusters:
        """Read what :meth:`save` wrote."""
        meta = json.loads((directory / "clusters.json").read_text())
        with np.load(directory / "clusters.npz") as a:
            arrays = {name: a[name] for name in a.files}
        return cls(
            list(meta["features"]),
            arrays["medians"],
            arrays["means"],
            arrays["scales"],
            arrays["centroids"],
            list(meta["names"]),
            {int(k): float(v) for k, v in meta["silhouettes"].items()},
        )


def _transform(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    cols = []
    for name in features:
        values = frame[name].to_numpy(dtype="float64")
        if FEATURES[name][0]:
            values = np.log1p(np.clip(values, 0, None))
        cols.append(values)
    return np.column_stack(cols)


def name_clusters(centroids: np.ndarray, features: list[str]) -> list[str]:
    """Each centroid in words: its two features furthest from the mean (in standard
    deviations), the larger first; a name two clusters share gets the third."""
    names: list[str] = []
    for row in centroids:
        order = np.argsort(-np.abs(row), kind="stable")
        words = [str(FEATURES[features[j]][1 if row[j] > 0 else 2]) for j in order]
        name = ", ".join(words[:2])
        if name in names:
            name = ", ".join(words[:3])
        while name in names:
            name += "'"
        names.append(name)
    return names


def fit(frame: pd.DataFrame, *, seed: int = 42, k_range: range = K_RANGE) -> Clusters:
    """Fit k-means for each k in ``k_range`` and keep the best silhouette.

    Raises:
        ValueError: with fewer customers than twice the largest k.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    features = list(FEATURES)
    if len(frame) < 2 * max(k_range):
        raise ValueError(f"{len(frame)} customers: too few to cluster into up to {max(k_range)}")
    rng = np.random.default_rng([seed, 5])
    if len(frame) > FIT_SAMPLE:
        frame = frame.iloc[np.sort(rng.choice(len(frame), FIT_SAMPLE, replace=False))]
    x = _transform(frame, features)
    medians = np.nanmedian(x, axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)
    x = np.where(np.isnan(x), medians, x)
    means, scales = x.mean(axis=0), x.std(axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    z = (x - means) / scales
    sample = np.sort(rng.choice(len(z), min(len(z), SILHOUETTE_SAMPLE), replace=False))
    fitted: dict[int, Any] = {}
    silhouettes: dict[int, float] = {}
    for k in k_range:
        model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
        labels = model.labels_[sample]
        silhouettes[k] = (
            float(silhouette_score(z[sample], labels)) if len(set(labels)) > 1 else -1.0
        )
        fitted[k] = model
    best = max(silhouettes, key=lambda k: (silhouettes[k], -k))
    centroids = fitted[best].cluster_centers_
    log.info(
        "behaviour clusters: k=%d by silhouette %s",
        best,
        {k: round(v, 3) for k, v in silhouettes.items()},
    )
    return Clusters(
        features,
        medians,
        means,
        scales,
        centroids,
        name_clusters(centroids, features),
        silhouettes,
    )


def profile(frame: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per cluster: customers, their share, and the mean of each feature (raw units)."""
    data = frame[list(FEATURES)].assign(behaviour_cluster=labels)
    out = data.groupby("behaviour_cluster").mean()
    sizes = data["behaviour_cluster"].value_counts()
    out.insert(0, "customers", sizes.reindex(out.index).astype(int))
    out.insert(1, "share", out["customers"] / len(data))
    return out.sort_values("customers", ascending=False).reset_index()
