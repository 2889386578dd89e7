"""`clm bench`: each stage of one day, and the daily cycle, timed in fresh processes.

For each shop size the harness simulates a clean year (``dirty_rate=0``) and
prepares two homes, untimed:

- ``before``: every day but the last (``ds``) adopted as validated
  (:func:`clm.data.ingest.adopt_clean_history`), the feature snapshots of the
  training cutoffs and of the day before ``ds``, Feast applied and that day
  materialized, and champions trained at the day before (``--trials``);
- ``after``: ``before`` with ``ds`` ingested and its snapshot written.

Every measured run starts from a fresh copy of one of them (Parquet files are
hard-linked, everything else copied) and runs one stage in a new Python
process, so imports, caches and memory are those of a real task. The child
reports its wall time and its peak resident memory (``ru_maxrss``).

The naive peer runs in the same harness: pandas group-bys for the features,
Feast's file (dask) offline store for materialization and the training set,
and, for scoring, tree SHAP for every customer (as the reference projects
explain every row) and row-by-row inserts for the warehouse write.

Redis and Postgres variants run when ``redis-server`` and PostgreSQL's
``initdb`` are installed, each against a throwaway server.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

START = date(2024, 1, 1)


@dataclass(frozen=True)
class Stage:
    """One measured stage: the home it starts from and whether it has a naive peer."""

    name: str
    home: str  # "before" or "after"
    naive: bool
    in_cycle: bool
    description: str


STAGES = (
    Stage("ingest", "before", False, True, "ingest and validate one day (GX)"),
    Stage("features", "after", True, True, "compute the day's feature snapshot"),
    Stage("materialize", "after", True, True, "write the day into the online store (SQLite)"),
    Stage("materialize_redis", "after", False, False, "the same into Redis"),
    Stage("training_set", "after", True, False, "point-in-time training set through Feast"),
    Stage("train", "after", False, False, "train both families, fixed trials"),
    Stage("score", "after", True, True, "score, explain, segment, write (DuckDB)"),
    Stage("score_postgres", "after", False, False, "the same into Postgres"),
    Stage("cycle", "before", False, False, "ingest to segments through Airflow, no training"),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
TARGETS = {"cycle_seconds": 180.0, "cycle_peak_rss_mib": 6 * 1024.0, "exponent": 1.1, "ratio": 5.0}


@dataclass
class StageResult:
    """Medians over the runs of one stage (and of its naive peer)."""

    seconds: float
    peak_rss_mib: float
    runs: list[float]
    naive_seconds: float | None = None
    naive_peak_rss_mib: float | None = None
    naive_runs: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, customers: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seconds": round(self.seconds, 3),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "naive_seconds": None if self.naive_seconds is None else round(self.naive_seconds, 3),
            "customers_per_second": round(customers / self.seconds, 1) if self.seconds else None,
            "runs": [round(r, 3) for r in self.runs],
        }
        if self.naive_seconds is not None:
            out["naive_peak_rss_mib"] = round(self.naive_peak_rss_mib or 0.0, 1)
            out["naive_runs"] = [round(r, 3) for r in self.naive_runs]
            out["ratio"] = round(self.naive_seconds / self.seconds, 2) if self.seconds else None
        return out | self.extra


@dataclass
class SizeResult:
    """The figures of one shop size, in the JSON layout of ``clm bench --json``."""

    customers: int
    stages: dict[str, StageResult]
    cycle_seconds: float
    cycle_naive_seconds: float
    cycle_peak_rss_mib: float
    setup_seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "stages": {k: v.as_dict(self.customers) for k, v in self.stages.items()},
            "cycle_seconds": round(self.cycle_seconds, 3),
            "cycle_naive_seconds": round(self.cycle_naive_seconds, 3),
            "cycle_peak_rss_mib": round(self.cycle_peak_rss_mib, 1),
            "setup_seconds": round(self.setup_seconds, 1),
        }


def scaling_exponents(results: list[SizeResult]) -> dict[str, float]:
    """Least-squares slope of log(seconds) on log(customers), per stage and for the cycle."""
    if len(results) < 2:
        return {}
    out = {}
    names = [n for n in results[0].stages if all(n in r.stages for r in results)]
    for name in [*names, "cycle"]:
        xs = [math.log(r.customers) for r in results]
        if name == "cycle":
            ys = [math.log(max(r.cycle_seconds, 1e-3)) for r in results]
        else:
            ys = [math.log(max(r.stages[name].seconds, 1e-3)) for r in results]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
            (x - mx) ** 2 for x in xs
        )
        out[name] = round(slope, 3)
    return out


# --- the homes ----------------------------------------------------------------------------


def copy_home(source: Path, target: Path) -> None:
    """A copy of a home: Parquet files hard-linked (never written in place), the rest copied."""

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith(".parquet"):
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copy2(src, dst)

    shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)


# The user's settings that shape the measured work pass through; nothing else of the
# user's CLM_* (their home, warehouse or MLflow server) reaches a benchmark home.
PASSED_THROUGH = ("CLM_HORIZON_DAYS", "CLM_TRAIN_CUTOFFS", "CLM_CUTOFF_SPACING_DAYS")


def _env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLM_", "AIRFLOW"))}
    env |= {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    return env | {"CLM_HOME": str(home), "CLM_TRAIN_BASELINES": "false"} | (extra or {})


def run_child(
    home: Path, step: str, ds: date, args: dict[str, Any], extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one step in a fresh Python process; its JSON report."""
    argv = [sys.executable, "-m", "clm.app.bench", step, ds.isoformat(), json.dumps(args)]
    done = subprocess.run(
        argv, env=_env(home, extra_env), capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"bench step {step} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    last = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    report: dict[str, Any] = json.loads(last)
    return report


@dataclass
class Shop:
    """The prepared homes of one size."""

    customers: int
    ds: date
    before: Path
    after: Path
    trials: int
    redis: str | None


def prepare(
    root: Path,
    customers: int,
    days: int,
    trials: int,
    say: Callable[[str], None],
    redis: str | None = None,
) -> Shop:
    """Simulate, adopt the history, and build the ``before`` and ``after`` homes (untimed)."""
    ds = START + timedelta(days=days - 1)
    before = root / "before" / "clm"
    args = {"customers": customers, "days": days, "trials": trials}
    say(f"simulating {customers:,} customers over {days} days")
    run_child(before, "setup_simulate", ds, args)
    say("adopting the history, feature snapshots, Feast, champions (untimed)")
    run_child(before, "setup_before", ds, args, {"CLM_BENCH_REDIS": redis} if redis else None)
    after = root / "after" / "clm"
    copy_home(before, after)
    run_child(after, "setup_after", ds, args)
    return Shop(customers, ds, before, after, trials, redis)


def measure(
    shop: Shop,
    stage: Stage,
    naive: bool,
    repeat: int,
    scratch: Path,
    extra_env: dict[str, str] | None = None,
) -> tuple[list[float], float, dict[str, Any]]:
    """Run a stage ``repeat`` times on fresh copies; (seconds per run, peak MiB, last report)."""
    seconds, peaks, last = [], [], {}
    for i in range(repeat):
        home = scratch / f"{stage.name}{'-naive' if naive else ''}-{i}" / "clm"
        copy_home(shop.before if stage.home == "before" else shop.after, home)
        try:
            step = f"{stage.name}_naive" if naive else stage.name
            last = run_child(home, step, shop.ds, {"trials": shop.trials}, extra_env)
        finally:
            shutil.rmtree(home.parent, ignore_errors=True)
        seconds.append(float(last.pop("seconds")))
        peaks.append(float(last.pop("peak_rss_mib")))
    return seconds, max(peaks), last


def bench_size(
    customers: int,
    *,
    days: int,
    repeat: int,
    trials: int,
    stages: list[str],
    redis: str | None,
    say: Callable[[str], None],
    workdir: Path | None = None,
    postgres: str | None = None,
) -> SizeResult:
    """Every selected stage (and its naive peer) at one size."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"clm-bench-{customers}-", dir=workdir) as tmp:
        root = Path(tmp)
        shop = prepare(root, customers, days, trials, say, redis)
        setup = time.perf_counter() - began
        results: dict[str, StageResult] = {}
        for stage in STAGES:
            if stage.name not in stages:
                continue
            env = None
            if stage.name == "materialize_redis":
                if redis is None:
                    say("materialize_redis: skipped (no redis-server)")
                    continue
                env = {"CLM_BENCH_REDIS": redis}
            if stage.name == "score_postgres":
                if postgres is None:
                    say("score_postgres: skipped (no PostgreSQL)")
                    continue
                env = {"CLM_BENCH_POSTGRES": postgres}
            say(f"{stage.name}: {stage.description} ({repeat} run(s))")
            runs, peak, report = measure(shop, stage, False, repeat, root / "runs", env)
            result = StageResult(statistics.median(runs), peak, runs, extra=report)
            say(f"{stage.name}: {result.seconds:.2f} s, {peak:,.0f} MiB")
            if stage.naive:
                say(f"{stage.name}: the naive peer ({repeat} run(s))")
                naive_runs, naive_peak, naive_report = measure(
                    shop, stage, True, repeat, root / "runs"
                )
                result.naive_seconds = statistics.median(naive_runs)
                result.naive_peak_rss_mib = naive_peak
                result.naive_runs = naive_runs
                say(f"{stage.name}, naive: {result.naive_seconds:.2f} s, {naive_peak:,.0f} MiB")
                result.extra |= {f"naive_{k}": v for k, v in naive_report.items()}
            results[stage.name] = result
    cycle = results.get("cycle")
    in_cycle = [s for s in STAGES if s.in_cycle and s.name in results]
    summed = sum(results[s.name].seconds for s in in_cycle)
    naive_sum = sum(results[s.name].naive_seconds or results[s.name].seconds for s in in_cycle)
    return SizeResult(
        customers=customers,
        stages=results,
        cycle_seconds=cycle.seconds if cycle else summed,
        cycle_naive_seconds=naive_sum + (cycle.seconds - summed if cycle else 0.0),
        cycle_peak_rss_mib=cycle.peak_rss_mib
        if cycle
        else max((results[s.name].peak_rss_mib for s in in_cycle), default=0.0),
        setup_seconds=setup,
    )


def verdicts(result: SizeResult, exponents: dict[str, float]) -> list[tuple[str, bool, str]]:
    """The issue's targets, each with whether it is met and the figure."""
    out = [
        (
            f"daily cycle at most {TARGETS['cycle_seconds']:.0f} s",
            result.cycle_seconds <= TARGETS["cycle_seconds"],
            f"{result.cycle_seconds:.1f} s",
        ),
        (
            f"cycle peak memory at most {TARGETS['cycle_peak_rss_mib'] / 1024:.0f} GiB",
            result.cycle_peak_rss_mib <= TARGETS["cycle_peak_rss_mib"],
            f"{result.cycle_peak_rss_mib / 1024:.2f} GiB",
        ),
    ]
    if result.cycle_seconds:
        ratio = result.cycle_naive_seconds / result.cycle_seconds
        out.append(
            (
                f"cycle at least {TARGETS['ratio']:.0f}x faster than naive",
                ratio >= TARGETS["ratio"],
                f"{ratio:.2f}x",
            )
        )
    for name, exponent in exponents.items():
        out.append(
            (
                f"{name} scales at most as n^{TARGETS['exponent']}",
                exponent <= TARGETS["exponent"],
                f"n^{exponent:.2f}",
            )
        )
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def throwaway_redis() -> Iterator[str | None]:
    """A redis-server without persistence on a free port, or None when not installed."""
    import socket

    if shutil.which("redis-server") is None:
        yield None
        return
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


@contextmanager
def throwaway_postgres(settings: str = "") -> Iterator[str | None]:
    """A PostgreSQL server with trust auth on a free port, or None when not installed.

    Its data directory is a fresh temporary directory, removed afterwards. As root,
    the server runs as the user ``postgres`` (Postgres refuses to run as root).
    ``settings`` adds server options (``-c fsync=off`` for tests).
    """
    import glob

    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None
    )
    if not found:
        yield None
        return
    bindir = Path(found).parent
    data = Path(tempfile.mkdtemp(prefix="clm-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data / "db")]
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "clm"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *ctl,
                "-l",
                str(data / "log"),
                "-w",
                "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1 {settings}".strip(),
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://clm@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "fast", "stop"], check=False, capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def _fresh_database(server: str) -> str:
    """A new, empty database on the throwaway server; its URL."""
    import psycopg

    name = f"bench_{os.getpid()}_{time.time_ns()}"
    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return server.rsplit("/", 1)[0] + "/" + name


def _explain_everyone(settings: Any) -> Any:
    """Settings whose segment rules give every customer top_reasons (the naive peer)."""
    import yaml

    rules = yaml.safe_load(settings.segments_config.read_text(encoding="utf-8"))
    rules["top_reasons"] = {"actions": "all"}
    path = settings.home / "segments.everyone.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return settings.model_copy(update={"segments_config": path})


# --- the child: one step in a fresh process ----------------------------------------------


def _naive_yaml(settings: Any) -> Path:
    """feature_store.yaml with Feast's default file (dask) offline store, in the home."""
    text = (settings.feast_repo / settings.feast_yaml).read_text()
    path = settings.home / "feature_store.naive.yaml"
    path.write_text(
        text.replace("type: duckdb", "type: file")
        .replace("${CLM_FEAST_DIR}/registry.db", "${CLM_FEAST_DIR}/naive/registry.db")
        .replace("${CLM_FEAST_DIR}/online_store.db", "${CLM_FEAST_DIR}/naive/online_store.db")
    )
    (settings.feast_dir / "naive").mkdir(parents=True, exist_ok=True)
    return path


def _redis_yaml(settings: Any, connection: str) -> Path:
    text = (settings.feast_repo / settings.feast_yaml).read_text()
    online = text[text.index("online_store:") : text.index("offline_store:")]
    path = settings.home / "feature_store.redis.yaml"
    path.write_text(
        text.replace(
            online, f"online_store:\n  type: redis\n  connection_string: {connection}\n"
        ).replace("${CLM_FEAST_DIR}/registry.db", "${CLM_FEAST_DIR}/redis/registry.db")
    )
    (settings.feast_dir / "redis").mkdir(parents=True, exist_ok=True)
    return path


def _with_yaml(settings: Any, yaml: Path) -> Any:
    from clm.data.feature_store import apply_repo

    other = settings.model_copy(update={"feast_yaml": str(yaml)})
    apply_repo(other)
    return other


def _row_by_row_inserts() -> None:
    """The naive warehouse writer: one INSERT per row instead of one set-based insert."""
    from clm.data import warehouse

    def insert(self: Any, table: str, frame: Any) -> None:
        cols = warehouse.columns(table)
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
        for row in frame[cols].itertuples(index=False, name=None):
            self.con.execute(sql, list(row))

    warehouse.DuckDBTransaction.insert = insert  # type: ignore[method-assign]


def child(step: str, ds: date, args: dict[str, Any]) -> dict[str, Any]:  # noqa: C901
    """Run ``step`` for ``ds`` on ``$CLM_HOME``; what it measured."""
    import logging
    import resource
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    from clm.core.settings import get_settings

    settings = get_settings()
    settings.export_env()
    out: dict[str, Any] = {}
    previous = ds - timedelta(days=1)
    prepared: Any = settings
    if step in {"materialize_naive", "training_set_naive"}:
        prepared = _with_yaml(settings, _naive_yaml(settings))
    elif step == "materialize_redis":
        prepared = _with_yaml(settings, _redis_yaml(settings, os.environ["CLM_BENCH_REDIS"]))
    elif step == "score_naive":
        _row_by_row_inserts()
        prepared = _explain_everyone(settings)
    elif step == "score_postgres":
        prepared = settings.model_copy(
            update={"warehouse_url": _fresh_database(os.environ["CLM_BENCH_POSTGRES"])}
        )

    began = time.perf_counter()
    if step == "setup_simulate":
        from clm.data.simulate import simulate_shop

        sim = simulate_shop(
            settings.landing_dir,
            settings.truth_dir,
            n_customers=args["customers"],
            start=START,
            days=args["days"],
            seed=1,
            dirty_rate=0.0,
        )
        out["rows"] = sim.orders + sim.events
    elif step == "setup_before":
        from clm.data.feature_store import apply_repo, materialize_day
        from clm.data.features import ensure_snapshots, training_cutoffs
        from clm.data.ingest import adopt_clean_history
        from clm.ml.train import train

        out["adopted"] = len(adopt_clean_history(settings, previous))
        cutoffs = training_cutoffs(
            previous, settings.horizon_days, settings.train_cutoffs, settings.cutoff_spacing_days
        )
        ensure_snapshots(settings.features_dir, settings.validated_dir, [*cutoffs, previous])
        apply_repo(settings)
        materialize_day(settings, previous)
        if os.environ.get("CLM_BENCH_REDIS"):  # the Redis store holds that day too
            materialize_day(
                _with_yaml(settings, _redis_yaml(settings, os.environ["CLM_BENCH_REDIS"])), previous
            )
        train(settings, previous, n_trials=args["trials"], force_promotion=True)
    elif step == "setup_after":
        from clm.data.features import write_snapshot
        from clm.data.ingest import ingest

        ingest(settings, ds)
        write_snapshot(settings.features_dir, settings.validated_dir, ds)
    elif step == "ingest":
        from clm.data.ingest import ingest

        report = ingest(settings, ds)
        out["rows"] = sum(report.landed.values())
    elif step == "features":
        from clm.data.features import write_snapshot

        out["customers"] = write_snapshot(
            settings.features_dir, settings.validated_dir, ds
        ).customers
    elif step == "features_naive":
        import pandas as pd

        from clm.app.bench_naive import assert_same, naive_features
        from clm.data.features import ENGAGEMENT_VIEW, ORDER_VIEW, snapshot_path

        orders, engagement = naive_features(settings.validated_dir, ds)
        target = settings.home / "naive"
        target.mkdir(exist_ok=True)
        orders.to_parquet(target / "order_features.parquet")
        engagement.to_parquet(target / "engagement_features.parquet")
        out["seconds"] = time.perf_counter() - began
        drop = ["event_timestamp", "created_timestamp"]
        for view, frame in ((ORDER_VIEW, orders), (ENGAGEMENT_VIEW, engagement)):
            ours = pd.read_parquet(snapshot_path(settings.features_dir, view, ds))
            assert_same(ours.drop(columns=drop), frame)
        out["same_values"] = True
    elif step in ("materialize", "materialize_naive", "materialize_redis"):
        from clm.data.feature_store import materialize_day

        out["rows"] = sum(materialize_day(prepared, ds).values())
    elif step in ("training_set", "training_set_naive"):
        from clm.ml.train import build_training_set, join_features

        data = join_features(
            prepared, build_training_set(prepared, ds, prepared.horizon_days), "churn"
        )
        out["rows"] = len(data.frame)
    elif step == "train":
        from clm.ml.train import train

        train(settings, ds, n_trials=args["trials"])
    elif step in ("score", "score_naive", "score_postgres"):
        from clm.ml.scoring import score_day

        scored = score_day(prepared, ds)
        out["customers"] = scored.customers
        out["prospects"] = scored.prospects  # of customers: no order, nothing to explain
        out["explained"] = scored.explained
        out["steps"] = {k: round(v, 3) for k, v in scored.seconds.items()}
    elif step == "cycle":
        from clm.app.runner import run_range

        records = run_range(settings, ds, ds, train=False)
        out["dag_runs"] = [f"{r.dag_id}:{r.state}" for r in records]
    else:
        raise SystemExit(f"unknown bench step {step!r}")
    out.setdefault("seconds", time.perf_counter() - began)
    mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out["peak_rss_mib"] = max(mine, children) / 1024
    return out


if __name__ == "__main__":
    report = child(sys.argv[1], date.fromisoformat(sys.argv[2]), json.loads(sys.argv[3]))
    print(json.dumps(report, default=str))  # noqa: T201
