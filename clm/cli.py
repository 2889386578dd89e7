"""``clm``: simulate, run, demo and inspect the customer lifecycle pipeline."""

from __future__ import annotations

import json
import logging
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from clm.console import InertRichHandler, console, styled
from clm.settings import Settings, get_settings, parse_ds
from clm.stack_cli import stack_app

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
models_app = typer.Typer(
    help="Champions, promotion history and rollback.", invoke_without_command=True
)
app.add_typer(models_app, name="models")
import_app = typer.Typer(
    help="Import a real transaction log into landing (orders and customers, one partition "
    "per day). Then run `clm run` over the printed days.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")
app.add_typer(stack_app, name="stack")
log = logging.getLogger("clm")

DEMO_DIRTY_RATE = 0.002  # the simulator's default: planted rows for the gate to catch
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


def _setup(verbose: bool = False) -> Settings:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[InertRichHandler(console=console, show_path=False, rich_tracebacks=True)],
        force=True,
    )
    logging.getLogger("clm").setLevel(logging.INFO)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")
    settings = get_settings()
    settings.export_env()
    return settings


def _date(value: str, option: str) -> date:
    try:
        return parse_ds(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


@app.command()
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
    settings = _setup()
    first = _date(start, "--start")
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
    from clm.simulate import simulate_shop

    with _progress() as progress:
        bar = progress.add_task("simulating days", total=days)
        return simulate_shop(
            settings.landing_dir,
            settings.truth_dir,
            n_customers=customers,
            start=first,
            days=days,
            seed=seed,
            dirty_rate=dirty_rate,
            progress=lambda d: progress.update(bar, completed=d),
        )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _run_with_progress(
    settings: Settings,
    first: date,
    last: date,
    verbose: bool = False,
    train: bool = True,
    score_only: bool = False,
    run_backwards: bool = False,
) -> list[Any]:
    from clm.runner import RunRecord, run_range, score_range

    total_days = (last - first).days + 1

    def on_run(record: RunRecord) -> None:
        day = (parse_ds(record.ds) - first).days + 1
        console.print(
            f"  [{day}/{total_days}] {record.dag_id:<13} ds={record.ds}  {record.state}  "
            f"{record.seconds:5.1f}s"
        )

    console.print(f"Task logs: {settings.airflow_home / 'logs' / 'clm-run'}/<dag_id>/ds=<ds>.log")
    if score_only:
        return score_range(settings, first, last, run_backwards, on_run=on_run, quiet=not verbose)
    return run_range(settings, first, last, on_run=on_run, quiet=not verbose, train=train)


@app.command()
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
    settings = _setup(verbose)
    from clm.ledger import HomeLocked
    from clm.runner import DagRunFailed

    try:
        _run_with_progress(
            settings, _date(start, "--start"), _date(end, "--end"), verbose, train=train
        )
    except (DagRunFailed, HomeLocked, ValueError) as exc:
        console.print(styled("[red]error:[/] {}", exc))
        raise typer.Exit(1) from exc


@app.command()
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
    settings = _setup(verbose)
    from clm.ledger import HomeLocked
    from clm.runner import DagRunFailed

    try:
        _run_with_progress(
            settings,
            _date(start, "--start"),
            _date(end, "--end"),
            verbose,
            score_only=True,
            run_backwards=run_backwards,
        )
    except (DagRunFailed, HomeLocked, ValueError) as exc:
        console.print(styled("[red]error:[/] {}", exc))
        raise typer.Exit(1) from exc


@app.command()
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
    settings = _setup(verbose)
    from clm.ledger import HomeLocked
    from clm.runner import DagRunFailed, RunRecord

    began = time.perf_counter()
    first = _date(start, "--start")
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
    try:
        records: list[RunRecord] = _run_with_progress(settings, run_from, last, verbose)
    except (DagRunFailed, HomeLocked, ValueError) as exc:
        console.print(styled("[red]error:[/] {}", exc))
        raise typer.Exit(1) from exc
    _summary(settings, records, last, time.perf_counter() - began)


def _summary(settings: Settings, records: list[Any], last: date, seconds: float) -> None:
    from clm import queries
    from clm.runner import tally

    console.rule(Text("Summary", style="bold"))
    total = tally(records)
    landed, valid, quarantined = (
        total.ingest.landed,
        total.ingest.validated,
        total.ingest.quarantined,
    )
    reasons, materialized, trainings = (
        total.ingest.rule_failures,
        total.materialized,
        total.trainings,
    )

    table = Table(title="Validation (Great Expectations)")
    for col in ("table", "landed", "validated", "quarantined"):
        table.add_column(col, justify="right" if col != "table" else "left")
    for name, n in landed.items():
        table.add_row(name, f"{n:,}", f"{valid[name]:,}", f"{quarantined[name]:,}")
    if landed:
        console.print(table)
    else:
        console.print("Validation: nothing new; every day of the range was already processed.")
    for name, rules in reasons.items():
        listed = ", ".join(f"{rule} ({n:,})" for rule, n in sorted(rules.items()))
        console.print(f"  quarantined {name}: {listed}")
    console.print("  per day: `clm validations --ds D`; GX data docs: make data-docs")
    console.print(f"Features materialized into the online store: {materialized:,} rows (Feast).")

    for result in trainings:
        for task, families in result.metrics.items():
            names = list(next(iter(families.values())).keys())
            mt = Table(title=f"{task} models, training run ds={result.ds} ({result.split} split)")
            mt.add_column("metric")
            for family in families:
                mt.add_column(family, justify="right")
            for metric in names:
                mt.add_row(metric, *[f"{families[f][metric]:.4f}" for f in families])
            decision = result.decisions[task]
            console.print(mt)
            console.print(
                styled(
                    "  -> {} registered as v{}: [bold]{}[/] ({})",
                    decision["family"],
                    decision["version"],
                    decision["decision"],
                    "; ".join(decision["reasons"]),
                )
            )
    champions = queries.model_versions(settings.warehouse, last)
    for _, row in champions.iterrows():
        console.print(
            f"Champions used on {last}: clm-churn v{row.churn_model_version}, "
            f"clm-clv v{row.clv_model_version}"
        )
    _print_segments(settings, last)
    from clm.report import write_report

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
            "`ds`.\n  [bold]make mlflow[/]   MLflow on {} (experiments clm-churn, clm-clv)",
            settings.mlflow_ui,
        )
    )


def _latest_ds(settings: Settings, table: str, what: str) -> date:
    """The latest ds in a warehouse table, or exit with a hint when there is none."""
    from clm import queries

    day = queries.latest_ds(settings.warehouse, table)
    if day is None:
        console.print(f"no {what} yet: run `clm run` or `clm demo` first", style="yellow")
        raise typer.Exit(1)
    return day


def _print_segments(settings: Settings, ds: date | None) -> None:
    from clm import queries

    if ds is None:
        ds = _latest_ds(settings, "segment_summary", "segments")
    summary = queries.day(settings.warehouse, "segment_summary", ds)
    if summary.empty:
        console.print(f"no segments for ds={ds}", style="yellow")
        raise typer.Exit(1)
    table = Table(title=f"Segments on {ds}")
    for col in ("segment", "customers", "mean churn p", "total expected spend"):
        table.add_column(col, justify="left" if col == "segment" else "right")
    for _, row in summary.iterrows():
        table.add_row(
            row.segment,
            f"{row.customers:,}",
            f"{row.mean_churn_probability:.3f}",
            f"{row.total_expected_spend:,.0f}",
        )
    table.add_row(
        Text("all", style="bold"), Text(f"{summary.customers.sum():,}", style="bold"), "", ""
    )
    console.print(table)
    stages = queries.stage_actions(settings.warehouse, ds)
    st = Table(title=f"Lifecycle stage x next best action on {ds}")
    st.add_column("lifecycle_stage")
    st.add_column("next_best_action")
    st.add_column("customers", justify="right")
    for _, row in stages.iterrows():
        st.add_row(row.lifecycle_stage, row.next_best_action, f"{row.n:,}")
    console.print(st)


def _print_import(report: Any, seconds: float) -> None:
    table = Table(title=f"Import of {report.source}", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("lines read", report.lines_read),
        ("  without a customer id (left out)", report.lines_without_customer),
        ("  rejected: unparseable (see rejects file)", report.lines_rejected),
        ("  malformed CSV lines (see rejects file)", report.malformed_lines),
        ("  cancellation lines", report.cancellation_lines),
        ("  sale lines", report.sale_lines),
        ("orders landed", report.orders),
        ("  completed", report.completed_orders),
        ("  cancelled", report.cancelled_orders),
        ("customers landed", report.customers),
        ("  already landed earlier (skipped)", report.customers_already_landed),
        ("days", report.days),
    ]
    for label, value in rows:
        table.add_row(label, f"{value:,}")
    console.print(table)
    for note in report.notes:
        console.print(styled("[yellow]note:[/] {}", note))
    if report.rejected_path:
        console.print(f"Rejected lines: {report.rejected_path}")
    if report.first_day:
        console.print(
            styled(
                "[green]Landed[/] {}..{} in {}s. Next: [bold]clm run --start {} --end {}[/] "
                "(or trigger clm_ingest in the Airflow UI)",
                report.first_day,
                report.last_day,
                f"{seconds:.1f}",
                report.first_day,
                report.last_day,
            )
        )


def _import(call: Any) -> None:
    from clm.importers import ImportInputError

    started = time.perf_counter()
    try:
        with console.status("importing") as status:
            report = call(status.update)
    except ImportInputError as exc:
        console.print(styled("[red]cannot import:[/] {}", exc))
        raise typer.Exit(2) from exc
    _print_import(report, time.perf_counter() - started)


@import_app.command("transactions")
def import_transactions(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file, gzip allowed.")],
    customer: Annotated[str, typer.Option(help="Column with the customer id.")],
    timestamp: Annotated[str, typer.Option(help="Column with the transaction time.")],
    amount: Annotated[
        str | None, typer.Option(help="Column with the line amount (or use --price).")
    ] = None,
    price: Annotated[
        str | None, typer.Option(help="Column with the unit price; amount = quantity x price.")
    ] = None,
    order_id: Annotated[
        str | None,
        typer.Option(
            help="Column with the order id; lines sum into orders. Default: one "
            "order per customer and timestamp."
        ),
    ] = None,
    quantity: Annotated[str | None, typer.Option(help="Column with the quantity.")] = None,
    category: Annotated[str | None, typer.Option(help="Column with the category.")] = None,
    country: Annotated[str | None, typer.Option(help="Column with the country.")] = None,
    timezone: Annotated[
        str, typer.Option(help="Zone of timestamps that carry none, e.g. Europe/London.")
    ] = "UTC",
    cancel_prefix: Annotated[
        str | None, typer.Option(help="Order ids starting with this are cancellations.")
    ] = None,
    skip_bad_rows: Annotated[
        bool,
        typer.Option(help="Set unparseable lines aside in a rejects file instead of failing."),
    ] = False,
) -> None:
    """Import any transaction log: map its columns onto orders and customers."""
    from clm.importers import ColumnMap
    from clm.importers import import_transactions as run_import

    settings = _setup()
    mapping = ColumnMap(
        customer=customer,
        timestamp=timestamp,
        amount=amount,
        price=price,
        order_id=order_id,
        quantity=quantity,
        category=category,
        country=country,
    )
    _import(
        lambda progress: run_import(
            path,
            settings.landing_dir,
            mapping,
            timezone=timezone,
            cancel_prefix=cancel_prefix,
            skip_bad_rows=skip_bad_rows,
            progress=progress,
        )
    )


@import_app.command("online-retail")
def import_online_retail(
    path: Annotated[
        Path,
        typer.Argument(help="The UCI file, e.g. ../shared/data/online_retail/online_retail.csv.gz"),
    ],
) -> None:
    """Import the UCI Online Retail file (invoices, 'C' cancellations, UK local time)."""
    from clm.importers import import_online_retail as run_import

    settings = _setup()
    _import(lambda progress: run_import(path, settings.landing_dir, progress=progress))


@app.command()
def validations(
    ds: Annotated[str | None, typer.Option(help="Day (default: the latest validated).")] = None,
) -> None:
    """Print the validation runs of a day: counts per table, failures, flags, data docs."""
    from clm import queries
    from clm.validation import docs_index

    settings = _setup()
    day = _date(ds, "--ds") if ds else _latest_ds(settings, "validation_runs", "validation runs")
    runs = queries.day(settings.warehouse, "validation_runs", day)
    table = Table(title=f"Validation on {day}")
    for col in ("table", "status", "landed", "validated", "quarantined", "failures", "warnings"):
        table.add_column(
            col, justify="right" if col in {"landed", "validated", "quarantined"} else "left"
        )
    for _, row in runs.iterrows():
        colour = {"passed": "green", "quarantined": "yellow"}.get(row.status, "red")
        table.add_row(
            row.table_name,
            Text(row.status, style=colour),
            f"{row.landed:,}",
            f"{row.validated:,}",
            f"{row.quarantined:,}",
            ", ".join(f"{k}: {v}" for k, v in json.loads(row.failures).items()) or "-",
            ", ".join(f"{k}" for k in json.loads(row.warnings)) or "-",
        )
    console.print(table)
    for _, row in runs[runs.status == "failed"].iterrows():
        console.print(styled("[red]{}:[/] {}", row.table_name, row.error))
    console.print(f"Data docs: {docs_index(settings.gx_dir)}")


@app.command()
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
    settings = _setup(verbose)
    from clm.report import write_report

    try:
        with console.status("rendering the report ..."):
            path = write_report(settings, _date(ds, "--ds") if ds else None, out)
    except LookupError as exc:
        console.print(styled("[red]error:[/] {}", exc))
        raise typer.Exit(1) from exc
    console.print(f"Report written: {path}")
    console.print(f"Open it: {path.resolve().as_uri()}")


@app.command()
def segments(
    ds: Annotated[str | None, typer.Option(help="Day (default: the latest scored).")] = None,
) -> None:
    """Print the segment summary of a day."""
    settings = _setup()
    _print_segments(settings, _date(ds, "--ds") if ds else None)


@app.command()
def customer(
    customer_id: Annotated[str, typer.Argument(help="Customer id, e.g. C0000042.")],
) -> None:
    """Print a customer's online features (Feast) and latest segment row."""
    settings = _setup()
    from clm import feature_store, queries

    started = time.perf_counter()
    store = feature_store.get_store(settings)
    opened_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    from feast.errors import FeastObjectNotFoundException

    try:
        features = feature_store.online_features(settings, customer_id, "churn_v1", store=store)
    except FeastObjectNotFoundException as exc:
        console.print(
            "no features registered yet: run `clm run` or `clm demo` first", style="yellow"
        )
        raise typer.Exit(1) from exc
    latency_ms = (time.perf_counter() - started) * 1000
    values = {k: v for k, v in features.items() if k != "customer_id"}
    row = queries.customer(settings.warehouse, customer_id)
    if row.empty and all(v is None for v in values.values()):
        console.print(
            f"unknown customer {customer_id!r}: no online features and no segment row",
            style="yellow",
        )
        raise typer.Exit(1)
    if all(v is None for v in values.values()):
        console.print(f"{customer_id}: no online features (not yet materialized)", style="yellow")
    table = Table(
        title=f"Online features of {customer_id}",
        caption=f"Feast online lookup {latency_ms:.1f} ms (store opened in {opened_ms:.0f} ms)",
    )
    table.add_column("feature")
    table.add_column("value", justify="right")
    for key in sorted(values):
        table.add_row(key, "" if values[key] is None else f"{values[key]:.4g}")
    console.print(table)
    if row.empty:
        console.print(f"{customer_id}: no segment row yet", style="yellow")
        raise typer.Exit(1)
    console.print_json(json.dumps(row.iloc[0].to_dict(), default=str), ensure_ascii=True)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List the champions and the promotion history."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _setup()
    from clm import queries

    history = queries.promotions(settings.warehouse)
    if history.empty:
        console.print("no training runs yet", style="yellow")
        return
    table = Table(title="Promotion history")
    for col in (
        "ds",
        "model",
        "version",
        "family",
        "metric",
        "score",
        "champion",
        "decision",
        "reasons",
    ):
        table.add_column(col)
    for _, r in history.iterrows():
        champion = "-" if r.champion_version is None else f"v{r.champion_version}"
        table.add_row(
            str(r.ds.date()),
            r.model_name,
            f"v{r.challenger_version}",
            r.challenger_family,
            r.metric,
            f"{r.challenger_score:.4f}",
            champion,
            r.decision,
            r.reasons,
        )
    console.print(table)
    from training.registry import REGISTERED, current_champion, setup_mlflow

    setup_mlflow(settings)
    import mlflow

    client = mlflow.MlflowClient()
    for name in REGISTERED.values():
        version = current_champion(client, name)
        console.print(f"{name}@champion = " + (f"v{version.version}" if version else "none"))


@models_app.command("rollback")
def rollback(
    model: Annotated[str, typer.Option(help="clm-churn or clm-clv.")],
    to: Annotated[str, typer.Option("--to", help="Version to make champion.")],
    override_reason: Annotated[
        str,
        typer.Option(
            help="Why a version that was never promoted becomes champion (recorded on it).",
        ),
    ] = "",
) -> None:
    """Move the champion alias to another version, if its features match the feature service.

    A version that was kept out, retired or never decided needs --override-reason.
    """
    settings = _setup()
    from clm import feature_store
    from training.registry import REGISTERED, SERVICES, setup_mlflow
    from training.registry import rollback as do_rollback

    if model not in REGISTERED.values():
        raise typer.BadParameter(
            f"expected one of {sorted(REGISTERED.values())}", param_hint="--model"
        )
    task = next(t for t, name in REGISTERED.items() if name == model)
    setup_mlflow(settings)
    try:
        expected = feature_store.feature_names(settings, SERVICES[task])
        do_rollback(model, to, expected, override_reason)
    except Exception as exc:
        console.print(styled("[red]error:[/] cannot roll {} back to v{}: {}", model, to, exc))
        raise typer.Exit(1) from exc
    console.print(f"{model}@champion -> v{to}")


@app.command()
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
            "the reference split for online-retail, else three cutoffs 13 weeks apart."
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
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Also write the comparison here.")
    ] = None,
    track: Annotated[
        bool, typer.Option(help="Log the runs to MLflow (experiments clm-<task>-evaluate).")
    ] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train the models and the baselines on one data set and print one comparison.

    Every metric comes with a paired bootstrap 95% interval. On the simulated
    shop the oracle (from the latent truth) is the ceiling; on online-retail the
    reference targets of DESIGN section 10 are checked.
    """
    settings = _setup(verbose)
    from training.evaluate import DATASETS, EvalSpec
    from training.evaluate import evaluate as run_evaluate

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
        cutoffs=[_date(c, "--cutoff") for c in cutoff or []],
        horizon_days=horizon,
        split=split,
        customers=customers,
        days=days,
        trials=trials,
        families=families or ["xgboost", "lightgbm"],
        bootstrap=bootstrap,
        track=track,
    )
    with console.status("evaluating") as status:

        def say(message: str) -> None:
            status.update(message)
            log.info(message)

        try:
            report = run_evaluate(spec, settings, say)
        except (ValueError, FileNotFoundError) as exc:
            console.print(styled("[red]error:[/] {}", exc))
            raise typer.Exit(1) from exc
    _print_evaluation(report)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"wrote {json_path}")


def _print_evaluation(report: dict[str, Any]) -> None:
    from training.evaluate import best_value
    from training.metrics import LOWER_IS_BETTER

    rows = report["rows"]
    console.print(
        styled("[bold]{}[/]: ", report["dataset"]),
        f"{report['split']} split, cutoffs "
        f"{', '.join(report['cutoffs'])} (test {report['test_cutoff']}), "
        f"H={report['horizon_days']} days; rows train {rows.get('train', 0):,}, "
        f"val {rows.get('val', 0):,}, "
        f"test {rows.get('test', 0):,}; test churn rate {report['churn_rate_test']:.1%}",
    )
    for task, body in report["tasks"].items():
        entries = body["candidates"]
        metrics = list(entries[0]["metrics"])
        table = Table(
            title=f"{task}: {body['label']} (primary {body['primary']}; "
            f"95% bootstrap intervals, {report['bootstrap_resamples']} resamples)",
            title_justify="left",
        )
        table.add_column("candidate")
        table.add_column("kind")
        for m in metrics:
            arrow = "↓" if m in LOWER_IS_BETTER else "↑"
            table.add_column(f"{m} {arrow}", justify="right")
        best = {m: best_value(entries, m, ("model", "baseline")) for m in metrics}
        for e in entries:
            cells = []
            for m in metrics:
                v = e["metrics"][m]
                winner = e["kind"] != "ceiling" and v["value"] == best[m]
                cells.append(
                    Text(
                        f"{v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}]",
                        style="bold green" if winner else "",
                    )
                )
            style = "dim" if e["kind"] == "ceiling" else None
            table.add_row(e["name"], e["kind"], *cells, style=style)
        # Intervals need room: never squeeze the table below 160 columns.
        console.print(table, width=max(console.width, 160))
        for name, verdict in body["verdicts"].items():
            if verdict["beats_every_baseline"]:
                console.print(f"  {name} beats every baseline on every metric")
            else:
                console.print(
                    styled(
                        "  [yellow]{} does not beat every baseline:[/] {}",
                        name,
                        "; ".join(verdict["not_beaten"]),
                    )
                )
        if "targets" in body:
            t = Table(title=f"{task}: DESIGN section 10 targets", title_justify="left")
            t.add_column("metric")
            t.add_column("target", justify="right")
            models = [
                k
                for k in next(iter(body["targets"].values()))
                if k not in ("target", "lower_is_better")
            ]
            for name in models:
                t.add_column(name, justify="right")
            for metric, row in body["targets"].items():
                cells = []
                for name in models:
                    ok = row[name]["met"]
                    cells.append(
                        Text(
                            f"{row[name]['value']:.3f} {'met' if ok else 'NOT met'}",
                            style="green" if ok else "red",
                        )
                    )
                sign = "<" if row["lower_is_better"] else ">"
                t.add_row(metric, f"{sign} {row['target']}", *cells)
            console.print(t)
    console.print(f"done in {report['seconds']:.0f} s; workspace {report['workspace']}")


@app.command()
def ui(
    which: Annotated[
        str, typer.Argument(help="airflow, mlflow, or password (Airflow's admin password).")
    ],
    port: Annotated[
        int | None, typer.Option(help="Port (default 8080 for Airflow, 5000 for MLflow).")
    ] = None,
    unpause: Annotated[
        bool,
        typer.Option(
            "--unpause",
            help="Airflow: unpause the four DAGs before starting, so the "
            "scheduler follows the chain.",
        ),
    ] = False,
) -> None:
    """Start Airflow (api-server, scheduler, dag-processor, triggerer) or the MLflow UI.

    Works without activating the virtualenv, on any free port.
    """
    from clm import services

    settings = _setup()
    if which == "airflow":
        port = port or 8080
        console.print(
            styled(
                "Airflow UI on [bold]http://localhost:{}[/] (ready in about 30 s).\n"
                "Sign in as [bold]{}[/]; the password is in {} (`clm ui password` prints it).\n"
                "Trigger clm_ingest with the `ds` param of a landed day; the scheduler runs "
                "the rest of the chain.",
                port,
                services.ADMIN,
                services.passwords_file(settings),
            )
        )
        services.exec_airflow(settings, port, unpause)
    elif which == "mlflow":
        port = port or 5000
        console.print(
            styled(
                "MLflow UI on [bold]http://localhost:{}[/] (experiments clm-churn, clm-clv)", port
            )
        )
        services.exec_mlflow(settings, port)
    elif which == "password":
        console.print(services.admin_password(settings))
    else:
        raise typer.BadParameter("expected airflow, mlflow or password", param_hint="WHICH")


def main() -> None:
    """The ``clm`` entry point: a busy warehouse or home is one clear line, not a traceback."""
    from clm.ledger import HomeLocked
    from clm.warehouse import WarehouseBusy

    try:
        app()
    except (WarehouseBusy, HomeLocked) as exc:
        console.print(styled("[red]error:[/] {}", exc))
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main()
