"""How many rows a training run needs: the learning curve behind ``max_training_rows``.

On a ``clm bench`` home, this builds the full point-in-time training set through
Feast (every customer, as ``clm_train`` does with ``max_training_rows=0``), then,
for each size, cuts it to that many rows (customer x cutoff) drawn at random, as
the product does (:func:`clm.ml.train.sample_rows`), and fits both families
with the default hyperparameters on the drawn training and validation rows.
Every fit is scored on the same rows: all the test cutoff's customers. The
table shows whether a bigger set still buys quality, and what each fit costs.

Usage:
    python -m benchmarks.training_size --home HOME --ds 2024-12-29
    python -m benchmarks.training_size --customers 100000   # prepares a home (untimed)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

SIZES = (50_000, 100_000, 200_000, 400_000, 800_000)


def measure(home: Path, ds: date, sizes: list[int], console: Console) -> list[dict[str, Any]]:
    os.environ["CLM_HOME"] = str(home)
    from clm.core.settings import get_settings
    from clm.data import feature_store
    from clm.data.features import training_cutoffs
    from clm.ml import models
    from clm.ml.compare import LABELS, PRIMARY, task_data
    from clm.ml.metrics import score
    from clm.ml.train import build_set, join_features, sample_rows

    settings = get_settings()
    cutoffs = training_cutoffs(
        ds, settings.horizon_days, settings.train_cutoffs, settings.cutoff_spacing_days
    )
    console.print(f"full training set at {ds} through Feast ...")
    full = build_set(settings, cutoffs, settings.horizon_days)
    feature_store.apply_repo(settings)
    population = len(full.frame)
    out = []
    for task in ("churn", "clv"):
        joined = join_features(settings, full, task)
        data = task_data(task, joined.frame, joined.names)
        x_test, y_test = data.x("test"), data.y("test")
        for size in [n for n in sizes if n < population] + [population]:
            drawn = sample_rows(data.frame, size, settings.seed)
            kept = set(drawn["customer_id"])
            keys = drawn[["customer_id", "cutoff"]]
            rows = {}
            for role in ("train", "val"):
                part = data.rows(role).merge(keys, on=["customer_id", "cutoff"])
                rows[role] = (part[data.names].astype("float64"), part[LABELS[task]].to_numpy())
            for family in ("xgboost", "lightgbm"):
                began = time.perf_counter()
                trained = models.train_model(
                    family,
                    task,
                    *rows["train"],
                    *rows["val"],
                    params=models.default_params(family),
                    seed=settings.seed,
                )
                seconds = time.perf_counter() - began
                metrics = score(task, y_test, trained.predict(x_test))
                row = {
                    "task": task,
                    "family": family,
                    "rows": size,
                    "customers": len(kept),
                    "train_rows": len(rows["train"][1]),
                    "trees": models.best_iteration(trained.model),
                    "fit_seconds": seconds,
                    "metric": PRIMARY[task],
                    "value": metrics[PRIMARY[task]],
                    "test_rows": len(y_test),
                }
                console.print(row)
                out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="a home of clm bench, trained or not")
    parser.add_argument("--ds", type=date.fromisoformat, help="the training day")
    parser.add_argument("--customers", type=int, default=100_000, help="shop size to prepare")
    parser.add_argument("--size", type=int, action="append", help="set rows per fit (repeat)")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 120))
    if args.home is None:
        from clm.app.bench import prepare

        root = Path(tempfile.mkdtemp(prefix="clm-training-size-"))
        shop = prepare(root, args.customers, 365, 0, console.print)
        args.home, args.ds = shop.before, shop.ds
    results = measure(args.home, args.ds, sorted(args.size or SIZES), console)
    table = Table(
        title=f"learning curve at {args.ds}: scored on all {results[0]['test_rows']:,} "
        "test customers"
    )
    cols = ("task", "family", "set rows", "customers", "train rows", "trees", "fit s")
    for col in (*cols, "metric", "value"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r["task"],
            r["family"],
            f"{r['rows']:,}",
            f"{r['customers']:,}",
            f"{r['train_rows']:,}",
            str(r["trees"]),
            f"{r['fit_seconds']:.1f}",
            r["metric"],
            f"{r['value']:.4f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
