"""``clm models``: champions, the promotion history, and rollback."""

from __future__ import annotations

from typing import Annotated

import typer

from clm.app.cli import render
from clm.app.cli.common import fail, setup
from clm.core.console import console

models_app = typer.Typer(
    help="Champions, promotion history and rollback.", invoke_without_command=True
)


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List the champions and the promotion history."""
    if ctx.invoked_subcommand is not None:
        return
    settings = setup()
    from clm.data import queries
    from clm.ml.registry import champions

    history = queries.promotions(settings.warehouse)
    if history.empty:
        console.print("no training runs yet", style="yellow")
        return
    render.promotions(history, champions(settings))


@models_app.command("rollback")
def rollback(
    model: Annotated[
        str, typer.Option(help="clm-churn, clm-clv, clm-conversion, clm-reco or clm-clusters.")
    ],
    to: Annotated[str, typer.Option("--to", help="Version to make champion.")],
    override_reason: Annotated[
        str,
        typer.Option(
            help="Why a version that was never promoted becomes champion (recorded on it).",
        ),
    ] = "",
) -> None:
    """Move the champion alias to another version, if its features match the feature service
    (for clm-reco and clm-clusters: if it is a model of that kind).

    A version that was kept out, retired or never decided needs --override-reason.
    """
    settings = setup()
    from clm.ml.registry import REGISTERED, rollback_champion

    if model not in REGISTERED.values():
        raise typer.BadParameter(
            f"expected one of {sorted(REGISTERED.values())}", param_hint="--model"
        )
    try:
        rollback_champion(settings, model, to, override_reason)
    except Exception as exc:
        fail(f"cannot roll {model} back to v{to}: {exc}")
    console.print(f"{model}@champion -> v{to}")
