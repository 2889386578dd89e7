"""Champion/challenger promotion with the MLflow registry's ``champion`` alias.

The decision is a pure function (:func:`decide`); :func:`promote` applies it:
it registers the challenger with the decision and its reasons as tags (one
call), moves the alias when promoted, records the decision in the
``model_promotions`` warehouse table, and marks the version ``state=done``.
A run that dies in between leaves ``state=pending``; the next decision
retires such versions first (:func:`clm.ml.registry.retire_unfinished`).

Every move of the alias checks the model's inputs against the feature service:
a promotion never happens with another schema, and neither does a rollback.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from clm.data import warehouse
from clm.ml.registry import ALIAS, DONE, PENDING, REGISTERED

log = logging.getLogger(__name__)


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
