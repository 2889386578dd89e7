"""``clm evaluate``: the single source of model-quality figures (DESIGN section 10).

For one data set it builds the train and test sets through the real pipeline
(landing, the validation gate, feature snapshots, Feast point-in-time joins),
trains the model candidates and the baselines on the same rows, and reports
every metric with paired bootstrap 95% intervals. On the simulated shop the
oracle from the latent truth is the ceiling. On UCI Online Retail the
reference targets of DESIGN section 10 are checked.

Each data set gets its own workspace (a CLM home) under
``CLM_HOME/evaluate/<name>``, so an evaluation never touches the pipeline's
own state; re-running it reuses what is already landed and validated.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clm.core.io import list_partitions
from clm.core.settings import PROJECT_ROOT, Settings
from clm.ml import reco
from clm.ml.compare import LABELS, PRIMARY, Candidate, best_model, run_candidates
from clm.ml.metrics import LOWER_IS_BETTER, bootstrap_draws, gain, interval, paired_gain, score
from clm.ml.registry import SERVICES

log = logging.getLogger(__name__)

DATASETS = ("simulated", "online-retail")
ONLINE_RETAIL_FILE = (
    PROJECT_ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
)
# DESIGN section 10: the reference split and the best published baseline per metric.
ONLINE_RETAIL_CUTOFFS = [date(2011, 3, 11), date(2011, 6, 9), date(2011, 9, 9)]
ONLINE_RETAIL_HORIZON = 91
ONLINE_RETAIL_TARGETS = {
    "churn": {"roc_auc": 0.737, "pr_auc": 0.622, "top_decile_lift": 1.57, "log_loss": 0.613},
    "clv": {"spearman": 0.511, "normalized_gini": 0.688},
}
# Rolling origin: each further evaluation moves every cutoff back four weeks (a
# latent snapshot day on the simulated shop, which keeps one a week).
ORIGIN_STEP_DAYS = 28


@dataclass
class EvalSpec:
    """What to evaluate. ``dataset`` is ``simulated``, ``online-retail`` or a CLM home path."""

    dataset: str = "simulated"
    data_file: Path | None = None
    cutoffs: list[date] = field(default_factory=list)
    horizon_days: int | None = None
    split: str = "time"
    customers: int = 20_000
    days: int = 540
    start: date = date(2023, 1, 2)
    trials: int = 20
    families: list[str] = field(default_factory=lambda: ["xgboost", "lightgbm"])
    bootstrap: int = 500
    origins: int = 3
    workdir: Path | None = None
    track: bool = True

    @property
    def name(self) -> str:
        if self.dataset == "simulated":
            return f"simulated-{self.customers}c-{self.days}d"
        if self.dataset == "online-retail":
            return "online-retail"
        return Path(self.dataset).name


@contextmanager
def _home(settings: Settings) -> Iterator[None]:
    """Point the process (Feast's yaml and sources) at ``settings.home`` for a while."""
    exported = settings.home_env()
    saved = {k: os.environ.get(k) for k in exported}
    os.environ.update(exported)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def workspace(spec: EvalSpec, base: Settings) -> Settings:
    """The CLM home this evaluation reads and writes, with embedded components.

    Raises:
        ValueError: if a path data set has no landing data.
    """
    if spec.dataset in DATASETS:
        home = spec.workdir or base.home / "evaluate" / spec.name
    else:
        home = Path(spec.dataset).expanduser().resolve()
        if (home / "orders").is_dir() and home.name == "landing":
            home = home.parent
        if not (home / "landing" / "orders").is_dir():
            raise ValueError(
                f"{spec.dataset}: not a CLM home with landing/orders; import it first with "
                f"`CLM_HOME={spec.dataset} clm import transactions FILE ...`"
            )
    return base.model_copy(
        update={
            "home": home,
            "warehouse_url": "",
            "mlflow_tracking_uri": "",
            "feast_yaml": "feature_store.yaml",
        }
    )


def land(spec: EvalSpec, ws: Settings, say: Callable[[str], None]) -> None:
    """Simulate or import the data set into the workspace's landing, if not there yet."""
    from clm.data.ingest import ingest

    if spec.dataset == "simulated" and not (ws.landing_dir / "orders").exists():
        from clm.data.simulate import simulate_shop

        say(f"simulating {spec.customers:,} customers over {spec.days} days")
        simulate_shop(
            ws.landing_dir,
            ws.truth_dir,
            n_customers=spec.customers,
            start=spec.start,
            days=spec.days,
            seed=ws.seed,
        )
    if spec.dataset == "online-retail":
        from clm.data.importers import ONLINE_RETAIL_PRESET, import_online_retail

        path = spec.data_file or Path(os.environ.get("CLM_ONLINE_RETAIL", ONLINE_RETAIL_FILE))
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: the UCI Online Retail file is not there; pass --data PATH "
                "or set CLM_ONLINE_RETAIL"
            )
        marker = ws.landing_dir / "_imports" / "evaluate-source.json"
        source = {
            "path": str(path.resolve()),
            "bytes": path.stat().st_size,
            "preset": ONLINE_RETAIL_PRESET,  # a changed mapping re-imports
        }
        if not marker.exists() or json.loads(marker.read_text()) != source:
            say(f"importing {path}")
            import_online_retail(path, ws.landing_dir)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(source))
    days = list_partitions(ws.landing_dir, "orders")
    if not days:
        raise ValueError(f"{ws.landing_dir}: no orders partitions landed")
    say(f"validating {days[0]} .. {days[-1]} through the gate")
    report = ingest(ws, days[-1])
    log.info("ingest: %s", getattr(report, "summary", report))


def default_cutoffs(spec: EvalSpec, ws: Settings, horizon: int) -> list[date]:
    """The training cutoffs the train DAG would use, and the test cutoff.

    The test cutoff is UCI's reference one (2011-09-09); for the others the
    latest whose label window is complete (a latent day when simulated). The
    training cutoffs are those of :func:`clm.data.features.training_cutoffs`
    (``CLM_TRAIN_CUTOFFS`` of them, ``CLM_CUTOFF_SPACING_DAYS`` apart, every
    label window closed by the test cutoff), those after the data begin.
    """
    from clm.data.features import training_cutoffs

    days = list_partitions(ws.validated_dir, "orders")
    if spec.dataset == "online-retail":
        test = ONLINE_RETAIL_CUTOFFS[-1]
    else:
        test = days[-1] - timedelta(days=horizon)
        if spec.dataset == "simulated":
            from clm.ml.oracle import latent_days

            test = max(d for d in latent_days(ws.truth_dir) if d <= test)
    cutoffs = training_cutoffs(
        test + timedelta(days=horizon), horizon, ws.train_cutoffs, ws.cutoff_spacing_days
    )
    return [c for c in cutoffs if c > days[0]]


def _verdicts(task: str, cands: list[Candidate]) -> dict[str, Any]:
    """Does each model beat every baseline on every metric? Which do not, and where."""
    baselines = [c for c in cands if c.kind == "baseline"]
    out: dict[str, Any] = {}
    for model in (c for c in cands if c.kind == "model"):
        losses = []
        for metric, value in model.scores.items():
            if metric == "total_pred_vs_actual_pct":
                better = lambda a, b: abs(a - 100) < abs(b - 100)  # noqa: E731
            elif metric in LOWER_IS_BETTER:
                better = lambda a, b: a < b  # noqa: E731
            else:
                better = lambda a, b: a > b  # noqa: E731
            for b in baselines:
                if not better(value, b.scores[metric]):
                    losses.append(f"{metric}: {value:.4f} vs {b.name} {b.scores[metric]:.4f}")
        out[model.name] = {"beats_every_baseline": not losses, "not_beaten": losses}
    return out


def _best(metric: str, values: dict[str, float]) -> str:
    """The name with the best value of ``metric`` (the first on ties)."""
    names = list(values)
    top = names[0]
    for name in names[1:]:
        if gain(metric, values[name], values[top]) > 0:
            top = name
    return top


def versus_best_baseline(
    cands: list[Candidate], draws: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per metric: the best model's gain over the best baseline, with its paired
    bootstrap interval. ``decided`` is true when the whole interval is above 0."""
    models = [c for c in cands if c.kind == "model"]
    baselines = [c for c in cands if c.kind == "baseline"]
    out: dict[str, dict[str, Any]] = {}
    if not models or not baselines:
        return out
    for metric in models[0].scores:
        model = _best(metric, {c.name: c.scores[metric] for c in models})
        baseline = _best(metric, {c.name: c.scores[metric] for c in baselines})
        scores = {c.name: c.scores[metric] for c in cands}
        low, high = paired_gain(draws, metric, model, baseline)
        value = float(gain(metric, scores[model], scores[baseline]))
        out[metric] = {
            "model": model,
            "baseline": baseline,
            "gain": value,
            "low": low,
            "high": high,
            "decided": bool(low > 0),
        }
    return out


def _targets(task: str, cands: list[Candidate]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric, target in ONLINE_RETAIL_TARGETS[task].items():
        lower = metric in LOWER_IS_BETTER
        row: dict[str, Any] = {"target": target, "lower_is_better": lower}
        for c in cands:
            if c.kind == "model":
                v = c.scores[metric]
                row[c.name] = {"value": v, "met": v < target if lower else v > target}
        out[metric] = row
    return out


def origin_cutoffs(cutoffs: list[date], origins: int, first_day: date) -> list[list[date]]:
    """The cutoffs of each rolling origin, the given ones first, each further one
    :data:`ORIGIN_STEP_DAYS` earlier; cutoffs that would fall before the data
    begin are left out.

    Raises:
        ValueError: if an origin would keep no training cutoff.
    """
    out = []
    for k in range(origins):
        shifted = [c - timedelta(days=ORIGIN_STEP_DAYS * k) for c in cutoffs]
        kept = [c for c in shifted if c > first_day]
        if len(cutoffs) > 1 and len(kept) < 2:
            raise ValueError(
                f"{origins} rolling origins move the cutoffs back to {shifted[0]} .. "
                f"{shifted[-1]}, but the data begin on {first_day}; pass fewer --origins "
                "or later --cutoff"
            )
        out.append(kept)
    return out


def _origin_scores(
    ws: Settings,
    spec: EvalSpec,
    cutoffs: list[date],
    horizon: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Every candidate's point metrics at one further origin (no bootstrap, nothing
    tracked)."""
    from clm.ml.train import build_set

    data = build_set(ws, cutoffs, horizon, spec.split, max_rows=ws.max_training_rows)
    out: dict[str, Any] = {"test_cutoff": data.test_cutoff.isoformat(), "tasks": {}}
    prefix = f"origin {data.test_cutoff}: "
    for task, task_set in task_sets(ws, data, say).items():
        try:
            _, cands = _candidates(ws, spec, task_set, task, lambda m: say(f"{prefix}{m}"))
        except ValueError as exc:
            say(f"{prefix}{task}: skipped ({exc})")
            continue
        out["tasks"][task] = {c.name: {"kind": c.kind, "metrics": c.scores} for c in cands}
    recommended = _reco_candidates(ws, spec, data.test_cutoff, horizon, say)
    if recommended:
        out["tasks"]["reco"] = {
            c.name: {"kind": c.kind, "metrics": c.scores}
            for c in recommended[0]
            if c.kind != "ceiling"
        }
    return out


RECO_METRICS = (f"hit_at_{reco.K}", f"ndcg_at_{reco.K}")


def _reco_candidates(
    ws: Settings, spec: EvalSpec, cutoff: date, horizon: int, say: Callable[[str], None]
) -> tuple[list[Candidate], dict[str, pd.DataFrame]] | None:
    """Every recommender scored on the window after ``cutoff`` (None: too few categories)."""
    h_categories = reco.history(ws.validated_dir, cutoff).categories
    if len(h_categories) <= reco.K:
        say(f"reco: skipped, {len(h_categories)} categories (a top {reco.K} needs more)")
        return None
    oracle = None
    if spec.dataset == "simulated":
        oracle = reco.latent_preferences(ws.truth_dir)
    say("reco: category recommenders")
    per = reco.evaluate(ws.validated_dir, cutoff, horizon, seed=ws.seed, oracle=oracle)
    kinds = {n: "model" for n in reco.MODELS} | {n: "baseline" for n in reco.BASELINES}
    kinds["oracle"] = "ceiling"
    cands = [
        Candidate(
            name=name,
            kind=kinds[name],
            task="reco",
            description=reco.DESCRIPTIONS[name],
            params={},
            pred=np.empty(0),
            scores={m: float(frame[m].mean()) for m in RECO_METRICS},
        )
        for name, frame in per.items()
    ]
    return cands, per


def reco_report(
    ws: Settings, spec: EvalSpec, cutoff: date, horizon: int, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """The recommendation table: each candidate's hit rate and NDCG at 3 with paired
    bootstrap intervals over the evaluated customers, and the best model against the
    best baseline."""
    found = _reco_candidates(ws, spec, cutoff, horizon, say)
    if found is None:
        return None
    cands, per = found
    rows = len(next(iter(per.values())))
    rng = np.random.default_rng(ws.seed)
    draws: dict[str, dict[str, list[float]]] = {name: {m: [] for m in RECO_METRICS} for name in per}
    for _ in range(spec.bootstrap):
        idx = rng.integers(0, rows, rows)
        for name, frame in per.items():
            for m in RECO_METRICS:
                draws[name][m].append(float(frame[m].to_numpy()[idx].mean()))
    arrays = {n: {m: np.asarray(v) for m, v in ms.items()} for n, ms in draws.items()}
    ranked = [c for c in cands if c.kind != "ceiling"]
    return {
        "primary": RECO_METRICS[1],
        "label": f"categories new to the customer bought in the next {horizon} days "
        f"({rows:,} customers)",
        "candidates": [
            _entry(
                c.name,
                c.kind,
                c.description,
                c.scores,
                {m: interval(arrays[c.name][m]) for m in RECO_METRICS},
            )
            for c in cands
        ],
        "verdicts": _verdicts("reco", ranked),
        "versus_best_baseline": versus_best_baseline(ranked, arrays),
    }


SENTIMENT_FEATURES = ("review_sentiment_90d", "negative_review_share_90d")


def feature_gain(
    spec: EvalSpec,
    ws: Settings,
    rows: Any,
    cands: list[Candidate],
    features: tuple[str, ...],
    horizon_days: int,
    say: Callable[[str], None],
) -> dict[str, Any] | None:
    """How much the best model gains from ``features``: the same family, tuned the same
    way on the same rows without them, and every metric's paired bootstrap interval of
    the difference (positive: the features help). None when no test row has any of them.
    """
    from clm.ml.compare import task_data

    present = [f for f in features if f in rows.names]
    if not present or rows.rows("test")[present].notna().to_numpy().sum() == 0:
        say(f"{rows.task}: no {', '.join(features)} on the test rows; gain not measured")
        return None
    best = best_model(cands)
    say(f"{rows.task}: {best.name} again without {', '.join(present)}")
    without = task_data(rows.task, rows.frame, [n for n in rows.names if n not in present])
    (ablated,) = run_candidates(
        without,
        families=[best.name],
        trials=spec.trials,
        seed=ws.seed,
        horizon_days=horizon_days,
        with_baselines=False,
    )
    y = rows.y("test")
    draws = bootstrap_draws(
        rows.task, y, {"with": best.pred, "without": ablated.pred}, n=spec.bootstrap, seed=ws.seed
    )
    metrics = {}
    for metric, value in best.scores.items():
        low, high = paired_gain(draws, metric, "with", "without")
        metrics[metric] = {
            "with": value,
            "without": ablated.scores[metric],
            "gain": float(gain(metric, value, ablated.scores[metric])),
            "low": low,
            "high": high,
            "decided": bool(low > 0),
        }
    covered = float(rows.rows("test")[present].notna().any(axis=1).mean())
    return {
        "family": best.name,
        "features": present,
        "test_rows_with_them": covered,
        "metrics": metrics,
    }


def task_sets(ws: Settings, data: Any, say: Callable[[str], None]) -> dict[str, Any]:
    """The rows of each task: the buyers for churn and clv, the prospects at the same
    cutoffs for conversion (left out when the data set has too few)."""
    from clm.ml.train import build_conversion_set

    sets = {"churn": data, "clv": data}
    prospects = build_conversion_set(ws, data)
    if prospects is None:
        say("conversion: skipped, too few prospects (the log says why)")
    else:
        sets["conversion"] = prospects
    return sets


def _candidates(
    ws: Settings,
    spec: EvalSpec,
    data: Any,
    task: str,
    say: Callable[[str], None],
) -> tuple[Any, list[Candidate]]:
    """The task's rows joined through Feast, and every candidate trained and scored."""
    from clm.ml.train import join_features

    rows = join_features(ws, data, task)
    cands = run_candidates(
        rows,
        families=spec.families,
        trials=spec.trials,
        seed=ws.seed,
        horizon_days=data.horizon_days,
        on_step=say,
    )
    return rows, cands


def rolling_summary(origins: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task, candidate and metric: the value at each origin and their mean; and
    per metric the best model's mean gain over the best baseline (by mean)."""
    summary: dict[str, Any] = {
        "test_cutoffs": [o["test_cutoff"] for o in origins],
        "tasks": {},
    }
    for task in origins[0]["tasks"]:
        if not all(task in o["tasks"] for o in origins):
            continue  # skipped at an origin (too few prospects there): no mean to take
        names = origins[0]["tasks"][task]
        table: dict[str, Any] = {}
        for name, first in names.items():
            metrics = {}
            for metric in first["metrics"]:
                values = [float(o["tasks"][task][name]["metrics"][metric]) for o in origins]
                metrics[metric] = {"values": values, "mean": float(np.mean(values))}
            table[name] = {"kind": first["kind"], "metrics": metrics}
        versus = {}
        kinds = {n: t["kind"] for n, t in table.items()}
        for metric in next(iter(table.values()))["metrics"] if table else []:
            means = {n: table[n]["metrics"][metric]["mean"] for n in table}
            pools = {k: {n: v for n, v in means.items() if kinds[n] == k} for k in kinds.values()}
            if not pools.get("model") or not pools.get("baseline"):
                continue
            model, baseline = _best(metric, pools["model"]), _best(metric, pools["baseline"])
            gains = [
                float(gain(metric, a, b))
                for a, b in zip(
                    table[model]["metrics"][metric]["values"],
                    table[baseline]["metrics"][metric]["values"],
                    strict=True,
                )
            ]
            versus[metric] = {
                "model": model,
                "baseline": baseline,
                "gains": gains,
                "mean_gain": float(np.mean(gains)),
                "origins_won": sum(g > 0 for g in gains),
            }
        summary["tasks"][task] = {"candidates": table, "versus_best_baseline": versus}
    return summary


def evaluate(
    spec: EvalSpec, base: Settings, say: Callable[[str], None] = log.info
) -> dict[str, Any]:
    """Run one evaluation; returns the comparison as a JSON-ready dict.

    Raises:
        ValueError: for an unknown split or a data set too small to split.
    """
    from clm.ml.train import build_set

    t0 = time.perf_counter()
    ws = workspace(spec, base)
    with _home(ws):
        land(spec, ws, say)
        horizon = spec.horizon_days or (
            ONLINE_RETAIL_HORIZON if spec.dataset == "online-retail" else ws.horizon_days
        )
        cutoffs = sorted(spec.cutoffs) or default_cutoffs(spec, ws, horizon)
        first_day = list_partitions(ws.validated_dir, "orders")[0]
        further = origin_cutoffs(cutoffs, max(1, spec.origins), first_day)[1:]
        say(f"building the {spec.split} split at cutoffs {[c.isoformat() for c in cutoffs]}")
        data = build_set(ws, cutoffs, horizon, spec.split, max_rows=ws.max_training_rows)
        from clm.data import feature_store

        feature_store.apply_repo(ws)
        report: dict[str, Any] = {
            "dataset": spec.dataset if spec.dataset in DATASETS else str(ws.home),
            "workspace": str(ws.home),
            "split": data.split,
            "cutoffs": [c.isoformat() for c in data.cutoffs],
            "test_cutoff": data.test_cutoff.isoformat(),
            "horizon_days": horizon,
            "rows": {str(k): int(v) for k, v in data.frame["role"].value_counts().items()},
            "test_customers": int((data.frame["role"] == "test").sum()),
            "churn_rate_test": float(data.frame.loc[data.frame.role == "test", "churned"].mean()),
            "seed": ws.seed,
            "tuning_trials": spec.trials,
            "bootstrap_resamples": spec.bootstrap,
            "tasks": {},
        }
        for task, task_set in task_sets(ws, data, say).items():
            try:
                rows, cands = _candidates(ws, spec, task_set, task, say)
            except ValueError as exc:
                if task != "conversion":
                    raise
                say(f"conversion: skipped ({exc})")
                continue
            y = rows.y("test")
            preds = {c.name: c.pred for c in cands}
            oracle = None
            if spec.dataset == "simulated":
                from clm.ml.oracle import oracle_scores

                say(f"{task}: oracle from the latent truth")
                o = oracle_scores(
                    ws.truth_dir,
                    task_set.test_cutoff,
                    horizon,
                    rows.rows("test")["customer_id"],
                    seed=ws.seed,
                )
                # a prospect converts when they do not "churn": at least one order in H days
                oracle = {
                    "churn": o["churn_probability"],
                    "clv": o["expected_spend"],
                    "conversion": 1.0 - o["churn_probability"],
                }[task].to_numpy()
                preds["oracle"] = oracle
            say(f"{task}: {spec.bootstrap} bootstrap resamples")
            draws = bootstrap_draws(task, y, preds, n=spec.bootstrap, seed=ws.seed)
            intervals = {c: {m: interval(v) for m, v in ms.items()} for c, ms in draws.items()}
            entries = []
            for c in cands:
                entries.append(_entry(c.name, c.kind, c.description, c.scores, intervals[c.name]))
            if oracle is not None:
                entries.append(
                    _entry(
                        "oracle",
                        "ceiling",
                        "from the latent truth (simulated shop only)",
                        score(task, y, oracle),
                        intervals["oracle"],
                    )
                )
            task_report: dict[str, Any] = {
                "primary": PRIMARY[task],
                "label": LABELS[task],
                "test_rows": len(y),
                "positive_rate_test": float(np.mean(y)) if task != "clv" else None,
                "candidates": entries,
                "verdicts": _verdicts(task, cands),
                "versus_best_baseline": versus_best_baseline(cands, draws),
            }
            if spec.dataset == "online-retail" and task in ONLINE_RETAIL_TARGETS:
                task_report["targets"] = _targets(task, cands)
            if task == "churn":
                found = feature_gain(spec, ws, rows, cands, SENTIMENT_FEATURES, horizon, say)
                if found is not None:
                    task_report["sentiment_gain"] = found
            report["tasks"][task] = task_report
            if spec.track:
                _track(base, spec, report, task, rows, cands)
        recommended = reco_report(ws, spec, data.test_cutoff, horizon, say)
        if recommended:
            report["tasks"]["reco"] = recommended
        if further:
            first = {
                "test_cutoff": report["test_cutoff"],
                "tasks": {
                    task: {
                        e["name"]: {
                            "kind": e["kind"],
                            "metrics": {m: v["value"] for m, v in e["metrics"].items()},
                        }
                        for e in body["candidates"]
                        if e["kind"] != "ceiling"
                    }
                    for task, body in report["tasks"].items()
                },
            }
            rest = []
            for shifted in further:
                say(f"rolling origin: test cutoff {shifted[-1]}")
                rest.append(_origin_scores(ws, spec, shifted, horizon, say))
            report["rolling_origin"] = rolling_summary([first, *rest])
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def _entry(
    name: str,
    kind: str,
    description: str,
    scores: dict[str, float],
    intervals: dict[str, tuple[float, float]],
) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "description": description,
        "metrics": {
            m: {"value": v, "low": intervals[m][0], "high": intervals[m][1]}
            for m, v in scores.items()
        },
    }


def _track(
    base: Settings, spec: EvalSpec, report: dict[str, Any], task: str, rows: Any, cands: Any
) -> None:
    """Log the comparison to ``clm-<task>-evaluate`` in the pipeline's MLflow."""
    import mlflow

    from clm.ml.registry import setup_mlflow
    from clm.ml.tracking import log_candidates
    from clm.ml.train import git_sha

    experiment = f"clm-{task}-evaluate"
    setup_mlflow(base, [experiment])
    mlflow.set_experiment(experiment)
    tags = {
        "dataset": spec.name,
        "split": report["split"],
        "test_cutoff": report["test_cutoff"],
        "git_sha": git_sha(),
        "task": task,
        "feature_service": SERVICES[task],
    }
    with mlflow.start_run(run_name=f"evaluate {spec.name}", tags=tags):
        mlflow.log_params(
            {
                "cutoffs": ",".join(report["cutoffs"]),
                "horizon_days": report["horizon_days"],
                "tuning_trials": spec.trials,
                "bootstrap": spec.bootstrap,
            }
        )
        log_candidates(rows, cands, tags=tags, log_models=False)
        mlflow.log_dict(report["tasks"][task], "evaluation.json")


def best_value(entries: list[dict[str, Any]], metric: str, kinds: tuple[str, ...]) -> float:
    """The best value of ``metric`` among entries of ``kinds``."""
    values = [e["metrics"][metric]["value"] for e in entries if e["kind"] in kinds]
    if metric == "total_pred_vs_actual_pct":
        return float(min(values, key=lambda v: abs(v - 100)))
    return float(min(values) if metric in LOWER_IS_BETTER else max(values))


__all__ = ["EvalSpec", "best_value", "evaluate"]
