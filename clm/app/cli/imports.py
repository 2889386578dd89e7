"""``clm import``: a real transaction log into landing, one partition per day."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from clm.app.cli import render
from clm.app.cli.common import fail, setup
from clm.core.console import console

import_app = typer.Typer(
    help="Import a real transaction log into landing (orders and customers, one partition "
    "per day). Then run `clm run` over the printed days.",
    no_args_is_help=True,
)


def _import(call: Callable[[Callable[[str], None]], Any]) -> None:
    """Run an import with a status line, then print its report; exit 2 on bad input."""
    from clm.data.importers import ImportInputError

    started = time.perf_counter()
    try:
        with console.status("importing") as status:
            report = call(status.update)
    except ImportInputError as exc:
        fail(exc, "cannot import:", code=2)
    render.import_report(report, time.perf_counter() - started)


@import_app.command("transactions")
def transactions(
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
    from clm.data.importers import ColumnMap, import_transactions

    settings = setup()
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
        lambda progress: import_transactions(
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
def online_retail(
    path: Annotated[
        Path,
        typer.Argument(help="The UCI file, e.g. ../shared/data/online_retail/online_retail.csv.gz"),
    ],
) -> None:
    """Import the UCI Online Retail file (invoices, 'C' cancellations, UK local time)."""
    from clm.data.importers import import_online_retail

    settings = setup()
    _import(lambda progress: import_online_retail(path, settings.landing_dir, progress=progress))
