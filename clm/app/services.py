"""Start the UIs on this project's state: Airflow 3 (all four components) and MLflow.

Both work with the virtualenv not activated: every child process finds the
project's ``airflow`` through ``PATH``, and every URL a component needs (the
API server's base URL, the execution API the workers call, the MLflow UI the
pages link to) follows the port the user chose.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from clm.app.runner import DAG_IDS
from clm.app.stack import MLFLOW_SERVER_ENV
from clm.core.settings import Settings

log = logging.getLogger(__name__)
BIN = Path(sys.executable).parent
ADMIN = "admin"


def airflow_env(settings: Settings, port: int) -> dict[str, str]:
    """The environment of ``airflow standalone`` (and of its children) for ``port``."""
    settings.export_env()
    base = f"http://localhost:{port}"
    worker_logs, trigger_logs = _free_ports(2, avoid=port)
    env = dict(os.environ)
    env |= {
        # standalone starts `airflow scheduler`, `airflow api-server`, ... by name.
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base,
        # The workers report to the API server: without this they call port 8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
        # The log servers default to 8793 and 8794: keep them off the user's port.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_logs),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_logs),
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
    }
    return env


def _free_ports(n: int, avoid: int) -> list[int]:
    """``n`` distinct ports that nothing listens on now, other than ``avoid``."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            if sock.getsockname()[1] == avoid:
                sock.close()
                continue
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def passwords_file(settings: Settings) -> Path:
    """The file holding the admin password of the embedded Airflow (never printed)."""
    return settings.airflow_home / "simple_auth_manager_passwords.json"


def admin_password(settings: Settings) -> str:
    """The admin password, generated on first use and kept in :func:`passwords_file`."""
    path = passwords_file(settings)
    if path.exists():
        return str(json.loads(path.read_text())[ADMIN])
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(json.dumps({ADMIN: password}))
    return password


def unpause(settings: Settings, env: dict[str, str]) -> None:
    """Parse ``dags/`` into the metadata database and unpause the four DAGs."""
    airflow = str(BIN / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, stdout=subprocess.DEVNULL)
    for dag_id in DAG_IDS:
        subprocess.run(
            [airflow, "dags", "unpause", dag_id],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def exec_airflow(settings: Settings, port: int, do_unpause: bool = False) -> None:
    """Replace this process with ``airflow standalone`` on ``port`` (never returns)."""
    admin_password(settings)
    env = airflow_env(settings, port)
    if do_unpause:
        unpause(settings, env)
    os.execve(str(BIN / "airflow"), ["airflow", "standalone"], env)


def exec_mlflow(settings: Settings, port: int) -> None:
    """Replace this process with ``mlflow ui`` on ``port``; record its URL for the links."""
    settings.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    settings.mlflow_ui_file.write_text(f"http://localhost:{port}\n")
    env = dict(os.environ) | MLFLOW_SERVER_ENV
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    os.execve(
        str(BIN / "mlflow"),
        [
            "mlflow",
            "ui",
            "--backend-store-uri",
            settings.tracking_uri,
            "--default-artifact-root",
            str(settings.mlflow_artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env,
    )
