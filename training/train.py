"""Build a point-in-time training set, train both families, track, compare, promote."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from clm import feature_store
from clm.features import snapshot_timestamp, training_cutoffs, write_snapshot
from clm.io import partition_dir
from clm.labels import compute_labels
from clm.settings import PROJECT_ROOT, Settings
from training import metrics as M
from training import models
from training.promotion import (
    REGISTERED,
    current_champion,
    decide,
    load_version,
    model_features,
    promote,
)

log = logging.getLogger(__name__)
SERVICES = {"churn": "churn_v1", "clv": "clv_v1"}
LABELS = {"churn": "churned", "clv": "future_spend"}
PRIMARY = {"churn": M.CHURN_PRIMARY, "clv": M.VALUE_PRIMARY}


@dataclass
class TrainingSet:
    """Rows ``(customer_id, cutoff)`` with features and both labels, split train/val/test."""

    frame: pd.DataFrame
    split: str  # "time" or "customers"
    cutoffs: list[date]
    test_cutoff: date


@dataclass
class TrainResult:
    """What one training run decided; small enough for XCom."""

    ds: str
    split: str
    rows: dict[str, int]
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)


def ensure_snapshots(settings: Settings, days: list[date]) -> list[date]:
    """Compute the feature snapshots that are missing for ``days``; return those computed."""
    made = []
    for day in days:
        if not partition_dir(settings.features_dir, "order_features", day).exists():
            write_snapshot(settings.features_dir, settings.validated_dir, day)
            made.append(day)
    return made


def build_training_set(settings: Settings, ds: date, horizon_days: int) -> TrainingSet:
    """Labels at monthly cutoffs joined point-in-time to features through Feast.

    The test set is the latest cutoff whose label window is complete by ds
    (out of time). If only that cutoff has customers, the test set is a random
    20% of its customers instead.

    Raises:
        ValueError: if no cutoff has labelled customers.
    """
    cutoffs = training_cutoffs(
        ds, horizon_days, settings.train_cutoffs, settings.cutoff_spacing_days
    )
    frames = []
    used = []
    for cutoff in cutoffs:
        try:
            labels = compute_labels(settings.validated_dir, cutoff, horizon_days)
        except ValueError:
            raise
        if labels.empty:
            continue
        labels["cutoff"] = cutoff
        frames.append(labels)
        used.append(cutoff)
    if not frames:
        raise ValueError(f"no labelled customers at any cutoff {cutoffs} for ds={ds}")
    made = ensure_snapshots(settings, used)
    if made:
        log.info("computed missing feature snapshots for cutoffs %s", made)
    feature_store.apply_repo(settings)
    labels = pd.concat(frames, ignore_index=True)
    labels["event_timestamp"] = [pd.Timestamp(snapshot_timestamp(c)) for c in labels["cutoff"]]

    test_cutoff = used[-1]
    rng = np.random.default_rng(settings.seed)
    customers = np.sort(labels["customer_id"].unique())
    held = set(rng.choice(customers, size=max(1, len(customers) // 5), replace=False))
    if len(used) > 1:
        split = "time"
        labels["role"] = np.where(labels["cutoff"] == test_cutoff, "test", "train")
    else:
        split = "customers"
        labels["role"] = np.where(labels["customer_id"].isin(held), "test", "train")
    # Validation slice for early stopping: held-out customers of the training rows.
    val = (labels["role"] == "train") & labels["customer_id"].isin(
        set(rng.choice(customers, size=max(1, len(customers) // 5), replace=False))
    )
    labels.loc[val, "role"] = "val"
    log.info(
        "training set for ds=%s: %d rows over cutoffs %s (%s split), roles %s",
        ds,
        len(labels),
        [c.isoformat() for c in used],
        split,
        labels["role"].value_counts().to_dict(),
    )
    return TrainingSet(labels, split, used, test_cutoff)


def score(task: str, y_true: Any, pred: Any) -> dict[str, float]:
    """The task's metrics, with the same names for every candidate."""
    return M.churn_metrics(y_true, pred) if task == "churn" else M.value_metrics(y_true, pred)


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def setup_mlflow(settings: Settings) -> None:
    """Point MLflow at the configured tracking server and make both experiments exist."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient()
    for task in REGISTERED.values():
        if client.get_experiment_by_name(task) is None:
            location = None
            if settings.tracking_uri.startswith("sqlite:"):
                location = (settings.mlflow_artifacts / task).as_uri()
            client.create_experiment(task, artifact_location=location)


def _tune(
    family: str, task: str, xs: dict[str, Any], ys: dict[str, Any], trials: int, seed: int
) -> dict[str, Any]:
    """Optuna search on the validation slice; returns the best params."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = models.default_params(family)
    metric = PRIMARY[task]

    def objective(trial: Any) -> float:
        params = dict(
            base,
            learning_rate=trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            reg_lambda=trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
            colsample_bytree=trial.suggest_float("colsample_bytree", 0.5, 1.0),
        )
        if family == "xgboost":
            params["max_depth"] = trial.suggest_int("max_depth", 2, 6)
        else:
            params["num_leaves"] = trial.suggest_int("num_leaves", 7, 63)
        model = models.fit(
            models.build(family, task, params, seed),
            family,
            xs["train"],
            ys["train"],
            xs["val"],
            ys["val"],
        )
        pred = models.predict(model, task, xs["val"])
        return score(task, ys["val"], pred)[metric]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    return dict(base, **study.best_params)


def train(
    settings: Settings,
    ds: date,
    *,
    horizon_days: int | None = None,
    families: list[str] | None = None,
    n_trials: int | None = None,
    force_promotion: bool = False,
    airflow_run_id: str = "manual",
) -> TrainResult:
    """Train every family for churn and clv, log to MLflow, and promote the best.

    One parent run per task in experiments ``clm-churn`` / ``clm-clv``; one
    child run per family. The best challenger is registered; it becomes
    ``@champion`` only if :func:`training.promotion.decide` says so, after the
    current champion is scored on the same test rows.
    """
    import mlflow
    from mlflow.models import infer_signature

    horizon = horizon_days or settings.horizon_days
    families = families or list(settings.model_families)
    trials = settings.tuning_trials if n_trials is None else n_trials
    data = build_training_set(settings, ds, horizon)
    setup_mlflow(settings)
    client = mlflow.MlflowClient()
    result = TrainResult(
        ds=ds.isoformat(),
        split=data.split,
        rows={str(k): int(v) for k, v in data.frame["role"].value_counts().items()},
    )
    sha = git_sha()

    for task in ("churn", "clv"):
        service = SERVICES[task]
        names = feature_store.feature_names(settings, service)
        joined = feature_store.historical_features(
            settings, data.frame[["customer_id", "event_timestamp"]].drop_duplicates(), service
        )
        frame = data.frame.merge(joined, on=["customer_id", "event_timestamp"], how="left")
        frame = frame.sort_values(["cutoff", "customer_id"], ignore_index=True)
        xs = {
            r: frame.loc[frame.role == r, names].astype("float64") for r in ("train", "val", "test")
        }
        ys = {r: frame.loc[frame.role == r, LABELS[task]].to_numpy() for r in xs}
        metric = PRIMARY[task]
        tags = {
            "ds": ds.isoformat(),
            "airflow_run_id": airflow_run_id,
            "git_sha": sha,
            "feature_service": service,
            "split": data.split,
            "task": task,
        }
        mlflow.set_experiment(REGISTERED[task])
        candidates: dict[str, dict[str, Any]] = {}
        with mlflow.start_run(run_name=f"train {ds.isoformat()}", tags=tags) as parent:
            mlflow.log_params(
                {
                    "horizon_days": horizon,
                    "cutoffs": ",".join(c.isoformat() for c in data.cutoffs),
                    "test_cutoff": data.test_cutoff.isoformat(),
                    "families": ",".join(families),
                    "tuning_trials": trials,
                    "n_features": len(names),
                }
            )
            test_rows = frame.loc[
                frame.role == "test", ["customer_id", "cutoff", *names, LABELS[task]]
            ]
            mlflow.log_input(
                mlflow.data.from_pandas(  # type: ignore[attr-defined]
                    test_rows, name=f"test-{data.test_cutoff}", targets=LABELS[task]
                ),
                context="test",
            )
            for family in families:
                params = (
                    _tune(family, task, xs, ys, trials, settings.seed)
                    if trials > 0
                    else models.default_params(family)
                )
                model = models.fit(
                    models.build(family, task, params, settings.seed),
                    family,
                    xs["train"],
                    ys["train"],
                    xs["val"],
                    ys["val"],
                )
                pred = models.predict(model, task, xs["test"])
                scores = score(task, ys["test"], pred)
                with mlflow.start_run(
                    run_name=family, nested=True, tags={**tags, "family": family}
                ):
                    mlflow.log_params({k: v for k, v in params.items()})
                    mlflow.log_metrics(scores)
                    example = xs["test"].head(5)
                    signature = infer_signature(example, models.predict(model, task, example))
                    flavor = mlflow.xgboost if family == "xgboost" else mlflow.lightgbm
                    info = flavor.log_model(
                        model, name="model", signature=signature, input_example=example
                    )
                candidates[family] = {"scores": scores, "model_uri": info.model_uri}
                log.info(
                    "%s %s on %d test rows: %s",
                    task,
                    family,
                    len(ys["test"]),
                    {k: round(v, 4) for k, v in scores.items()},
                )
            result.metrics[task] = {f: c["scores"] for f, c in candidates.items()}

            best = max(candidates, key=lambda f: candidates[f]["scores"][metric])
            challenger = candidates[best]
            champion = current_champion(client, REGISTERED[task])
            champion_score = None
            champion_version = None
            if champion is not None:
                champion_version = str(champion.version)
                uri = f"models:/{REGISTERED[task]}/{champion.version}"
                if model_features(uri) == names:
                    old, _ = load_version(uri)
                    old_pred = models.predict(old, task, xs["test"])
                    champion_score = score(task, ys["test"], old_pred)[metric]
                    mlflow.log_metric(f"champion_{metric}", champion_score)
                else:
                    log.warning(
                        "champion v%s has another feature schema; not comparable", champion.version
                    )
            floor = settings.churn_auc_floor if task == "churn" else settings.clv_gini_floor
            decision = decide(
                challenger["scores"][metric],
                champion_score,
                floor=floor,
                margin=settings.promotion_margin,
                schema_ok=model_features(challenger["model_uri"]) == names,
                force=force_promotion,
            )
            version = promote(
                task=task,
                ds=ds,
                model_uri=challenger["model_uri"],
                family=best,
                metric=metric,
                challenger_score=challenger["scores"][metric],
                champion_score=champion_score,
                champion_version=champion_version,
                decision=decision,
                run_id=parent.info.run_id,
                warehouse_url=settings.warehouse,
            )
            mlflow.set_tags(
                {"best_family": best, "decision": decision.label, "registered_version": version}
            )
            result.decisions[task] = {
                "family": best,
                "version": version,
                "decision": decision.label,
                "reasons": decision.reasons,
                metric: challenger["scores"][metric],
                "champion_version": champion_version,
                "champion_score": champion_score,
            }
    return result
