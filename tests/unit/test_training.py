from datetime import date

import numpy as np
import pandas as pd
import pytest

from clm.core.settings import Settings
from clm.data.ingest import ingest
from clm.ml.metrics import churn_metrics, normalized_gini, top_decile_lift, value_metrics
from clm.ml.promotion import decide
from clm.ml.train import build_set, sample_rows


def test_first_model_is_promoted() -> None:
    d = decide(0.75, None, floor=0.6, margin=0.01, schema_ok=True)
    assert d.promote and "no current champion" in d.reasons


def test_worse_challenger_is_kept_out() -> None:
    d = decide(0.70, 0.75, floor=0.6, margin=0.01, schema_ok=True)
    assert not d.promote and "does not beat" in d.reasons[0]


def test_gain_inside_the_margin_is_kept_out() -> None:
    assert not decide(0.755, 0.75, floor=0.6, margin=0.01, schema_ok=True).promote
    assert decide(0.761, 0.75, floor=0.6, margin=0.01, schema_ok=True).promote


def test_schema_mismatch_is_refused_even_when_forced() -> None:
    d = decide(0.99, 0.5, floor=0.6, margin=0.0, schema_ok=False, force=True)
    assert not d.promote and "schema" in d.reasons[0]


def test_floor_blocks_unless_forced() -> None:
    assert not decide(0.55, None, floor=0.6, margin=0.0, schema_ok=True).promote
    assert decide(0.55, None, floor=0.6, margin=0.0, schema_ok=True, force=True).promote


def test_churn_metrics_on_a_perfect_and_a_random_ranking() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 0] * 10)
    perfect = churn_metrics(y, y * 0.8 + 0.1)
    assert perfect["roc_auc"] == 1.0 and perfect["top_decile_lift"] == pytest.approx(1 / 0.3)
    flat = churn_metrics(y, np.full(len(y), 0.3))
    assert flat["roc_auc"] == 0.5
    with pytest.raises(ValueError):
        churn_metrics(np.zeros(5), np.zeros(5))


def test_value_metrics() -> None:
    actual = np.array([0, 0, 10, 20, 100.0])
    assert normalized_gini(actual, actual) == pytest.approx(1.0)
    assert normalized_gini(actual, -actual) < 0
    m = value_metrics(actual, actual * 1.1)
    assert m["total_pred_vs_actual_pct"] == pytest.approx(110.0) and m["spearman"] > 0.9
    assert top_decile_lift(np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0]), np.arange(10)[::-1]) == 10


def _panel(customers: int, cutoffs: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(customers) for _ in range(cutoffs)],
            "cutoff": [c for _ in range(customers) for c in range(cutoffs)],
        }
    )


def test_sample_rows_draws_rows_at_random_and_is_seeded() -> None:
    panel = _panel(1_000, 20)
    assert sample_rows(panel, 0, seed=1) is panel
    assert sample_rows(panel, 20_000, seed=1) is panel
    drawn = sample_rows(panel, 2_000, seed=1)
    assert len(drawn) == 2_000 and not drawn.duplicated().any()
    assert len(drawn.merge(panel, on=["customer_id", "cutoff"])) == 2_000  # rows of the panel
    # rows, not whole customers: most of the shop is kept, each at a few cutoffs
    assert drawn["customer_id"].nunique() > 800
    # every cutoff keeps about the same share (a tenth here)
    assert drawn.groupby("cutoff").size().between(60, 140).all()
    pd.testing.assert_frame_equal(drawn, sample_rows(panel, 2_000, seed=1))
    assert not drawn.equals(sample_rows(panel, 2_000, seed=2))
    keys = list(zip(drawn["customer_id"], drawn["cutoff"], strict=True))
    assert keys == sorted(keys)  # in the panel's order


def test_training_set_is_cut_to_max_rows(small_shop: Settings) -> None:
    ingest(small_shop, date(2024, 2, 9))
    cutoffs = [date(2024, 1, 15), date(2024, 1, 25)]
    full = build_set(small_shop, cutoffs, 7)
    cut = build_set(small_shop, cutoffs, 7, max_rows=100)
    assert cut.customers == full.customers == full.frame["customer_id"].nunique()
    assert len(full.frame) > 100 >= len(cut.frame) > 90
    assert cut.frame["customer_id"].nunique() < full.customers
    assert set(cut.frame["cutoff"]) == set(full.frame["cutoff"])  # every cutoff keeps rows
    merged = cut.frame.merge(full.frame, on=["customer_id", "cutoff"], suffixes=("", "_full"))
    assert len(merged) == len(cut.frame)  # the same rows, labels unchanged
    assert (merged["churned"] == merged["churned_full"]).all()
    assert set(cut.frame["role"]) == {"train", "val", "test"}
