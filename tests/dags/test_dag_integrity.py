"""DAG integrity: every file imports, and the DAGs are wired as designed."""

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {
    "clm_ingest": {"wait_for_data": {"validate_landing"}, "validate_landing": set()},
    "clm_features": {
        "compute_features": {"feast_apply"},
        "feast_apply": {"materialize"},
        "materialize": {"route", "announce_features", "request_training"},
        "route": {"announce_features", "request_training"},
        "announce_features": set(),
        "request_training": set(),
    },
    "clm_train": {
        "plan_training": {"wait_for_data"},
        "wait_for_data": {"cutoff_features", "train_and_promote"},
        "cutoff_features": {"train_and_promote"},
        "train_and_promote": set(),
    },
    "clm_score": {"score_and_segment": {"signal_drift"}, "signal_drift": set()},
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}


def test_expected_dag_ids(dagbag) -> None:
    assert set(dagbag.dag_ids) == set(EXPECTED)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_tags_retries_docs(dagbag, dag_id) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.tags and "clm" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    assert not dag.catchup
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_task_graph(dagbag, dag_id) -> None:
    dag = dagbag.dags[dag_id]
    graph = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert graph == EXPECTED[dag_id]


def test_each_dag_has_the_task_its_result_is_read_from(dagbag) -> None:
    from clm.app.runner import RESULT_TASKS

    assert set(RESULT_TASKS) == set(EXPECTED)
    for dag_id, task_id in RESULT_TASKS.items():
        assert task_id in dagbag.dags[dag_id].task_ids, (dag_id, task_id)


def test_assets_chain_the_dags(dagbag) -> None:
    from clm.app.assets import CHAMPION, DRIFT, FEATURES, SEGMENTS, TRAINING, VALIDATED

    def outlets(dag_id):
        return {o.name for t in dagbag.dags[dag_id].tasks for o in t.outlets}

    def schedule(dag_id):
        return str(dagbag.dags[dag_id].timetable.asset_condition)

    assert outlets("clm_ingest") == {VALIDATED.name}
    assert outlets("clm_features") == {FEATURES.name, TRAINING.name}
    assert outlets("clm_train") == {CHAMPION.name}
    assert outlets("clm_score") == {SEGMENTS.name, DRIFT.name}
    assert VALIDATED.name in schedule("clm_features")
    # Scoring follows the features, or the training run it waited for.
    assert FEATURES.name in schedule("clm_score") and CHAMPION.name in schedule("clm_score")
    # A training request and drift set off training; so does the weekly schedule.
    train = dagbag.dags["clm_train"].timetable
    assert DRIFT.name in schedule("clm_train") and TRAINING.name in schedule("clm_train")
    assert train.timetable.expression in ("@weekly", "0 0 * * 0")


def test_sensors_hold_no_worker_slot(dagbag) -> None:
    for dag_id in ("clm_ingest", "clm_train"):
        sensor = dagbag.dags[dag_id].get_task("wait_for_data")
        assert sensor.mode == "reschedule", dag_id


def test_scheduled_ds_is_the_day_that_ended(dagbag) -> None:
    from datetime import UTC, datetime

    from airflow.serialization.encoders import coerce_to_core_timetable

    timetable = coerce_to_core_timetable(dagbag.dags["clm_ingest"].timetable)
    interval = timetable.infer_manual_data_interval(
        run_after=datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    )
    assert interval.start.date().isoformat() == "2026-11-22"


def test_train_params(dagbag) -> None:
    params = dagbag.dags["clm_train"].params
    assert {"ds", "horizon_days", "model_families", "tuning_trials", "force_promotion"} <= set(
        params
    )


def test_dag_files_import_nothing_heavy() -> None:
    heavy = ("xgboost", "lightgbm", "feast", "mlflow", "great_expectations", "pandas", "duckdb")
    for path in DAGS.glob("*.py"):
        top = [
            line for line in path.read_text().splitlines() if line.startswith(("import", "from"))
        ]
        assert not [line for line in top if any(h in line for h in heavy)], path.name
