"""Category recommendation: the metrics by hand, and the recommenders on a simulated shop
whose customers share tastes (the latent truth is the ceiling)."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc import PythonModel

from clm.core.settings import Settings
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


def test_a_saved_recommender_scores_and_recommends_as_the_fitted_one(
    shop: Path, tmp_path: Path
) -> None:
    """What MLflow stores is enough: every candidate, loaded back, gives the same scores;
    a customer without history gets the shop's popular categories, and a category the
    model never saw is never recommended."""
    h = reco.history(shop / "orders", CUTOFF)
    for kind in (*reco.MODELS, *reco.BASELINES):
        fitted = reco.Recommender.fit(kind, h)
        fitted.save(tmp_path / kind)
        loaded = reco.Recommender.load(tmp_path / kind)
        np.testing.assert_allclose(loaded.scores(h.counts), fitted.scores(h.counts), rtol=1e-6)
        assert loaded.recommend(h, h.customers[:50]) == fitted.recommend(h, h.customers[:50])
    popular = list(reco.Recommender.fit("popularity", h).recommend(h, h.customers[:1])[0])
    item_item = reco.Recommender.fit("item_item", h)
    assert item_item.recommend(h, pd.Index(["nobody"])) == [popular]
    narrow = reco.Recommender.load(tmp_path / "item_item")
    known = [c for c in narrow.categories if c != popular[0]]
    keep = [narrow.categories.index(c) for c in known]
    narrow.categories = known
    narrow.popularity = narrow.popularity[keep]
    narrow.state["similarity"] = narrow.state["similarity"][np.ix_(keep, keep)]
    assert all(popular[0] not in cats for cats in narrow.recommend(h, h.customers))


def test_the_mlflow_model_is_a_pyfunc_any_consumer_can_score(
    shop: Path, settings: Settings
) -> None:
    import mlflow

    from clm.ml.reco_model import history_frame, load_recommender, log_recommender
    from clm.ml.registry import setup_mlflow

    h = reco.history(shop / "orders", CUTOFF)
    fitted = reco.Recommender.fit("als", h)
    setup_mlflow(settings, ["clm-reco"])
    mlflow.set_experiment("clm-reco")
    with mlflow.start_run():
        uri = log_recommender(fitted, history_frame(h.counts, list(h.categories)), "als")
    assert load_recommender(uri).recommend(h, h.customers) == fitted.recommend(h, h.customers)
    frame = pd.DataFrame(h.counts[:20].toarray(), columns=h.categories).astype("float32")
    scores = mlflow.pyfunc.load_model(uri).predict(frame)
    np.testing.assert_allclose(scores.to_numpy(), fitted.scores(h.counts[:20]), rtol=1e-5)
    with mlflow.start_run():
        other = mlflow.pyfunc.log_model(name="model", python_model=_Echo()).model_uri
    with pytest.raises(ValueError, match="not a recommender"):
        load_recommender(other)
    # the alias moves back only to a recommender
    from clm.ml.registry import current_champion, rollback

    mlflow.register_model(uri, "clm-reco", tags={"decision": "promote", "state": "done"})
    mlflow.register_model(other, "clm-reco", tags={"decision": "promote", "state": "done"})
    with pytest.raises(ValueError, match="not a reco model"):
        rollback("clm-reco", "2", None)
    rollback("clm-reco", "1", None)
    assert str(current_champion(mlflow.MlflowClient(), "clm-reco").version) == "1"


class _Echo(PythonModel):  # type: ignore[misc]
    """Some other pyfunc model."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return model_input
