"""Score every customer as of ds with the champions and write the segment tables.

One run reads the day's feature snapshot, scores it with the version behind
each ``@champion`` (pinned by number for the whole run): churn and spend for
every customer with an order, the first-order probability (``clm-conversion``)
for every prospect, signed up without one. It assigns the segments,
explains the churn score with exact tree SHAP where the next best action needs
it (``top_reasons`` in ``config/segments.yaml``), recommends three categories
with ``clm-reco@champion`` from the purchase histories up to ds, checks the rows with the
output suite, measures drift against the champions' training reference, and
writes every table of the day in one warehouse transaction.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from clm.core.io import BatchError
from clm.core.settings import Settings
from clm.data import warehouse
from clm.data.acquisition import with_acquisition
from clm.data.btyd import with_expectations
from clm.data.features import read_prospects, read_snapshot
from clm.data.segments import (
    assign_segments,
    explained,
    load_rules,
    prospect_segments,
    summarize,
    transitions,
)
from clm.data.validation import BatchValidationError, ValidationRun, check_output, validation_frame
from clm.data.warehouse import Partition

if TYPE_CHECKING:
    from clm.ml.registry import Champion, StateChampion

log = logging.getLogger(__name__)
TOP_REASONS = 3
# Global importance (mean |SHAP| per feature) is estimated on this many customers,
# drawn at random with the day as seed; a smaller shop uses every customer.
IMPORTANCE_SAMPLE = 20_000
SCORE_COLUMN = {
    "churn": "churn_probability",
    "clv": "expected_spend",
    "conversion": "conversion_probability",
}


@dataclass
class ScoreReport:
    """What one scoring run wrote, and what it saw."""

    ds: str
    customers: int
    churn_model_version: str
    clv_model_version: str
    segments: dict[str, int]
    drifted: list[str] = field(default_factory=list)
    retrain: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    explained: int = 0  # customers given top_reasons
    reco_model_version: str | None = None  # None: no recommender yet
    cluster_model_version: str | None = None  # None: no clustering yet
    prospects: int = 0  # of ``customers``: signed up, no order yet
    conversion_model_version: str | None = None  # None: no conversion model yet


class Steps:
    """Times the steps of a run; logs each one and calls ``on_step(name)`` as it starts."""

    def __init__(self, on_step: Callable[[str], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.on_step = on_step

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.on_step is not None:
            self.on_step(name)
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)
        log.info("step %-22s %.2fs", name, self.seconds[name])


def load_snapshot(settings: Settings, ds: date) -> pd.DataFrame:
    """Both feature views as of ds, one row per customer, with the BG/NBD and
    Gamma-Gamma expectations as of ds (the parameters are fit once per day).

    Raises:
        BatchError: if the snapshot for ds has not been computed.
    """
    snapshot = read_snapshot(settings.features_dir, ds)
    return with_expectations(
        snapshot, settings.features_dir, ds, settings.horizon_days, settings.seed
    )


def load_prospects(settings: Settings, ds: date) -> pd.DataFrame:
    """The prospects as of ds with the acquisition features as of ds (what the feature
    service ``conversion_v1`` gives through Feast for the same customers and day)."""
    prospects = read_prospects(settings.features_dir, ds)
    if prospects.empty:
        return prospects
    return with_acquisition(prospects, settings.validated_dir, ds, settings.horizon_days)


def require_features(champion: Champion, frame: pd.DataFrame, ds: date) -> None:
    """Raise :class:`BatchError` unless ``frame`` has every input of ``champion``."""
    missing = sorted(set(champion.features) - set(frame.columns))
    if missing:
        raise BatchError(
            f"ds={ds}: features {missing} needed by {champion.name} v{champion.version} "
            "are not in the snapshot"
        )


def score_prospects(
    prospects: pd.DataFrame, champion: Champion | None, rules: dict[str, Any], ds: date
) -> pd.DataFrame:
    """Each prospect's probability of a first order in H days from ``clm-conversion``
    (NaN without a champion), lifecycle stage, segment and next best action."""
    frame = prospects.copy()
    if champion is None:
        if len(frame):
            log.warning(
                "no clm-conversion@champion yet: %d prospects of %s are left unscored",
                len(frame),
                ds,
            )
        frame["conversion_probability"] = np.nan
    else:
        require_features(champion, frame, ds)
        frame["conversion_probability"] = champion.trained.predict(
            frame[champion.features].astype("float64")
        ).astype("float64")
        log.info(
            "scored %d prospects with %s v%s (%s)",
            len(frame),
            champion.name,
            champion.version,
            champion.trained.family,
        )
    out = prospect_segments(frame, rules)
    out["conversion_model_version"] = None if champion is None else champion.version
    return out


def top_reasons(contrib: np.ndarray, names: list[str], k: int = TOP_REASONS) -> list[str]:
    """The ``k`` features pushing each churn score up the most, comma-joined."""
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    labels = np.asarray(names, dtype=object)[order]
    positive = np.take_along_axis(contrib, order, axis=1) > 0
    return [", ".join(row[mask]) or "none" for row, mask in zip(labels, positive, strict=True)]


def importance_sample(n: int, ds: date, size: int = IMPORTANCE_SAMPLE) -> np.ndarray:
    """Sorted row positions for the day's importance: all ``n`` rows, or ``size`` of them."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(ds.toordinal()).choice(n, size=size, replace=False))


def _check_output(settings: Settings, out: pd.DataFrame, ds: date) -> pd.DataFrame:
    """Run the output suite on the day's rows; refuse the write if it fails.

    Returns:
        The ``validation_runs`` row of a passed run, to be written in the same
        transaction as the day it describes. A failed run is recorded at once.
    """
    try:
        docs_url = check_output(
            out,
            settings.expectations_dir / "customer_segments.json",
            settings.gx_dir,
            "customer_segments",
            ds,
        )
    except BatchValidationError as err:
        failed = ValidationRun(
            ds, "customer_segments", len(out), error=str(err), docs_url=err.docs_url
        )
        warehouse.replace_rows(
            settings.warehouse,
            "validation_runs",
            validation_frame([failed]),
            ("ds", "table_name"),
        )
        raise
    passed = ValidationRun(ds, "customer_segments", len(out), len(out), docs_url=docs_url)
    return validation_frame([passed])


def measure_drift(
    champions: dict[str, Champion],
    frames: dict[str, pd.DataFrame],
    ds: date,
    rules: dict[str, Any],
) -> pd.DataFrame:
    """PSI of each champion's features and score against its training reference, on the
    rows it scored (``frames`` by task: the buyers, or the prospects)."""
    from clm.data.drift import psi_table

    cfg = rules["drift"]
    tables = []
    for task, champ in champions.items():
        frame = frames[task]
        if frame.empty:
            continue
        reference = champ.trained.reference
        if not reference:
            log.warning(
                "%s v%s has no training reference: drift not measured", champ.name, champ.version
            )
            continue
        table = psi_table(
            reference,
            frame,
            score=SCORE_COLUMN[task],
            feature_threshold=float(cfg["feature_psi"]),
            score_threshold=float(cfg["score_psi"]),
            exempt=frozenset(cfg.get("exempt") or ()),
        )
        tables.append(table.assign(ds=ds, model_name=champ.name, model_version=champ.version))
    if not tables:
        return pd.DataFrame(columns=warehouse.columns("drift"))
    return pd.concat(tables, ignore_index=True)[warehouse.columns("drift")]


def _should_retrain(settings: Settings, ds: date, cooldown_days: int) -> bool:
    last = warehouse.query(
        settings.warehouse, "SELECT MAX(ds) AS ds FROM model_promotions WHERE ds <= ?", [ds]
    )["ds"].iloc[0]
    if last is None or pd.isna(last):
        return True
    return bool(pd.Timestamp(last).date() <= ds - timedelta(days=cooldown_days))


def _neighbour_segments(url: str, ds: date, before: bool) -> tuple[date | None, pd.DataFrame]:
    """The segments of the closest scored day before (or after) ds."""
    agg, op = ("MAX", "<") if before else ("MIN", ">")
    day = warehouse.query(
        url, f"SELECT {agg}(ds) AS ds FROM customer_segments WHERE ds {op} ?", [ds]
    )
    value = day["ds"].iloc[0]
    if value is None or pd.isna(value):
        return None, pd.DataFrame(columns=["ds", "customer_id", "segment"])
    found = pd.Timestamp(value).date()
    rows = warehouse.query(
        url, "SELECT ds, customer_id, segment FROM customer_segments WHERE ds = ?", [found]
    )
    rows["ds"] = found
    return found, rows


def recommendations(
    settings: Settings, champion: StateChampion | None, ds: date, customers: pd.Series
) -> list[str | None]:
    """``recommended_categories`` of each customer: a JSON array of the top three
    categories from the champion recommender on the purchase histories up to ds.

    None for everyone when there is no recommender yet (a shop with too few categories).
    """
    from clm.ml.reco import history

    if champion is None:
        log.warning("no clm-reco@champion yet: recommended_categories left empty for %s", ds)
        return [None] * len(customers)
    try:
        h = history(settings.validated_dir, ds)
    except ValueError as exc:
        log.warning("recommended_categories left empty for %s: %s", ds, exc)
        return [None] * len(customers)
    top = champion.model.recommend(h, pd.Index(customers))
    log.info(
        "recommended categories for %d customers with clm-reco v%s (%s)",
        len(top),
        champion.version,
        champion.model.kind,
    )
    return [json.dumps(names, ensure_ascii=False) for names in top]


def score_day(
    settings: Settings, ds: date, on_step: Callable[[str], None] | None = None
) -> ScoreReport:
    """Score, explain, segment, validate and check drift for ds; write the day in one transaction.

    Transitions are computed against the closest scored day before ds; the
    closest scored day after ds (a backfill running out of order) has its
    transitions recomputed in the same transaction, so the tables do not
    depend on the order in which days were run.

    Raises:
        RuntimeError: if there is no champion yet.
        BatchError: if the snapshot is missing or lacks a model's features.
        BatchValidationError: if the output suite fails (nothing is written).
    """
    steps = Steps(on_step)
    rules = load_rules(settings.segments_config)
    with steps("load champions"):
        from clm.ml.registry import load_champions, load_state_champion

        champions = load_champions(settings)
        reco_champion = load_state_champion(settings, "reco")
        cluster_champion = load_state_champion(settings, "clusters")
    with steps("load snapshot"):
        # In customer order, so the importance sample is the same rows on a re-run.
        snapshot = load_snapshot(settings, ds).sort_values("customer_id", ignore_index=True)
        prospects = load_prospects(settings, ds)
    conversion = champions.pop("conversion", None)
    for champ in champions.values():
        require_features(champ, snapshot, ds)
    frame = snapshot.copy()
    churn, clv = champions["churn"], champions["clv"]
    x = snapshot[churn.features].astype("float64")
    with steps("predict churn"):
        frame["churn_probability"] = churn.trained.predict(x).astype("float64")
    with steps("predict spend"):
        frame["expected_spend"] = clv.trained.predict(
            snapshot[clv.features].astype("float64")
        ).astype("float64")
    log.info(
        "scored %d customers with %s v%s (%s) and %s v%s (%s)",
        len(frame),
        churn.name,
        churn.version,
        churn.trained.family,
        clv.name,
        clv.version,
        clv.trained.family,
    )

    with steps("segments"):
        segments = assign_segments(frame, rules, settings.horizon_days)
    with steps("top reasons (SHAP)"):
        need = explained(segments["next_best_action"], rules)
        sample = importance_sample(len(x), ds)
        rows = np.union1d(np.flatnonzero(need), sample)
        from clm.ml.models import contributions

        contrib = contributions(churn.trained, x.iloc[rows])
        reasons = np.full(len(x), None, dtype=object)
        reasons[need] = top_reasons(
            contrib[np.searchsorted(rows, np.flatnonzero(need))], churn.features
        )
        segments["top_reasons"] = reasons
        importance = pd.DataFrame(
            {
                "ds": ds,
                "model_name": churn.name,
                "model_version": churn.version,
                "feature": churn.features,
                "mean_abs_contribution": np.abs(contrib[np.searchsorted(rows, sample)]).mean(
                    axis=0, dtype="float64"
                ),
            }
        )
        del contrib
        log.info(
            "top_reasons for %d of %d customers (actions: %s); importance over %d",
            int(need.sum()),
            len(x),
            rules["top_reasons"]["actions"],
            len(sample),
        )
    with steps("predict conversion"):
        prospect_rows = score_prospects(prospects, conversion, rules, ds)
        segments["conversion_probability"] = np.nan
        segments["conversion_model_version"] = None
        segments["churn_model_version"] = churn.version
        segments["clv_model_version"] = clv.version
        segments = pd.concat([segments, prospect_rows], ignore_index=True)
    with steps("recommend"):
        segments["recommended_categories"] = recommendations(
            settings, reco_champion, ds, segments["customer_id"]
        )
        segments["reco_model_version"] = None if reco_champion is None else reco_champion.version
    with steps("behaviour clusters"):
        if cluster_champion is None:
            log.warning("no clm-clusters@champion yet: behaviour_cluster left empty for %s", ds)
            segments["behaviour_cluster"] = None
            segments["cluster_model_version"] = None
        else:
            # buyers only: the clusters describe buying behaviour
            buyers = segments["lifecycle_stage"] != "prospect"
            labels = cluster_champion.model.label(
                snapshot.set_index("customer_id")
                .loc[segments.loc[buyers, "customer_id"]]
                .reset_index()
            )
            segments["behaviour_cluster"] = None
            segments.loc[buyers, "behaviour_cluster"] = labels
            segments["cluster_model_version"] = None
            segments.loc[buyers, "cluster_model_version"] = cluster_champion.version
    with steps("summary"):
        segments["ds"] = ds
        out = segments.sort_values("customer_id", ignore_index=True)[
            warehouse.columns("customer_segments")
        ]
        summary = summarize(out)
    with steps("validate output"):
        validation = _check_output(settings, out, ds)
    with steps("drift"):
        frames = {"churn": frame, "clv": frame}
        if conversion is not None:
            champions["conversion"] = conversion
            frames["conversion"] = prospect_rows
        drift = measure_drift(champions, frames, ds, rules)
        del frame
        drifted = sorted(set(drift.loc[drift["drifted"].astype(bool), "name"]))
        retrain = False
        if drifted:
            details = ", ".join(
                f"{r.name} (PSI {r.psi:.3f} > {r.threshold:g}, {r.model_name})"
                for r in drift[drift["drifted"].astype(bool)].itertuples()
            )
            retrain = _should_retrain(settings, ds, int(rules["drift"]["retrain_cooldown_days"]))
            log.warning(
                "ds=%s: drift against the training reference in %s; %s",
                ds,
                details,
                "retraining is triggered (Asset clm_drift)"
                if retrain
                else "retraining is not triggered: the last training run is within the "
                f"{rules['drift']['retrain_cooldown_days']}-day cooldown",
            )
    with steps("warehouse write"):
        url = settings.warehouse
        _, previous = _neighbour_segments(url, ds, before=True)
        later, following = _neighbour_segments(url, ds, before=False)
        partitions = [
            Partition("customer_segments", out, {"ds": ds}),
            Partition("segment_summary", summary, {"ds": ds}),
            Partition("segment_transitions", transitions(previous, out), {"ds": ds}),
            Partition("drift", drift, {"ds": ds}),
            Partition("feature_importance", importance, {"ds": ds}),
            Partition("validation_runs", validation, {"ds": ds, "table_name": "customer_segments"}),
        ]
        if later is not None:
            partitions.append(
                Partition("segment_transitions", transitions(out, following), {"ds": later})
            )
        warehouse.replace_partitions(url, partitions)
    counts = dict(zip(summary["segment"], summary["customers"].astype(int), strict=True))
    log.info("ds=%s: %d customers in segments %s", ds, len(out), counts)
    return ScoreReport(
        ds.isoformat(),
        len(out),
        churn.version,
        clv.version,
        counts,
        drifted,
        retrain,
        steps.seconds,
        int(need.sum()),
        None if reco_champion is None else reco_champion.version,
        None if cluster_champion is None else cluster_champion.version,
        len(prospect_rows),
        None if conversion is None else conversion.version,
    )
