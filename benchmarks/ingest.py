"""Benchmark the GX gate: the daily ingest of one day, and the first catch-up, per shop size.

For each size it simulates a shop (a year by default), ingests every day but
the last in one catch-up run, then ingests the last day alone (a daily run)
``--repeat`` times, each in a fresh process, and prints the median wall time
and peak memory of each.

With ``--huge-day ROWS`` it measures instead one day of ROWS orders (a gzip
CSV that packs them small) ingested within the memory budget, against the
same day validated whole (the budget raised above it), each in a fresh process.

Usage: python -m benchmarks.ingest [--customers 10000 100000] [--days 365] [--repeat 3]
       python -m benchmarks.ingest --huge-day 2000000 6000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

CHILD = """
import json, logging, os, resource, sys, time, warnings
warnings.filterwarnings("ignore")
from datetime import date, timedelta
from pathlib import Path
os.environ["CLM_HOME"] = sys.argv[1]
from clm.core.settings import get_settings
from clm.data.validation import quiet_gx
quiet_gx()
settings = get_settings()
mode, n, days = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
last = date(2024, 1, 1) + timedelta(days=days - 1)
t = time.perf_counter()
import great_expectations  # a per-process cost every Airflow task pays too; timed apart
imports = time.perf_counter() - t
t = time.perf_counter()
if mode == "huge":
    import gzip
    import pandas as pd
    from clm.core.io import partition_dir
    nc = 100_000
    folder = partition_dir(settings.landing_dir, "customers", date(2024, 1, 1))
    folder.mkdir(parents=True)
    pd.DataFrame({"customer_id": [f"C{i}" for i in range(nc)],
                  "signup_ts": "2024-01-01T10:00:00", "country": "DE",
                  "acquisition_channel": "web"}).to_csv(folder / "customers.csv", index=False)
    folder = partition_dir(settings.landing_dir, "orders", date(2024, 1, 2))
    folder.mkdir(parents=True)
    with gzip.open(folder / "orders.csv.gz", "wt") as fh:
        fh.write("order_id,customer_id,order_ts,amount,n_items,category,discount,status\\n")
        for start in range(0, n, 500_000):
            fh.writelines(f"O{i},C{i % nc},2024-01-02T11:00:00,12.5,2,books,0.1,completed\\n"
                          for i in range(start, min(n, start + 500_000)))
    out = {"gzip_mib": (folder / "orders.csv.gz").stat().st_size / 2**20}
elif mode == "simulate":
    from clm.data.simulate import simulate_shop
    simulate_shop(settings.landing_dir, settings.truth_dir, n_customers=n,
                  start=date(2024, 1, 1), days=days, seed=1, dirty_rate=0.002)
    out = {}
else:
    from clm.data.ingest import ingest, _manifest_path
    if mode in ("sliced", "whole"):  # customers first, untimed; then the day of orders
        ingest(settings, date(2024, 1, 1))
        if mode == "whole":
            os.environ["CLM_INGEST_CHUNK_MB"] = "1000000"
            settings = get_settings()
        last = date(2024, 1, 2)
        t = time.perf_counter()
    if mode == "day":  # forget the last day so the run validates it again
        manifest = json.loads(_manifest_path(settings).read_text())
        manifest.pop(last.isoformat(), None)
        _manifest_path(settings).write_text(json.dumps(manifest))
    report = ingest(settings, last - timedelta(days=1) if mode == "catchup" else last)
    out = {"days": len(report.days), "landed": sum(report.landed.values()),
           "quarantined": sum(report.quarantined.values())}
out["wall"] = time.perf_counter() - t
out["imports"] = imports
out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _child(home: str, mode: str, n: int, days: int) -> dict[str, float]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", CHILD, home, mode, str(n), str(days)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--huge-day", type=int, nargs="+", metavar="ROWS")
    args = parser.parse_args()
    console = Console(width=160)
    if args.huge_day:
        _huge_days(console, args.huge_day)
        return
    table = Table(title=f"clm ingest (GX gate), {args.days}-day shops, 2 cores")
    for col in (
        "customers",
        "catch-up days",
        "catch-up rows",
        "catch-up s",
        "catch-up MiB",
        "one day rows",
        "one day s (median)",
        "+ GX import s",
        "one day MiB",
        "rows/s (one day)",
    ):
        table.add_column(col, justify="right")
    for n in args.customers:
        with tempfile.TemporaryDirectory() as home:
            console.print(f"simulating {n:,} customers x {args.days} days ...")
            _child(home, "simulate", n, args.days)
            console.print("catch-up ingest ...")
            catchup = _child(home, "catchup", n, args.days)
            _child(home, "day", n, args.days)  # warm the GX context and docs once
            runs = [_child(home, "day", n, args.days) for _ in range(args.repeat)]
            gx_bytes = sum(p.stat().st_size for p in Path(home, "gx").rglob("*") if p.is_file())
            console.print(f"GX results and data docs: {gx_bytes / 2**20:.0f} MiB")
        wall = statistics.median(r["wall"] for r in runs)
        table.add_row(
            f"{n:,}",
            f"{catchup['days']:.0f}",
            f"{catchup['landed']:,.0f}",
            f"{catchup['wall']:.1f}",
            f"{catchup['peak_mib']:.0f}",
            f"{runs[0]['landed']:,.0f}",
            f"{wall:.2f}",
            f"{statistics.median(r['imports'] for r in runs):.2f}",
            f"{statistics.median(r['peak_mib'] for r in runs):.0f}",
            f"{runs[0]['landed'] / wall:,.0f}",
        )
    console.print(table)


def _huge_days(console: Console, sizes: list[int]) -> None:
    """One day of many orders: within the budget (sliced) and whole, peak memory of each."""
    table = Table(title="one huge day of orders: clm ingest within the memory budget vs whole")
    for col in ("orders", "gzip MiB", "sliced s", "sliced MiB", "whole s", "whole MiB"):
        table.add_column(col, justify="right")
    for n in sizes:
        row = []
        for mode in ("sliced", "whole"):
            with tempfile.TemporaryDirectory() as home:
                made = _child(home, "huge", n, 0)
                console.print(f"{n:,} orders, {mode} ...")
                row.append(_child(home, mode, n, 0))
        sliced, whole = row
        table.add_row(
            f"{n:,}",
            f"{made['gzip_mib']:.1f}",
            f"{sliced['wall']:.1f}",
            f"{sliced['peak_mib']:.0f}",
            f"{whole['wall']:.1f}",
            f"{whole['peak_mib']:.0f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
