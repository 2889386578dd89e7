"""The two model families for the three tasks: build, tune, fit, calibrate, predict.

Settings are deterministic: one seed feeds XGBoost's ``random_state`` and
LightGBM's ``seed`` with ``deterministic=True``, and Optuna's sampler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

FAMILIES = ("xgboost", "lightgbm")
TASKS = ("churn", "clv", "conversion")
# Classification tasks: a probability, Platt-calibrated. Churn is P(no order in H days)
# for a buyer; conversion is P(a first order in H days) for a prospect.
BINARY = frozenset({"churn", "conversion"})
TWEEDIE_POWER = 1.3
EARLY_STOPPING_ROUNDS = 50
# The metric early stopping and pruning watch, with its direction. The binary tasks
# watch ROC AUC, their primary metric; spend watches the Tweedie deviance it is
# trained on.
EVAL_METRIC = {
    ("xgboost", "churn"): "auc",
    ("lightgbm", "churn"): "auc",
    ("xgboost", "conversion"): "auc",
    ("lightgbm", "conversion"): "auc",
    ("xgboost", "clv"): f"tweedie-nloglik@{TWEEDIE_POWER}",
    ("lightgbm", "clv"): "tweedie",
}
DIRECTION: dict[str, Literal["maximize", "minimize"]] = {
    "churn": "maximize",
    "clv": "minimize",
    "conversion": "maximize",
}


def default_params(family: str) -> dict[str, Any]:
    """Reasonable untuned hyperparameters for ``family``.

    Raises:
        ValueError: for an unknown family.
    """
    if family == "xgboost":
        return {
            "n_estimators": 1000,
            "learning_rate": 0.05,
            "max_depth": 4,
            "min_child_weight": 5.0,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
        }
    if family == "lightgbm":
        return {
            "n_estimators": 1000,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_child_samples": 20,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
        }
    raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")


def suggest_params(trial: Any, family: str) -> dict[str, Any]:
    """Optuna's search space for ``family``, on top of :func:`default_params`."""
    params = dict(
        default_params(family),
        learning_rate=trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        reg_lambda=trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        subsample=trial.suggest_float("subsample", 0.5, 1.0),
        colsample_bytree=trial.suggest_float("colsample_bytree", 0.4, 1.0),
    )
    if family == "xgboost":
        params["max_depth"] = trial.suggest_int("max_depth", 2, 7)
        params["min_child_weight"] = trial.suggest_float("min_child_weight", 1.0, 100.0, log=True)
    else:
        params["num_leaves"] = trial.suggest_int("num_leaves", 4, 63, log=True)
        params["min_child_samples"] = trial.suggest_int("min_child_samples", 5, 200, log=True)
    return params


def build(
    family: str, task: str, params: dict[str, Any], seed: int, callbacks: list[Any] | None = None
) -> Any:
    """An unfitted estimator. Churn and conversion are binary; clv regresses spend with a
    Tweedie loss.

    Raises:
        ValueError: for an unknown family or task.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    metric = EVAL_METRIC[(family, task)]
    if family == "xgboost":
        import xgboost as xgb

        common = dict(
            params,
            random_state=seed,
            n_jobs=2,
            early_stopping_rounds=EARLY_STOPPING_ROUNDS,
            tree_method="hist",
            eval_metric=metric,
            callbacks=callbacks,
        )
        if task in BINARY:
            return xgb.XGBClassifier(**common)
        return xgb.XGBRegressor(
            **common, objective="reg:tweedie", tweedie_variance_power=TWEEDIE_POWER
        )
    import lightgbm as lgb

    common = dict(
        params,
        subsample_freq=1,
        random_state=seed,
        n_jobs=2,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
        metric=metric,
    )
    if task in BINARY:
        return lgb.LGBMClassifier(**common)
    return lgb.LGBMRegressor(**common, objective="tweedie", tweedie_variance_power=TWEEDIE_POWER)


def fit(
    model: Any,
    family: str,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_val: pd.DataFrame,
    y_val: np.ndarray,
    callbacks: list[Any] | None = None,
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
            callbacks=[
                lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False),
                *(callbacks or []),
            ],
        )
    return model


def raw_predict(model: Any, task: str, x: pd.DataFrame) -> np.ndarray:
    """Uncalibrated churn probability, or expected spend (never negative).

    ``model`` is a scikit-learn style estimator, or a LightGBM ``Booster`` as the
    registry logs it (its ``predict`` gives the probability of a binary objective).
    """
    if task in BINARY and hasattr(model, "predict_proba"):
        return np.asarray(model.predict_proba(x)[:, 1], dtype=float)
    return np.clip(np.asarray(model.predict(x), dtype=float), 0, None)


def native(model: Any) -> Any:
    """What the registry logs: a LightGBM estimator's ``Booster``, an XGBoost estimator as is.

    Both are then stored in their library's own format (LightGBM's text model,
    XGBoost's UBJSON), so loading a champion unpickles nothing and needs neither
    scikit-learn nor skops (whose import alone took 3 s of every scoring task).
    """
    return getattr(model, "booster_", model)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p / (1 - p)))


@dataclass(frozen=True)
class Calibration:
    """Platt scaling on the logit: ``p' = sigmoid(slope * logit(p) + intercept)``.

    Two numbers, stored in the MLflow model's metadata, so the logged model
    keeps its native flavor (and its native tree SHAP) and scoring applies the
    same map.
    """

    slope: float
    intercept: float

    def apply(self, p: np.ndarray) -> np.ndarray:
        z = self.slope * _logit(np.asarray(p, dtype=float)) + self.intercept
        return np.asarray(1 / (1 + np.exp(-z)))

    def as_dict(self) -> dict[str, Any]:
        return {"method": "platt", "slope": self.slope, "intercept": self.intercept}


@dataclass(frozen=True)
class TotalScale:
    """Expected spend times one factor, so the validation slice's predicted total
    equals its actual total: ``s' = factor * s``.

    A Tweedie model stopped early sits below the mean of a heavy-tailed target
    (on UCI Online Retail the validation totals were 10 to 35% short). One
    positive factor fixes the total a finance team adds up and leaves every
    rank, so Spearman and Gini, as they were.
    """

    factor: float

    def apply(self, s: np.ndarray) -> np.ndarray:
        return np.asarray(s, dtype=float) * self.factor

    def as_dict(self) -> dict[str, Any]:
        return {"method": "total", "factor": self.factor}


def load_calibration(d: dict[str, Any] | None) -> Calibration | TotalScale | None:
    """The calibration a model's metadata records (None when it has none).

    Raises:
        ValueError: for an unknown method.
    """
    if not d:
        return None
    if d.get("method") == "platt":
        return Calibration(float(d["slope"]), float(d["intercept"]))
    if d.get("method") == "total":
        return TotalScale(float(d["factor"]))
    raise ValueError(f"unknown calibration method {d.get('method')!r}")


def fit_calibration(p_val: np.ndarray, y_val: np.ndarray) -> Calibration:
    """Platt scaling fitted on the validation slice (nearly unregularised)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6).fit(_logit(np.asarray(p_val)).reshape(-1, 1), y_val)
    return Calibration(float(lr.coef_[0, 0]), float(lr.intercept_[0]))


def fit_total_scale(s_val: np.ndarray, y_val: np.ndarray) -> TotalScale | None:
    """The factor that makes the validation slice's predicted total its actual total
    (None when either total is not positive: nothing to scale by)."""
    predicted, actual = float(np.sum(s_val)), float(np.sum(y_val))
    if predicted <= 0 or actual <= 0:
        return None
    return TotalScale(actual / predicted)


@dataclass
class Trained:
    """A fitted model with what scoring needs to use it: family, task and calibration."""

    model: Any
    family: str
    task: str
    calibration: Calibration | TotalScale | None = None
    reference: dict[str, Any] | None = None  # drift bins of the training rows (clm.data.drift)

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability, or expected spend."""
        raw = raw_predict(self.model, self.task, x)
        return raw if self.calibration is None else self.calibration.apply(raw)

    def importance(self, names: list[str]) -> dict[str, float]:
        """Total gain per feature, normalised to sum to 1."""
        if self.family == "xgboost":
            gains = self.model.get_booster().get_score(importance_type="total_gain")
            values = np.array([gains.get(n, 0.0) for n in names], dtype=float)
        else:
            booster = native(self.model)
            values = np.asarray(booster.feature_importance(importance_type="gain"), dtype=float)
        total = values.sum()
        return {n: float(v / total) if total else 0.0 for n, v in zip(names, values, strict=True)}


def contributions(trained: Trained, x: pd.DataFrame) -> np.ndarray:
    """Tree SHAP contributions per feature (bias column dropped), natively computed."""
    if trained.family == "xgboost":
        import xgboost as xgb

        booster = trained.model.get_booster()
        contrib = booster.predict(xgb.DMatrix(x), pred_contribs=True)
    else:
        contrib = trained.model.predict(x, pred_contrib=True)
    return np.asarray(contrib)[:, : x.shape[1]]


def pruning_callback(trial: Any, family: str, task: str) -> Any:
    """Optuna's pruning callback for ``family``, watching :data:`EVAL_METRIC`."""
    metric = EVAL_METRIC[(family, task)]
    if family == "xgboost":
        from optuna_integration import XGBoostPruningCallback

        return XGBoostPruningCallback(trial, f"validation_0-{metric}")
    from optuna_integration import LightGBMPruningCallback

    return LightGBMPruningCallback(trial, metric, valid_name="valid_0")


def best_score(model: Any, family: str) -> float:
    """The early-stopping metric at the best iteration, on the validation slice."""
    if family == "xgboost":
        return float(model.best_score)
    (value,) = model.best_score_["valid_0"].values()
    return float(value)


def tune(
    family: str,
    task: str,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    trials: int,
    seed: int,
) -> Tuned:
    """Optuna TPE search with median pruning on the validation slice.

    Returns:
        The best params, a summary (trials run, pruned, best value, metric), and
        the best trial's fitted model, which :func:`train_model` takes instead of
        fitting the same params on the same rows again.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric = EVAL_METRIC[(family, task)]

    def objective(trial: Any) -> float:
        params = suggest_params(trial, family)
        callback = pruning_callback(trial, family, task)
        if family == "xgboost":
            model = fit(
                build(family, task, params, seed, callbacks=[callback]),
                family,
                x_train,
                y_train,
                x_val,
                y_val,
            )
        else:
            model = fit(
                build(family, task, params, seed),
                family,
                x_train,
                y_train,
                x_val,
                y_val,
                callbacks=[callback],
            )
        value = best_score(model, family)
        if best["value"] is None or (value > best["value"]) == (DIRECTION[task] == "maximize"):
            if family == "xgboost":
                model.set_params(callbacks=None)  # the trial's pruning callback
            best.update(value=value, model=model)
        return value

    best: dict[str, Any] = {"value": None, "model": None}
    study = optuna.create_study(
        direction=DIRECTION[task],
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=20),
    )
    study.optimize(objective, n_trials=trials)
    states = [t.state for t in study.trials]
    summary = {
        "trials": len(states),
        "pruned": sum(s == optuna.trial.TrialState.PRUNED for s in states),
        "best_value": float(study.best_value),
        "metric": metric,
    }
    log.info("tuned %s/%s: %s, best %s", family, task, summary, study.best_params)
    return Tuned(dict(default_params(family), **study.best_params), summary, best["model"])


def best_iteration(model: Any) -> int | None:
    """The early-stopped number of trees of a fitted XGBoost or LightGBM estimator."""
    found = getattr(model, "best_iteration", None)
    if found is None:
        found = getattr(model, "best_iteration_", None)
    return None if found is None else int(found)


@dataclass
class Tuned:
    """What :func:`tune` found."""

    params: dict[str, Any]
    summary: dict[str, Any]
    model: Any  # the best trial's fitted estimator


def train_model(
    family: str,
    task: str,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    params: dict[str, Any],
    seed: int,
    fitted: Any = None,
) -> Trained:
    """Fit with early stopping (or take ``fitted``, the same fit done while tuning), then
    calibrate on the validation slice: churn with Platt scaling, spend to its total."""
    model = fitted
    if model is None:
        model = fit(build(family, task, params, seed), family, x_train, y_train, x_val, y_val)
    trained = Trained(model, family, task)
    raw = raw_predict(model, task, x_val)
    if task in BINARY:
        trained.calibration = fit_calibration(raw, y_val)
    else:
        trained.calibration = fit_total_scale(raw, y_val)
    return trained
