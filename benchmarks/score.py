"""Benchmark scoring at 1,000,000 customers: wall time and peak memory per step.

Setup (not timed): a 10,000-customer shop runs one day through Airflow, which
trains and promotes the champions; a 1,000,000-customer shop is simulated over
the same year and its feature snapshot for that day is computed (its landing
is treated as validated, as in benchmarks/features.py). Then ``score_day`` runs
in a fresh process on the 1M snapshot, including tree-SHAP ``top_reasons``,
segments, the output GX suite, drift and the warehouse write, once into DuckDB
and, when PostgreSQL is installed, once into a throwaway Postgres server. Each
scoring runs twice: the second run replaces the day's partitions.

A sampler thread reads the process's resident memory every 10 ms; the peak of
each step is the highest reading while it ran.

Usage: python -m benchmarks.score [--customers 1000000] [--train-customers 10000]
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

from clm.app.bench import throwaway_postgres

START = date(2024, 1, 1)

CHILD = r"""
import json, logging, os, sys, threading, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import psutil
from datetime import date
from clm.core.settings import get_settings
from clm.ml.scoring import score_day

ds = date.fromisoformat(sys.argv[1])
proc = psutil.Process()
current = {"step": "start"}
peaks = {}
stop = threading.Event()

def sample():
    while not stop.is_set():
        rss = proc.memory_info().rss
        step = current["step"]
        peaks[step] = max(peaks.get(step, 0), rss)
        time.sleep(0.01)

thread = threading.Thread(target=sample, daemon=True)
thread.start()
settings = get_settings()
settings.export_env()
runs = []
for attempt in range(2):
    current["step"] = "start"
    peaks.clear()
    began = time.perf_counter()
    report = score_day(settings, ds, on_step=lambda name: current.update(step=name))
    total = time.perf_counter() - began
    time.sleep(0.05)
    runs.append({
        "total": total,
        "seconds": report.seconds,
        "peak_mib": {k: v / 2**20 for k, v in peaks.items()},
        "customers": report.customers,
    })
stop.set()
print(json.dumps(runs))
"""


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    return env | {"CLM_HOME": str(home), **extra}


def _clm(env: dict[str, str], *args: str) -> None:
    clm = str(Path(sys.executable).parent / "clm")
    done = subprocess.run([clm, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(
            f"clm {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )


def _snapshot(home: Path, big: Path, customers: int, days: int, ds: date) -> int:
    """Simulate ``customers`` and write their feature snapshot for ds into ``home``."""
    code = (
        "import sys; from datetime import date; from pathlib import Path;"
        "from clm.data.simulate import simulate_shop; from clm.data.features import write_snapshot;"
        "big = Path(sys.argv[1]);"
        f"simulate_shop(big / 'landing', big / 'truth', n_customers={customers},"
        f" start=date({START.year}, {START.month}, {START.day}), days={days}, seed=3,"
        " dirty_rate=0.0);"
        f"print(write_snapshot(Path(sys.argv[2]), big / 'landing', date.fromisoformat('{ds}'))"
        ".customers)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(big), str(home / "features")],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return int(done.stdout.split()[-1])


def _score(env: dict[str, str], ds: date) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, ds.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"scoring failed:\n{done.stderr[-4000:]}")
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--train-customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    console = Console()
    ds = START + timedelta(days=args.days - 1)
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="clm-bench-score-") as tmp:
        home, big = Path(tmp) / "clm", Path(tmp) / "big"
        env = _env(home, CLM_TRAIN_BASELINES="false")
        console.print(f"setup: {args.train_customers:,} customers through Airflow for {ds} ...")
        _clm(
            env,
            "simulate",
            "--customers",
            str(args.train_customers),
            "--start",
            START.isoformat(),
            "--days",
            str(args.days),
            "--seed",
            "3",
        )
        _clm(env, "run", "--start", ds.isoformat(), "--end", ds.isoformat())
        console.print(f"setup: {args.customers:,} customers, feature snapshot for {ds} ...")
        t = time.perf_counter()
        n = _snapshot(home, big, args.customers, args.days, ds)
        console.print(f"  {n:,} customers in the snapshot ({time.perf_counter() - t:.0f}s)")
        shutil.rmtree(big)
        targets = {"duckdb": f"duckdb:///{home / 'warehouse' / 'bench.duckdb'}"}
        with throwaway_postgres() as pg:
            if pg:
                targets["postgres"] = pg
            for name, url in targets.items():
                console.print(f"scoring {n:,} customers into {name} (twice) ...")
                results[name] = _score(_env(home, CLM_WAREHOUSE_URL=url), ds)
    _print(console, results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _print(console: Console, results: dict[str, list[dict]]) -> None:
    for name, runs in results.items():
        first, second = runs
        table = Table(
            title=f"score_day, {first['customers']:,} customers, warehouse {name}: "
            f"{first['total']:.1f}s first run, {second['total']:.1f}s re-run"
        )
        for col in ("step", "wall s", "peak RSS MiB", "re-run wall s"):
            table.add_column(col, justify="left" if col == "step" else "right")
        for step, seconds in first["seconds"].items():
            table.add_row(
                step,
                f"{seconds:.2f}",
                f"{first['peak_mib'].get(step, 0):,.0f}",
                f"{second['seconds'].get(step, 0):.2f}",
            )
        console.print(table)


if __name__ == "__main__":
    main()
