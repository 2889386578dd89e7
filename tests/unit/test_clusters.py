"""Behavioural clusters: k by silhouette, names from the profile, a stored state that
assigns the same clusters, and the MLflow model any consumer can call."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clm.core.settings import Settings
from clm.ml import clusters


def _shop(n_per: int = 400, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Three kinds of customers, well apart: loyal big spenders, lapsing bargain
    hunters, and one-category browsers who visit a lot."""
    rng = np.random.default_rng(seed)
    kinds = {
        "loyal": dict(recency_days=5, orders_per_30d=4, spend_per_30d=400, avg_order_value=100,
                      category_breadth=6, discount_share=0.05, return_rate=0.02, visits_30d=10),
        "lapsing": dict(recency_days=200, orders_per_30d=0.2, spend_per_30d=6, avg_order_value=30,
                        category_breadth=2, discount_share=0.8, return_rate=0.1, visits_30d=0),
        "browser": dict(recency_days=40, orders_per_30d=1, spend_per_30d=40, avg_order_value=40,
                        category_breadth=1, discount_share=0.2, return_rate=0.02, visits_30d=60),
    }  # fmt: skip
    frames, truth = [], []
    for i, centre in enumerate(kinds.values()):
        rows = {k: v * np.exp(rng.normal(0, 0.15, n_per)) for k, v in centre.items()}
        rows["discount_share"] = np.clip(rows["discount_share"], 0, 1)
        frames.append(pd.DataFrame(rows))
        truth += [i] * n_per
    frame = pd.concat(frames, ignore_index=True)
    frame.loc[::50, "avg_order_value"] = np.nan  # a gap is imputed, not fatal
    return frame, np.asarray(truth)


def test_k_is_chosen_by_silhouette_and_the_clusters_are_the_kinds() -> None:
    frame, truth = _shop()
    fitted = clusters.fit(frame, seed=1)
    assert fitted.k == 3 == max(fitted.silhouettes, key=fitted.silhouettes.get)
    assigned = fitted.assign(frame)
    # each kind lands in one cluster (a permutation of the truth)
    assert all(len(set(assigned[truth == i])) == 1 for i in range(3))
    assert len(set(fitted.names)) == 3
    by_kind = {i: fitted.names[assigned[truth == i][0]] for i in range(3)}
    assert "lapsing" in by_kind[1] or "deal seekers" in by_kind[1]
    assert "frequent visitors" in by_kind[2] or "one category" in by_kind[2]
    np.testing.assert_array_equal(clusters.fit(frame, seed=1).centroids, fitted.centroids)
    table = clusters.profile(frame, fitted.label(frame))
    assert table["customers"].sum() == len(frame) and table["share"].sum() == pytest.approx(1)


def test_names_stay_distinct_when_two_profiles_share_their_top_words() -> None:
    features = list(clusters.FEATURES)
    centroids = np.zeros((3, len(features)))
    centroids[:, 0] = 3  # all lapsing
    centroids[:, 1] = 2  # all frequent
    centroids[1, 2] = 1  # one big spender
    names = clusters.name_clusters(centroids, features)
    assert len(set(names)) == 3 and names[0] == "lapsing, frequent"


def test_too_few_customers_is_a_clear_error() -> None:
    frame, _ = _shop(n_per=3)
    with pytest.raises(ValueError, match="too few to cluster"):
        clusters.fit(frame)


def test_the_stored_clusters_assign_the_same_and_serve_through_mlflow(
    settings: Settings, tmp_path: Path
) -> None:
    import mlflow

    from clm.ml.cluster_model import load_clusters, log_clusters
    from clm.ml.registry import setup_mlflow

    frame, _ = _shop()
    fitted = clusters.fit(frame, seed=1)
    fitted.save(tmp_path / "c")
    assert clusters.Clusters.load(tmp_path / "c").label(frame) == fitted.label(frame)
    setup_mlflow(settings, ["clm-clusters"])
    mlflow.set_experiment("clm-clusters")
    with mlflow.start_run():
        uri = log_clusters(fitted, frame.head(5))
    assert load_clusters(uri).label(frame) == fitted.label(frame)
    served = mlflow.pyfunc.load_model(uri).predict(frame[list(clusters.FEATURES)].head(20))
    assert list(np.asarray(served).ravel()) == fitted.label(frame.head(20))
