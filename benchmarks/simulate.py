"""Benchmark the simulator: wall time, peak memory and throughput, median of runs.

Usage: python -m benchmarks.simulate [--customers 2000 10000] [--days 180] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile

from rich.console import Console
from rich.table import Table

CHILD = """
import sys, time, resource
from datetime import date
from pathlib import Path
from clm.data.simulate import simulate_shop
root = Path(sys.argv[1]); n = int(sys.argv[2]); days = int(sys.argv[3])
t = time.perf_counter()
r = simulate_shop(root / "landing", root / "truth", n_customers=n, start=date(2024, 1, 1),
                  days=days, seed=1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(time.perf_counter() - t, peak, r.orders, r.events)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"clm simulate, {args.days} days, median of {args.repeat} (2 cores)")
    for col in ("customers", "wall s", "peak MiB", "orders", "events", "rows/s"):
        table.add_column(col, justify="right")
    for n in args.customers:
        walls, peaks = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, tmp, str(n), str(args.days)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
            walls.append(float(out[0]))
            peaks.append(int(out[1]) / 1024)
            orders, events = int(out[2]), int(out[3])
        wall = statistics.median(walls)
        table.add_row(
            f"{n:,}",
            f"{wall:.2f}",
            f"{statistics.median(peaks):.0f}",
            f"{orders:,}",
            f"{events:,}",
            f"{(orders + events) / wall:,.0f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
