"""``clm ui``: the Airflow and MLflow web UIs, on any port, without activating the venv."""

from __future__ import annotations

from typing import Annotated

import typer

from clm.app.cli.common import setup
from clm.core.console import console, styled


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
    from clm.app import services

    settings = setup()
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
                "MLflow UI on [bold]http://localhost:{}[/] (experiments clm-churn, clm-clv, "
                "clm-conversion, clm-reco, clm-clusters)",
                port,
            )
        )
        services.exec_mlflow(settings, port)
    elif which == "password":
        console.print(services.admin_password(settings))
    else:
        raise typer.BadParameter("expected airflow, mlflow or password", param_hint="WHICH")
