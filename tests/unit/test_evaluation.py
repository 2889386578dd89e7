"""Rolling origins of `clm evaluate`: the cutoffs each origin uses, and the summary."""

from datetime import date

import pytest

from clm.ml.evaluate import ORIGIN_STEP_DAYS, origin_cutoffs, rolling_summary


def test_each_origin_moves_every_cutoff_back_four_weeks() -> None:
    cutoffs = [date(2011, 3, 11), date(2011, 6, 9), date(2011, 9, 9)]
    origins = origin_cutoffs(cutoffs, 3, first_day=date(2010, 12, 1))
    assert origins[0] == cutoffs
    assert origins[2] == [date(2011, 1, 14), date(2011, 4, 14), date(2011, 7, 15)]
    assert all(
        (a - b).days == ORIGIN_STEP_DAYS
        for k in range(2)
        for a, b in zip(origins[k], origins[k + 1], strict=True)
    )


def test_origins_before_the_data_begin_are_refused() -> None:
    with pytest.raises(ValueError, match="data begin on 2011-01-01"):
        origin_cutoffs([date(2011, 2, 1), date(2011, 5, 1)], 3, first_day=date(2011, 1, 1))


def _origin(test: str, auc: dict[str, float], loss: dict[str, float]) -> dict:
    kinds = {"xgboost": "model", "lightgbm": "model", "recency": "baseline", "rfm": "baseline"}
    return {
        "test_cutoff": test,
        "tasks": {
            "churn": {
                n: {"kind": kinds[n], "metrics": {"roc_auc": auc[n], "log_loss": loss[n]}}
                for n in kinds
            }
        },
    }


def test_rolling_summary_means_and_the_gain_over_the_best_baseline() -> None:
    origins = [
        _origin(
            "2024-03-01",
            {"xgboost": 0.80, "lightgbm": 0.79, "recency": 0.70, "rfm": 0.78},
            {"xgboost": 0.50, "lightgbm": 0.52, "recency": 0.60, "rfm": 0.49},
        ),
        _origin(
            "2024-02-02",
            {"xgboost": 0.76, "lightgbm": 0.79, "recency": 0.71, "rfm": 0.77},
            {"xgboost": 0.52, "lightgbm": 0.51, "recency": 0.61, "rfm": 0.50},
        ),
    ]
    summary = rolling_summary(origins)
    assert summary["test_cutoffs"] == ["2024-03-01", "2024-02-02"]
    churn = summary["tasks"]["churn"]
    assert churn["candidates"]["xgboost"]["metrics"]["roc_auc"]["values"] == [0.80, 0.76]
    assert churn["candidates"]["xgboost"]["metrics"]["roc_auc"]["mean"] == pytest.approx(0.78)
    auc = churn["versus_best_baseline"]["roc_auc"]
    # lightgbm has the best mean (0.79 against 0.78), rfm the best baseline mean (0.775)
    assert (auc["model"], auc["baseline"]) == ("lightgbm", "rfm")
    assert auc["gains"] == pytest.approx([0.01, 0.02])
    assert auc["mean_gain"] == pytest.approx(0.015) and auc["origins_won"] == 2
    loss = churn["versus_best_baseline"]["log_loss"]  # smaller is better: gain = rfm - model
    assert (loss["model"], loss["baseline"]) == ("xgboost", "rfm")
    assert loss["gains"] == pytest.approx([-0.01, -0.02]) and loss["origins_won"] == 0
