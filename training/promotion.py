"""Champion/challenger promotion with the MLflow registry's ``champion`` alias.

The decision is a pure function (:func:`decide`); :func:`promote` applies it:
it registers the challenger with the decision and its reasons as tags (one
call), moves the alias when promoted, records the decision in the
``model_promotions`` warehouse table, and marks the version ``state=done``.
A run that dies in between leaves ``state=pending``; the next decision
retires such versions first (:func:`retire_unfinished`).

Every move of the alias checks the model's inputs against the feature service:
a promotion never happens with another schema, and neither does a rollback.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from clm import warehouse

log = logging.getLogger(__name__)
ALIAS = "champion"
REGISTERED = {"churn": "clm-churn", "clv": "clm-clv"}
SERVICES = {"churn": "churn_v1", "clv": "clv_v1"}  # the feature service of each task
DONE, PENDING = "done", "pending"


def schema_problem(features: list[str], expected: list[str]) -> str | None:
    """Why a model's input columns differ from the feature service's (None if they match)."""
    if list(features) == list(expected):
        return None
    missing = sorted(set(expected) - set(features))
    extra = sorted(set(features) - set(expected))
    if missing or extra:
        return (
            f"its features differ from the feature service's "
            f"(missing {missing or 'none'}, unknown {extra or 'none'})"
        )
    return "its features are in another order than the feature service's"


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
    if not math.isfinite(challenger_score):
        return Decision(False, [f"score {challenger_score} is not a finite number"])
    if champion_score is not None and not math.isfinite(champion_score):
        reasons.append(f"the champion's score {champion_score} is not finite: not comparable")
        champion_score = None
    ok = True
    if challenger_score < floor:
        reasons.append(f"score {challenger_score:.4f} is below the floor {floor:.4f}")
        ok = False
    if champion_score is None:
        if not reasons:
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
    tags = {
        "decision": decision.label,
        "reasons": "; ".join(decision.reasons),
        "ds": ds.isoformat(),
        "family": family,
        metric: f"{challenger_score:.6f}",
        "compared_with": champion_version or "none",
        "state": PENDING,
    }
    # One call: a version never exists without its decision.
    version = mlflow.register_model(model_uri, name, tags=tags).version
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
    client.set_model_version_tag(name, version, "state", DONE)
    return str(version)


def _unfinished(version: Any) -> bool:
    tags = version.tags or {}
    return "decision" not in tags or tags.get("state") == PENDING


def retire_unfinished(client: Any, name: str, by: str) -> list[str]:
    """Retire the versions a crashed run registered but never finished deciding.

    Such a version has no decision tag, or ``state=pending``: the run died
    between registering it and recording the outcome. It is tagged
    ``decision=retired`` with the reason; if the alias already points at it
    (the crash came after the move), it stays champion and is only marked done.

    Returns:
        The versions retired.
    """
    champion = current_champion(client, name)
    retired = []
    for version in client.search_model_versions(f"name = '{name}'"):
        if not _unfinished(version):
            continue
        number = str(version.version)
        if champion is not None and str(champion.version) == number:
            client.set_model_version_tag(name, number, "state", DONE)
            continue
        client.set_model_version_tag(name, number, "decision", "retired")
        client.set_model_version_tag(
            name,
            number,
            "reasons",
            f"the run that registered it stopped before deciding; retired by {by}",
        )
        client.set_model_version_tag(name, number, "state", DONE)
        log.warning("%s v%s: unfinished promotion, retired by %s", name, number, by)
        retired.append(number)
    return retired


def rollback(name: str, version: str, expected: list[str], override_reason: str = "") -> None:
    """Point ``@champion`` at another version.

    The version's inputs must match the feature service (``expected``), with
    no exception. A version that was never promoted (kept out, retired, or
    unfinished) moves only with ``override_reason``, which is recorded on it.

    Raises:
        mlflow.exceptions.MlflowException: if the version does not exist.
        ValueError: the schema differs, or an override is needed and missing.
    """
    from datetime import UTC, datetime

    from mlflow import MlflowClient

    client = MlflowClient()
    target = client.get_model_version(name, version)
    problem = schema_problem(model_features(f"models:/{name}/{version}"), expected)
    if problem:
        raise ValueError(f"{name} v{version}: {problem}; scoring cannot use it")
    tags = target.tags or {}
    promoted = tags.get("decision") == "promote" and not _unfinished(target)
    if not promoted and not override_reason.strip():
        raise ValueError(
            f"{name} v{version} was never promoted (decision: {tags.get('decision', 'none')}); "
            "to make it champion anyway, give the reason with --override-reason"
        )
    previous = current_champion(client, name)
    client.set_registered_model_alias(name, ALIAS, version)
    record = {
        "rolled_back_to": "true",
        "rolled_back_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rolled_back_from": "none" if previous is None else str(previous.version),
    }
    if override_reason.strip():
        record["override_reason"] = override_reason.strip()
    for key, value in record.items():
        client.set_model_version_tag(name, version, key, value)
    log.info("%s@%s -> v%s (%s)", name, ALIAS, version, override_reason or "rollback")
