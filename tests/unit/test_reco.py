"""Category recommendation: the metrics by hand, and the recommenders on a simulated shop
whose customers share tastes (the latent truth is the ceiling)."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from clm.data.simulate import CATEGORIES, simulate_shop
from clm.ml import reco

CUTOFF = date(2024, 7, 1)
HORIZON = 90


def test_hit_and_ndcg_at_3_by_hand() -> None:
    top = np.array([[0, 1, 2], [3, 2, 1], [1, -1, -1], [0, 1, 2]])
    rel = np.zeros((4, 5), dtype=bool)
    rel[0, [1, 4]] = True  # second place hits; two relevant
    rel[1, [4]] = True  # a miss
    rel[2, [1]] = True  # first place hits; only one category was left to recommend
    # customer 3 bought nothing new: not evaluated
    out = reco.per_customer(top, rel)
    assert list(out["row"]) == [0, 1, 2]
    assert list(out["hit_at_3"]) == [1.0, 0.0, 1.0]
    ideal_two = 1 + 1 / math.log2(3)
    assert out["ndcg_at_3"].tolist() == pytest.approx([(1 / math.log2(3)) / ideal_two, 0.0, 1.0])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reco")
    simulate_shop(
        root / "orders",
        root / "truth",
        n_customers=2_000,
        start=date(2024, 1, 1),
        days=(CUTOFF - date(2024, 1, 1)).days + HORIZON + 1,
        seed=11,
        dirty_rate=0.0,
    )
    return root


def test_recommendations_leave_out_recent_categories_and_repeat_exactly(shop: Path) -> None:
    h = reco.history(shop / "orders", CUTOFF)
    assert set(h.categories) == set(CATEGORIES)
    for name in (*reco.MODELS, *reco.BASELINES):
        scores = reco.fit_scores(name, h)
        np.testing.assert_array_equal(scores, reco.fit_scores(name, h))  # seeded, one thread
        top = reco.recommend(h, scores)
        valid = top >= 0
        assert valid.all(axis=1).mean() > 0.95  # three left for nearly everyone
        rows = np.nonzero(valid)[0]
        assert not h.recent[rows, top[valid]].any(), name
        for row in top:  # three distinct categories
            kept = row[row >= 0]
            assert len(set(kept)) == len(kept)
    named = reco.names(h, reco.recommend(h, reco.fit_scores("als", h)))
    assert all(set(n) <= set(CATEGORIES) for n in named)


def test_collaborative_filtering_finds_the_shared_tastes(shop: Path) -> None:
    oracle = reco.latent_preferences(shop / "truth")
    assert set(oracle.columns) == set(CATEGORIES)
    results = reco.evaluate(shop / "orders", CUTOFF, HORIZON, oracle=oracle)
    hit = {name: frame["hit_at_3"].mean() for name, frame in results.items()}
    ndcg = {name: frame["ndcg_at_3"].mean() for name, frame in results.items()}
    assert len(results["als"]) > 300  # customers who bought a category new to them
    for model in reco.MODELS:
        assert hit[model] > hit["own_top"] > hit["popularity"] + 0.05, hit
        assert ndcg[model] > ndcg["own_top"] > ndcg["popularity"], ndcg
        assert hit["oracle"] > hit[model] and ndcg["oracle"] > ndcg[model]
