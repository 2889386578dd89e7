"""The ``clm`` application: every command, in the order ``clm --help`` lists them."""

from __future__ import annotations

import typer

from clm.app.cli import bench, evaluate, inspect, pipeline, ui
from clm.app.cli.imports import import_app
from clm.app.cli.models import models_app
from clm.app.cli.stack import stack_app
from clm.core.console import console, styled

app = typer.Typer(
    help="Customer lifecycle pipeline: Airflow, Great Expectations, Feast, XGBoost, LightGBM "
    "and MLflow.",
    no_args_is_help=True,
    add_completion=False,
    # Plain one-line usage errors (Rich's boxed panel wraps long values mid-phrase).
    rich_markup_mode=None,
    # A crash report never prints local variables (settings hold credentials).
    pretty_exceptions_show_locals=False,
)
for command in (
    pipeline.simulate,
    pipeline.run,
    pipeline.score,
    pipeline.demo,
    inspect.validations,
    inspect.report,
    inspect.segments,
    inspect.customer,
    evaluate.evaluate,
    bench.bench,
    ui.ui,
):
    app.command()(command)
app.add_typer(models_app, name="models")
app.add_typer(import_app, name="import")
app.add_typer(stack_app, name="stack")


def main() -> None:
    """The ``clm`` entry point: a busy warehouse or home is one clear line, not a traceback."""
    from clm.data.ledger import HomeLocked
    from clm.data.warehouse import WarehouseBusy

    try:
        app()
    except (WarehouseBusy, HomeLocked) as exc:
        console.print(styled("[red]error:[/] {}", exc))
        raise SystemExit(1) from None
