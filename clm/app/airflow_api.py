"""A small client of Airflow 3's REST API: sign in, unpause, trigger and wait, as the UI does.

Used by the scheduler benchmark and the scheduler tests; the same calls work
against any Airflow 3 API server (``/auth/token`` of the simple auth manager).
:func:`serve` starts ``clm ui airflow`` on a free port and signs in to it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

DAG_IDS = ("clm_ingest", "clm_features", "clm_train", "clm_score")


def _q(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 900) -> Any:
    """Poll ``predicate`` every 3 s until it returns something truthy; return it.

    Raises:
        TimeoutError: naming ``what``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(3)
    raise TimeoutError(f"timed out waiting for {what}")


def healthy(base: str) -> bool:
    """Whether the metadatabase, scheduler, triggerer and dag-processor report healthy."""
    try:
        with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5) as response:
            health = json.load(response)
    except OSError:
        return False
    return all(
        health.get(part, {}).get("status") == "healthy"
        for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    )


@dataclass
class AirflowAPI:
    """A signed-in REST client of one Airflow API server."""

    base: str
    token: str

    @classmethod
    def sign_in(cls, base: str, username: str, password: str) -> AirflowAPI:
        request = urllib.request.Request(
            f"{base}/auth/token",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return cls(base, str(json.load(response)["access_token"]))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def dag_exists(self, dag_id: str) -> bool:
        try:
            self.call("GET", f"/api/v2/dags/{dag_id}")
        except urllib.error.HTTPError:
            return False
        return True

    def unpause(self, dag_ids: tuple[str, ...] = DAG_IDS, timeout: float = 120) -> None:
        """Unpause as the UI's toggles do (waiting until each DAG is parsed)."""
        for dag_id in dag_ids:
            wait_for(partial(self.dag_exists, dag_id), f"{dag_id} parsed", timeout=timeout)
            self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100"
        return list(self.call("GET", path)["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}"))

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """What the UI's Trigger button sends: a manual run with the form's params as conf."""
        body = {"logical_date": None, "conf": conf}
        return str(self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        """Wait until a run ends; its final state."""
        return str(
            wait_for(
                lambda: (
                    (state := self.run(dag_id, run_id)["state"]) in ("success", "failed") and state
                ),
                f"{dag_id} {run_id}",
                timeout=timeout,
            )
        )

    def settled(self, dag_ids: tuple[str, ...] = DAG_IDS) -> bool:
        """No run of the DAGs queued or running."""
        return not any(
            r["state"] in ("queued", "running") for dag_id in dag_ids for r in self.runs(dag_id)
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        try:
            entry = self.call(
                "GET",
                f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}"
                "/xcomEntries/return_value",
            )
        except urllib.error.HTTPError:
            return None
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def task_log(self, dag_id: str, run_id: str, task_id: str, attempt: int = 1) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/logs/{attempt}"
        return json.dumps(self.call("GET", path)["content"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(
    clm: str, env: dict[str, str], log_path: Path, timeout: float = 300
) -> Iterator[AirflowAPI]:
    """Run ``clm ui airflow`` on a free port until the block ends; yield a signed-in client.

    Raises:
        RuntimeError: Airflow exited while starting (the message ends with its log).
        TimeoutError: its four components were not healthy within ``timeout``.
    """
    port = _free_port()
    base = f"http://localhost:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [clm, "ui", "airflow", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:

            def up() -> bool:
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-4000:]
                    raise RuntimeError(f"clm ui airflow exited:\n{tail}")
                return healthy(base)

            wait_for(up, "the four Airflow components", timeout=timeout)
            password = subprocess.run(
                [clm, "ui", "password"], env=env, capture_output=True, text=True, check=True
            ).stdout.strip()
            yield AirflowAPI.sign_in(base, "admin", password)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
