import pandas as pd
import pytest

from clm.core.settings import PROJECT_ROOT
from clm.data.segments import assign_segments, load_rules, summarize, transitions

RULES = load_rules(PROJECT_ROOT / "clm" / "config" / "segments.yaml")


def _frame(**overrides):
    base = {
        "customer_id": ["new", "lapsed", "risky", "back", "loyal", "plain"],
        "recency_days": [5, 200, 10, 3, 2, 20],
        "tenure_days": [10, 300, 100, 400, 365, 90],
        "frequency_lifetime": [1, 2, 3, 4, 12, 2],
        "monetary_lifetime": [20, 50, 80, 90, 900, 40],
        "last_gap_days": [None, 30, 20, 150, 10, 15],
        "churn_probability": [0.9, 0.95, 0.7, 0.2, 0.1, 0.3],
        "expected_spend": [10, 1, 50, 40, 500, 20],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_lifecycle_stages_follow_the_configured_order() -> None:
    out = assign_segments(_frame(), RULES, horizon_days=90).set_index("customer_id")
    assert out.loc["new", "lifecycle_stage"] == "new"  # new wins over at_risk
    assert out.loc["lapsed", "lifecycle_stage"] == "lapsed"
    assert out.loc["risky", "lifecycle_stage"] == "at_risk"
    assert out.loc["back", "lifecycle_stage"] == "reactivated"
    assert out.loc["loyal", "lifecycle_stage"] == "loyal"
    assert out.loc["plain", "lifecycle_stage"] == "active"


def test_segment_and_action_follow_value_and_risk() -> None:
    out = assign_segments(_frame(), RULES, horizon_days=90).set_index("customer_id")
    assert out.loc["loyal", "value_tier"] == "high"
    assert out.loc["loyal", "segment"] == "high_value_healthy"
    assert out.loc["loyal", "next_best_action"] == "cross_sell"
    assert out.loc["lapsed", "segment"] == "low_value_lapsed"
    assert out.loc["risky", "segment"].endswith("_at_risk")
    assert out["next_best_action"].notna().all()
    assert out.loc["loyal", "rfm_segment"] == "Champions"


def test_rfm_rules_cover_every_score_pair() -> None:
    n = 500
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "recency_days": [i % 97 for i in range(n)],
            "tenure_days": [400] * n,
            "frequency_lifetime": [(i * 7) % 13 + 1 for i in range(n)],
            "monetary_lifetime": [(i * 11) % 29 + 1.0 for i in range(n)],
            "last_gap_days": [10] * n,
            "churn_probability": [0.1] * n,
            "expected_spend": list(range(n)),
        }
    )
    out = assign_segments(frame, RULES, horizon_days=90)
    assert out["rfm_segment"].nunique() >= 8


def test_missing_column_and_empty_frame_are_refused() -> None:
    with pytest.raises(ValueError, match="missing column"):
        assign_segments(_frame().drop(columns="expected_spend"), RULES, 90)
    with pytest.raises(ValueError, match="empty"):
        assign_segments(_frame().iloc[0:0], RULES, 90)


def test_bad_rules_file_is_refused(tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("lifecycle: {}\nvalue_tier: {}\nrfm_segments: []\nnext_best_action: {}\n")
    with pytest.raises(ValueError, match="next_best_action has no entry"):
        load_rules(path)


def test_summary_and_transitions() -> None:
    today = assign_segments(_frame(), RULES, 90).assign(ds=pd.Timestamp("2024-05-02"))
    summary = summarize(today)
    assert summary["customers"].sum() == 6
    yesterday = today[["customer_id", "segment"]].iloc[:4].copy()
    yesterday.loc[0, "segment"] = "something_else"
    moves = transitions(yesterday, today)
    assert moves["customers"].sum() == 6
    assert moves.loc[moves.from_segment == "(none)", "customers"].sum() == 2
    assert (moves.from_segment == "something_else").sum() == 1


def test_drift_rules_have_defaults_and_bad_values_are_refused(tmp_path) -> None:
    import yaml

    assert RULES["drift"]["exempt"] == ["tenure_days"]
    base = yaml.safe_load((PROJECT_ROOT / "clm" / "config" / "segments.yaml").read_text())
    del base["drift"]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(base))
    assert load_rules(path)["drift"] == {
        "feature_psi": 0.25,
        "score_psi": 0.25,
        "retrain_cooldown_days": 7,
        "exempt": [],
    }
    for bad, message in (
        ({"feature_psi": -1}, "drift.feature_psi must be a number"),
        ({"score_psi": "high"}, "drift.score_psi must be a number"),
        ({"exempt": "tenure_days"}, "drift.exempt must be a list"),
    ):
        path.write_text(yaml.safe_dump(base | {"drift": bad}))
        with pytest.raises(ValueError, match=message):
            load_rules(path)


def test_top_reasons_go_to_the_configured_actions(tmp_path) -> None:
    import numpy as np
    import yaml

    from clm.data.segments import explained

    actions = pd.Series(["cross_sell", "retain_with_offer", "no_action", "win_back"])
    assert RULES["top_reasons"] == {"actions": ["retain_with_offer", "win_back"]}
    assert explained(actions, RULES).tolist() == [False, True, False, True]
    base = yaml.safe_load((PROJECT_ROOT / "clm" / "config" / "segments.yaml").read_text())
    path = tmp_path / "rules.yaml"
    del base["top_reasons"]  # a rules file from before the section: the same default
    path.write_text(yaml.safe_dump(base))
    assert load_rules(path)["top_reasons"] == RULES["top_reasons"]
    path.write_text(yaml.safe_dump(base | {"top_reasons": {"actions": "all"}}))
    assert explained(actions, load_rules(path)).tolist() == [True] * 4
    for bad in ("some", [], ["call them"], {"retain_with_offer": 1}):
        path.write_text(yaml.safe_dump(base | {"top_reasons": {"actions": bad}}))
        with pytest.raises(ValueError, match="top_reasons.actions must be `all` or a list"):
            load_rules(path)
    assert np.asarray(explained(actions.iloc[:0], RULES)).shape == (0,)
