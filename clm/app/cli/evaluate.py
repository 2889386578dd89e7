"""``clm evaluate``: the models against the baselines (and the oracle) on one data set."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from clm.app.cli import render
from clm.app.cli.common import fail, parse_date, setup
from clm.core.console import console

log = logging.getLogger("clm")


def evaluate(
    dataset: Annotated[
        str,
        typer.Option(
            help="simulated, online-retail, or the CLM home (or its landing/) of data "
            "imported with `clm import transactions`."
        ),
    ] = "simulated",
    data: Annotated[
        Path | None,
        typer.Option(
            help="The UCI file for online-retail (default: ../shared/data/online_retail/"
            "online_retail.csv.gz or $CLM_ONLINE_RETAIL)."
        ),
    ] = None,
    cutoff: Annotated[
        list[str] | None,
        typer.Option(
            help="A cutoff date; repeat for several. The last is the test cutoff. Default: "
            "the train DAG's cutoffs (CLM_TRAIN_CUTOFFS, CLM_CUTOFF_SPACING_DAYS apart, "
            "label windows closed by the test cutoff) before the latest complete test "
            "cutoff (online-retail: 2011-09-09). The published UCI split: --cutoff "
            "2011-03-11 --cutoff 2011-06-09 --cutoff 2011-09-09."
        ),
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(min=7, help="H in days (default 91 for online-retail).")
    ] = None,
    split: Annotated[
        str, typer.Option(help="time (out-of-time test cutoff) or customers (random 20%).")
    ] = "time",
    customers: Annotated[int, typer.Option(min=100, help="Simulated shop size.")] = 20_000,
    days: Annotated[int, typer.Option(min=200, help="Simulated days.")] = 540,
    trials: Annotated[int, typer.Option(min=0, help="Optuna trials per family.")] = 20,
    families: Annotated[
        list[str] | None, typer.Option("--family", help="Model family; repeat. Default both.")
    ] = None,
    bootstrap: Annotated[int, typer.Option(min=50, help="Bootstrap resamples.")] = 500,
    origins: Annotated[
        int,
        typer.Option(
            min=1,
            help="Rolling origins: evaluate again with every cutoff moved back 4, 8, ... "
            "weeks, and report each metric's mean over the origins.",
        ),
    ] = 3,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the comparison here.")
    ] = None,
    track: Annotated[
        bool, typer.Option(help="Log the runs to MLflow (experiments clm-<task>-evaluate).")
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train the models and the baselines on one data set and print one comparison.

    Every metric comes with a bootstrap 95% interval, and the best model's gain
    over the best baseline with its paired interval. With --origins N the
    candidates are trained and tested again at N-1 earlier origins, and each
    metric's mean over the origins is printed. On the simulated shop the oracle
    (from the latent truth) is the ceiling; on online-retail the reference
    targets of DESIGN section 10 are checked.

    Tasks: churn, spend, conversion (the prospects' first order within H days,
    against the channel's record and recent visits; skipped without prospects),
    and category recommendation (collaborative filtering against popularity and
    the customer's own most bought categories, hit rate and NDCG at 3; skipped
    when the data have three categories or fewer).
    """
    settings = setup(verbose)
    from clm.ml.evaluate import DATASETS, EvalSpec
    from clm.ml.evaluate import evaluate as run_evaluate

    if split not in ("time", "customers"):
        raise typer.BadParameter("expected time or customers", param_hint="--split")
    if dataset not in DATASETS and not Path(dataset).exists():
        raise typer.BadParameter(
            f"expected {' or '.join(DATASETS)} or an existing path, got {dataset!r}",
            param_hint="--dataset",
        )
    for family in families or []:
        if family not in ("xgboost", "lightgbm"):
            raise typer.BadParameter(f"unknown family {family!r}", param_hint="--family")
    spec = EvalSpec(
        dataset=dataset,
        data_file=data,
        cutoffs=[parse_date(c, "--cutoff") for c in cutoff or []],
        horizon_days=horizon,
        split=split,
        customers=customers,
        days=days,
        trials=trials,
        families=families or ["xgboost", "lightgbm"],
        bootstrap=bootstrap,
        origins=origins,
        track=track,
    )
    with console.status("evaluating") as status:

        def say(message: str) -> None:
            status.update(message)
            log.info(message)

        try:
            report = run_evaluate(spec, settings, say)
        except (ValueError, FileNotFoundError) as exc:
            fail(exc)
    render.evaluation(report)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"wrote {json_path}")
