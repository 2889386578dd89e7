"""docker-compose.yml and ``clm stack`` are one topology: the same services, settings and commands.

The compose file cannot run here (no Docker engine), so it is checked against
the compose specification's JSON schema and against :mod:`clm.app.stack`, which
runs the same services as processes and is exercised for real by
``tests/integration/test_stack.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from clm.app import stack
from clm.app.stack import SECRETS, Endpoints, StackError, check_secrets, service_env

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
AIRFLOW_DAEMONS = tuple(stack.airflow_commands())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def _bare(argv: list[str]) -> list[str]:
    """A command as the image runs it: binaries by name, not by the venv's path."""
    return [Path(a).name if a.startswith(str(stack.BIN)) else a for a in argv]


def _as_text(env: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in env.items()}


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    """The compose specification's JSON schema, as check-jsonschema vendors it."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_compose_file_follows_the_compose_specification() -> None:
    done = _check_compose(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_compose_file_that_breaks_the_specification_is_caught(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  postgres:\n    image: postgres:16\n    healthcheck: yes\n")
    assert _check_compose(broken).returncode != 0


def test_compose_runs_the_services_of_the_process_topology(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*stack.SERVICES, "clm-init"}


def test_compose_and_the_processes_share_every_setting(compose: dict[str, Any]) -> None:
    placeholders = {name: f"${{{name}}}" for name in SECRETS}
    expected = service_env(Endpoints.compose(), placeholders)
    assert _as_text(compose["x-clm-env"]) == expected
    for name in ("airflow-init", *AIRFLOW_DAEMONS):
        env = _as_text(compose["services"][name]["environment"])
        missing = {k for k, v in expected.items() if env.get(k) != v}
        assert not missing, f"{name} lacks or changes {sorted(missing)}"


def test_compose_and_the_processes_run_the_same_commands(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, argv in stack.airflow_commands().items():
        assert services[name]["command"] == _bare(argv), name
    mlflow = services["mlflow"]["command"]
    assert mlflow[: len(stack.mlflow_command())] == _bare(stack.mlflow_command())
    assert services["airflow-init"]["command"] == ["clm", "stack", "airflow-init"]
    assert services["clm-init"]["command"] == ["clm", "stack", "check-secrets"]
    assert services["airflow-worker-1"]["command"].count("CeleryExecutor") == 0
    assert compose["x-clm-env"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_compose_mlflow_runs_with_the_settings_of_the_process(compose: dict[str, Any]) -> None:
    env = _as_text(compose["services"]["mlflow"]["environment"])
    assert stack.MLFLOW_SERVER_ENV.items() <= env.items()


def test_compose_mlflow_signs_in_as_the_processes_do() -> None:
    shipped = (ROOT / "docker" / "mlflow-auth.ini").read_text()
    assert shipped == stack.mlflow_auth_ini("/opt/clm/mlflow/basic_auth.db")


def test_postgres_holds_one_database_per_component(compose: dict[str, Any]) -> None:
    init = (ROOT / "docker" / "postgres-init.sql").read_text()
    created = {
        line.split()[2].strip(";") for line in init.splitlines() if "CREATE DATABASE" in line
    }
    # the image creates POSTGRES_DB itself
    created.add(compose["services"]["postgres"]["environment"]["POSTGRES_DB"])
    assert created == set(stack.DATABASES)


def test_every_service_waits_for_what_it_needs_and_reports_its_health(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    once = {"clm-init", "airflow-init"}
    for name, service in services.items():
        if name not in once:
            assert "healthcheck" in service, f"{name} has no healthcheck"
    for name in AIRFLOW_DAEMONS:
        needs = services[name]["depends_on"]
        assert needs["airflow-init"]["condition"] == "service_completed_successfully", name
        assert needs["postgres"]["condition"] == "service_healthy", name
        assert needs["redis"]["condition"] == "service_healthy", name
    for name in ("postgres", "redis"):
        needs = services[name]["depends_on"]
        assert needs["clm-init"]["condition"] == "service_completed_successfully"
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_no_secret_is_written_into_the_compose_file(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for name in SECRETS:
        assert f"${{{name}" in text, f"{name} is not taken from the environment"
    init = compose["services"]["clm-init"]["environment"]
    for name in SECRETS:
        assert init[name] == f"${{{name}:?set in .env}}", name
    for service in compose["services"].values():
        for key, value in (service.get("environment") or {}).items():
            secret = any(word in key for word in ("PASSWORD", "SECRET", "FERNET"))
            if secret and not key.endswith("_FILE"):
                assert "${" in str(value), f"{key} holds a literal value"


def _good() -> dict[str, str]:
    return stack.generate_secrets()


def test_generated_secrets_are_accepted() -> None:
    good = _good()
    assert check_secrets(good) == good


def test_the_placeholders_of_env_example_are_refused() -> None:
    example = stack._example_values()
    assert set(SECRETS) <= set(example), "every secret is listed in .env.example"
    with pytest.raises(StackError) as refused:
        check_secrets(example)
    for name in SECRETS:
        assert f"{name} is still the placeholder" in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("POSTGRES_PASSWORD", "", "is not set"),
        ("REDIS_PASSWORD", "short-but-real", "shorter than 16"),
        ("MLFLOW_ADMIN_PASSWORD", "with@an@at-sign-in-it", "may hold only"),
        ("AIRFLOW_ADMIN_PASSWORD", "Change-Me-Please-1234", "placeholder"),
        ("AIRFLOW_FERNET_KEY", "x" * 44, "not a Fernet key"),
    ],
)
def test_a_weak_or_missing_secret_is_refused_by_name_never_by_value(
    name: str, value: str, problem: str
) -> None:
    env = _good() | {name: value}
    with pytest.raises(StackError) as refused:
        check_secrets(env)
    message = str(refused.value)
    assert name in message and problem in message
    if value:
        assert value not in message


def test_a_half_configured_stack_is_refused_not_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert stack.user_secrets() == {}
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=a-real-password-of-length\n")
    given = stack.user_secrets()
    assert given == {"POSTGRES_PASSWORD": "a-real-password-of-length"}
    with pytest.raises(StackError, match="REDIS_PASSWORD is not set"):
        check_secrets(given)
    monkeypatch.setenv("POSTGRES_PASSWORD", "change-me")
    assert stack.user_secrets()["POSTGRES_PASSWORD"] == "change-me"  # the environment wins


def test_the_process_stack_listens_only_on_localhost_and_keeps_secrets_off_command_lines(
    tmp_path: Path,
) -> None:
    from clm.core.settings import Settings

    s = stack.Stack(Settings(home=tmp_path))
    ports = {"postgres": 1, "redis": 2, "mlflow": 3, "airflow": 4, "triggerer_logs": 5}
    good = _good()
    env = s.env(ports, good)
    assert (
        env["CLM_WAREHOUSE_URL"] == f"postgresql://clm:{good['POSTGRES_PASSWORD']}@127.0.0.1:1/clm"
    )
    assert env["AIRFLOW__API__BASE_URL"] == "http://localhost:4"
    command_lines = " ".join(
        " ".join(argv) for argv in [*stack.airflow_commands().values(), stack.mlflow_command()]
    )
    for value in good.values():
        assert value not in command_lines
    assert "0.0.0.0" not in command_lines


def test_clm_stack_up_refuses_the_placeholders_and_starts_nothing(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("CLM_")}
    env |= stack._example_values() | {"CLM_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "clm"), "stack", "up"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "refusing to start" in out and "POSTGRES_PASSWORD is still the placeholder" in out
    assert not (tmp_path / "home" / "stack" / "postgres").exists()
    assert not (tmp_path / "home" / "stack" / "state.json").exists()
