"""
### clm_features: customer features as of ds, into Feast

Triggered by the Asset `clm_validated`. Computes every customer's features as
of the end of ds in DuckDB and writes them as the Feast offline source
(`features/<view>/ds=...`), runs `feast apply` of `feature_repo/` when its
definitions changed, and materializes the day ds (its first to its last instant)
into the online store, an explicit interval that a `feast apply` cannot move.
Updates the Asset `clm_features`, which triggers `clm_score`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from clm.assets import FEATURES, VALIDATED


@dag(
    dag_id="clm_features",
    schedule=VALIDATED,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["clm", "features", "feast"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params={"ds": Param(None, type=["null", "string"], format="date", description="YYYY-MM-DD")},
    doc_md=__doc__,
)
def clm_features() -> None:
    @task
    def compute_features(**context):  # type: ignore[no-untyped-def]
        """Compute the customer feature snapshot as of ds (Feast offline source)."""
        from clm import tasks

        return tasks.compute_features(context)

    @task
    def feast_apply(**context):  # type: ignore[no-untyped-def]
        """`feast apply` feature_repo/ when its definitions changed."""
        from clm import tasks

        return tasks.apply_feature_repo(context)

    @task(outlets=[FEATURES])
    def materialize(**context):  # type: ignore[no-untyped-def]
        """Materialize the ds snapshot into the online store (the whole day ds)."""
        from clm import tasks

        return tasks.materialize(context)

    compute_features() >> feast_apply() >> materialize()


dag_object = clm_features()

if __name__ == "__main__":
    dag_object.test()
