"""The summary of a ``clm run`` reads each DAG's result as a typed object."""

from __future__ import annotations

from dataclasses import asdict

from clm.app.runner import RESULT_TASKS, RunRecord, tally
from clm.data.ingest import IngestReport
from clm.ml.train import TrainResult


def _ingest(landed: int, quarantined: int, rule: str) -> RunRecord:
    report = IngestReport(
        days=["2024-01-01"],
        landed={"orders": landed},
        validated={"orders": landed - quarantined},
        quarantined={"orders": quarantined},
        rule_failures={"orders": {rule: quarantined}},
    )
    return RunRecord(
        "clm_ingest", "2024-01-01", "success", 1.0, {"validate_landing": asdict(report)}
    )


def test_results_are_summed_over_the_runs() -> None:
    train = TrainResult(ds="2024-01-07", split="time", rows={"train": 10, "test": 5})
    records = [
        _ingest(10, 1, "amount_positive"),
        _ingest(5, 2, "amount_positive"),
        RunRecord(
            "clm_features", "2024-01-01", "success", 1.0, {"materialize": {"rows": {"a": 7}}}
        ),
        RunRecord("clm_train", "2024-01-07", "success", 1.0, {"train_and_promote": asdict(train)}),
        RunRecord("clm_score", "2024-01-07", "failed", 1.0, {}),  # no result: skipped
    ]
    total = tally(records)
    assert total.ingest.landed == {"orders": 15}
    assert total.ingest.validated == {"orders": 12}
    assert total.ingest.quarantined == {"orders": 3}
    assert total.ingest.rule_failures == {"orders": {"amount_positive": 3}}
    assert total.materialized == 7
    assert total.trainings == [train]


def test_a_result_is_read_only_from_its_result_task() -> None:
    record = RunRecord("clm_ingest", "2024-01-01", "success", 1.0, {"wait_for_data": "2024-01-01"})
    assert record.result == {}
    assert set(RESULT_TASKS) == {"clm_ingest", "clm_features", "clm_train", "clm_score"}
