"""MLflow logging of one comparison: a child run per candidate under the open parent run.

Every candidate, baselines included, gets the same metric names, its plots,
its input datasets and the run tags, so the MLflow UI's compare view puts them
side by side. Models are logged with their native flavor, a signature, an
input example and their calibration in the model metadata.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from clm.ml import plots
from clm.ml.compare import LABELS, PRIMARY, Candidate, TaskData
from clm.ml.models import BINARY, native

log = logging.getLogger(__name__)


def _log_figure(fig: Any, path: str) -> None:
    import mlflow

    mlflow.log_figure(fig, path)
    plots.close(fig)


def _figures(task: str, y: np.ndarray, preds: dict[str, np.ndarray], prefix: str) -> None:
    if task in BINARY:
        _log_figure(plots.roc(y, preds), f"{prefix}roc.png")
        _log_figure(plots.pr(y, preds), f"{prefix}pr.png")
        _log_figure(plots.calibration(y, preds), f"{prefix}calibration.png")
        _log_figure(plots.lift(y, preds), f"{prefix}lift.png")
    else:
        _log_figure(plots.gains(y, preds), f"{prefix}gains.png")
        if len(preds) == 1:
            ((name, pred),) = preds.items()
            _log_figure(plots.spend_deciles(y, pred, name), f"{prefix}deciles.png")


SCORE_COLUMN = {
    "churn": "churn_probability",
    "clv": "expected_spend",
    "conversion": "conversion_probability",
}
# What loading a model needs, beside its family's package (xgboost or lightgbm).
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy")


def pip_requirements(family: str) -> list[str]:
    """The packages that load a model of ``family``, pinned to the versions that trained it.

    Stated rather than inferred: MLflow's inference starts a Python process per
    logged model (4 to 5 s each, a third of a training run) and records whatever
    that process happened to import (pytest, rich, dask among them).
    """
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in (*SERVING_PACKAGES, family)]


def reference_profile(data: TaskData, trained: Any) -> dict[str, Any]:
    """The drift reference: feature and score bins on the training rows (not the test rows)."""
    from clm.data.drift import profile

    x = data.frame.loc[data.frame.role != "test", data.names]
    frame = x.assign(**{SCORE_COLUMN[data.task]: trained.predict(x)})
    return profile(frame)


def _clean_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: ("none" if v is None else v) for k, v in params.items()}


def log_candidates(
    data: TaskData,
    candidates: list[Candidate],
    *,
    tags: dict[str, str],
    log_models: bool = True,
) -> dict[str, str]:
    """Log one child run per candidate under the active parent run.

    Returns:
        ``{candidate name: model URI}`` for the logged models.
    """
    import mlflow
    from mlflow.models import infer_signature

    task = data.task
    label = LABELS[task]
    test = data.rows("test")
    y = data.y("test")
    test_ds = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        test[["customer_id", "cutoff", *data.names, label]],
        name=f"{task}-test",
        targets=label,
    )
    train_ds = mlflow.data.from_pandas(  # type: ignore[attr-defined]
        data.frame.loc[
            data.frame.role != "test", ["customer_id", "cutoff", "role", *data.names, label]
        ],
        name=f"{task}-train",
        targets=label,
    )
    mlflow.log_input(test_ds, context="test")
    mlflow.log_input(train_ds, context="training")
    uris: dict[str, str] = {}
    for c in candidates:
        run_tags = {**tags, "candidate": c.name, "kind": c.kind, "description": c.description}
        if c.kind == "model":
            run_tags["family"] = c.name
        with mlflow.start_run(run_name=c.name, nested=True, tags=run_tags):
            mlflow.log_params(_clean_params(c.params))
            if c.tuning:
                mlflow.log_params({f"tuning_{k}": v for k, v in c.tuning.items()})
            mlflow.log_metrics(c.scores)  # the same names for every candidate
            mlflow.log_input(test_ds, context="test")
            mlflow.log_input(train_ds, context="training")
            _figures(task, y, {c.name: c.pred}, "plots/")
            if c.importance:
                _log_figure(
                    plots.importance(c.importance, f"{c.name}: importance"),
                    "plots/importance.png",
                )
                mlflow.log_dict(c.importance, "importance.json")
            if c.trained is not None and log_models:
                example = data.x("test").head(5)
                signature = infer_signature(example, c.trained.predict(example))
                flavor = mlflow.xgboost if c.name == "xgboost" else mlflow.lightgbm
                metadata: dict[str, Any] = {
                    "task": task,
                    "feature_service": tags.get("feature_service", ""),
                }
                if c.trained.calibration is not None:
                    metadata["calibration"] = c.trained.calibration.as_dict()
                metadata["reference"] = reference_profile(data, c.trained)
                info = flavor.log_model(
                    native(c.trained.model),
                    name="model",
                    signature=signature,
                    input_example=example,
                    metadata=metadata,
                    pip_requirements=pip_requirements(c.name),
                )
                uris[c.name] = info.model_uri
    # The parent run carries model-only figures (so child metric names stay the
    # same for every candidate), the overlay plots and the comparison table.
    for c in candidates:
        mlflow.log_metrics({f"{c.name}.{k}": v for k, v in c.extra.items()})
    _figures(task, y, {c.name: c.pred for c in candidates}, "comparison/")
    table: dict[str, list[Any]] = {"candidate": [], "kind": []}
    for c in candidates:
        table["candidate"].append(c.name)
        table["kind"].append(c.kind)
        for metric, value in c.scores.items():
            table.setdefault(metric, []).append(value)
    mlflow.log_table(table, "comparison/table.json")
    metric = PRIMARY[task]
    best = max(candidates, key=lambda c: c.scores[metric])
    mlflow.set_tag("best_candidate", best.name)
    return uris
