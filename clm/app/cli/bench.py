"""``clm bench``: each stage of one day, and the daily cycle, at one or more shop sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from clm.app.cli import render
from clm.app.cli.common import fail, setup
from clm.core.console import console, styled


def bench(
    customers: Annotated[
        list[int] | None,
        typer.Option(
            "--customers", min=100, help="Shop size; repeat for several (default 10,000)."
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=100, help="Simulated days of history.")] = 365,
    repeat: Annotated[int, typer.Option(min=1, help="Runs per stage; figures are medians.")] = 3,
    trials: Annotated[int, typer.Option(min=1, help="Optuna trials per family in training.")] = 2,
    stage: Annotated[
        list[str] | None,
        typer.Option("--stage", help="Measure only this stage; repeat for several."),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures here.")
    ] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Where the throwaway homes go (default: the system temp).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Time every stage of one day in fresh processes, beside the naive peer.

    Stages: ingest, features, materialize (SQLite; Redis when redis-server is
    installed), training_set, train, score (DuckDB; Postgres when PostgreSQL is
    installed), and the daily cycle without training (ingest to segments through
    Airflow). Each figure is the median wall time of --repeat runs, with the peak
    memory and throughput; the naive peer (pandas features, Feast's file offline
    store, a full materialization, SHAP for every customer, row-by-row warehouse
    writes) runs in the same harness. With several sizes it prints each stage's
    scaling exponent.

    The label horizon and training cutoffs follow CLM_HORIZON_DAYS, CLM_TRAIN_CUTOFFS
    and CLM_CUTOFF_SPACING_DAYS; every other setting is the default, in throwaway homes.
    """
    setup(verbose)
    from clm.app.bench import (
        STAGE_NAMES,
        bench_size,
        scaling_exponents,
        throwaway_postgres,
        throwaway_redis,
    )

    sizes = sorted(customers or [10_000])
    stages = list(stage or STAGE_NAMES)
    unknown = sorted(set(stages) - set(STAGE_NAMES))
    if unknown:
        raise typer.BadParameter(
            f"{unknown}: expected one of {', '.join(STAGE_NAMES)}", param_hint="--stage"
        )
    results = []
    with throwaway_redis() as redis, throwaway_postgres() as postgres:
        for n in sizes:
            console.rule(styled("{} customers", f"{n:,}"))
            try:
                result = bench_size(
                    n,
                    days=days,
                    repeat=repeat,
                    trials=trials,
                    stages=stages,
                    redis=redis,
                    postgres=postgres,
                    say=lambda text: console.print(styled("  {}", text)),
                    workdir=workdir,
                )
            except RuntimeError as err:
                fail(err)
            results.append(result)
            render.bench(result)
    exponents = scaling_exponents(results)
    render.bench_summary(results, exponents)
    if json_path is not None:
        payload = (
            results[0].as_dict()
            if len(results) == 1
            else {
                "sizes": [r.as_dict() for r in results],
                "scaling_exponents": exponents,
            }
        )
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload, indent=2))
        console.print(styled("figures written to {}", json_path))
