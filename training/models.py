"""The two model families for the two tasks, with deterministic settings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

FAMILIES = ("xgboost", "lightgbm")
TASKS = ("churn", "clv")


def default_params(family: str) -> dict[str, Any]:
    """Reasonable untuned hyperparameters for ``family``."""
    if family == "xgboost":
        return {
            "n_estimators": 400,
            "learning_rate": 0.05,
            "max_depth": 4,
            "min_child_weight": 5.0,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
        }
    if family == "lightgbm":
        return {
            "n_estimators": 400,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_child_samples": 20,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
        }
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def build(family: str, task: str, params: dict[str, Any], seed: int) -> Any:
    """An unfitted estimator. Churn is binary; clv regresses spend with a Tweedie loss."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if family == "xgboost":
        import xgboost as xgb

        common = dict(
            params, random_state=seed, n_jobs=2, early_stopping_rounds=30, tree_method="hist"
        )
        if task == "churn":
            return xgb.XGBClassifier(**common, eval_metric="logloss")
        return xgb.XGBRegressor(
            **common, objective="reg:tweedie", tweedie_variance_power=1.3, eval_metric="rmse"
        )
    if family == "lightgbm":
        import lightgbm as lgb

        common = dict(
            params,
            subsample_freq=1,
            random_state=seed,
            n_jobs=2,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
        if task == "churn":
            return lgb.LGBMClassifier(**common)
        return lgb.LGBMRegressor(**common, objective="tweedie", tweedie_variance_power=1.3)
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def fit(
    model: Any,
    family: str,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_val: pd.DataFrame,
    y_val: np.ndarray,
) -> Any:
    """Fit with early stopping on the validation slice."""
    if family == "xgboost":
        model.fit(x_train, y_train, eval_set=[(x_val, y_val)], verbose=False)
    else:
        import lightgbm as lgb

        model.fit(
            x_train,
            y_train,
            eval_X=(x_val,),
            eval_y=(y_val,),
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )
    return model


def predict(model: Any, task: str, x: pd.DataFrame) -> np.ndarray:
    """Churn probability or expected spend."""
    if task == "churn":
        return np.asarray(model.predict_proba(x)[:, 1])
    return np.clip(np.asarray(model.predict(x)), 0, None)


def contributions(model: Any, family: str, x: pd.DataFrame) -> np.ndarray:
    """Tree SHAP contributions per feature (bias column dropped), natively computed."""
    if family == "xgboost":
        import xgboost as xgb

        booster = model.get_booster()
        contrib = booster.predict(xgb.DMatrix(x), pred_contribs=True)
    else:
        contrib = model.predict(x, pred_contrib=True)
    return np.asarray(contrib)[:, : x.shape[1]]
