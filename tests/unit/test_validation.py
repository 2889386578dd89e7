import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from clm.contracts import CONTRACTS
from clm.settings import PROJECT_ROOT
from clm.validation import BatchValidationError, validate_batch

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


def test_suites_agree_with_contracts() -> None:
    for table, contract in CONTRACTS.items():
        suite = json.loads((SUITES / f"{table}.json").read_text())
        column_rules = [
            e for e in suite["expectations"] if e["type"] == "expect_table_columns_to_match_set"
        ]
        assert len(column_rules) == 1
        assert set(column_rules[0]["kwargs"]["column_set"]) == set(contract.required), table
        for rule in suite["expectations"]:
            column = rule["kwargs"].get("column")
            assert column is None or column in contract.columns, (table, column)


def test_failing_rows_are_quarantined_with_every_reason(tmp_path: Path) -> None:
    out = validate_batch(_orders(), CONTRACTS["orders"], SUITES / "orders.json", tmp_path, [DS])
    assert list(out.valid["order_id"]) == ["o1"]
    assert len(out.valid) + len(out.quarantine) == 6
    reasons = dict(
        zip(out.quarantine["order_id"].fillna("<null>"), out.quarantine["reason"], strict=True)
    )
    assert "expect_column_values_to_be_between(amount)" in reasons["o2"]
    assert "expect_column_values_to_not_be_null(customer_id)" in reasons["o3"]
    assert "expect_column_values_to_not_be_null(order_id)" in reasons["<null>"]
    # both copies of a duplicated id go, and one also breaks two other rules
    assert (
        sum(
            "expect_compound_columns_to_be_unique(ds,order_id)" in r
            for r in out.quarantine["reason"]
        )
        == 2
    )
    assert "discount" in reasons["o4"] or "status" in reasons["o4"]


def test_unparseable_values_are_quarantined_not_lost(tmp_path: Path) -> None:
    raw = _orders().astype({"amount": object})
    raw.loc[0, "amount"] = "ten"
    out = validate_batch(raw, CONTRACTS["orders"], SUITES / "orders.json", tmp_path, [DS])
    row = out.quarantine[out.quarantine["order_id"] == "o1"].iloc[0]
    assert row["amount"] == "ten" and "type:amount is not float" in row["reason"]


def test_missing_column_fails_the_batch_with_a_clear_message(tmp_path: Path) -> None:
    raw = _orders().drop(columns="amount")
    with pytest.raises(BatchValidationError, match=r"orders ds=2024-05-01.*missing column.*amount"):
        validate_batch(raw, CONTRACTS["orders"], SUITES / "orders.json", tmp_path, [DS])


def test_empty_required_table_fails_the_batch(tmp_path: Path) -> None:
    raw = _orders().iloc[0:0]
    with pytest.raises(BatchValidationError, match="required_nonempty"):
        validate_batch(raw, CONTRACTS["orders"], SUITES / "orders.json", tmp_path, [DS])
