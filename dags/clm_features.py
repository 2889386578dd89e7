"""
### clm_features: customer features as of each announced day, into Feast

Triggered by the Asset `clm_validated`. Processes every day that clm_ingest
announced and this DAG has not processed at that content yet, oldest first
(the ledger in `CLM_HOME/ledger.json`): a run woken by several events, or
after the DAG was paused, catches them all up, and a day already processed
(by `clm run`, say) is not processed again. With the `ds` param it processes
the due days up to ds; with `force` it recomputes ds.

For each day, computes every customer's features as of the end of the day in
DuckDB and writes them as the Feast offline source (`features/<view>/ds=...`),
runs `feast apply` of `feature_repo/` when its definitions changed, and
materializes the days into the online store.

Then `route` decides: with no champion yet, a champion trained on other
features than the feature service now has, or on the training weekday
(`CLM_TRAINING_WEEKDAY`), it asks for training (Asset `clm_training_due`,
which runs clm_train, whose champion then triggers clm_score); otherwise it
announces the features (Asset `clm_features`, which triggers clm_score).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from clm.app.assets import FEATURES, TRAINING, VALIDATED


@dag(
    dag_id="clm_features",
    schedule=VALIDATED,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["clm", "features", "feast"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "ds": Param(
            None, type=["null", "string"], format="date", description="Process due days up to"
        ),
        "force": Param(False, type="boolean", description="Recompute ds even if processed"),
    },
    doc_md=__doc__,
)
def clm_features() -> None:
    @task
    def compute_features(**context):  # type: ignore[no-untyped-def]
        """Compute the feature snapshots of every due day (Feast offline source)."""
        from clm.app import tasks

        return tasks.compute_features(context)

    @task
    def feast_apply(**context):  # type: ignore[no-untyped-def]
        """`feast apply` feature_repo/ when its definitions changed."""
        from clm.app import tasks

        return tasks.apply_feature_repo(context)

    @task
    def materialize(**context):  # type: ignore[no-untyped-def]
        """Materialize the due snapshots into the online store."""
        from clm.app import tasks

        return tasks.materialize(context)

    @task.branch
    def route(result: dict, **context):  # type: ignore[no-untyped-def]
        """Ask for training first (no champion, training day) or announce the features."""
        from clm.app import tasks

        return tasks.route(result, context)

    @task(outlets=[FEATURES])
    def announce_features(result: dict, **context):  # type: ignore[no-untyped-def]
        """Update the Asset clm_features (triggers clm_score) with the processed days."""
        from clm.app import tasks

        return tasks.announce(context, "features", result)

    @task(outlets=[TRAINING])
    def request_training(result: dict, **context):  # type: ignore[no-untyped-def]
        """Update the Asset clm_training_due (triggers clm_train)."""
        from clm.app import tasks

        return tasks.announce(context, "training", result)

    done = materialize()
    compute_features() >> feast_apply() >> done
    route(done) >> [announce_features(done), request_training(done)]


dag_object = clm_features()

if __name__ == "__main__":
    dag_object.test()
