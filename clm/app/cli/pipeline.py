"""Commands that run the pipeline: simulate, run, score and demo."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Annotated, Any

import typer
from rich.text import Text

from clm.app.cli import render
from clm.app.cli.common import fail, parse_date, progress, setup
from clm.core.console import console, styled
from clm.core.settings import Settings, parse_ds

DEMO_DIRTY_RATE = 0.002  # the simulator's default: planted rows for the gate to catch


def simulate(
    customers: Annotated[int, typer.Option(min=1, help="Customers who sign up.")] = 2000,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2024-01-01",
    days: Annotated[int, typer.Option(min=1, help="Days to simulate.")] = 180,
    seed: Annotated[int | None, typer.Option(help="Seed (default: CLM_SEED).")] = None,
    dirty_rate: Annotated[
        float, typer.Option(min=0, max=0.5, help="Share of broken rows.")
    ] = 0.002,
) -> None:
    """Write a simulated shop into landing/, with the latent truth in truth/."""
    settings = setup()
    first = parse_date(start, "--start")
    started = time.perf_counter()
    result = _simulate(
        settings, customers, first, days, settings.seed if seed is None else seed, dirty_rate
    )
    console.print(
        styled(
            "[green]Simulated[/] {} customers, {} orders, {} events over {} days ({}..{}) "
            "in {}s -> {}",
            f"{result.customers:,}",
            f"{result.orders:,}",
            f"{result.events:,}",
            days,
            first,
            first + timedelta(days=days - 1),
            f"{time.perf_counter() - started:.1f}",
            settings.landing_dir,
        )
    )


def _simulate(
    settings: Settings, customers: int, first: date, days: int, seed: int, dirty_rate: float
) -> Any:
    """Run the simulator into landing/ with a progress bar over the days."""
    from clm.data.simulate import simulate_shop

    with progress() as bars:
        bar = bars.add_task("simulating days", total=days)
        return simulate_shop(
            settings.landing_dir,
            settings.truth_dir,
            n_customers=customers,
            start=first,
            days=days,
            seed=seed,
            dirty_rate=dirty_rate,
            progress=lambda d: bars.update(bar, completed=d),
        )


def _run_days(
    settings: Settings,
    first: date,
    last: date,
    verbose: bool = False,
    train: bool = True,
    score_only: bool = False,
    run_backwards: bool = False,
) -> list[Any]:
    """Run (or only score) each day through Airflow, one line per DAG run; exit 1 on failure."""
    from clm.app.runner import DagRunFailed, RunRecord, run_range, score_range
    from clm.data.ledger import HomeLocked

    total_days = (last - first).days + 1

    def on_run(record: RunRecord) -> None:
        day = (parse_ds(record.ds) - first).days + 1
        console.print(
            f"  [{day}/{total_days}] {record.dag_id:<13} ds={record.ds}  {record.state}  "
            f"{record.seconds:5.1f}s"
        )

    console.print(f"Task logs: {settings.airflow_home / 'logs' / 'clm-run'}/<dag_id>/ds=<ds>.log")
    try:
        if score_only:
            return score_range(
                settings, first, last, run_backwards, on_run=on_run, quiet=not verbose
            )
        return run_range(settings, first, last, on_run=on_run, quiet=not verbose, train=train)
    except (DagRunFailed, HomeLocked, ValueError) as exc:
        fail(exc)


def run(
    start: Annotated[str, typer.Option(help="First day to run (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last day to run (YYYY-MM-DD).")],
    train: Annotated[
        bool,
        typer.Option(
            "--train/--no-train",
            help="Train on schedule and on drift (default), or never (score with the "
            "current champions).",
        ),
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs.")] = False,
) -> None:
    """Run ingest -> features -> (train) -> score through Airflow for each day.

    The first day's ingest catches up every pending landed day at once. Training
    runs on CLM_TRAINING_WEEKDAY (Sunday by default), when scoring reports drift,
    and whenever no champion exists.
    """
    settings = setup(verbose)
    _run_days(
        settings, parse_date(start, "--start"), parse_date(end, "--end"), verbose, train=train
    )


def score(
    start: Annotated[str, typer.Option(help="First day to score (YYYY-MM-DD).")],
    end: Annotated[str, typer.Option(help="Last day to score (YYYY-MM-DD).")],
    run_backwards: Annotated[
        bool, typer.Option("--run-backwards", help="Score the latest day first.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs.")] = False,
) -> None:
    """Backfill the segment tables: run clm_score for each day with the current champions.

    Each day's feature snapshot must exist (clm run computes them). Every day
    replaces its partitions in one transaction, so re-running or running out of
    order gives the same tables.
    """
    settings = setup(verbose)
    _run_days(
        settings,
        parse_date(start, "--start"),
        parse_date(end, "--end"),
        verbose,
        score_only=True,
        run_backwards=run_backwards,
    )


def demo(
    customers: Annotated[
        int, typer.Option(min=100, help="Customers in the simulated shop.")
    ] = 5000,
    days: Annotated[int, typer.Option(min=200, help="Days of history.")] = 365,
    run_days: Annotated[int, typer.Option(min=1, help="Last days run through Airflow.")] = 14,
    start: Annotated[str, typer.Option(help="First simulated day.")] = "2024-01-01",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Simulate a shop, run its last days through Airflow with weekly training, summarise."""
    settings = setup(verbose)
    began = time.perf_counter()
    first = parse_date(start, "--start")
    last = first + timedelta(days=days - 1)
    run_from = last - timedelta(days=run_days - 1)
    console.rule(Text("clm demo", style="bold"))
    console.print(f"CLM_HOME = {settings.home}")
    if settings.landing_dir.exists() and any(settings.landing_dir.iterdir()):
        console.print(
            "landing/ already holds data; reusing it (delete CLM_HOME to start over)",
            style="yellow",
        )
    else:
        result = _simulate(settings, customers, first, days, settings.seed, DEMO_DIRTY_RATE)
        console.print(
            f"Simulated {result.customers:,} customers, {result.orders:,} orders and "
            f"{result.events:,} events over {days} days."
        )
    console.print(f"Running {run_from}..{last} through Airflow (first day catches up the history).")
    records = _run_days(settings, run_from, last, verbose)
    _summary(settings, records, last, time.perf_counter() - began)


def _summary(settings: Settings, records: list[Any], last: date, seconds: float) -> None:
    """What the demo did: validation, materialization, training, champions, segments, report."""
    from clm.app.cli.inspect import print_segments
    from clm.app.report import write_report
    from clm.app.runner import tally
    from clm.data import queries

    console.rule(Text("Summary", style="bold"))
    total = tally(records)
    ingest = total.ingest
    render.ingest_summary(ingest.landed, ingest.validated, ingest.quarantined, ingest.rule_failures)
    console.print(
        f"Features materialized into the online store: {total.materialized:,} rows (Feast)."
    )
    for result in total.trainings:
        render.training_summary(result)
    used = queries.model_versions(settings.warehouse, last)
    console.print(
        f"Champions used on {last}: "
        + ", ".join(
            ", ".join(f"{name} v{v}" for v in used.loc[used["model"] == name, "version"])
            or f"no {name}"
            for name in queries.VERSION_COLUMNS
        )
    )
    print_segments(settings, last)
    report = write_report(settings, last)
    console.print(f"\nDemo finished in {seconds:.0f}s.")
    console.print(f"Report with charts for {last}: {report.resolve().as_uri()}")
    console.print(
        styled(
            "Open the UIs:\n"
            "  [bold]make airflow[/]  Airflow on http://localhost:8080 (`clm ui airflow --port N "
            "--unpause` for another port);\n"
            "                sign in as admin, password: `clm ui password`. The Customer "
            "segments\n"
            "                page is in its left navigation. Trigger clm_ingest with a landed "
            "`ds`.\n  [bold]make mlflow[/]   MLflow on {} (experiments clm-churn, clm-clv, "
            "clm-conversion, clm-reco, clm-clusters)",
            settings.mlflow_ui,
        )
    )
