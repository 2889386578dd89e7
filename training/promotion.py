"""Champion/challenger promotion with the MLflow registry's ``champion`` alias.

The decision is a pure function (:func:`decide`); :func:`promote` applies it:
it registers the challenger, tags the version with the decision and its
reasons, moves the alias when promoted, and records the decision in the
``model_promotions`` warehouse table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from clm import warehouse

log = logging.getLogger(__name__)
ALIAS = "champion"
REGISTERED = {"churn": "clm-churn", "clv": "clm-clv"}


@dataclass
class Decision:
    """Promote or keep, with every reason that led there."""

    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return "promote" if self.promote else "keep"


def decide(
    challenger_score: float,
    champion_score: float | None,
    *,
    floor: float,
    margin: float,
    schema_ok: bool,
    force: bool = False,
) -> Decision:
    """Decide whether a challenger replaces the champion.

    All must hold: the feature schema matches the feature service; the score
    clears the absolute floor; and it beats the champion (scored on the same
    test set) by at least ``margin``. ``force`` skips the floor and margin,
    never the schema check.
    """
    reasons = []
    if not schema_ok:
        return Decision(False, ["feature schema does not match the feature service"])
    ok = True
    if challenger_score < floor:
        reasons.append(f"score {challenger_score:.4f} is below the floor {floor:.4f}")
        ok = False
    if champion_score is None:
        reasons.append("no current champion")
    elif challenger_score < champion_score + margin:
        reasons.append(
            f"score {challenger_score:.4f} does not beat the champion's {champion_score:.4f} "
            f"by the margin {margin:.4f}"
        )
        ok = False
    else:
        reasons.append(
            f"score {challenger_score:.4f} beats the champion's {champion_score:.4f} "
            f"by {challenger_score - champion_score:.4f} >= {margin:.4f}"
        )
    if force and not ok:
        reasons.append("forced by the operator")
        ok = True
    if ok and challenger_score >= floor:
        reasons.append(f"clears the floor {floor:.4f}")
    return Decision(ok, reasons)


def current_champion(client: Any, name: str) -> Any | None:
    """The model version behind ``@champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None


def load_version(uri: str) -> Any:
    """Load a registered model with its native flavor and its calibration.

    Returns:
        A :class:`training.models.Trained`.

    Raises:
        ValueError: if the model has neither an xgboost nor a lightgbm flavor.
    """
    import mlflow

    from training.models import Calibration, Trained

    info = mlflow.models.get_model_info(uri)
    metadata = info.metadata or {}
    task = metadata.get("task", "churn" if "clm-churn" in uri else "clv")
    calibration = Calibration.from_dict(metadata.get("calibration"))
    reference = metadata.get("reference")
    if "xgboost" in info.flavors:
        return Trained(mlflow.xgboost.load_model(uri), "xgboost", task, calibration, reference)
    if "lightgbm" in info.flavors:
        return Trained(mlflow.lightgbm.load_model(uri), "lightgbm", task, calibration, reference)
    raise ValueError(f"{uri}: no xgboost or lightgbm flavor in {sorted(info.flavors)}")


def model_features(uri: str) -> list[str]:
    """Input column names from the logged signature."""
    import mlflow

    signature = mlflow.models.get_model_info(uri).signature
    return [] if signature is None else list(signature.inputs.input_names())


def promote(
    *,
    task: str,
    ds: date,
    model_uri: str,
    family: str,
    metric: str,
    challenger_score: float,
    champion_score: float | None,
    champion_version: str | None,
    decision: Decision,
    run_id: str,
    warehouse_url: str,
) -> str:
    """Register the challenger, tag it, move the alias if promoted, record the decision.

    Returns:
        The new model version.
    """
    import mlflow
    from mlflow import MlflowClient

    name = REGISTERED[task]
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name).version
    tags = {
        "decision": decision.label,
        "reasons": "; ".join(decision.reasons),
        "ds": ds.isoformat(),
        "family": family,
        metric: f"{challenger_score:.6f}",
        "compared_with": champion_version or "none",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if decision.promote:
        client.set_registered_model_alias(name, ALIAS, version)
    log.info(
        "%s v%s (%s): %s; %s", name, version, family, decision.label, "; ".join(decision.reasons)
    )
    row = pd.DataFrame(
        [
            {
                "ds": ds,
                "model_name": name,
                "challenger_version": str(version),
                "challenger_family": family,
                "metric": metric,
                "challenger_score": challenger_score,
                "champion_version": champion_version,
                "champion_score": champion_score,
                "decision": decision.label,
                "reasons": "; ".join(decision.reasons),
                "run_id": run_id,
            }
        ]
    )
    warehouse.replace_partition(warehouse_url, "model_promotions", row, ds=ds, model_name=name)
    return str(version)


def rollback(name: str, version: str) -> None:
    """Point ``@champion`` at an earlier version.

    Raises:
        mlflow.exceptions.MlflowException: if the version does not exist.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    client.get_model_version(name, version)
    client.set_registered_model_alias(name, ALIAS, version)
    client.set_model_version_tag(name, version, "rolled_back_to", "true")
