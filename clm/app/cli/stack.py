"""``clm stack``: the production topology as processes on this machine."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from clm.app.cli.common import fail
from clm.core.console import console, styled
from clm.core.settings import get_settings

stack_app = typer.Typer(
    help="The production topology as processes: Postgres, Redis, an MLflow server with "
    "sign-in, and Airflow with the CeleryExecutor and two workers (docker-compose.yml's "
    "services, without Docker).",
    no_args_is_help=True,
)


@stack_app.command("up")
def up(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every service to be healthy.")
    ] = 300,
) -> None:
    """Start every service under CLM_HOME/stack, on free ports (a no-op when running).

    Secrets come from the environment (see .env.example); when none is set, random
    ones are generated once into CLM_HOME/stack/secrets.env (readable by you only).
    """
    from clm.app import stack as topology

    settings = get_settings()
    try:
        stack = topology.up(settings, timeout=timeout, echo=lambda m: console.print(f"  {m}"))
    except topology.StackError as exc:
        fail(exc)
    ports = stack.state()["ports"]
    console.print(
        styled(
            "\nThe stack is up.\n"
            "  Airflow  http://localhost:{}  (user admin)\n"
            "  MLflow   http://localhost:{}  (user admin)\n"
            "Passwords: {} (AIRFLOW_ADMIN_PASSWORD, MLFLOW_ADMIN_PASSWORD).\n"
            "To use clm against it: set -a; . {}; set +a\n"
            "Unpause the DAGs and trigger clm_ingest with a landed ds; `clm stack down` "
            "stops everything (data stays).",
            ports["airflow"],
            ports["mlflow"],
            "your environment or .env" if topology.user_secrets() else stack.secrets_file,
            stack.env_file,
        )
    )


@stack_app.command("down")
def down() -> None:
    """Stop every service of the stack; its data stays under CLM_HOME/stack."""
    from clm.app import stack as topology

    try:
        stopped = topology.down(get_settings(), echo=lambda m: console.print(f"  {m}"))
    except topology.StackError as exc:
        fail(exc)
    console.print("stopped " + (", ".join(stopped) if stopped else "nothing: no service ran"))


@stack_app.command("status")
def status() -> None:
    """Each service: running or not, its pid, where it listens, its log."""
    from clm.app import stack as topology

    settings = get_settings()
    table = Table(title=f"clm stack of {settings.home}")
    for column in ("service", "state", "pid", "where"):
        table.add_column(column, no_wrap=True)
    rows = topology.status(settings)
    for row in rows:
        table.add_row(
            row["service"],
            Text("running", style="green") if row["running"] else Text("stopped", style="red"),
            str(row["pid"] or ""),
            row["where"],
        )
    console.print(table)
    console.print(styled("logs: {}/<service>.log", topology.Stack(settings).root / "logs"))
    if not all(r["running"] for r in rows):
        raise typer.Exit(1)


@stack_app.command("check-secrets")
def check_secrets() -> None:
    """Refuse missing, placeholder or weak secrets in the environment (names only, no values).

    docker-compose.yml runs this before any service starts.
    """
    from clm.app import stack as topology

    try:
        topology.check_secrets(os.environ)
    except topology.StackError as exc:
        fail(exc)
    console.print(f"{len(topology.SECRETS)} secrets set")


@stack_app.command("airflow-init")
def airflow_init() -> None:
    """Check the secrets, write the admin's password file, migrate Airflow's database.

    docker-compose.yml's airflow-init service; `clm stack up` does the same.
    """
    from clm.app import stack as topology

    try:
        secret = topology.check_secrets(os.environ)
        topology.airflow_init(os.environ, secret["AIRFLOW_ADMIN_PASSWORD"])
    except topology.StackError as exc:
        fail(exc)
    console.print("airflow metadata database migrated; admin password file written")
