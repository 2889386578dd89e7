"""
### clm_train: XGBoost vs LightGBM, tracked in MLflow, promoted only if better

Runs when clm_features asks for training (Asset `clm_training_due`: no
champion yet, or the training weekday), when clm_score reports drift against
the champion's training reference (Asset `clm_drift`), weekly, or by hand
with the trigger form. The cutoff is the `ds` param, else the requested day,
else the drifted day, else the week that just ended; `wait_for_data` fails at
once for a cutoff far past the validated data (the weekly schedule on a
historical shop), so nothing is trained on days that have not landed.

Labels come from future windows at monthly cutoffs (the last complete one is
the out-of-time test set); features are joined point-in-time through Feast
`get_historical_features`.

For churn and for future spend (customers with an order), and for conversion
(prospects: signed up, no order yet; a first order within H days), each model
family is tuned by Optuna (with pruning; `tuning_trials` below), the
probabilities are calibrated on a validation slice, and the baselines (recency,
RFM logistic regression, BG/NBD x Gamma-Gamma, run rate; the channel's
conversion record and recent visits) are scored on the same rows. Each
candidate is a child run of one parent run (experiments `clm-churn`, `clm-clv`,
`clm-conversion`), with its plots. The best
model is registered; it gets the alias `champion` only if it beats the
current champion on today's test set by the configured margin and clears the
floors.

The recommenders (implicit ALS and item-item cosine, against popularity and the
customer's own most-bought categories) learn the purchase histories up to the
test cutoff and are scored on the next H days by hit rate and NDCG at 3
(experiment `clm-reco`); the better of the two models is promoted to
`clm-reco@champion` on the same terms. Every decision is tagged on the version and written to
`model_promotions`. Updates the Asset `clm_champion`, which lets clm_score
score the days that waited for this training.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, Param, dag, task

from clm.app.assets import CHAMPION, DRIFT, TRAINING


@dag(
    dag_id="clm_train",
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable("@weekly", timezone="UTC"), assets=DRIFT | TRAINING
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
    def plan_training(**context):  # type: ignore[no-untyped-def]
        """Pick the cutoff; skip if the requested training was done already."""
        from clm.app import tasks

        return tasks.plan_training(context)

    @task.sensor(poke_interval=60, timeout=24 * 3600, mode="reschedule")
    def wait_for_data(cutoff: str, **context):  # type: ignore[no-untyped-def]
        """Wait until the cutoff's data is validated; fail at once for a day far past it."""
        from clm.app import tasks

        return tasks.wait_for_data(context, "validated", cutoff)

    @task
    def cutoff_features(cutoff: str, **context):  # type: ignore[no-untyped-def]
        """Compute any missing feature snapshots at the training cutoffs."""
        from clm.app import tasks

        return tasks.cutoff_features(cutoff, context)

    @task(outlets=[CHAMPION])
    def train_and_promote(cutoff: str, **context):  # type: ignore[no-untyped-def]
        """Train both families for churn and clv and the recommenders; promote if better."""
        from clm.app import tasks

        return tasks.train(cutoff, context)

    cutoff = wait_for_data(plan_training())
    cutoff_features(cutoff) >> train_and_promote(cutoff)


dag_object = clm_train()

if __name__ == "__main__":
    dag_object.test()
