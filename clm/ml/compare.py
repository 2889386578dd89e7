"""Train the model candidates and fit the baselines on the same rows; score them all.

Used by the train DAG (which then promotes) and by ``clm evaluate`` (which adds
bootstrap intervals and the oracle).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clm.ml import baselines, models
from clm.ml.metrics import CHURN_PRIMARY, VALUE_PRIMARY, score

log = logging.getLogger(__name__)

LABELS = {"churn": "churned", "clv": "future_spend", "conversion": "converted"}
PRIMARY = {"churn": CHURN_PRIMARY, "clv": VALUE_PRIMARY, "conversion": CHURN_PRIMARY}
BASELINES = {
    "churn": baselines.CHURN_BASELINES,
    "clv": baselines.VALUE_BASELINES,
    "conversion": baselines.CONVERSION_BASELINES,
}
ROLES = ("train", "val", "test")


@dataclass
class TaskData:
    """One task's rows, sorted by ``(cutoff, customer_id)``, with features and the label."""

    task: str
    names: list[str]
    frame: pd.DataFrame

    def rows(self, role: str) -> pd.DataFrame:
        return self.frame.loc[self.frame["role"] == role]

    def x(self, role: str) -> pd.DataFrame:
        return self.rows(role)[self.names].astype("float64")

    def y(self, role: str) -> np.ndarray:
        return self.rows(role)[LABELS[self.task]].to_numpy()


def task_data(task: str, frame: pd.DataFrame, names: list[str]) -> TaskData:
    """Sort rows deterministically and check each role has rows.

    Raises:
        ValueError: if a role is empty, or a binary task's training or test rows hold
            one class.
    """
    frame = frame.sort_values(["cutoff", "customer_id"], ignore_index=True)
    for role in ROLES:
        if not (frame["role"] == role).any():
            raise ValueError(f"{task}: no {role} rows; the data set is too small to train on")
    if task in models.BINARY:
        for role in ("train", "test"):
            if frame.loc[frame.role == role, LABELS[task]].nunique() < 2:
                raise ValueError(f"{task}: the {role} rows hold one class only")
    return TaskData(task, names, frame)


@dataclass
class Candidate:
    """One model or baseline with its test predictions and metrics."""

    name: str
    kind: str  # "model" or "baseline"
    task: str
    description: str
    params: dict[str, Any]
    pred: np.ndarray
    scores: dict[str, float]
    importance: dict[str, float] = field(default_factory=dict)
    trained: models.Trained | None = None
    tuning: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)


def run_candidates(
    data: TaskData,
    *,
    families: list[str],
    trials: int,
    seed: int,
    horizon_days: int,
    with_baselines: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> list[Candidate]:
    """Tune and train each family, fit each baseline; score all on the test rows."""
    task = data.task
    xs = {r: data.x(r) for r in ROLES}
    ys = {r: data.y(r) for r in ROLES}
    out = []
    for family in families:
        if on_step:
            on_step(f"{task}: {family}")
        tuning: dict[str, Any] = {}
        fitted = None
        if trials > 0:
            tuned = models.tune(
                family,
                task,
                xs["train"],
                ys["train"],
                xs["val"],
                ys["val"],
                trials=trials,
                seed=seed,
            )
            params, tuning, fitted = tuned.params, tuned.summary, tuned.model
        else:
            params = models.default_params(family)
        trained = models.train_model(
            family,
            task,
            xs["train"],
            ys["train"],
            xs["val"],
            ys["val"],
            params=params,
            seed=seed,
            fitted=fitted,
        )
        pred = trained.predict(xs["test"])
        # What calibration did, on the test rows: the figure it fixes, before.
        fixes = "calibration_error" if task in models.BINARY else "total_pred_vs_actual_pct"
        raw = models.raw_predict(trained.model, task, xs["test"])
        extra = {f"{fixes}_uncalibrated": score(task, ys["test"], raw)[fixes]}
        calibration = trained.calibration.as_dict() if trained.calibration else {}
        best_iteration = models.best_iteration(trained.model)
        out.append(
            Candidate(
                name=family,
                kind="model",
                task=task,
                description=f"{family}, {'tuned' if trials else 'default'} hyperparameters",
                params={
                    **params,
                    "best_iteration": best_iteration,
                    **{f"calibration_{k}": v for k, v in calibration.items()},
                },
                pred=pred,
                scores=score(task, ys["test"], pred),
                importance=trained.importance(data.names),
                trained=trained,
                tuning=tuning,
                extra=extra,
            )
        )
    if with_baselines:
        for name in BASELINES[task]:
            if on_step:
                on_step(f"{task}: baseline {name}")
            fitted = baselines.fit_baseline(
                name,
                data.rows("train"),
                ys["train"],
                horizon_days=horizon_days,
                seed=seed,
            )
            pred = fitted.predict(data.rows("test"))
            out.append(
                Candidate(
                    name=name,
                    kind="baseline",
                    task=task,
                    description=fitted.description,
                    params=fitted.params,
                    pred=pred,
                    scores=score(task, ys["test"], pred),
                    importance=fitted.importance,
                )
            )
    for c in out:
        log.info(
            "%s %-10s %-8s on %d test rows: %s",
            task,
            c.name,
            c.kind,
            len(ys["test"]),
            {k: round(v, 4) for k, v in c.scores.items()},
        )
    return out


def best_model(candidates: list[Candidate]) -> Candidate:
    """The model candidate with the best primary metric (ties go to the first family)."""
    modelled = [c for c in candidates if c.kind == "model"]
    if not modelled:
        raise ValueError("no model candidates")
    metric = PRIMARY[modelled[0].task]
    return max(modelled, key=lambda c: c.scores[metric])
