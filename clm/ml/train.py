"""Build a point-in-time training set, train both families and the baselines, track, promote;
and the recommenders on the purchase histories at the same test cutoff."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from clm.core.settings import PROJECT_ROOT, Settings
from clm.data import btyd, feature_store
from clm.data.features import ensure_snapshots, snapshot_timestamp, training_cutoffs
from clm.data.labels import compute_conversion_labels, compute_labels
from clm.ml import reco
from clm.ml.compare import PRIMARY, Candidate, TaskData, best_model, run_candidates, task_data
from clm.ml.metrics import score
from clm.ml.promotion import decide, promote
from clm.ml.registry import (
    REGISTERED,
    SERVICES,
    current_champion,
    load_version,
    model_features,
    retire_unfinished,
    setup_mlflow,
)
from clm.ml.tracking import log_candidates

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """Rows ``(customer_id, cutoff)`` with both labels and a role: train, val or test."""

    frame: pd.DataFrame
    split: str  # "time" or "customers"
    cutoffs: list[date]
    test_cutoff: date
    horizon_days: int
    customers: int = 0  # customers with a label at some cutoff, before any sampling


@dataclass
class TrainResult:
    """What one training run decided; small enough for XCom."""

    ds: str
    split: str
    rows: dict[str, int]
    metrics: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_training_set(settings: Settings, ds: date, horizon_days: int) -> TrainingSet:
    """The training set a run at ``ds`` uses: the training cutoffs and, out of time,
    the test cutoff (:func:`clm.data.features.training_cutoffs`).

    Raises:
        ValueError: if no cutoff has labelled customers.
    """
    cutoffs = training_cutoffs(
        ds, horizon_days, settings.train_cutoffs, settings.cutoff_spacing_days
    )
    return build_set(settings, cutoffs, horizon_days, max_rows=settings.max_training_rows)


def sample_rows(labels: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """``max_rows`` rows (customer x cutoff) drawn at random, in their order (0: no limit).

    Rows, not whole customers: with weekly cutoffs a customer has a row at
    each of 20 or more of them, and drawing whole customers would keep few
    and similar ones. Each cutoff keeps about the same random share of its
    customers, and the split's roles are drawn by customer afterwards.
    """
    if max_rows <= 0 or len(labels) <= max_rows:
        return labels
    # A stream of its own: the split's draws in build_set use the seed itself.
    picked = np.random.default_rng([seed, 1]).choice(len(labels), size=max_rows, replace=False)
    out = labels.iloc[np.sort(picked)].reset_index(drop=True)
    log.info(
        "training set: %d of %d rows (customer x cutoff) drawn at random (max_training_rows), "
        "%d of %d customers",
        len(out),
        len(labels),
        out["customer_id"].nunique(),
        labels["customer_id"].nunique(),
    )
    return out


def build_set(
    settings: Settings,
    cutoffs: list[date],
    horizon_days: int,
    split: str | None = None,
    *,
    max_rows: int = 0,
    label_fn: Callable[[Any, date, int], pd.DataFrame] = compute_labels,
) -> TrainingSet:
    """Labels at ``cutoffs`` (oldest first), with train, validation and test roles.

    ``label_fn`` labels one cutoff: :func:`compute_labels` (buyers: churn and spend)
    or :func:`compute_conversion_labels` (prospects: a first order).

    ``split="time"``: the last cutoff is the test set (out of time).
    ``split="customers"``: only the last cutoff is used, and a random 20% of its
    customers is the test set. ``None`` picks ``time`` when more than one
    cutoff has labelled customers. In both, a random 20% of the customers is
    held out of the training rows as the validation slice (early stopping,
    tuning, calibration).

    Raises:
        ValueError: if no cutoff has labelled customers, or the split is unknown.
    """
    if split not in (None, "time", "customers"):
        raise ValueError(f"split must be 'time' or 'customers', got {split!r}")
    if split == "customers":
        cutoffs = cutoffs[-1:]
    frames = []
    used = []
    for cutoff in cutoffs:
        labels = label_fn(settings.validated_dir, cutoff, horizon_days)
        if labels.empty:
            continue
        labels["cutoff"] = cutoff
        frames.append(labels)
        used.append(cutoff)
    if not frames:
        raise ValueError(f"no labelled customers at any cutoff {cutoffs}")
    if split == "time" and len(used) < 2:
        raise ValueError(f"a time split needs two cutoffs with customers, got {used}")
    made = ensure_snapshots(settings.features_dir, settings.validated_dir, used)
    if made:
        log.info("computed missing feature snapshots for cutoffs %s", made)
    labels = pd.concat(frames, ignore_index=True)
    population = labels["customer_id"].nunique()
    labels = sample_rows(labels, max_rows, settings.seed)
    labels["event_timestamp"] = [pd.Timestamp(snapshot_timestamp(c)) for c in labels["cutoff"]]

    test_cutoff = used[-1]
    rng = np.random.default_rng(settings.seed)
    customers = np.sort(labels["customer_id"].unique())
    held = set(rng.choice(customers, size=max(1, len(customers) // 5), replace=False))
    val_customers = set(rng.choice(customers, size=max(1, len(customers) // 5), replace=False))
    split = split or ("time" if len(used) > 1 else "customers")
    if split == "time":
        labels["role"] = np.where(labels["cutoff"] == test_cutoff, "test", "train")
    else:
        labels["role"] = np.where(labels["customer_id"].isin(held), "test", "train")
    val = (labels["role"] == "train") & labels["customer_id"].isin(val_customers)
    labels.loc[val, "role"] = "val"
    log.info(
        "training set: %d rows over cutoffs %s (%s split), roles %s",
        len(labels),
        [c.isoformat() for c in used],
        split,
        labels["role"].value_counts().to_dict(),
    )
    return TrainingSet(labels, split, used, test_cutoff, horizon_days, population)


def build_conversion_set(settings: Settings, data: TrainingSet) -> TrainingSet | None:
    """The prospects at the cutoffs of ``data``, split the same way and labelled with a
    first order in the horizon; None (logged) when the shop has too few prospects."""
    try:
        return build_set(
            settings,
            data.cutoffs,
            data.horizon_days,
            data.split,
            max_rows=settings.max_training_rows,
            label_fn=compute_conversion_labels,
        )
    except ValueError as exc:
        log.warning("conversion: no first-order model trained: %s", exc)
        return None


def join_features(settings: Settings, data: TrainingSet, task: str) -> TaskData:
    """Join the task's feature service point in time through Feast."""
    service = SERVICES[task]
    names = feature_store.feature_names(settings, service)
    joined = feature_store.historical_features(
        settings,
        data.frame[["customer_id", "event_timestamp"]].drop_duplicates(),
        service,
        data.horizon_days,
    )
    frame = data.frame.merge(joined, on=["customer_id", "event_timestamp"], how="left")
    return task_data(task, frame, names)


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train(
    settings: Settings,
    ds: date,
    *,
    horizon_days: int | None = None,
    families: list[str] | None = None,
    n_trials: int | None = None,
    force_promotion: bool = False,
    airflow_run_id: str = "manual",
) -> TrainResult:
    """Train every family and baseline for churn, clv and conversion (the prospects' first
    order, when the shop has prospects), log to MLflow, promote the best.

    One parent run per task in experiments ``clm-churn`` / ``clm-clv`` /
    ``clm-conversion``; one
    child run per candidate, baselines included. The best model is registered;
    it becomes ``@champion`` only if :func:`clm.ml.promotion.decide` says so,
    after the current champion is scored on the same test rows.
    """
    import mlflow

    horizon = horizon_days or settings.horizon_days
    families = families or list(settings.model_families)
    trials = settings.tuning_trials if n_trials is None else n_trials
    data = build_training_set(settings, ds, horizon)
    setup_mlflow(settings)
    client = mlflow.MlflowClient()
    result = TrainResult(
        ds=ds.isoformat(),
        split=data.split,
        rows={str(k): int(v) for k, v in data.frame["role"].value_counts().items()},
    )
    sha = git_sha()
    feature_store.apply_repo(settings)
    sets = {"churn": data, "clv": data}
    prospects = build_conversion_set(settings, data)
    if prospects is not None:
        sets["conversion"] = prospects
    for task, task_set in sets.items():
        service = SERVICES[task]
        try:
            rows = join_features(settings, task_set, task)
        except ValueError as exc:
            if task in ("churn", "clv"):
                raise
            log.warning("%s: no model trained: %s", task, exc)
            continue
        metric = PRIMARY[task]
        tags = {
            "ds": ds.isoformat(),
            "airflow_run_id": airflow_run_id,
            "git_sha": sha,
            "feature_service": service,
            "split": data.split,
            "task": task,
        }
        mlflow.set_experiment(REGISTERED[task])
        with mlflow.start_run(run_name=f"train {ds.isoformat()}", tags=tags) as parent:
            mlflow.log_params(
                {
                    "horizon_days": horizon,
                    "cutoffs": ",".join(c.isoformat() for c in task_set.cutoffs),
                    "test_cutoff": task_set.test_cutoff.isoformat(),
                    "families": ",".join(families),
                    "tuning_trials": trials,
                    "n_features": len(rows.names),
                    "customers": task_set.customers,
                    "max_training_rows": settings.max_training_rows,
                    **{
                        f"rows_{k}": int(v)
                        for k, v in task_set.frame["role"].value_counts().items()
                    },
                    # The BTYD features' parameters at the test cutoff (each cutoff has its own).
                    **btyd.params_at(settings.features_dir, data.test_cutoff, settings.seed),
                }
            )
            candidates = run_candidates(
                rows,
                families=families,
                trials=trials,
                seed=settings.seed,
                horizon_days=horizon,
                with_baselines=settings.train_baselines,
            )
            uris = log_candidates(rows, candidates, tags=tags)
            result.metrics[task] = {c.name: c.scores for c in candidates}
            challenger = best_model(candidates)
            beaten_by = [
                c.name
                for c in candidates
                if c.kind == "baseline" and c.scores[metric] >= challenger.scores[metric]
            ]
            if beaten_by:
                log.warning(
                    "%s: baseline(s) %s match or beat %s on %s",
                    task,
                    beaten_by,
                    challenger.name,
                    metric,
                )
            decided = _decide_and_promote(
                settings,
                client,
                rows,
                challenger,
                uris[challenger.name],
                ds=ds,
                force=force_promotion,
                run_id=parent.info.run_id,
            )
            mlflow.set_tags(
                {
                    "best_family": challenger.name,
                    "decision": decided["decision"],
                    "registered_version": decided["version"],
                }
            )
            result.decisions[task] = decided
    reco_run = train_recommender(
        settings,
        data,
        ds=ds,
        tags={"ds": ds.isoformat(), "airflow_run_id": airflow_run_id, "git_sha": sha},
        force=force_promotion,
    )
    if reco_run is not None:
        result.metrics["reco"], result.decisions["reco"] = reco_run
    clustered = train_clusters(
        settings, data.test_cutoff, ds=ds, tags={"ds": ds.isoformat(), "git_sha": sha}
    )
    if clustered is not None:
        result.metrics["clusters"], result.decisions["clusters"] = clustered
    return result


def train_clusters(
    settings: Settings, cutoff: date, *, ds: date, tags: dict[str, str]
) -> tuple[dict[str, dict[str, float]], dict[str, Any]] | None:
    """Refit the behavioural clusters on the customers as of ``cutoff``, log them to
    MLflow (experiment ``clm-clusters``) and make the new version ``@champion``:
    clusters describe, they are not scored against a champion, so each training
    run's refit replaces the last one.

    Returns:
        The silhouette of each k and the decision; None with too few customers.
    """
    import mlflow

    from clm.ml import clusters as clustering
    from clm.ml import plots
    from clm.ml.cluster_model import log_clusters
    from clm.ml.promotion import Decision
    from clm.ml.scoring import load_snapshot

    snapshot = load_snapshot(settings, cutoff)
    try:
        fitted = clustering.fit(snapshot, seed=settings.seed)
    except ValueError as exc:
        log.warning("behaviour clusters not fitted: %s", exc)
        return None
    name = REGISTERED["clusters"]
    client = mlflow.MlflowClient()
    mlflow.set_experiment(name)
    labels = fitted.label(snapshot)
    table = clustering.profile(snapshot, labels)
    best = fitted.silhouettes[fitted.k]
    with mlflow.start_run(
        run_name=f"train {ds.isoformat()}", tags={**tags, "task": "clusters"}
    ) as run:
        mlflow.log_params(
            {
                "snapshot_ds": cutoff.isoformat(),
                "customers": len(snapshot),
                "features": ",".join(fitted.features),
                "k_range": f"{min(clustering.K_RANGE)}-{max(clustering.K_RANGE)}",
                "k": fitted.k,
                "criterion": "silhouette",
            }
        )
        for k, value in fitted.silhouettes.items():
            mlflow.log_metric("silhouette_by_k", value, step=k)
        mlflow.log_metric("silhouette", best)
        fig = plots.silhouettes(fitted.silhouettes, fitted.k)
        mlflow.log_figure(fig, "silhouette.png")
        plots.close(fig)
        mlflow.log_table(table, "profile.json")
        uri = log_clusters(fitted, snapshot.head(5))
        retire_unfinished(client, name, by=f"the training run of {ds}")
        champion = current_champion(client, name)
        decision = Decision(
            True,
            [
                f"refit at every training run: k={fitted.k} of "
                f"{min(clustering.K_RANGE)}..{max(clustering.K_RANGE)} by the best "
                f"silhouette ({best:.3f}) on the customers as of {cutoff}"
            ],
        )
        version = promote(
            task="clusters",
            ds=ds,
            model_uri=uri,
            family="kmeans",
            metric="silhouette",
            challenger_score=best,
            champion_score=None,
            champion_version=None if champion is None else str(champion.version),
            decision=decision,
            run_id=run.info.run_id,
            warehouse_url=settings.warehouse,
        )
    log.info("behaviour clusters v%s: %s", version, ", ".join(fitted.names))
    metrics = {"kmeans": {"k": float(fitted.k), "silhouette": best}}
    return metrics, {
        "family": "kmeans",
        "version": version,
        "decision": decision.label,
        "reasons": decision.reasons,
        "silhouette": best,
        "names": fitted.names,
    }


def reco_scores(rec: reco.Recommender, h: reco.History, rel: np.ndarray) -> pd.DataFrame:
    """Hit and NDCG at 3 per customer of ``rec``'s recommendations from the histories in
    ``h``: the path scoring takes, so a champion fit on other categories is comparable."""
    named = rec.recommend(h, h.customers)
    top = np.full((len(named), reco.K), -1)
    for i, cats in enumerate(named):
        top[i, : len(cats)] = h.categories.get_indexer(pd.Index(cats))
    return reco.per_customer(top, rel)


def train_recommender(
    settings: Settings, data: TrainingSet, *, ds: date, tags: dict[str, str], force: bool
) -> tuple[dict[str, dict[str, float]], dict[str, Any]] | None:
    """Fit every recommender on the purchase histories up to the test cutoff, score the
    next H days, log to MLflow (experiment ``clm-reco``) and promote the best
    collaborative-filtering model if it beats ``clm-reco@champion`` on the same window.

    Returns:
        The candidates' metrics and the decision; None when the shop has too few
        categories to recommend from, or nobody bought a new one in the window.
    """
    import mlflow

    from clm.ml import plots
    from clm.ml.reco_model import history_frame, load_recommender, log_recommender

    cutoff, horizon = data.test_cutoff, data.horizon_days
    try:
        h = reco.history(settings.validated_dir, cutoff)
    except ValueError as exc:
        log.warning("recommendation not trained: %s", exc)
        return None
    if len(h.categories) <= reco.K:
        log.warning(
            "recommendation not trained: %d categories by %s (a top %d needs more)",
            len(h.categories),
            cutoff,
            reco.K,
        )
        return None
    rel = reco.relevant(h, reco.bought_after(settings.validated_dir, cutoff, horizon))
    if not rel.any():
        log.warning(
            "recommendation not trained: nobody bought a category new to them in %s..+%dd",
            cutoff,
            horizon,
        )
        return None
    metric = f"ndcg_at_{reco.K}"
    name = REGISTERED["reco"]
    client = mlflow.MlflowClient()
    mlflow.set_experiment(name)
    run_tags = {**tags, "task": "reco", "split": "time"}
    example = history_frame(h.counts, list(h.categories))
    metrics: dict[str, dict[str, float]] = {}
    uris: dict[str, str] = {}
    with mlflow.start_run(run_name=f"train {ds.isoformat()}", tags=run_tags) as parent:
        mlflow.log_params(
            {
                "test_cutoff": cutoff.isoformat(),
                "horizon_days": horizon,
                "k": reco.K,
                "recent_days": reco.RECENT_DAYS,
                "categories": len(h.categories),
                "customers": len(h.customers),
                "customers_evaluated": int(rel.any(axis=1).sum()),
            }
        )
        for kind in (*reco.MODELS, *reco.BASELINES):
            is_model = kind in reco.MODELS
            with mlflow.start_run(
                run_name=kind,
                nested=True,
                tags={
                    **run_tags,
                    "candidate": kind,
                    "kind": "model" if is_model else "baseline",
                    "description": reco.DESCRIPTIONS[kind],
                },
            ):
                rec = reco.Recommender.fit(kind, h, seed=settings.seed)
                per = reco_scores(rec, h, rel)
                metrics[kind] = {
                    f"hit_at_{reco.K}": float(per[f"hit_at_{reco.K}"].mean()),
                    metric: float(per[metric].mean()),
                }
                mlflow.log_metrics(metrics[kind])
                if kind == "als":
                    mlflow.log_params({"factors": rec.state["item_factors"].shape[1]})
                if is_model:
                    uris[kind] = log_recommender(rec, example, reco.DESCRIPTIONS[kind])
        best = max(reco.MODELS, key=lambda k: metrics[k][metric])
        beaten_by = [b for b in reco.BASELINES if metrics[b][metric] >= metrics[best][metric]]
        if beaten_by:
            log.warning("reco: baseline(s) %s match or beat %s on %s", beaten_by, best, metric)
        fig = plots.recommendation(metrics, (f"hit_at_{reco.K}", metric))
        mlflow.log_figure(fig, "comparison/recommendation.png")
        plots.close(fig)
        mlflow.log_table(
            {
                "candidate": list(metrics),
                **{m: [v[m] for v in metrics.values()] for m in metrics[best]},
            },
            "comparison/table.json",
        )
        retire_unfinished(client, name, by=f"the training run of {ds}")
        champion = current_champion(client, name)
        champion_score = champion_version = None
        if champion is not None:
            champion_version = str(champion.version)
            old = load_recommender(f"models:/{name}/{champion_version}")
            champion_score = float(reco_scores(old, h, rel)[metric].mean())
            mlflow.log_metric(f"champion_{metric}", champion_score)
        decision = decide(
            metrics[best][metric],
            champion_score,
            floor=settings.reco_ndcg_floor,
            margin=settings.promotion_margin,
            schema_ok=True,  # a recommender reads histories, whatever categories they have
            force=force,
        )
        version = promote(
            task="reco",
            ds=ds,
            model_uri=uris[best],
            family=best,
            metric=metric,
            challenger_score=metrics[best][metric],
            champion_score=champion_score,
            champion_version=champion_version,
            decision=decision,
            run_id=parent.info.run_id,
            warehouse_url=settings.warehouse,
        )
        mlflow.set_tags(
            {"best_family": best, "decision": decision.label, "registered_version": version}
        )
    return metrics, {
        "family": best,
        "version": version,
        "decision": decision.label,
        "reasons": decision.reasons,
        metric: metrics[best][metric],
        "champion_version": champion_version,
        "champion_score": champion_score,
    }


def _decide_and_promote(
    settings: Settings,
    client: Any,
    data: TaskData,
    challenger: Candidate,
    model_uri: str,
    *,
    ds: date,
    force: bool,
    run_id: str,
) -> dict[str, Any]:
    """Score the champion on today's test rows, decide, and apply the decision."""
    import mlflow

    task = data.task
    metric = PRIMARY[task]
    retire_unfinished(client, REGISTERED[task], by=f"the training run of {ds}")
    champion = current_champion(client, REGISTERED[task])
    champion_score = None
    champion_version = None
    if champion is not None:
        champion_version = str(champion.version)
        uri = f"models:/{REGISTERED[task]}/{champion.version}"
        if model_features(uri) == data.names:
            old = load_version(uri)
            champion_score = score(task, data.y("test"), old.predict(data.x("test")))[metric]
            mlflow.log_metric(f"champion_{metric}", champion_score)
        else:
            log.warning("champion v%s has another feature schema; not comparable", champion_version)
    floor = {
        "churn": settings.churn_auc_floor,
        "clv": settings.clv_gini_floor,
        "conversion": settings.conversion_auc_floor,
    }[task]
    decision = decide(
        challenger.scores[metric],
        champion_score,
        floor=floor,
        margin=settings.promotion_margin,
        schema_ok=model_features(model_uri) == data.names,
        force=force,
    )
    version = promote(
        task=task,
        ds=ds,
        model_uri=model_uri,
        family=challenger.name,
        metric=metric,
        challenger_score=challenger.scores[metric],
        champion_score=champion_score,
        champion_version=champion_version,
        decision=decision,
        run_id=run_id,
        warehouse_url=settings.warehouse,
    )
    return {
        "family": challenger.name,
        "version": version,
        "decision": decision.label,
        "reasons": decision.reasons,
        metric: challenger.scores[metric],
        "champion_version": champion_version,
        "champion_score": champion_score,
    }
