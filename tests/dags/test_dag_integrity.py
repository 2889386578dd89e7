"""DAG integrity: every file imports, and the DAGs are wired as designed."""

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {
    "clm_ingest": {"validate_landing": set()},
    "clm_features": {
        "compute_features": {"feast_apply"},
        "feast_apply": {"materialize"},
        "materialize": set(),
    },
    "clm_train": {"cutoff_features": {"train_and_promote"}, "train_and_promote": set()},
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


def test_assets_chain_the_dags(dagbag) -> None:
    from clm.assets import CHAMPION, DRIFT, FEATURES, SEGMENTS, VALIDATED

    def outlets(dag_id):
        return {o.name for t in dagbag.dags[dag_id].tasks for o in t.outlets}

    assert outlets("clm_ingest") == {VALIDATED.name}
    assert outlets("clm_features") == {FEATURES.name}
    assert outlets("clm_train") == {CHAMPION.name}
    assert outlets("clm_score") == {SEGMENTS.name, DRIFT.name}
    assert VALIDATED.name in str(dagbag.dags["clm_features"].timetable.asset_condition)
    assert FEATURES.name in str(dagbag.dags["clm_score"].timetable.asset_condition)
    # Drift sets off training; so does the weekly schedule.
    train = dagbag.dags["clm_train"].timetable
    assert DRIFT.name in str(train.asset_condition)
    assert train.timetable.expression in ("@weekly", "0 0 * * 0")


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
