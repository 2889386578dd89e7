import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from clm.core.contracts import CONTRACTS
from clm.core.settings import PROJECT_ROOT
from clm.data.validation import (
    HELPER_COLUMNS,
    BatchValidationError,
    check_output,
    check_volume,
    trailing_volume,
    validate_batch,
)

DS = date(2024, 5, 1)
SUITES = PROJECT_ROOT / "expectations"


def _orders() -> pd.DataFrame:
    ts = datetime(2024, 5, 1, 10, tzinfo=UTC)
    return pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4", "o4", None],
            "customer_id": ["c1", "c2", None, "c3", "c3", "c4"],
            "order_ts": [ts] * 6,
            "amount": [10.0, -5.0, 3.0, 4.0, 4.0, 1.0],
            "n_items": [1, 1, 1, 1, 1, 1],
            "category": ["home"] * 6,
            "discount": [0.0, 0.0, 0.0, 0.0, 1.5, 0.0],
            "status": ["completed", "completed", "returned", "gift", "completed", "completed"],
            "ds": [DS] * 6,
        }
    )


KNOWN = pd.Series([DS] * 4, index=["c1", "c2", "c3", "c4"])


def _validate(raw: pd.DataFrame, gx_dir: Path):
    return validate_batch(
        raw, CONTRACTS["orders"], SUITES / "orders.json", gx_dir, [DS], customers_first_ds=KNOWN
    )


def test_suites_agree_with_contracts() -> None:
    for table, contract in CONTRACTS.items():
        suite = json.loads((SUITES / f"{table}.json").read_text())
        column_rules = [
            e for e in suite["expectations"] if e["type"] == "expect_table_columns_to_match_set"
        ]
        assert len(column_rules) == 1
        assert set(column_rules[0]["kwargs"]["column_set"]) == set(contract.required), table
        for rule in suite["expectations"]:
            assert rule.get("description"), (table, rule["type"])  # it is the quarantine reason
            columns = [rule["kwargs"].get(k) for k in ("column", "column_A", "column_B")]
            columns += rule["kwargs"].get("column_list") or []
            for column in filter(None, columns):
                assert column in contract.columns or column in HELPER_COLUMNS, (table, column)


def test_failing_rows_are_quarantined_with_every_reason(tmp_path: Path) -> None:
    out = _validate(_orders(), tmp_path)
    assert list(out.valid["order_id"]) == ["o1"]
    assert len(out.valid) + len(out.quarantine) == 6
    reasons = dict(
        zip(out.quarantine["order_id"].fillna("<null>"), out.quarantine["reason"], strict=True)
    )
    assert "amount is not in (0, 1000000]" in reasons["o2"]
    assert "customer_id is missing" in reasons["o3"]
    assert "order_id is missing" in reasons["<null>"]
    # both copies of a duplicated id go, and one also breaks two other rules
    assert sum("order_id repeated within the day" in r for r in out.quarantine["reason"]) == 2
    assert "discount is not in [0, 1]" in reasons["o4"] or "status" in reasons["o4"]


def test_unparseable_values_are_quarantined_not_lost(tmp_path: Path) -> None:
    raw = _orders().astype({"amount": object})
    raw.loc[0, "amount"] = "ten"
    out = _validate(raw, tmp_path)
    row = out.quarantine[out.quarantine["order_id"] == "o1"].iloc[0]
    assert row["amount"] == "ten" and "amount is not a float" in row["reason"]


def test_missing_column_fails_the_batch_with_a_clear_message(tmp_path: Path) -> None:
    raw = _orders().drop(columns="amount")
    with pytest.raises(BatchValidationError, match=r"orders ds=2024-05-01.*missing column.*amount"):
        _validate(raw, tmp_path)


def test_empty_required_table_fails_the_volume_check(tmp_path: Path) -> None:
    counts = pd.DataFrame(
        {
            "table": ["orders"] * 8 + ["events"] * 8,
            "ds": [DS - timedelta(days=i) for i in range(8)] * 2,
            "rows": [0] + [10] * 7 + [500] + [10] * 7,
        }
    )
    volume = trailing_volume(counts).sort_values(["table", "ds"])
    volume["must_have_rows"] = volume["table"] == "orders"  # the quiet-day policy 'refuse'
    with pytest.raises(BatchValidationError, match=r"orders ds=2024-05-01: rule no rows landed"):
        check_volume(volume, SUITES / "volume.json", tmp_path, [DS])
    volume = volume[~((volume["table"] == "orders") & (volume["ds"] == DS))]
    flags, _ = check_volume(volume, SUITES / "volume.json", tmp_path, [DS])
    assert flags == {("events", DS): {"volume above 10x the trailing 7-day mean": 1}}


def test_output_suite_refuses_a_bad_segment_table(tmp_path: Path) -> None:
    good = pd.DataFrame(
        {
            "ds": [DS, DS, DS, DS],
            "customer_id": ["c1", "c2", "c3", "c4"],
            "lifecycle_stage": ["at_risk", "lapsed", "active", "prospect"],
            # a prospect (no order yet) has no churn, spend, tier or RFM segment
            "churn_probability": [0.7, 0.9, 0.1, None],
            "expected_spend": [10.0, 0.0, 5.0, None],
            "value_tier": ["high", "low", "mid", None],
            "rfm_segment": ["Champions", "Lost", "Loyal", None],
            "segment": [
                "high_value_at_risk",
                "low_value_lapsed",
                "mid_value_healthy",
                "prospect_possible",
            ],
            "next_best_action": ["retain_with_offer", "no_action", "cross_sell", "welcome_offer"],
            # Reasons where the action answers churn risk; NULL where it needs none.
            "top_reasons": ["recency_days, tenure_days, visits_30d", None, "none", None],
            "churn_model_version": ["1", "1", "1", None],
            "clv_model_version": ["2", "2", "2", None],
            # JSON arrays of category names (any text), NULL before a recommender exists
            "recommended_categories": [
                '["garden", "toys", "a \\"quoted\\", name"]',
                "[]",
                None,
                '["toys"]',
            ],
            "reco_model_version": ["3", "3", None, "3"],
            "behaviour_cluster": ["frequent, big spenders", "lapsing, small spenders", None, None],
            "cluster_model_version": ["4", "4", None, None],
            "conversion_probability": [None, None, None, 0.3],
            "conversion_model_version": [None, None, None, "5"],
        }
    )
    suite = SUITES / "customer_segments.json"
    assert check_output(good, suite, tmp_path, "customer_segments", DS).startswith("file://")
    bad = good.assign(
        churn_probability=[1.5, 0.9, 0.1, 0.2],
        customer_id=["c1", "c1", "c3", "c4"],
        segment=["high_value_healthy", "vip", "mid_value_healthy", "prospect_possible"],
        next_best_action=["cross_sell", "call them", "win_back", "welcome_offer"],
        top_reasons=["a;b;c", "none", None, None],
        recommended_categories=['["a", "b", "c", "d"]', "garden, toys", '["toys"]', "[]"],
        cluster_model_version=["4", None, None, None],
        expected_spend=[10.0, 0.0, None, None],
        conversion_probability=[0.5, None, None, 1.2],
        conversion_model_version=["5", None, None, None],
    )
    with pytest.raises(BatchValidationError) as err:
        check_output(bad, suite, tmp_path, "customer_segments", DS)
    assert "churn_probability is not in [0, 1] (1)" in str(err.value)
    assert "customer_id scored twice (2)" in str(err.value)
    assert "segment is not <tier>_value_<risk> or prospect_<likelihood> (1)" in str(err.value)
    assert "next_best_action is not a known action" in str(err.value)
    assert "top_reasons is not up to three feature names (1)" in str(err.value)
    assert "top_reasons is missing where the action needs them" in str(err.value)
    assert "recommended_categories is not a JSON array of at most three" in str(err.value)
    assert "a recommendation without the version of clm-reco that made it (1)" in str(err.value)
    assert "a behaviour cluster without the version of clm-clusters" in str(err.value)
    assert "expected_spend is missing for a customer with an order (1)" in str(err.value)
    assert "churn_probability on a prospect (no order to churn from) (1)" in str(err.value)
    assert "conversion_probability on a customer who already ordered (1)" in str(err.value)
    assert "conversion_probability is not in [0, 1] (1)" in str(err.value)
    assert "a conversion probability without the version of clm-conversion" in str(err.value)
