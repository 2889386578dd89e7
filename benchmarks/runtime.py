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
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clm.app.airflow_api import serve, wait_for

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


def _ledger(home: Path) -> dict[str, dict[str, str]]:
    path = home / "ledger.json"
    return dict(json.loads(path.read_text())) if path.exists() else {}


def in_process(home: Path, first: date, last: date) -> float:
    started = time.perf_counter()
    _clm(_env(home), "run", "--start", first.isoformat(), "--end", last.isoformat())
    return time.perf_counter() - started


def scheduler(home: Path, first: date, last: date, console: Console) -> tuple[float, float]:
    """Seconds to start Airflow, and seconds from the first trigger to the last day scored."""
    began = time.perf_counter()
    with serve(CLM, _env(home), home.parent / "airflow.log") as api:
        api.unpause()
        startup = time.perf_counter() - began
        console.print(f"  Airflow up at {api.base} in {startup:.0f}s; triggering clm_ingest")
        started = time.perf_counter()
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        for day in days:
            api.trigger("clm_ingest", {"ds": day.isoformat()})
        wanted = {d.isoformat() for d in days}

        def done() -> bool:
            return wanted <= set(_ledger(home).get("scored", {})) and api.settled()

        wait_for(done, "every day scored", timeout=4 * 3600)
        return startup, time.perf_counter() - started


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
    from clm.data import warehouse

    url = f"duckdb:///{home / 'warehouse' / 'clm.duckdb'}"
    found = warehouse.query(url, "SELECT COUNT(DISTINCT ds) AS n FROM model_promotions")
    return int(found["n"].iloc[0])


if __name__ == "__main__":
    main()
