"""
### clm_score: the daily customer segment table

Triggered by the Asset `clm_features`, or `clm_champion` after a training run
that scoring waited for. Scores every day whose features are materialized and
not yet scored at that content, oldest first (the ledger), so each day is
scored exactly once; days from a requested training run on wait for it. With
the `ds` param it scores the due days up to ds; with `force` it re-scores ds.

Loads `models:/clm-churn@champion` and `models:/clm-clv@champion`, scores
every customer with a completed order, and assigns lifecycle stage, value
tier, RFM segment, segment, next best action and the top churn reasons (tree
SHAP). Every prospect (signed up, no order yet) gets the probability of a first
order from `models:/clm-conversion@champion`, a prospect segment and action.
Every customer gets three recommended categories (`clm-reco@champion`) and
every buyer a behavioural cluster (`clm-clusters@champion`). The output suite
`expectations/customer_segments.json` checks the rows first; if it fails,
nothing is written and the task fails. Then it measures drift (PSI per feature
and on each score) against the champions' training reference, and replaces the
ds partition of `customer_segments`, `segment_summary`, `segment_transitions`,
`drift` and `feature_importance` in one transaction. Updates the Asset `clm_segments`.

`signal_drift` updates the Asset `clm_drift`, which starts clm_train, only
when a PSI crossed its threshold (`drift:` in `clm/config/segments.yaml`) and
the last training run is older than the cooldown; otherwise it is skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, task

from clm.app.assets import CHAMPION, DRIFT, FEATURES, SEGMENTS


@dag(
    dag_id="clm_score",
    schedule=FEATURES | CHAMPION,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["clm", "score", "segments"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    params={
        "ds": Param(
            None, type=["null", "string"], format="date", description="Score due days up to"
        ),
        "force": Param(False, type="boolean", description="Re-score ds even if scored"),
    },
    doc_md=__doc__,
)
def clm_score() -> None:
    @task(outlets=[SEGMENTS])
    def score_and_segment(**context):  # type: ignore[no-untyped-def]
        """Score every due day with @champion and write its segment partitions."""
        from clm.app import tasks

        return tasks.score(context)

    @task(outlets=[DRIFT])
    def signal_drift(report: dict, **context):  # type: ignore[no-untyped-def]
        """Set off retraining (Asset clm_drift) if drift crossed a threshold; else skip."""
        from clm.app import tasks

        return tasks.signal_drift(report, context)

    signal_drift(score_and_segment())


dag_object = clm_score()

if __name__ == "__main__":
    dag_object.test()
