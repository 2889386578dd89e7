"""Lifecycle stage, value tier, RFM segment, segment and next best action (DESIGN §6).

Pure functions of a scored frame and the rules in ``config/segments.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

STAGES = ("new", "active", "loyal", "at_risk", "lapsed", "reactivated", "prospect")
TIERS = ("high", "mid", "low")
# Prospects (signed up, no order yet) by the probability of a first order in H days;
# ``unscored`` while the shop has no clm-conversion champion.
PROSPECT_SEGMENTS = (
    "prospect_likely",
    "prospect_possible",
    "prospect_unlikely",
    "prospect_unscored",
)
PROSPECT_DEFAULTS: dict[str, Any] = {
    "likely_probability": 0.5,
    "possible_probability": 0.15,
    "next_best_action": {
        "prospect_likely": "nurture",
        "prospect_possible": "welcome_offer",
        "prospect_unlikely": "no_action",
        "prospect_unscored": "nurture",
    },
}
REQUIRED = (
    "customer_id",
    "recency_days",
    "tenure_days",
    "frequency_lifetime",
    "monetary_lifetime",
    "last_gap_days",
    "churn_probability",
    "expected_spend",
)


# The actions that answer churn risk, whose customers get top_reasons by default.
EXPLAINED_ACTIONS = ("retain_with_offer", "win_back")


def load_rules(path: Path) -> dict[str, Any]:
    """Read and check the segment rules file.

    Raises:
        ValueError: if a section is missing or an action is not defined for a segment.
    """
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section in ("lifecycle", "value_tier", "rfm_segments", "next_best_action"):
        if section not in (rules or {}):
            raise ValueError(f"{path}: missing section {section!r}")
    drift = {"feature_psi": 0.25, "score_psi": 0.25, "retrain_cooldown_days": 7}
    rules["drift"] = drift | (rules.get("drift") or {})
    exempt = rules["drift"].pop("exempt", None) or []
    if not isinstance(exempt, list) or not all(isinstance(e, str) for e in exempt):
        raise ValueError(f"{path}: drift.exempt must be a list of feature names")
    for key, value in rules["drift"].items():
        if not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{path}: drift.{key} must be a number >= 0, got {value!r}")
    rules["drift"]["exempt"] = exempt
    wanted = {f"{t}_value_{r}" for t in TIERS for r in ("healthy", "at_risk", "lapsed")}
    missing = wanted - set(rules["next_best_action"])
    if missing:
        raise ValueError(f"{path}: next_best_action has no entry for {sorted(missing)}")
    reasons = (rules.get("top_reasons") or {}).get("actions", list(EXPLAINED_ACTIONS))
    known = set(rules["next_best_action"].values())
    if reasons != "all" and (
        not isinstance(reasons, list) or not reasons or not set(reasons) <= known
    ):
        raise ValueError(
            f"{path}: top_reasons.actions must be `all` or a list of actions from "
            f"next_best_action {sorted(known)}, got {reasons!r}"
        )
    rules["top_reasons"] = {"actions": reasons}
    given = rules.get("prospects") or {}
    prospects = {**PROSPECT_DEFAULTS, **given}
    prospects["next_best_action"] = {
        **PROSPECT_DEFAULTS["next_best_action"],
        **(given.get("next_best_action") or {}),
    }
    low, high = prospects["possible_probability"], prospects["likely_probability"]
    if not all(isinstance(v, int | float) for v in (low, high)) or not 0 <= low <= high <= 1:
        raise ValueError(
            f"{path}: prospects needs 0 <= possible_probability <= likely_probability <= 1, "
            f"got {low!r} and {high!r}"
        )
    unknown = set(prospects["next_best_action"]) - set(PROSPECT_SEGMENTS)
    if unknown:
        raise ValueError(f"{path}: prospects.next_best_action names unknown segments {unknown}")
    rules["prospects"] = prospects
    return rules


def explained(actions: pd.Series, rules: dict[str, Any]) -> np.ndarray:
    """Which customers get ``top_reasons``: those whose action is in ``top_reasons.actions``."""
    wanted = rules["top_reasons"]["actions"]
    if wanted == "all":
        return np.ones(len(actions), dtype=bool)
    return np.asarray(actions.isin(wanted))


def _quintile(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """Scores 1..5 by rank; ties broken by position so the result is deterministic."""
    ranks = values.rank(method="first", ascending=higher_is_better)
    return pd.Series(np.ceil(ranks / len(values) * 5).clip(1, 5).astype(int), index=values.index)


def lifecycle_stage(frame: pd.DataFrame, rules: dict[str, Any], horizon_days: int) -> pd.Series:
    """Lifecycle stage per customer, first applicable rule in ``lifecycle.order`` wins."""
    cfg = rules["lifecycle"]
    lapsed_after = cfg.get("lapsed_after_days") or horizon_days
    conditions = {
        "lapsed": frame["recency_days"] > lapsed_after,
        "new": frame["tenure_days"] <= cfg["new_max_days"],
        "at_risk": frame["churn_probability"] >= cfg["at_risk_probability"],
        "reactivated": frame["last_gap_days"].fillna(0) > lapsed_after,
        "loyal": (frame["frequency_lifetime"] >= cfg["loyal_min_orders"])
        & (frame["tenure_days"] >= cfg["loyal_min_tenure_days"]),
        "active": pd.Series(True, index=frame.index),
    }
    order = cfg["order"]
    unknown = set(order) - set(conditions)
    if unknown:
        raise ValueError(f"lifecycle.order names unknown stages {sorted(unknown)}")
    choices = [conditions[s].to_numpy() for s in order]
    return pd.Series(np.select(choices, order, default="active"), index=frame.index)


def assign_segments(frame: pd.DataFrame, rules: dict[str, Any], horizon_days: int) -> pd.DataFrame:
    """Add lifecycle_stage, value_tier, rfm_segment, segment and next_best_action.

    Raises:
        ValueError: if a required column is missing or the frame is empty.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot segment: missing column(s) {missing}")
    if frame.empty:
        raise ValueError("cannot segment an empty frame")
    out = frame.copy()
    out["lifecycle_stage"] = lifecycle_stage(out, rules, horizon_days)

    spend_rank = out["expected_spend"].rank(method="first", pct=True)
    tiers = rules["value_tier"]
    out["value_tier"] = np.select(
        [spend_rank > tiers["high"], spend_rank > tiers["mid"]], ["high", "mid"], default="low"
    )

    r = _quintile(out["recency_days"], higher_is_better=False)
    f = _quintile(out["frequency_lifetime"])
    m = _quintile(out["monetary_lifetime"])
    fm = np.floor((f + m) / 2 + 0.5).astype(int)
    rfm = pd.Series("", index=out.index, dtype=object)
    for rule in reversed(rules["rfm_segments"]):  # reversed: first match wins
        hit = r.between(*rule["r"]) & fm.between(*rule["fm"])
        rfm[hit] = rule["name"]
    if (rfm == "").any():
        raise ValueError("rfm_segments do not cover every (R, FM) score pair")
    out["rfm_segment"] = rfm

    risk = np.where(
        out["lifecycle_stage"] == "lapsed",
        "lapsed",
        np.where(
            out["churn_probability"] >= rules["lifecycle"]["at_risk_probability"],
            "at_risk",
            "healthy",
        ),
    )
    out["segment"] = out["value_tier"] + "_value_" + risk
    out["next_best_action"] = out["segment"].map(rules["next_best_action"])
    return out


def prospect_segments(frame: pd.DataFrame, rules: dict[str, Any]) -> pd.DataFrame:
    """Lifecycle stage ``prospect``, segment and next best action of each prospect, from
    ``conversion_probability`` (NaN: no conversion model yet, ``prospect_unscored``)."""
    cfg = rules["prospects"]
    p = frame["conversion_probability"].astype("float64")
    out = frame.copy()
    out["lifecycle_stage"] = "prospect"
    out["value_tier"] = None
    out["rfm_segment"] = None
    out["segment"] = np.select(
        [p.isna(), p >= cfg["likely_probability"], p >= cfg["possible_probability"]],
        ["prospect_unscored", "prospect_likely", "prospect_possible"],
        default="prospect_unlikely",
    )
    out["next_best_action"] = out["segment"].map(cfg["next_best_action"])
    return out


def summarize(segments: pd.DataFrame) -> pd.DataFrame:
    """One row per segment: customers, mean churn probability (buyers), total expected
    spend, and mean conversion probability (prospects)."""
    if "conversion_probability" not in segments:
        segments = segments.assign(conversion_probability=np.nan)
    return (
        segments.groupby(["ds", "segment"], as_index=False)
        .agg(
            customers=("customer_id", "size"),
            mean_churn_probability=("churn_probability", "mean"),
            total_expected_spend=("expected_spend", "sum"),
            mean_conversion_probability=("conversion_probability", "mean"),
        )
        .sort_values(["ds", "segment"], ignore_index=True)
    )


def transitions(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """How customers moved between segments since the previous scored day.

    Customers absent the day before come ``from_segment='(none)'``.
    """
    merged = current[["ds", "customer_id", "segment"]].merge(
        previous[["customer_id", "segment"]].rename(columns={"segment": "from_segment"}),
        on="customer_id",
        how="left",
    )
    merged["from_segment"] = merged["from_segment"].fillna("(none)")
    return (
        merged.rename(columns={"segment": "to_segment"})
        .groupby(["ds", "from_segment", "to_segment"], as_index=False)
        .agg(customers=("customer_id", "size"))
        .sort_values(["from_segment", "to_segment"], ignore_index=True)
    )
