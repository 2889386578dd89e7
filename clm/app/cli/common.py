"""What every command shares: logging set-up, date options, progress bars, errors."""

from __future__ import annotations

import logging
import warnings
from datetime import date
from typing import NoReturn

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from clm.core.console import InertRichHandler, console, styled
from clm.core.settings import Settings, get_settings, parse_ds

# Libraries whose INFO lines would drown the CLI's own (shown with --verbose).
NOISY = (
    "great_expectations",
    "feast",
    "mlflow",
    "alembic",
    "airflow",
    "sqlalchemy",
    "py.warnings",
    "httpx",
    "urllib3",
    "numexpr",
    "matplotlib",
)


def setup(verbose: bool = False) -> Settings:
    """Inert Rich logging (library logs only with ``verbose``), the settings, their env."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[InertRichHandler(console=console, show_path=False, rich_tracebacks=True)],
        force=True,
    )
    logging.getLogger("clm").setLevel(logging.INFO)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    warnings.filterwarnings("ignore")
    settings = get_settings()
    settings.export_env()
    return settings


def parse_date(value: str, option: str) -> date:
    """A ``YYYY-MM-DD`` option, or a usage error that names the option."""
    try:
        return parse_ds(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def progress() -> Progress:
    """A transient progress bar: description, bar, done/total, time elapsed."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def fail(exc: BaseException | str, prefix: str = "error:", code: int = 1) -> NoReturn:
    """Print one inert error line and exit with ``code``."""
    console.print(styled("[red]{}[/] {}", prefix, exc))
    raise typer.Exit(code)
