"""The production topology as processes: ``clm stack up``, ``down``, ``status``, ``env``.

``docker-compose.yml`` runs Postgres, Redis, an MLflow server and a
CeleryExecutor Airflow as containers. This module runs the same services with
the same settings as processes on one machine, for a person without a Docker
engine and for the integration test:

- Postgres and Redis from the system's packages, their data under
  ``CLM_HOME/stack``, on ports that nothing else uses;
- ``mlflow server`` with the sign-in app, its runs and registry on Postgres and
  its artifacts served by the server;
- Airflow: ``db migrate``, then api-server, scheduler, dag-processor, triggerer
  and two Celery workers, with metadata on Postgres and Redis as the broker;
- the pipeline itself: the warehouse on Postgres, Feast's registry on Postgres
  and its online store on Redis.

Only settings differ between the embedded default and this stack; the code is
the same. :func:`service_env` is the one list of those settings: the compose
file's ``x-clm-env`` is checked against it by a test, so the two cannot drift.

Secrets come from the environment (or, for a stack a person starts here, are
generated once into ``CLM_HOME/stack/secrets.env``, readable by its owner only).
Nothing secret goes on a command line, where ``ps`` would show it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clm.core.settings import PROJECT_ROOT, Settings
from clm.data.ledger import pid_alive as _alive

log = logging.getLogger(__name__)
BIN = Path(sys.executable).parent
ADMIN = "admin"

# The services, here and in docker-compose.yml, in start order.
SERVICES = (
    "postgres",
    "redis",
    "mlflow",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker-1",
    "airflow-worker-2",
)
DATABASES = ("airflow", "mlflow", "feast", "clm")

# The stack's secrets: each from the environment, never from a file in the repository.
SECRETS = {
    "POSTGRES_PASSWORD": "the Postgres role clm",
    "REDIS_PASSWORD": "Redis (Feast's online store and the Celery broker)",
    "AIRFLOW_ADMIN_PASSWORD": "the Airflow user admin (UI and REST API)",
    "AIRFLOW_JWT_SECRET": "signs Airflow's API tokens, the same on every component",
    "AIRFLOW_FERNET_KEY": "encrypts Airflow's connections and variables",
    "MLFLOW_ADMIN_PASSWORD": "the MLflow server user admin",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "the MLflow server's CSRF protection",
}
MIN_SECRET_LENGTH = 16
# Secrets go into URLs and Redis' connection string as they are: keep them to these.
_SECRET_CHARS = re.compile(r"^[A-Za-z0-9_\-=]+$")

# Settings only the process form has: ports on one shared machine, and one API
# worker process where two cores serve everything.
LOCAL_ONLY = (
    "AIRFLOW__API__PORT",
    "AIRFLOW__API__WORKERS",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
    "PATH",
)
PREFERRED_PORTS = {"postgres": 15432, "redis": 16379, "mlflow": 5000, "airflow": 8080}


class StackError(RuntimeError):
    """The stack cannot start or stop; the message says why and what to do."""


# --- settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """Where each service is reached from the pipeline's processes, and from a browser."""

    home: str
    project: str
    postgres: str  # host:port
    redis: str
    mlflow: str
    airflow: str
    mlflow_public: str  # what a browser opens (compose: published ports on localhost)
    airflow_public: str

    @classmethod
    def compose(cls) -> Endpoints:
        """The endpoints inside docker-compose.yml's network."""
        return cls(
            home="/opt/clm/state",
            project="/opt/clm",
            postgres="postgres:5432",
            redis="redis:6379",
            mlflow="mlflow:5000",
            airflow="airflow-api-server:8080",
            mlflow_public="localhost:5000",
            airflow_public="localhost:8080",
        )


def service_env(ep: Endpoints, secret: Mapping[str, str]) -> dict[str, str]:
    """The settings every pipeline and Airflow process of the stack shares.

    docker-compose.yml holds the same, as ``x-clm-env``, with ``${NAME}`` for
    each secret.
    """
    pg = f"clm:{secret['POSTGRES_PASSWORD']}@{ep.postgres}"
    return {
        "CLM_HOME": ep.home,
        "CLM_WAREHOUSE_URL": f"postgresql://{pg}/clm",
        "CLM_MLFLOW_TRACKING_URI": f"http://{ep.mlflow}",
        "CLM_MLFLOW_UI_URL": f"http://{ep.mlflow_public}",
        "MLFLOW_TRACKING_USERNAME": ADMIN,
        "MLFLOW_TRACKING_PASSWORD": secret["MLFLOW_ADMIN_PASSWORD"],
        "CLM_FEAST_YAML": "feature_store.prod.yaml",
        "CLM_FEAST_REGISTRY_URL": f"postgresql+psycopg://{pg}/feast",
        "CLM_FEAST_REDIS": f"{ep.redis},password={secret['REDIS_PASSWORD']}",
        "AIRFLOW_HOME": f"{ep.home}/airflow",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": f"{ep.project}/dags",
        "AIRFLOW__CORE__PLUGINS_FOLDER": f"{ep.project}/plugins",
        "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
        "AIRFLOW__CORE__FERNET_KEY": secret["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": (
            f"{ep.home}/airflow/simple_auth_manager_passwords.json"
        ),
        # psycopg 3 for both of Airflow's engines (the async one defaults to asyncpg)
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg://{pg}/airflow",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"postgresql+psycopg://{pg}/airflow",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://:{secret['REDIS_PASSWORD']}@{ep.redis}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg://{pg}/airflow",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{ep.airflow}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://{ep.airflow_public}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret["AIRFLOW_JWT_SECRET"],
    }


def _example_values() -> dict[str, str]:
    """The placeholder values ``.env.example`` ships (refused as secrets)."""
    path = PROJECT_ROOT / ".env.example"
    return _read_env_file(path) if path.exists() else {}


def check_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """The stack's secrets from ``env``, or a refusal naming every problem (never a value).

    Raises:
        StackError: a secret is missing, still the placeholder of ``.env.example``,
            too short, of characters that would need escaping in a URL, or (the
            Fernet key) not a Fernet key.
    """
    examples = _example_values()
    problems = []
    for name, what in SECRETS.items():
        value = env.get(name, "")
        if not value:
            problems.append(f"{name} is not set ({what})")
        elif value == examples.get(name) or "change-me" in value.lower():
            problems.append(f"{name} is still the placeholder of .env.example")
        elif len(value) < MIN_SECRET_LENGTH:
            problems.append(f"{name} is shorter than {MIN_SECRET_LENGTH} characters")
        elif not _SECRET_CHARS.match(value):
            problems.append(f"{name} may hold only letters, digits, '-', '_' and '='")
    fernet = env.get("AIRFLOW_FERNET_KEY", "")
    if fernet and not any("AIRFLOW_FERNET_KEY" in p for p in problems):
        from cryptography.fernet import Fernet

        try:
            Fernet(fernet.encode())
        except ValueError:
            problems.append("AIRFLOW_FERNET_KEY is not a Fernet key (32 url-safe base64 bytes)")
    if problems:
        raise StackError(
            "refusing to start: "
            + "; ".join(problems)
            + ". Set real values in the environment or .env (README: Production secrets)."
        )
    return {name: env[name] for name in SECRETS}


def user_secrets(env_file: Path = Path(".env")) -> dict[str, str]:
    """The stack's secrets the user set: the environment over ``.env`` (as docker compose reads)."""
    values = _read_env_file(env_file) if env_file.is_file() else {}
    values |= {k: v for k, v in os.environ.items() if k in SECRETS}
    return {k: v for k, v in values.items() if k in SECRETS}


def generate_secrets() -> dict[str, str]:
    """Fresh random secrets, for a stack started on this machine."""
    from cryptography.fernet import Fernet

    out = {name: secrets.token_urlsafe(24) for name in SECRETS}
    out["AIRFLOW_FERNET_KEY"] = Fernet.generate_key().decode()
    return out


# --- the state of a running stack --------------------------------------------------


@dataclass
class Stack:
    """Where a stack of one ``CLM_HOME`` lives: its folder, ports and processes."""

    settings: Settings

    @property
    def root(self) -> Path:
        return self.settings.home / "stack"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.env"

    @property
    def env_file(self) -> Path:
        """Every setting of the stack, secrets included: ``set -a; . this; set +a``."""
        return self.root / "stack.env"

    def log(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return {}

    def save(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self.state_file)

    def secrets(self) -> dict[str, str]:
        """The secrets: from the environment or ``.env`` when set there, else this stack's own.

        Any secret set by the user means all of them must be set, and well: a
        half-configured production stack is refused rather than completed with
        generated values the user does not know.
        """
        given = user_secrets()
        if given:
            return check_secrets(given)
        if not self.secrets_file.exists():
            _write_private(self.secrets_file, generate_secrets())
        return check_secrets(_read_env_file(self.secrets_file))

    def endpoints(self, ports: Mapping[str, int]) -> Endpoints:
        return Endpoints(
            home=str(self.settings.home),
            project=str(PROJECT_ROOT),
            postgres=f"127.0.0.1:{ports['postgres']}",
            redis=f"127.0.0.1:{ports['redis']}",
            mlflow=f"127.0.0.1:{ports['mlflow']}",
            airflow=f"127.0.0.1:{ports['airflow']}",
            mlflow_public=f"localhost:{ports['mlflow']}",
            airflow_public=f"localhost:{ports['airflow']}",
        )

    def env(self, ports: Mapping[str, int], secret: Mapping[str, str]) -> dict[str, str]:
        """The environment of every process of this stack (the pipeline's and Airflow's)."""
        # The user's own settings (CLM_TRAINING_WEEKDAY, ...) reach every task; the
        # stack's settings win over any the user's shell holds for the embedded default.
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env |= service_env(self.endpoints(ports), secret)
        env |= {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "AIRFLOW__API__PORT": str(ports["airflow"]),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["triggerer_logs"]),
        }
        return env

    def running(self) -> dict[str, int]:
        """service -> pid of each process of the stack that is alive."""
        pids = self.state().get("pids", {})
        return {name: pid for name, pid in pids.items() if _alive(pid)}


def _write_private(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            out[name.strip()] = value.strip()
    return out


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_ports() -> dict[str, int]:
    """Each service's usual port when free, else any free port (never a clash)."""
    ports: dict[str, int] = {}
    for name, preferred in PREFERRED_PORTS.items():
        ports[name] = preferred if _free(preferred) else _any_port(set(ports.values()))
    ports["triggerer_logs"] = _any_port(set(ports.values()))
    return ports


def _any_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


# --- system binaries ----------------------------------------------------------------


def _pg_bin(name: str) -> str:
    import glob

    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise StackError(f"{name} not found: install PostgreSQL (apt-get install postgresql)")
    return found


def _as_postgres() -> list[str]:
    """Postgres refuses to run as root: as root, its commands run as the postgres user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).exists()), None
    )
    if not runuser:
        raise StackError("as root, Postgres runs as the user postgres: runuser not found")
    return [runuser, "-u", "postgres", "--"]


# --- up ------------------------------------------------------------------------------


def up(settings: Settings, timeout: float = 300, echo: Callable[[str], None] = log.info) -> Stack:
    """Start every service of the stack (a no-op for those already running).

    Raises:
        StackError: a secret is refused, a binary is missing, or a service did not
            become healthy within ``timeout`` (its log is named).
    """
    stack = Stack(settings)
    secret = stack.secrets()
    state = stack.state()
    if state.get("pids") and len(stack.running()) == len(state["pids"]):
        echo(f"the stack of {settings.home} is already running")
        return stack
    if stack.running():
        down(settings, echo=echo)
        state = stack.state()
    ports = state.get("ports") or _pick_ports()
    taken = [name for name, port in ports.items() if not _free(port)]
    if taken:  # ports of an earlier run now used by something else
        ports = _pick_ports()
    env = stack.env(ports, secret)
    (stack.root / "logs").mkdir(parents=True, exist_ok=True)
    state = {"ports": ports, "pids": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    stack.save(state)
    _write_private(
        stack.env_file, {k: env[k] for k in sorted(service_env(_ep(stack, ports), secret))}
    )

    def started(name: str, pid: int) -> None:
        state["pids"][name] = pid
        stack.save(state)

    try:
        echo(f"postgres on port {ports['postgres']}")
        _postgres_up(stack, ports["postgres"], secret["POSTGRES_PASSWORD"], started)
        echo(f"redis on port {ports['redis']}")
        _redis_up(stack, ports["redis"], secret["REDIS_PASSWORD"], started)
        echo(f"mlflow server on port {ports['mlflow']}")
        _mlflow_up(stack, ports, env, secret, started)
        echo("airflow db migrate")
        _airflow_init(stack, env, secret["AIRFLOW_ADMIN_PASSWORD"])
        for name, argv in airflow_commands().items():
            echo(name)
            started(name, _spawn(stack, name, argv, env))
        _wait_healthy(stack, ports, env, timeout)
    except BaseException:
        down(settings, echo=echo)
        raise
    return stack


def _ep(stack: Stack, ports: Mapping[str, int]) -> Endpoints:
    return stack.endpoints(ports)


def airflow_commands() -> dict[str, list[str]]:
    """The long-running Airflow components: service -> command (as in docker-compose.yml)."""
    airflow = str(BIN / "airflow")
    worker = [airflow, "celery", "worker", "--concurrency", "1", "--skip-serve-logs"]
    return {
        "airflow-api-server": [airflow, "api-server"],
        "airflow-scheduler": [airflow, "scheduler"],
        "airflow-dag-processor": [airflow, "dag-processor"],
        "airflow-triggerer": [airflow, "triggerer"],
        "airflow-worker-1": [*worker, "--celery-hostname", "worker-1@%h"],
        "airflow-worker-2": [*worker, "--celery-hostname", "worker-2@%h"],
    }


def _spawn(stack: Stack, name: str, argv: list[str], env: Mapping[str, str]) -> int:
    """Start ``argv`` in its own session (it outlives this command), logging to its file."""
    with open(stack.log(name), "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own binaries, no shell
            argv,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=stack.root,
        )
    return proc.pid


def _postgres_up(
    stack: Stack, port: int, password: str, started: Callable[[str, int], None]
) -> None:
    data = stack.root / "postgres"
    prefix = _as_postgres()
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        pwfile = stack.root / ".pgpass-init"
        _write_private(pwfile, {})
        pwfile.write_text(password + "\n")
        if prefix:
            shutil.chown(data, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            _run(
                [
                    *prefix,
                    _pg_bin("initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "clm",
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                ],
                "initdb",
                cwd=stack.root,
            )
        finally:
            pwfile.unlink(missing_ok=True)
    sockets = stack.root / "run"
    sockets.mkdir(exist_ok=True)
    if prefix:
        shutil.chown(sockets, "postgres", "postgres")
        shutil.chown(stack.log("postgres").parent, "postgres", "postgres")
    _run(
        [
            *prefix,
            _pg_bin("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(stack.log("postgres")),
            "-w",
            "-o",
            f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1",
            "start",
        ],
        "pg_ctl start",
        cwd=stack.root,
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    started("postgres", pid)
    import psycopg

    url = f"postgresql://clm:{password}@127.0.0.1:{port}/postgres"
    with psycopg.connect(url, autocommit=True) as con:
        have = {r[0] for r in con.execute("SELECT datname FROM pg_database").fetchall()}
        for name in DATABASES:
            if name not in have:
                con.execute(f'CREATE DATABASE "{name}"')


def _run(argv: list[str], what: str, cwd: Path) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)  # noqa: S603
    except OSError as exc:
        raise StackError(f"{what} failed: {exc}") from exc
    if done.returncode:
        raise StackError(f"{what} failed: {(done.stderr or done.stdout).strip()[-1500:]}")


def _redis_up(stack: Stack, port: int, password: str, started: Callable[[str, int], None]) -> None:
    server = shutil.which("redis-server")
    if not server:
        raise StackError("redis-server not found: install Redis (apt-get install redis-server)")
    folder = stack.root / "redis"
    folder.mkdir(exist_ok=True)
    conf = folder / "redis.conf"
    _write_private(conf, {})
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\nrequirepass {password}\n"
        "protected-mode yes\nappendonly no\nsave 60 1000\n"
    )
    started("redis", _spawn(stack, "redis", [server, str(conf)], {"PATH": "/usr/bin:/bin"}))


# MLflow's server starts Huey job consumers (five processes, about 1.2 GiB) for
# its GenAI jobs, which this product never submits. compose sets the same.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def _mlflow_up(
    stack: Stack,
    ports: Mapping[str, int],
    env: Mapping[str, str],
    secret: Mapping[str, str],
    started: Callable[[str, int], None],
) -> None:
    folder = stack.root / "mlflow"
    folder.mkdir(exist_ok=True)
    auth = folder / "basic_auth.ini"
    auth.write_text(mlflow_auth_ini(folder / "basic_auth.db"))
    pg = f"clm:{secret['POSTGRES_PASSWORD']}@127.0.0.1:{ports['postgres']}"
    server_env = dict(env) | {
        "MLFLOW_BACKEND_STORE_URI": f"postgresql+psycopg2://{pg}/mlflow",
        "MLFLOW_AUTH_CONFIG_PATH": str(auth),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
        "MLFLOW_AUTH_ADMIN_PASSWORD": secret["MLFLOW_ADMIN_PASSWORD"],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret["MLFLOW_FLASK_SERVER_SECRET_KEY"],
        **MLFLOW_SERVER_ENV,
    }
    argv = [
        *mlflow_command(),
        "--host",
        "127.0.0.1",
        "--port",
        str(ports["mlflow"]),
        "--artifacts-destination",
        str(folder / "artifacts"),
    ]
    started("mlflow", _spawn(stack, "mlflow", argv, server_env))


def mlflow_auth_ini(database: Path | str) -> str:
    """The MLflow server's sign-in settings (docker/mlflow-auth.ini for the compose file).

    Signed-in users read everything; only the admin writes. No secret here: the
    admin's password comes from ``MLFLOW_AUTH_ADMIN_PASSWORD``.
    """
    return (
        "# The MLflow server's sign-in (mlflow server --app-name basic-auth).\n"
        "# No secret here: the admin's password comes from MLFLOW_AUTH_ADMIN_PASSWORD.\n"
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{database}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "# Clients sign in on every request, and checking a password (scrypt) costs\n"
        "# 0.1 s of CPU: a training run made the server spend most of its time there.\n"
        "# A successful check is kept for 60 s. The server runs one worker, so a\n"
        "# password changed through the API takes effect at once.\n"
        "auth_cache_ttl_seconds = 60\n"
    )


def mlflow_command() -> list[str]:
    """The MLflow server as docker-compose.yml starts it (host, port and paths added)."""
    return [
        str(BIN / "mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--serve-artifacts",
        "--workers",
        "1",
    ]


def _airflow_init(stack: Stack, env: Mapping[str, str], admin_password: str) -> None:
    with open(stack.log("airflow-init"), "ab") as out:
        airflow_init(env, admin_password, out, cwd=stack.root)


def airflow_init(
    env: Mapping[str, str], admin_password: str, out: Any = None, cwd: Path | None = None
) -> None:
    """The admin's password file, ``airflow db migrate`` and the DAGs parsed (airflow-init).

    Raises:
        StackError: a step failed (its output went to ``out``).
    """
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    _write_private(passwords, {})
    passwords.write_text(json.dumps({ADMIN: admin_password}))
    for argv in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run(  # noqa: S603 - our own binary
            [str(BIN / "airflow"), *argv],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            check=False,
            cwd=cwd,
        )
        if done.returncode:
            raise StackError(f"airflow {' '.join(argv)} failed (exit {done.returncode})")


def _wait_healthy(
    stack: Stack, ports: Mapping[str, int], env: Mapping[str, str], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    checks: dict[str, Callable[[], bool]] = {
        "redis": lambda: _redis_ping(ports["redis"], env["CLM_FEAST_REDIS"]),
        "mlflow": lambda: _http_ok(f"http://127.0.0.1:{ports['mlflow']}/health"),
        "airflow-api-server": lambda: _airflow_healthy(ports["airflow"]),
        "airflow-worker-1": lambda: "ready" in _tail(stack.log("airflow-worker-1")),
        "airflow-worker-2": lambda: "ready" in _tail(stack.log("airflow-worker-2")),
    }
    for name, check in checks.items():
        while not check():
            dead = [n for n, pid in stack.state().get("pids", {}).items() if not _alive(pid)]
            if dead:
                raise StackError(f"{dead[0]} stopped: see {stack.log(dead[0])}")
            if time.monotonic() > deadline:
                raise StackError(f"{name} not healthy after {timeout:.0f}s: see {stack.log(name)}")
            time.sleep(1)


def _tail(path: Path, size: int = 20_000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - size))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _redis_ping(port: int, connection: str) -> bool:
    import redis

    password = connection.split("password=", 1)[1].split(",", maxsplit=1)[0]
    try:
        return bool(redis.Redis(port=port, password=password, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own port
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _airflow_healthy(port: int) -> bool:
    """The API server answers, and reports scheduler, dag-processor and triggerer healthy."""
    try:
        url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            health = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    parts = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    return all((health.get(p) or {}).get("status") == "healthy" for p in parts)


# --- down and status -------------------------------------------------------------------


def down(settings: Settings, echo: Callable[[str], None] = log.info) -> list[str]:
    """Stop every process of the stack; data stays. Returns what was stopped.

    Airflow's components stop together first (each finishes or hands back its
    work), then the MLflow server, Redis and Postgres, which they depend on.
    """
    stack = Stack(settings)
    state = stack.state()
    pids: dict[str, int] = state.get("pids", {})
    alive = {name: pid for name, pid in pids.items() if _alive(pid)}
    order = sorted(alive, key=SERVICES.index, reverse=True)
    airflow = [n for n in order if n.startswith("airflow-")]
    for group in (airflow, *([n] for n in order if n not in airflow)):
        if not group:
            continue
        echo("stopping " + ", ".join(group))
        if group == ["postgres"]:
            subprocess.run(  # noqa: S603
                [
                    *_as_postgres(),
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(stack.root / "postgres"),
                    "-m",
                    "fast",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                check=False,
                cwd=stack.root,
            )
        else:
            _terminate([alive[n] for n in group])
    if state:
        state["pids"] = {}
        stack.save(state)
    return order


def _terminate(pids: list[int], grace: float = 30) -> None:
    """SIGTERM the process groups of ``pids``, then SIGKILL what is left after ``grace``."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = list(pids)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if _group_alive(pid)]
        time.sleep(0.3)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


def status(settings: Settings) -> list[dict[str, Any]]:
    """Each service: whether its process is alive, its pid, and where it listens."""
    stack = Stack(settings)
    state = stack.state()
    ports = state.get("ports", {})
    pids = state.get("pids", {})
    where = {
        "postgres": f"127.0.0.1:{ports.get('postgres')}",
        "redis": f"127.0.0.1:{ports.get('redis')}",
        "mlflow": f"http://localhost:{ports.get('mlflow')}",
        "airflow-api-server": f"http://localhost:{ports.get('airflow')}",
    }
    return [
        {
            "service": name,
            "pid": pids.get(name),
            "running": bool(pids.get(name)) and _alive(pids[name]),
            "where": where.get(name, ""),
            "log": str(stack.log(name)),
        }
        for name in SERVICES
        if name != "airflow-init"
    ]
