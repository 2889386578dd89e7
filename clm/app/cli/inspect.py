"""Commands that show what the pipeline wrote: validations, report, segments, customer."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from clm.app.cli import render
from clm.app.cli.common import fail, parse_date, setup
from clm.core.console import console
from clm.core.settings import Settings


def latest_ds(settings: Settings, table: str, what: str) -> date:
    """The latest ds in a warehouse table, or exit with a hint when there is none."""
    from clm.data import queries

    day = queries.latest_ds(settings.warehouse, table)
    if day is None:
        console.print(f"no {what} yet: run `clm run` or `clm demo` first", style="yellow")
        raise typer.Exit(1)
    return day


def print_segments(settings: Settings, ds: date | None) -> None:
    """Print a day's segments (default: the latest scored day); exit 1 when there are none."""
    from clm.data import queries

    if ds is None:
        ds = latest_ds(settings, "segment_summary", "segments")
    summary = queries.day(settings.warehouse, "segment_summary", ds)
    if summary.empty:
        console.print(f"no segments for ds={ds}", style="yellow")
        raise typer.Exit(1)
    render.segments(ds, summary, queries.stage_actions(settings.warehouse, ds))


def validations(
    ds: Annotated[str | None, typer.Option(help="Day (default: the latest validated).")] = None,
) -> None:
    """Print the validation runs of a day: counts per table, failures, flags, data docs."""
    from clm.data import queries
    from clm.data.validation import docs_index

    settings = setup()
    day = (
        parse_date(ds, "--ds") if ds else latest_ds(settings, "validation_runs", "validation runs")
    )
    render.validations(day, queries.day(settings.warehouse, "validation_runs", day))
    console.print(f"Data docs: {docs_index(settings.gx_dir)}")


def report(
    ds: Annotated[
        str | None, typer.Option(help="Scored day (YYYY-MM-DD); default: the latest.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="HTML file to write; default: CLM_HOME/reports/segments_<ds>.html."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write the day's segment report as one HTML file with charts.

    Segment sizes and value, transitions since the previous day, churn
    probability by lifecycle stage, global feature importance, the champions'
    metrics, drift and validation.
    """
    settings = setup(verbose)
    from clm.app.report import write_report

    try:
        with console.status("rendering the report ..."):
            path = write_report(settings, parse_date(ds, "--ds") if ds else None, out)
    except LookupError as exc:
        fail(exc)
    console.print(f"Report written: {path}")
    console.print(f"Open it: {path.resolve().as_uri()}")


def segments(
    ds: Annotated[str | None, typer.Option(help="Day (default: the latest scored).")] = None,
) -> None:
    """Print the segment summary of a day."""
    settings = setup()
    print_segments(settings, parse_date(ds, "--ds") if ds else None)


def customer(
    customer_id: Annotated[str, typer.Argument(help="Customer id, e.g. C0000042.")],
) -> None:
    """Print a customer's online features (Feast) and latest segment row."""
    settings = setup()
    from clm.data.customers import NoFeaturesRegistered, look_up

    try:
        view = look_up(settings, customer_id)
    except NoFeaturesRegistered:
        console.print(
            "no features registered yet: run `clm run` or `clm demo` first", style="yellow"
        )
        raise typer.Exit(1) from None
    if not view.known:
        console.print(
            f"unknown customer {customer_id!r}: no online features and no segment row",
            style="yellow",
        )
        raise typer.Exit(1)
    if not view.has_features:
        console.print(f"{customer_id}: no online features (not yet materialized)", style="yellow")
    render.customer(view)
    if view.segment is None:
        console.print(f"{customer_id}: no segment row yet", style="yellow")
        raise typer.Exit(1)
