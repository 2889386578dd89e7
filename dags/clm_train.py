"""
### clm_train: XGBoost vs LightGBM, tracked in MLflow, promoted only if better

Weekly, when clm_score reports drift against the champion's training
reference (Asset `clm_drift`), or by hand with the trigger form. Labels come from future windows at
monthly cutoffs (the last complete one is the out-of-time test set); features
are joined point-in-time through Feast `get_historical_features`.

For churn and for future spend, each model family is tuned by Optuna (with
pruning; `tuning_trials` below), churn is calibrated on a validation slice,
and the baselines (recency, RFM logistic regression, BG/NBD x Gamma-Gamma,
run rate) are scored on the same rows. Each candidate is a child run of one
parent run (experiments `clm-churn`, `clm-clv`), with its plots. The best
model is registered; it gets the alias `champion` only if it beats the
current champion on today's test set by the configured margin and clears the
floors. Every decision is tagged on the version and written to
`model_promotions`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from clm.assets import CHAMPION, DRIFT


@dag(
    dag_id="clm_train",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("@weekly", timezone="UTC"), assets=DRIFT
    ),
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["clm", "train", "mlflow"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "ds": Param(
            None, type=["null", "string"], format="date", description="Cutoff date (YYYY-MM-DD)"
        ),
        "horizon_days": Param(None, type=["null", "integer"], minimum=7, description="H"),
        "model_families": Param(
            ["xgboost", "lightgbm"],
            type="array",
            items={"type": "string", "enum": ["xgboost", "lightgbm"]},
        ),
        "tuning_trials": Param(0, type="integer", minimum=0, description="Optuna trials"),
        "force_promotion": Param(False, type="boolean"),
    },
    doc_md=__doc__,
)
def clm_train() -> None:
    @task
    def cutoff_features(**context):  # type: ignore[no-untyped-def]
        """Compute any missing feature snapshots at the training cutoffs."""
        from clm import tasks

        return tasks.cutoff_features(context)

    @task(outlets=[CHAMPION])
    def train_and_promote(**context):  # type: ignore[no-untyped-def]
        """Train both families for churn and clv, log to MLflow, promote the best if better."""
        from clm import tasks

        return tasks.train(context)

    cutoff_features() >> train_and_promote()


dag_object = clm_train()

if __name__ == "__main__":
    dag_object.test()
