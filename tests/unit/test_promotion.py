"""Promotion against a real MLflow registry (SQLite) and the warehouse.

Each case goes through the same function the train DAG calls
(``_decide_and_promote``): the champion is loaded from the registry and scored
on the challenger's test rows, the decision is tagged on the version and
written to ``model_promotions``, and the alias moves only when promoted.
"""

from __future__ import annotations

from datetime import date

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from clm.app.cli import app
from clm.core.settings import Settings
from clm.data import warehouse
from clm.ml import models
from clm.ml.compare import Candidate, task_data
from clm.ml.metrics import score
from clm.ml.promotion import decide
from clm.ml.registry import REGISTERED, current_champion, rollback, setup_mlflow
from clm.ml.tracking import pip_requirements
from clm.ml.train import _decide_and_promote

NAMES = ["f0", "f1", "f2"]
DS = date(2024, 6, 1)


def _frame(seed: int = 0, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    churned = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(0, 0.7, n) > 0).astype(int)
    frame = pd.DataFrame(x, columns=NAMES)
    frame["customer_id"] = [f"C{i:05d}" for i in range(n)]
    frame["cutoff"] = date(2024, 3, 1)
    frame["churned"] = churned
    frame["future_spend"] = 0.0
    frame["role"] = np.array(["train", "val", "test"])[np.arange(n) % 3]
    return frame


def _candidate(settings: Settings, frame: pd.DataFrame, *, names=NAMES, shuffle=False):
    """Train a real XGBoost churn model and log it as MLflow does in training."""
    data = task_data("churn", frame, list(names))
    y_train = data.y("train")
    if shuffle:  # a deliberately worse challenger: it learned noise
        y_train = np.random.default_rng(1).permutation(y_train)
    trained = models.train_model(
        "xgboost",
        "churn",
        data.x("train"),
        y_train,
        data.x("val"),
        data.y("val"),
        params=dict(models.default_params("xgboost"), n_estimators=50),
        seed=42,
    )
    pred = trained.predict(data.x("test"))
    setup_mlflow(settings)
    mlflow.set_experiment(REGISTERED["churn"])
    with mlflow.start_run() as run:
        example = data.x("test").head(3)
        info = mlflow.xgboost.log_model(
            trained.model,
            name="model",
            signature=mlflow.models.infer_signature(example, pred[:3]),
            input_example=example,
            metadata={"task": "churn", "calibration": trained.calibration.as_dict()},
            pip_requirements=pip_requirements("xgboost"),
        )
    cand = Candidate(
        "xgboost", "model", "churn", "", {}, pred, score("churn", data.y("test"), pred), {}, trained
    )
    return data, cand, info.model_uri, run.info.run_id


def _promote(settings: Settings, frame: pd.DataFrame, ds: date = DS, force=False, **kw):
    data, cand, uri, _ = _candidate(settings, frame, **kw)
    with mlflow.start_run() as parent:  # train() decides inside the parent run
        return _decide_and_promote(
            settings,
            mlflow.MlflowClient(),
            data,
            cand,
            uri,
            ds=ds,
            force=force,
            run_id=parent.info.run_id,
        )


def _alias(settings: Settings) -> str | None:
    setup_mlflow(settings)
    version = current_champion(mlflow.MlflowClient(), "clm-churn")
    return None if version is None else str(version.version)


def _history(settings: Settings) -> pd.DataFrame:
    return warehouse.query(settings.warehouse, "SELECT * FROM model_promotions ORDER BY ds")


def test_first_model_is_promoted_and_recorded(settings: Settings) -> None:
    decided = _promote(settings, _frame())
    assert decided["decision"] == "promote" and decided["version"] == "1"
    assert "no current champion" in decided["reasons"]
    assert _alias(settings) == "1"
    tags = mlflow.MlflowClient().get_model_version("clm-churn", "1").tags
    assert tags["decision"] == "promote" and "no current champion" in tags["reasons"]
    history = _history(settings)
    assert history[["challenger_version", "decision"]].values.tolist() == [["1", "promote"]]


def test_a_worse_challenger_is_kept_out(settings: Settings) -> None:
    frame = _frame()
    _promote(settings, frame)
    decided = _promote(settings, frame, ds=date(2024, 6, 8), shuffle=True)
    assert decided["decision"] == "keep"
    assert decided["champion_score"] > decided["roc_auc"]
    assert any("does not beat the champion" in r for r in decided["reasons"])
    assert _alias(settings) == "1"
    tags = mlflow.MlflowClient().get_model_version("clm-churn", "2").tags
    assert tags["decision"] == "keep" and tags["compared_with"] == "1"
    assert _history(settings)["decision"].tolist() == ["promote", "keep"]


def test_a_gain_inside_the_margin_is_kept_out(settings: Settings) -> None:
    frame = _frame()
    _promote(settings, frame)
    # The same model retrained: identical score, so any positive margin keeps it out.
    wide = settings.model_copy(update={"promotion_margin": 0.05})
    decided = _promote(wide, frame, ds=date(2024, 6, 8))
    assert decided["decision"] == "keep"
    assert abs(decided["roc_auc"] - decided["champion_score"]) < 0.05
    assert "by the margin 0.0500" in decided["reasons"][0]
    assert _alias(settings) == "1"


def test_a_schema_mismatch_is_refused_even_when_forced(settings: Settings) -> None:
    _promote(settings, _frame())
    # The challenger was logged with f0, f1, f2; today's feature service says f0, f1, other.
    _, cand, uri, run_id = _candidate(settings, _frame())
    bad = task_data("churn", _frame().rename(columns={"f2": "other"}), ["f0", "f1", "other"])
    with mlflow.start_run():
        decided = _decide_and_promote(
            settings,
            mlflow.MlflowClient(),
            bad,
            cand,
            uri,
            ds=date(2024, 6, 8),
            force=True,
            run_id=run_id,
        )
    assert decided["decision"] == "keep"
    assert decided["reasons"] == ["feature schema does not match the feature service"]
    assert _alias(settings) == "1"


def test_rollback_moves_the_alias_back(settings: Settings, monkeypatch) -> None:
    # The feature service's names (Feast's own path is covered in test_scoring).
    monkeypatch.setattr("clm.data.feature_store.feature_names", lambda settings, service: NAMES)
    frame = _frame()
    _promote(settings, frame)
    _promote(settings, frame, ds=date(2024, 6, 8), force=True)
    assert _alias(settings) == "2"
    result = CliRunner().invoke(app, ["models", "rollback", "--model", "clm-churn", "--to", "1"])
    assert result.exit_code == 0, result.output
    assert _alias(settings) == "1"
    listing = CliRunner().invoke(app, ["models"])
    assert "clm-churn@champion = v1" in listing.output
    with pytest.raises(Exception, match="9"):
        rollback("clm-churn", "9", NAMES)
    assert _alias(settings) == "1"


def test_rollback_refuses_another_schema_even_with_a_reason(settings: Settings) -> None:
    frame = _frame()
    _promote(settings, frame)
    other = frame.rename(columns={"f2": "other"})
    _promote(settings, other, ds=date(2024, 6, 8), names=["f0", "f1", "other"], force=True)
    assert _alias(settings) == "2"  # promoted: the task data said f0, f1, other
    with pytest.raises(ValueError, match=r"missing \['f2'\], unknown \['other'\]"):
        rollback("clm-churn", "2", NAMES, override_reason="I know what I am doing")
    rollback("clm-churn", "1", NAMES)
    assert _alias(settings) == "1"


def test_a_version_that_lost_needs_a_recorded_override(settings: Settings) -> None:
    frame = _frame()
    _promote(settings, frame)
    assert _promote(settings, frame, ds=date(2024, 6, 8), shuffle=True)["decision"] == "keep"
    with pytest.raises(ValueError, match="never promoted .decision: keep.*--override-reason"):
        rollback("clm-churn", "2", NAMES)
    assert _alias(settings) == "1"
    rollback("clm-churn", "2", NAMES, override_reason="incident 42: v1 mis-scores returns")
    assert _alias(settings) == "2"
    tags = mlflow.MlflowClient().get_model_version("clm-churn", "2").tags
    assert tags["override_reason"] == "incident 42: v1 mis-scores returns"
    assert tags["rolled_back_from"] == "1"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_score_that_is_not_a_number_never_promotes(bad: float) -> None:
    for champion in (None, 0.7):
        for force in (False, True):
            decision = decide(bad, champion, floor=0.5, margin=0.0, schema_ok=True, force=force)
            assert not decision.promote
            assert decision.reasons == [f"score {bad} is not a finite number"]
    compared = decide(0.8, float("nan"), floor=0.5, margin=0.0, schema_ok=True)
    assert compared.promote and "not comparable" in compared.reasons[0]
    assert not any("beats" in r for r in compared.reasons)


def test_a_version_left_undecided_by_a_crash_is_retired_next_time(settings: Settings) -> None:
    frame = _frame()
    _promote(settings, frame)
    _, _, uri, _ = _candidate(settings, frame)
    mlflow.register_model(uri, "clm-churn")  # the run died right after registering v2
    _, _, uri, _ = _candidate(settings, frame)
    mlflow.register_model(uri, "clm-churn", tags={"decision": "promote", "state": "pending"})
    decided = _promote(settings, frame, ds=date(2024, 6, 8), shuffle=True)
    client = mlflow.MlflowClient()
    for version in ("2", "3"):
        tags = client.get_model_version("clm-churn", version).tags
        assert tags["decision"] == "retired" and tags["state"] == "done"
        assert (
            "stopped before deciding; retired by the training run of 2024-06-08" in tags["reasons"]
        )
    assert decided["version"] == "4" and _alias(settings) == "1"
    assert client.get_model_version("clm-churn", "4").tags["state"] == "done"
    with pytest.raises(ValueError, match="never promoted .decision: retired"):
        rollback("clm-churn", "3", NAMES)


def test_training_comes_first_when_a_champion_cannot_score_todays_features(
    settings: Settings,
) -> None:
    """No champion, or one trained before a feature was added: the day asks for training
    (scoring would refuse that champion), and stops asking once the champions fit."""
    from clm.ml.registry import training_needed

    services = {"churn": NAMES, "clv": NAMES}
    assert training_needed(settings, services) == "clm-churn has no champion yet"
    _promote(settings, _frame())
    client = mlflow.MlflowClient()
    uri = client.get_model_version("clm-churn", "1").source
    mlflow.register_model(uri, "clm-clv")
    client.set_registered_model_alias("clm-clv", "champion", "1")
    assert training_needed(settings, services) is None
    grown = {"churn": [*NAMES, "review_sentiment_90d"], "clv": NAMES}
    why = training_needed(settings, grown)
    assert why is not None and "clm-churn@champion (v1) cannot score" in why
    assert "missing ['review_sentiment_90d']" in why
