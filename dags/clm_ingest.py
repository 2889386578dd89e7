"""
### clm_ingest: the Great Expectations gate

Runs daily. Every landed day that has not been ingested as it is now (new, or
re-landed) is validated against the suites in `expectations/`:

* passing rows go to `validated/<table>/ds=...`;
* rows failing a `critical` row rule go to `quarantine/<table>/ds=...` with a
  `reason` column naming every rule they broke;
* a batch-level failure (a missing or renamed column, a whole column of the
  wrong type, an unreadable, empty or duplicated file, no orders for a day)
  fails the task with the table, ds, rule and counts, and writes nothing;
* `warning` rules (an empty day, a 10x volume spike) only flag.

Counts, flags and a link to the GX data docs go to the warehouse table
`validation_runs`, one row per table and day; `clm validations` prints it.

A first run processes all pending landed days at once; a daily run finds one.
Updates the Asset `clm_validated`, which triggers `clm_features`.
Pass the `ds` param to run for another day than the logical date.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from clm.assets import VALIDATED


@dag(
    dag_id="clm_ingest",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["clm", "ingest", "great-expectations"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params={"ds": Param(None, type=["null", "string"], format="date", description="YYYY-MM-DD")},
    doc_md=__doc__,
)
def clm_ingest() -> None:
    @task(outlets=[VALIDATED])
    def validate_landing(**context):  # type: ignore[no-untyped-def]
        """Validate pending landed days with the GX suites; quarantine failing rows."""
        from clm import tasks

        return tasks.ingest(context)

    validate_landing()


dag_object = clm_ingest()

if __name__ == "__main__":
    dag_object.test()
