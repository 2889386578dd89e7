"""How to give a million customers their ``top_reasons``: the options, timed and compared.

Exact tree SHAP is most of the time of scoring a big shop. This script measures,
on one day of a ``clm bench`` home, for a model of each family trained with the
default hyperparameters on that home's training set (Feast, as ``clm_train``):

- exact tree SHAP (``pred_contribs`` / ``pred_contrib``) on every customer,
  the reference for ``top_reasons``;
- XGBoost's approximate contributions (``approx_contribs``: Saabas, the
  prediction's path only), and how often the reasons they give are the exact
  ones (the same string; the same first reason; the same set of three);
- exact SHAP on the customers whose action needs reasons only (the product's
  default: ``top_reasons.actions`` in clm/config/segments.yaml), plus the
  20,000-customer sample that estimates global importance.

Usage:
    python -m benchmarks.reasons --home HOME --ds 2024-12-30
    python -m benchmarks.reasons --customers 100000   # prepares a home first (untimed)
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - wall, _cpu() - cpu


def _agreement(exact: list[str], other: list[str]) -> dict[str, float]:
    def first(r: str) -> str:
        return r.split(", ", maxsplit=1)[0]

    same = np.mean([a == b for a, b in zip(exact, other, strict=True)])
    top1 = np.mean([first(a) == first(b) for a, b in zip(exact, other, strict=True)])
    set3 = np.mean(
        [set(a.split(", ")) == set(b.split(", ")) for a, b in zip(exact, other, strict=True)]
    )
    return {"same": float(same), "first": float(top1), "set": float(set3)}


def measure(home: Path, ds: date, console: Console) -> list[dict[str, Any]]:
    os.environ["CLM_HOME"] = str(home)
    os.environ.setdefault("CLM_TRAIN_BASELINES", "false")
    from clm.core.settings import get_settings
    from clm.data.segments import assign_segments, explained, load_rules
    from clm.ml import models
    from clm.ml.compare import task_data
    from clm.ml.registry import load_champions
    from clm.ml.scoring import IMPORTANCE_SAMPLE, load_snapshot, top_reasons
    from clm.ml.train import build_training_set, join_features

    settings = get_settings()
    console.print(f"training set at {ds} through Feast ...")
    rows = join_features(settings, build_training_set(settings, ds, settings.horizon_days), "churn")
    data = task_data("churn", rows.frame, rows.names)
    snapshot = load_snapshot(settings, ds).sort_values("customer_id", ignore_index=True)
    x = snapshot[data.names].astype("float64")
    rules = load_rules(settings.segments_config)
    clv = load_champions(settings)["clv"]
    spend = clv.trained.predict(snapshot[clv.features].astype("float64"))
    out = []
    for family in ("xgboost", "lightgbm"):
        console.print(f"{family}: fitting with the default hyperparameters ...")
        trained = models.train_model(
            family,
            "churn",
            data.x("train"),
            data.y("train"),
            data.x("val"),
            data.y("val"),
            params=models.default_params(family),
            seed=settings.seed,
        )
        churn = trained.predict(x)
        trees = models.best_iteration(trained.model) or 0
        contrib, wall, cpu = _timed(lambda t=trained: models.contributions(t, x))
        exact = top_reasons(contrib, data.names)
        row: dict[str, Any] = {
            "family": family,
            "customers": len(x),
            "trees": trees,
            "exact_seconds": wall,
            "exact_cpu_ms_per_customer": 1000 * cpu / len(x),
        }
        if family == "xgboost":
            import xgboost as xgb

            booster = trained.model.get_booster()
            approx, wall, cpu = _timed(
                lambda b=booster: b.predict(
                    xgb.DMatrix(x), pred_contribs=True, approx_contribs=True
                )
            )
            row["approx_seconds"] = wall
            row["approx_agreement"] = _agreement(
                exact, top_reasons(np.asarray(approx)[:, : x.shape[1]], data.names)
            )
        # The product's default: reasons where the action needs them; the segments
        # come from this model's churn score and the home's clv champion.
        frame = snapshot.assign(churn_probability=churn, expected_spend=spend)
        segments = assign_segments(frame, rules, settings.horizon_days)
        need = explained(segments["next_best_action"], rules)
        sample = min(len(x), IMPORTANCE_SAMPLE)
        chosen = np.union1d(np.flatnonzero(need), np.arange(sample))
        _, wall, _ = _timed(lambda t=trained, c=chosen: models.contributions(t, x.iloc[c]))
        row["actions_share"] = float(need.mean())
        row["actions_seconds"] = wall
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an 'after' home of clm bench")
    parser.add_argument("--ds", type=date.fromisoformat)
    parser.add_argument("--customers", type=int, default=100_000)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 150))
    if args.home is None:
        from clm.app.bench import prepare

        root = Path(tempfile.mkdtemp(prefix="clm-reasons-"))
        shop = prepare(root, args.customers, 365, 1, console.print)
        args.home, args.ds = shop.after, shop.ds
    results = measure(args.home, args.ds, console)
    table = Table(title=f"top_reasons on {results[0]['customers']:,} customers ({args.ds})")
    for col in (
        "family",
        "trees",
        "exact SHAP s",
        "CPU ms/customer",
        "approx s",
        "same reasons",
        "same first",
        "same set",
        "actions share",
        "actions + sample s",
    ):
        table.add_column(col, justify="right")
    for r in results:
        agree = r.get("approx_agreement")
        table.add_row(
            r["family"],
            str(r["trees"]),
            f"{r['exact_seconds']:.2f}",
            f"{r['exact_cpu_ms_per_customer']:.3f}",
            f"{r['approx_seconds']:.2f}" if agree else "n/a",
            f"{agree['same']:.1%}" if agree else "n/a",
            f"{agree['first']:.1%}" if agree else "n/a",
            f"{agree['set']:.1%}" if agree else "n/a",
            f"{r['actions_share']:.1%}",
            f"{r['actions_seconds']:.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
