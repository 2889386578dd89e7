import numpy as np
import pytest

from clm.ml.metrics import churn_metrics, normalized_gini, top_decile_lift, value_metrics
from clm.ml.promotion import decide


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
