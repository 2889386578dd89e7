"""PSI against a training reference, and the drift signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clm.data.drift import profile, psi, psi_table


def _frame(seed: int, shift: float = 0.0, n: int = 5000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "recency_days": rng.exponential(30, n) + shift,
            "frequency": rng.poisson(3, n).astype(float),
            "avg_rating": np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 6, n)),
            "churn_probability": rng.beta(2, 5, n),
        }
    )


def test_same_distribution_is_stable_and_a_shift_is_not() -> None:
    reference = profile(_frame(1))
    same = psi_table(
        reference, _frame(2), score="churn_probability", feature_threshold=0.25, score_threshold=0.2
    )
    assert (same["psi"] < 0.02).all() and not same["drifted"].any()
    shifted = psi_table(
        reference,
        _frame(2, shift=40),
        score="churn_probability",
        feature_threshold=0.25,
        score_threshold=0.2,
    ).set_index("name")
    assert shifted.loc["recency_days", "psi"] > 1 and shifted.loc["recency_days", "drifted"]
    assert shifted.loc["churn_probability", "kind"] == "score"
    assert shifted.loc["churn_probability", "threshold"] == 0.2
    assert not shifted.loc["frequency", "drifted"]


def test_missing_values_have_their_own_bin() -> None:
    reference = profile(_frame(1))
    now = _frame(2)
    now["avg_rating"] = np.nan  # every rating missing today
    assert psi(reference["avg_rating"], now["avg_rating"].to_numpy()) > 1


def test_exempt_features_are_recorded_but_not_flagged() -> None:
    table = psi_table(
        profile(_frame(1)),
        _frame(2, shift=40),
        score="churn_probability",
        feature_threshold=0.25,
        score_threshold=0.25,
        exempt=frozenset({"recency_days"}),
    ).set_index("name")
    assert table.loc["recency_days", "psi"] > 1 and not table.loc["recency_days", "drifted"]


def test_discrete_and_constant_columns_do_not_break_the_bins() -> None:
    frame = pd.DataFrame({"constant": np.ones(100), "binary": np.r_[np.zeros(90), np.ones(10)]})
    reference = profile(frame)
    assert psi(reference["constant"], np.ones(50)) == pytest.approx(0, abs=1e-9)
    assert psi(reference["binary"], np.r_[np.zeros(45), np.ones(5)]) == pytest.approx(0, abs=1e-9)
    assert psi(reference["binary"], np.r_[np.zeros(10), np.ones(40)]) > 1


def test_an_empty_reference_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        profile(pd.DataFrame({"x": []}))


def test_signal_drift_skips_unless_retraining_was_asked() -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from clm.app.tasks import signal_drift

    with pytest.raises(AirflowSkipException, match="no drift"):
        signal_drift({"ds": "2024-01-01", "drifted": [], "retrain": False}, {})
    with pytest.raises(AirflowSkipException, match="cooldown"):
        signal_drift({"ds": "2024-01-01", "drifted": ["x"], "retrain": False}, {})
    out = signal_drift({"ds": "2024-01-01", "drifted": ["x"], "retrain": True}, {})
    assert out == {"ds": "2024-01-01", "drifted": ["x"]}
