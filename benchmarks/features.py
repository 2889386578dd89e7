"""Benchmark the feature store path against the naive one, at 100k and 1M customers.

For each size: simulate a year (no dirty rows), treat the landing as
validated, then time each step in a fresh process (wall time, peak memory):

- ours: features in DuckDB, one pass (``clm.data.features.write_snapshot``);
  Feast materialization and point-in-time retrieval through Feast's DuckDB
  offline store (feature_repo/feature_store.yaml);
- naive: the same features with pandas group-bys (benchmarks/naive_features.py,
  checked to give the same values), and Feast's default file (dask) offline
  store for materialization and retrieval.

Retrieval is a training set: every customer at ds. Online lookups are timed
one customer at a time after materialization.

Usage: python -m benchmarks.features [--customers 100000 1000000] [--days 365]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clm.app.bench import throwaway_redis

CHILD = r"""
import json, os, resource, sys, time, warnings, logging
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
from datetime import date, timedelta
from pathlib import Path
os.environ["CLM_HOME"] = sys.argv[1]
step, n, days = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from clm.data.features import ENGAGEMENT_VIEW, ORDER_VIEW, snapshot_path
from clm.core.settings import get_settings
settings = get_settings()
settings.export_env()
ds = date(2024, 1, 1) + timedelta(days=days - 1)
NAIVE_YAML = Path(sys.argv[1]) / "feature_store.naive.yaml"
REDIS_YAML = Path(sys.argv[1]) / "feature_store.redis.yaml"
out = {}

def yaml_for(kind):
    return {"naive": NAIVE_YAML, "redis": REDIS_YAML}.get(
        kind, settings.feast_repo / settings.feast_yaml)

def store_for(kind):
    from feast import FeatureStore
    return FeatureStore(repo_path=str(settings.feast_repo), fs_yaml_file=yaml_for(kind))

def apply(kind):
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total
    sys.path.insert(0, str(settings.feast_repo))
    yaml = yaml_for(kind)
    apply_total(load_repo_config(settings.feast_repo, yaml), settings.feast_repo, True)

def entities():
    import pandas as pd
    ids = pd.read_parquet(snapshot_path(settings.features_dir, ORDER_VIEW, ds),
                          columns=["customer_id"])["customer_id"]
    return pd.DataFrame({"customer_id": ids, "event_timestamp": pd.Timestamp(ds, tz="UTC")})

t = time.perf_counter()
if step == "simulate":
    from clm.data.simulate import simulate_shop
    r = simulate_shop(settings.landing_dir, settings.truth_dir, n_customers=n,
                      start=date(2024, 1, 1), days=days, seed=1, dirty_rate=0.0)
    settings.validated_dir.mkdir(parents=True, exist_ok=True)
    for table in ("customers", "orders", "events"):
        (settings.validated_dir / table).symlink_to(settings.landing_dir / table)
    out["rows"] = r.orders + r.events
    text = (settings.feast_repo / settings.feast_yaml).read_text()
    NAIVE_YAML.write_text(
        text.replace("type: duckdb", "type: file")
        .replace("${CLM_FEAST_DIR}/registry.db", "${CLM_FEAST_DIR}/naive/registry.db")
        .replace("${CLM_FEAST_DIR}/online_store.db", "${CLM_FEAST_DIR}/naive/online_store.db"))
    (settings.feast_dir / "naive").mkdir(parents=True, exist_ok=True)
    (settings.feast_dir / "redis").mkdir(parents=True, exist_ok=True)
elif step == "compute_ours":
    from clm.data.features import write_snapshot
    out["customers"] = write_snapshot(settings.features_dir, settings.validated_dir, ds).customers
elif step == "compute_naive":
    import pandas as pd
    from clm.app.bench_naive import naive_features, assert_same
    orders, engagement = naive_features(settings.validated_dir, ds)
    target = Path(sys.argv[1]) / "naive"
    target.mkdir(exist_ok=True)
    orders.to_parquet(target / "order_features.parquet")
    engagement.to_parquet(target / "engagement_features.parquet")
    out["wall"] = time.perf_counter() - t
    ours = pd.read_parquet(snapshot_path(settings.features_dir, ORDER_VIEW, ds))
    assert_same(ours.drop(columns=["event_timestamp", "created_timestamp"]), orders)
    ours = pd.read_parquet(snapshot_path(settings.features_dir, ENGAGEMENT_VIEW, ds))
    assert_same(ours.drop(columns=["event_timestamp", "created_timestamp"]), engagement)
    out["same_values"] = True
elif step in ("materialize_ours", "materialize_naive", "materialize_redis"):
    kind = step.split("_")[1]
    if kind == "redis":
        text = (settings.feast_repo / settings.feast_yaml).read_text()
        online = text[text.index("online_store:"):text.index("offline_store:")]
        redis = f"online_store:\n  type: redis\n  connection_string: {sys.argv[5]}\n"
        REDIS_YAML.write_text(text.replace(online, redis).replace(
            "${CLM_FEAST_DIR}/registry.db", "${CLM_FEAST_DIR}/redis/registry.db"))
    apply(kind)
    from clm.data.features import snapshot_timestamp
    start = snapshot_timestamp(ds)
    t = time.perf_counter()
    store_for(kind).materialize(start_date=start,
                                end_date=start + timedelta(days=1) - timedelta(microseconds=1))
    out["wall"] = time.perf_counter() - t
    if kind != "naive":  # online lookups, one customer at a time
        import random
        store = store_for(kind)
        service = store.get_feature_service("churn_v1")
        ids = list(entities()["customer_id"])
        random.seed(1)
        lat = []
        for cid in random.sample(ids, 500):
            s = time.perf_counter()
            store.get_online_features(features=service, entity_rows=[{"customer_id": cid}])
            lat.append((time.perf_counter() - s) * 1000)
        lat.sort()
        out["online_p50_ms"] = lat[len(lat) // 2]
        out["online_p99_ms"] = lat[int(len(lat) * 0.99)]
elif step in ("historical_ours", "historical_naive"):
    store = store_for(step.split("_")[1])
    frame = entities()
    t = time.perf_counter()
    result = store.get_historical_features(
        entity_df=frame, features=store.get_feature_service("churn_v1")).to_df()
    out["wall"] = time.perf_counter() - t
    out["rows"] = len(result)
    out["checksum"] = float(result["monetary_lifetime"].sum())
out.setdefault("wall", time.perf_counter() - t)
out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

STEPS = (
    "compute_ours",
    "compute_naive",
    "materialize_ours",
    "materialize_naive",
    "historical_ours",
    "historical_naive",
)


def _child(home: str, step: str, n: int, days: int, redis: str = "") -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, home, step, str(n), str(days), redis],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
    last = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    result: dict[str, float] = json.loads(last)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument(
        "--keep",
        type=Path,
        help="Simulate into DIR/<customers> and keep it; a later run with the same DIR reuses it.",
    )
    args = parser.parse_args()
    console = Console(width=170)
    table = Table(title=f"Features and Feast, {args.days} days of history, 2 cores")
    for col in ("customers", "step", "ours s", "ours MiB", "naive s", "naive MiB", "naive/ours"):
        table.add_column(col, justify="left" if col == "step" else "right")
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for n in args.customers:
        with tempfile.TemporaryDirectory() as tmp:
            home = str(args.keep / f"{n}-{args.days}") if args.keep else tmp
            if not (Path(home) / "validated").exists():
                console.print(f"simulating {n:,} customers x {args.days} days ...")
                sim = _child(home, "simulate", n, args.days)
                console.print(f"  {sim['rows']:,.0f} order and event rows in {sim['wall']:.0f}s")
            results = {}
            for step in STEPS:
                console.print(f"  {step} ...")
                results[step] = _child(home, step, n, args.days)
                console.print(f"    {results[step]}")
            if shutil.which("redis-server"):  # the production online store
                with throwaway_redis() as address:
                    assert address is not None
                    console.print("  materialize_redis ...")
                    results["materialize_redis"] = _child(
                        home, "materialize_redis", n, args.days, address
                    )
                    console.print(f"    {results['materialize_redis']}")
        figures[str(n)] = results
        totals = {"ours": 0.0, "naive": 0.0}
        for name in ("compute", "materialize", "historical"):
            ours, naive = results[f"{name}_ours"], results[f"{name}_naive"]
            totals["ours"] += ours["wall"]
            totals["naive"] += naive["wall"]
            table.add_row(
                f"{n:,}",
                name,
                f"{ours['wall']:.1f}",
                f"{ours['peak_mib']:.0f}",
                f"{naive['wall']:.1f}",
                f"{naive['peak_mib']:.0f}",
                f"{naive['wall'] / ours['wall']:.1f}x",
            )
        table.add_row(
            f"{n:,}",
            "[bold]total",
            f"{totals['ours']:.1f}",
            "",
            f"{totals['naive']:.1f}",
            "",
            f"[bold]{totals['naive'] / totals['ours']:.1f}x",
        )
        redis = results.get("materialize_redis")
        if redis:
            table.add_row(
                f"{n:,}",
                "materialize into Redis",
                f"{redis['wall']:.1f}",
                f"{redis['peak_mib']:.0f}",
                "",
                "",
                f"{results['materialize_ours']['wall'] / redis['wall']:.1f}x vs SQLite",
            )
        for name in ("ours", "redis"):
            online = results.get(f"materialize_{name}")
            if online:
                console.print(
                    f"  online lookup ({'Redis' if name == 'redis' else 'SQLite'}, one customer):"
                    f" p50 {online['online_p50_ms']:.2f} ms, p99 {online['online_p99_ms']:.2f} ms"
                )
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
