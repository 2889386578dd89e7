"""
### clm_ingest: the Great Expectations gate

Runs daily for the day that just ended, or by hand for any landed day (the
`ds` param of the trigger form). First it waits for the day's data to land
(`wait_for_data`, a rescheduling sensor that holds no worker slot):

* a ds up to `CLM_LANDING_GRACE_DAYS` past the newest landed day waits up to
  `CLM_LANDING_TIMEOUT_MINUTES`, then fails;
* a ds further out (the daily schedule on a historical shop) fails at once,
  naming the newest landed day. Nothing is written for it.

Then every landed day up to ds that has not been ingested as it is now (new,
or re-landed) is validated against the suites in `expectations/`:

* passing rows go to `validated/<table>/ds=...`;
* rows failing a `critical` row rule go to `quarantine/<table>/ds=...` with a
  `reason` column naming every rule they broke;
* a batch-level failure (a missing or renamed column, a whole column of the
  wrong type, an unreadable, empty or duplicated file, no orders for a day)
  fails the task with the table, ds, rule and counts, and writes nothing;
* `warning` rules (an empty day, a 10x volume spike) only flag.

Counts, flags and a link to the GX data docs go to the warehouse table
`validation_runs`, one row per table and day; `clm validations` prints it.

Announces ds in the ledger and updates the Asset `clm_validated` (extra: ds),
which triggers `clm_features`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from clm.app.assets import VALIDATED


@dag(
    dag_id="clm_ingest",
    # The run of interval [D, D+1) starts after D ends; its logical date (ds) is D.
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["clm", "ingest", "great-expectations"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "ds": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Day to ingest (YYYY-MM-DD); default: the logical date.",
        )
    },
    doc_md=__doc__,
)
def clm_ingest() -> None:
    @task.sensor(poke_interval=60, timeout=24 * 3600, mode="reschedule")
    def wait_for_data(**context):  # type: ignore[no-untyped-def]
        """Wait until the day's data has landed; fail at once for a day far past it."""
        from clm.app import tasks

        return tasks.wait_for_data(context, "landing")

    @task(outlets=[VALIDATED])
    def validate_landing(**context):  # type: ignore[no-untyped-def]
        """Validate pending landed days with the GX suites; quarantine failing rows."""
        from clm.app import tasks

        return tasks.ingest(context)

    wait_for_data() >> validate_landing()


dag_object = clm_ingest()

if __name__ == "__main__":
    dag_object.test()
