"""Feast glue: apply the repo, materialize a day, build point-in-time training sets."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from clm.core.io import BatchError, content_hash
from clm.core.settings import Settings
from clm.data import acquisition, btyd
from clm.data.features import (
    AS_OF,
    EPOCH,
    FEATURE_DESCRIPTIONS,
    VIEWS,
    day_number,
    snapshot_customers,
    snapshot_days,
    snapshot_path,
    snapshot_timestamp,
    stored_features,
)

log = logging.getLogger(__name__)


def _typechecked_off(target: Any = None, **_options: Any) -> Any:
    """typeguard's ``@typechecked`` as Python's ``-O`` makes it: the target, unchanged."""
    return target if target is not None else _typechecked_off


def _import_feast_without_typeguard() -> None:
    """Make importing Feast cost 1 s instead of 7 s, in every process that opens the store.

    Feast decorates its classes with typeguard's ``@typechecked``, which re-parses
    and recompiles Feast's own source at import: about 6 s of every Airflow task
    that touches Feast, and of ``clm customer``. Python's switch for that is ``-O``,
    which would also strip every library's asserts; this applies it to typeguard
    alone (Feast is its only user here), before Feast is first imported.
    """
    if "feast" in sys.modules:
        return
    import typeguard

    typeguard.typechecked = _typechecked_off


_import_feast_without_typeguard()
# The on-demand view ``time_relative`` is small and row-wise; Feast warns on every use.
warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")


def _repo_digest(repo: Path, yaml_name: str) -> str:
    digest = hashlib.sha256()
    for path in sorted([*repo.glob("*.py"), repo / yaml_name]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def get_store(settings: Settings) -> Any:
    """The FeatureStore of ``feature_repo/`` with the configured yaml variant."""
    settings.export_env()
    from feast import FeatureStore

    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(
        repo_path=str(settings.feast_repo),
        fs_yaml_file=settings.feast_repo / settings.feast_yaml,
    )


def apply_repo(settings: Settings, force: bool = False) -> bool:
    """``feast apply`` the repo when its definitions changed since the last apply.

    Returns:
        True if Feast applied, False if the registry was already current.
    """
    settings.export_env()
    from feast.repo_config import load_repo_config
    from feast.repo_operations import apply_total

    repo = settings.feast_repo
    stamp = settings.feast_dir / f"applied-{Path(settings.feast_yaml).stem}.sha256"
    digest = _repo_digest(repo, settings.feast_yaml) + str(settings.features_dir)
    if not force and stamp.exists() and stamp.read_text() == digest:
        log.info("feast registry is current (%s)", digest[:12])
        return False
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    # Feast imports the repo's modules by their bare names, as the CLI does.
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    # Sources read CLM_FEATURES_DIR at import: drop cached repo modules so a
    # process that switches CLM_HOME applies the paths of the current one.
    for name, module in list(sys.modules.items()):
        module_file = getattr(module, "__file__", None)
        if module_file and Path(module_file).resolve().parent == repo.resolve():
            del sys.modules[name]
    config = load_repo_config(repo, repo / settings.feast_yaml)
    _forget_other_homes_infra(settings)
    apply_total(config, repo, skip_source_validation=False)
    definitions = digest[:64]  # the repo and yaml; the rest is where the home lives
    if not stamp.exists() or stamp.read_text()[:64] != definitions:
        forget_online_state(settings)  # the views may have changed: the next write is full
    stamp.write_text(digest)
    log.info("feast apply of %s done", repo)
    return True


def _forget_other_homes_infra(settings: Settings) -> None:
    """Drop infrastructure records that point outside this home before ``feast apply``.

    Feast's registry records the online store tables it created, with their
    file path. A copy of a home (a backup, a staging copy) carries the
    original's records, and ``feast apply`` tears down what it no longer
    declares: it would drop the original home's online tables. Forgetting
    those records makes apply create this home's tables and touch no other.
    """
    from feast.infra.infra_object import Infra

    store = get_store(settings)
    try:
        infra = store.registry.get_infra(store.project, allow_cache=False)
    except Exception:  # no registry yet: nothing recorded
        return
    home = settings.home.resolve()
    foreign = [
        obj
        for obj in infra.infra_objects
        if getattr(obj, "path", None) and not Path(obj.path).resolve().is_relative_to(home)
    ]
    if foreign:
        log.warning(
            "the Feast registry records %d online table(s) of another home (%s); "
            "forgetting them, not dropping them",
            len(foreign),
            foreign[0].path,
        )
        store.registry.update_infra(Infra(), store.project, commit=True)


def _state_path(settings: Settings) -> Path:
    """What the online store of this home's feature_store yaml holds (one file per yaml)."""
    return settings.feast_dir / f"online-{Path(settings.feast_yaml).stem}.json"


def _snapshot_digest(settings: Settings, ds: date) -> str:
    files = [
        f
        for view in VIEWS
        for f in sorted(snapshot_path(settings.features_dir, view, ds).glob("*"))
    ]
    return content_hash(files) if files else ""


def online_day(settings: Settings) -> date | None:
    """The day whose snapshot the online store holds (None before the first materialization)."""
    path = _state_path(settings)
    if not path.exists():
        return None
    return date.fromisoformat(json.loads(path.read_text())["ds"])


def _online_base(settings: Settings) -> date | None:
    """The day the online store holds, if its snapshot is still the one written then."""
    path = _state_path(settings)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    day = date.fromisoformat(state["ds"])
    return day if state.get("digest") == _snapshot_digest(settings, day) else None


def _record_online(settings: Settings, ds: date) -> None:
    path = _state_path(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"ds": ds.isoformat(), "digest": _snapshot_digest(settings, ds)}))
    tmp.replace(path)


def forget_online_state(settings: Settings) -> None:
    """Make the next materialization a full one (after ``feast apply`` changed the views)."""
    _state_path(settings).unlink(missing_ok=True)


def changed_rows(settings: Settings, view: str, base: date, ds: date) -> pd.DataFrame | None:
    """Rows of ``view`` as of ``ds`` whose stored values differ from ``base``'s, or are new.

    Returns None when a customer of ``base`` is missing on ``ds`` (a corrected
    landing removed them): only a full materialization is right then.
    """
    import duckdb

    stored = list(stored_features(view))
    new = str(snapshot_path(settings.features_dir, view, ds) / "*.parquet")
    old = str(snapshot_path(settings.features_dir, view, base) / "*.parquet")
    differs = " OR ".join(f'n."{c}" IS DISTINCT FROM o."{c}"' for c in stored)
    columns = ", ".join(f'n."{c}"' for c in stored)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        gone = con.execute(
            "SELECT COUNT(*) FROM read_parquet($old) o ANTI JOIN read_parquet($new) n "
            "USING (customer_id)",
            {"old": old, "new": new},
        ).fetchone()
        if gone and gone[0]:
            return None
        return con.execute(
            f"SELECT n.customer_id, n.event_timestamp, n.created_timestamp, {columns} "
            "FROM read_parquet($new) n LEFT JOIN read_parquet($old) o USING (customer_id) "
            f"WHERE o.customer_id IS NULL OR {differs} ORDER BY n.customer_id",
            {"old": old, "new": new},
        ).df()
    finally:
        con.close()


def materialize_range(settings: Settings, first: date, last: date) -> dict[str, int]:
    """Bring the online store to the snapshot of ``last`` (or of a newer day, if one exists).

    The online store serves each customer's values as of the newest snapshot:
    when newer snapshots exist the interval is extended to the newest, so
    re-running or backfilling past days never rolls it back.

    When the online store holds an earlier day's snapshot, unchanged since,
    only the customers whose stored values changed are written (Feast's
    ``write_to_online_store``). Ages (recency, tenure, days since the last
    visit) are derived at read time by the on-demand view ``time_relative``,
    so a customer who did nothing keeps the same stored row. Otherwise (the
    first day, a snapshot rewritten since, a customer gone) Feast materializes
    ``[first, last]`` in full. The interval is explicit, never Feast's
    incremental watermark: a ``feast apply`` that resets the watermark (Feast
    issue 2905) cannot make a run skip or repeat days. Either way the online
    values equal a full materialization of the newest snapshot.

    Returns:
        Rows written per feature view.
    """
    days = snapshot_days(settings.features_dir)
    if last not in days:
        raise BatchError(f"no feature snapshot for ds={last}: run clm_features for that day first")
    newest = max(days, default=last)
    if newest > last:
        log.info("snapshots up to %s exist: materializing through %s, not %s", newest, newest, last)
        last = newest
    store = get_store(settings)
    base = _online_base(settings)
    counts: dict[str, int] = {}
    if base is not None and base <= last:
        deltas = {view: changed_rows(settings, view, base, last) for view in VIEWS}
        if all(delta is not None for delta in deltas.values()):
            for view, delta in deltas.items():
                assert delta is not None
                counts[view] = len(delta)
                if len(delta):
                    store.write_to_online_store(view, delta)
            _record_online(settings, last)
            log.info("online store %s -> %s: wrote the changed rows %s", base, last, counts)
            return counts
        log.info("a customer of %s is gone on %s: materializing in full", base, last)
    start = snapshot_timestamp(first)
    # The last instant of ``last``: Feast's file (dask) offline store includes
    # end_date, other stores exclude it; this bound is right under both.
    end = snapshot_timestamp(last) + timedelta(days=1) - timedelta(microseconds=1)
    store.materialize(start_date=start, end_date=end)
    for view in store.list_feature_views():
        counts[view.name] = 0
        day = first
        while day <= last:
            counts[view.name] += snapshot_customers(settings.features_dir, view.name, day)
            day += timedelta(days=1)
    _record_online(settings, last)
    log.info("materialized %s into the online store for [%s, %s]", counts, start, end)
    return counts


def materialize_day(settings: Settings, ds: date) -> dict[str, int]:
    """Materialize the ds snapshot of every view into the online store (the day ds)."""
    return materialize_range(settings, ds, ds)


def historical_features(
    settings: Settings,
    entity_df: pd.DataFrame,
    feature_service: str,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """Point-in-time join of ``(customer_id, event_timestamp)`` rows with a feature service.

    Each row's request data is of its own day: the day number, the BG/NBD and
    Gamma-Gamma parameters fit as of that day (fit now where missing), with the
    expectations over ``horizon_days`` (default: the configured horizon), and the
    channels' conversion records as of that day.
    """
    store = get_store(settings)
    service = store.get_feature_service(feature_service)
    stamps = pd.to_datetime(entity_df["event_timestamp"], utc=True)
    as_of = (stamps.dt.floor("D") - pd.Timestamp(EPOCH, tz="UTC")).dt.days.astype("float64")
    horizon = horizon_days or settings.horizon_days
    days = stamps.dt.tz_localize(None)
    request = pd.concat(
        [
            btyd.request_columns(settings.features_dir, days, horizon, settings.seed),
            acquisition.request_columns(settings.validated_dir, days, horizon),
        ],
        axis=1,
    )
    job = store.get_historical_features(
        entity_df=pd.concat([entity_df.assign(**{AS_OF: as_of}), request], axis=1),
        features=service,
    )
    return job.to_df().drop(columns=[AS_OF, *request.columns])


def feature_names(settings: Settings, feature_service: str) -> list[str]:
    """Feature names of a service, in the service's order."""
    store = get_store(settings)
    service = store.get_feature_service(feature_service)
    names = {f.name for proj in service.feature_view_projections for f in proj.features}
    # The order models were trained in: the catalogue's, whatever the views' order.
    return [n for n in FEATURE_DESCRIPTIONS if n in names] + sorted(
        names - set(FEATURE_DESCRIPTIONS)
    )


def online_features(
    settings: Settings,
    customer_id: str,
    feature_service: str,
    store: Any = None,
    as_of: date | None = None,
) -> dict[str, Any]:
    """Online lookup of one customer's features as of ``as_of`` (default: the day online).

    Pass ``store`` to reuse an open one.
    """
    store = store or get_store(settings)
    day = as_of or online_day(settings)
    if day is None:
        raise BatchError("nothing is materialized yet: run clm_features for a day first")
    service = store.get_feature_service(feature_service)
    request = {
        **btyd.params_at(settings.features_dir, day, settings.seed),
        btyd.HORIZON: float(settings.horizon_days),
        acquisition.RATES: acquisition.channel_rates(
            settings.validated_dir, [day], settings.horizon_days
        )[day],
    }
    response = store.get_online_features(
        features=service,
        entity_rows=[{"customer_id": customer_id, AS_OF: day_number(day), **request}],
    )
    values = response.to_dict()
    for name in (AS_OF, *request):
        values.pop(name, None)
    return {k: v[0] for k, v in values.items()}
