"""The demo's days both ways: in-process ``clm run`` against the real Airflow scheduler.

Simulates one shop (the demo's by default: 5,000 customers, a year), then runs
its last ``--run-days`` days twice, each in its own CLM home with a copy of the
landed data:

- **in-process**: ``clm run --start .. --end ..`` (each DAG run through
  ``dag.test()``, one process, recorded in Airflow's metadata with true times);
- **scheduler**: ``clm ui airflow`` on a free port (api-server, scheduler,
  dag-processor, triggerer; LocalExecutor on SQLite), signed in through the
  REST API, DAGs unpaused, ``clm_ingest`` triggered for every day back to back
  as a user would from the UI; the clock stops when the last day is scored and
  no run is queued or running.

Prints the wall time of each, the days trained and scored, and the ratio.

Usage: python -m benchmarks.runtime [--customers 5000] [--days 365] [--run-days 14]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clm.airflow_api import AirflowAPI, healthy, wait_for

CLM = str(Path(sys.executable).parent / "clm")
START = date(2024, 1, 1)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    return env | {"CLM_HOME": str(home)}


def _clm(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([CLM, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"clm {' '.join(args)} failed:\n{tail}")
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ledger(home: Path) -> dict[str, dict[str, str]]:
    path = home / "ledger.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def in_process(home: Path, first: date, last: date) -> float:
    started = time.perf_counter()
    _clm(_env(home), "run", "--start", first.isoformat(), "--end", last.isoformat())
    return time.perf_counter() - started


def scheduler(home: Path, first: date, last: date, console: Console) -> tuple[float, float]:
    """Seconds to start Airflow, and seconds from the first trigger to the last day scored."""
    env = _env(home)
    port = _free_port()
    log = open(home.parent / "airflow.log", "wb")  # noqa: SIM115
    began = time.perf_counter()
    proc = subprocess.Popen(
        [CLM, "ui", "airflow", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://localhost:{port}"
    try:
        wait_for(lambda: healthy(base), "Airflow to start", timeout=300)
        password = _clm(env, "ui", "password").strip()
        api = AirflowAPI.sign_in(base, "admin", password)
        api.unpause()
        startup = time.perf_counter() - began
        console.print(f"  Airflow up on port {port} in {startup:.0f}s; triggering clm_ingest")
        started = time.perf_counter()
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        for day in days:
            api.trigger("clm_ingest", {"ds": day.isoformat()})
        wanted = {d.isoformat() for d in days}

        def done() -> bool:
            scored = set(_ledger(home).get("scored", {}))
            if wanted <= scored:
                return api.settled()
            return False

        wait_for(done, "every day scored", timeout=4 * 3600)
        return startup, time.perf_counter() - started
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--run-days", type=int, default=14)
    args = parser.parse_args()
    console = Console()
    last = START + timedelta(days=args.days - 1)
    first = last - timedelta(days=args.run_days - 1)
    with tempfile.TemporaryDirectory(prefix="clm-runtime-") as tmp:
        root = Path(tmp)
        homes = {name: root / name / "clm" for name in ("in_process", "scheduler")}
        console.print(f"simulating {args.customers:,} customers over {args.days} days ...")
        _clm(
            _env(homes["in_process"]),
            "simulate",
            "--customers",
            str(args.customers),
            "--days",
            str(args.days),
            "--start",
            START.isoformat(),
        )
        shutil.copytree(homes["in_process"] / "landing", homes["scheduler"] / "landing")
        console.print(f"in-process: clm run {first}..{last} ...")
        seconds_run = in_process(homes["in_process"], first, last)
        console.print(f"scheduler: clm_ingest triggered for {first}..{last} ...")
        startup, seconds_sched = scheduler(homes["scheduler"], first, last, console)
        table = Table(title=f"{args.run_days} days of a {args.customers:,}-customer shop")
        for column in ("runtime", "wall s", "days scored", "trainings"):
            table.add_column(column, justify="right" if column != "runtime" else "left")
        for name, home, seconds in (
            ("clm run (in-process)", homes["in_process"], seconds_run),
            ("scheduler", homes["scheduler"], seconds_sched),
        ):
            scored = len(_ledger(home).get("scored", {}))
            table.add_row(name, f"{seconds:.0f}", str(scored), str(_trainings(home)))
        console.print(table)
        console.print(
            f"Airflow start-up (not in the scheduler figure): {startup:.0f}s; "
            f"scheduler / in-process = {seconds_sched / seconds_run:.2f}"
        )


def _trainings(home: Path) -> int:
    from clm import warehouse

    url = f"duckdb:///{home / 'warehouse' / 'clm.duckdb'}"
    found = warehouse.query(url, "SELECT COUNT(DISTINCT ds) AS n FROM model_promotions")
    return int(found["n"].iloc[0])


if __name__ == "__main__":
    main()
