"""The MLflow model registry: its one owner.

Everything that touches the registry goes through here: where MLflow points
(:func:`setup_mlflow`), the names and the ``champion`` alias, looking up and
loading a champion with its schema checked against the feature service
(:func:`load_champions`) or a fitted state (:func:`load_state_champion`), and
moving the alias back (:func:`rollback`).
Promotion decisions live in :mod:`clm.ml.promotion`; scoring, the CLI, the
report and the runner read the registry only through this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from clm.core.settings import Settings

log = logging.getLogger(__name__)

ALIAS = "champion"

REGISTERED = {
    "churn": "clm-churn",
    "clv": "clm-clv",
    "conversion": "clm-conversion",
    "reco": "clm-reco",
    "clusters": "clm-clusters",
}

# The feature service of each task scored from the snapshot. The recommender reads
# purchase histories instead, and a day is scored without one (no categories yet).
SERVICES = {"churn": "churn_v1", "clv": "clv_v1", "conversion": "conversion_v1"}
# What a day cannot be scored without. A shop without prospects (an imported
# transaction log: every customer arrives with an order) never trains a
# conversion model, and its days are scored all the same.
REQUIRED = ("churn", "clv")

DONE, PENDING = "done", "pending"

EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


class ChampionSchemaError(ValueError):
    """The champion's inputs differ from the feature service: scoring with it is refused."""


@dataclass
class Champion:
    """The model version behind ``@champion``, loaded."""

    task: str
    name: str
    version: str
    trained: Any
    features: list[str]


def setup_mlflow(settings: Settings, experiments: list[str] | None = None) -> None:
    """Point MLflow at the configured tracking server and make the experiments exist."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    (settings.home / "mlflow").mkdir(parents=True, exist_ok=True)
    client = mlflow.MlflowClient()
    for name in experiments or list(REGISTERED.values()):
        if client.get_experiment_by_name(name) is None:
            location = None
            if settings.tracking_uri.startswith("sqlite:"):
                location = (settings.mlflow_artifacts / name).as_uri()
            client.create_experiment(name, artifact_location=location)
        # Without it, MLflow 3 may open the experiment on its GenAI (traces) view.
        experiment = client.get_experiment_by_name(name)
        if experiment is not None and experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(
                experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
            )


def current_champion(client: Any, name: str) -> Any | None:
    """The model version behind ``@champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None


def champion_exists(settings: Settings) -> bool:
    """True when the models scoring needs (churn and clv) have a ``champion`` alias."""
    import mlflow

    setup_mlflow(settings)
    client = mlflow.MlflowClient()
    return all(current_champion(client, REGISTERED[task]) is not None for task in REQUIRED)


def training_needed(settings: Settings, expected: dict[str, list[str]] | None = None) -> str | None:
    """Why the champions cannot score today's features, so training must come first
    (None: they can). Either a required model has no champion yet, or a champion was
    trained on other features than its feature service has now (a feature was added
    or removed since): scoring would refuse it, so the day waits for a training run.

    ``expected``: each task's feature names (default: the Feast feature services).
    """
    import mlflow

    from clm.data import feature_store

    setup_mlflow(settings)
    client = mlflow.MlflowClient()
    for task, service in SERVICES.items():
        name = REGISTERED[task]
        current = current_champion(client, name)
        if current is None:
            if task in REQUIRED:
                return f"{name} has no champion yet"
            continue
        names = (
            expected[task]
            if expected is not None and task in expected
            else feature_store.feature_names(settings, service)
        )
        problem = schema_problem(model_features(f"models:/{name}/{current.version}"), names)
        if problem:
            return f"{name}@{ALIAS} (v{current.version}) cannot score today's features: {problem}"
    return None


def schema_problem(features: list[str], expected: list[str]) -> str | None:
    """Why a model's input columns differ from the feature service's (None if they match)."""
    if list(features) == list(expected):
        return None
    missing = sorted(set(expected) - set(features))
    extra = sorted(set(features) - set(expected))
    if missing or extra:
        return (
            f"its features differ from the feature service's "
            f"(missing {missing or 'none'}, unknown {extra or 'none'})"
        )
    return "its features are in another order than the feature service's"


def model_features(uri: str) -> list[str]:
    """Input column names from the logged signature."""
    import mlflow

    signature = mlflow.models.get_model_info(uri).signature
    return [] if signature is None else list(signature.inputs.input_names())


def load_version(uri: str) -> Any:
    """Load a registered model with its native flavor and its calibration.

    Returns:
        A :class:`clm.ml.models.Trained`.

    Raises:
        ValueError: if the model has neither an xgboost nor a lightgbm flavor.
    """
    import mlflow

    from clm.ml.models import Trained, load_calibration

    info = mlflow.models.get_model_info(uri)
    metadata = info.metadata or {}
    task = metadata.get("task", "churn" if "clm-churn" in uri else "clv")
    calibration = load_calibration(metadata.get("calibration"))
    reference = metadata.get("reference")
    if "xgboost" in info.flavors:
        return Trained(mlflow.xgboost.load_model(uri), "xgboost", task, calibration, reference)
    if "lightgbm" in info.flavors:
        return Trained(mlflow.lightgbm.load_model(uri), "lightgbm", task, calibration, reference)
    raise ValueError(f"{uri}: no xgboost or lightgbm flavor in {sorted(info.flavors)}")


def load_champions(settings: Settings) -> dict[str, Champion]:
    """Load the version behind each ``@champion``, by number: the alias may move mid-run.

    Raises:
        RuntimeError: if churn or clv has no champion yet (conversion is left out
            when it has none: a shop without prospects never trains one).
    """
    from mlflow import MlflowClient

    from clm.data import feature_store

    setup_mlflow(settings)
    client = MlflowClient()
    out = {}
    for task, service in SERVICES.items():
        name = REGISTERED[task]
        current = current_champion(client, name)
        if current is None and task not in REQUIRED:
            continue
        if current is None:
            raise RuntimeError(
                f"no models:/{name}@{ALIAS}: train a model first (trigger clm_train or `clm run`)"
            )
        version = str(current.version)
        uri = f"models:/{name}/{version}"
        features = model_features(uri)
        problem = schema_problem(features, feature_store.feature_names(settings, service))
        if problem:
            raise ChampionSchemaError(
                f"{name}@{ALIAS} (v{version}): {problem}; nothing scored. Roll the alias to a "
                "version trained on this feature service (`clm models rollback`) or retrain"
            )
        out[task] = Champion(task, name, version, load_version(uri), features)
    return out


@dataclass
class StateChampion:
    """A champion whose model is a fitted state, loaded: the recommender
    (:class:`clm.ml.reco.Recommender`) or the behavioural clusters
    (:class:`clm.ml.clusters.Clusters`)."""

    name: str
    version: str
    model: Any


def load_state_champion(settings: Settings, task: str) -> StateChampion | None:
    """The ``reco`` or ``clusters`` model behind ``@champion`` (pinned by number), or None
    when there is none yet (a shop with too few categories has no recommender).

    Raises:
        KeyError: for another task.
    """
    from mlflow import MlflowClient

    from clm.ml.cluster_model import load_clusters
    from clm.ml.reco_model import load_recommender

    load = {"reco": load_recommender, "clusters": load_clusters}[task]
    setup_mlflow(settings)
    name = REGISTERED[task]
    current = current_champion(MlflowClient(), name)
    if current is None:
        return None
    version = str(current.version)
    return StateChampion(name, version, load(f"models:/{name}/{version}"))


def _unfinished(version: Any) -> bool:
    tags = version.tags or {}
    return "decision" not in tags or tags.get("state") == PENDING


def retire_unfinished(client: Any, name: str, by: str) -> list[str]:
    """Retire the versions a crashed run registered but never finished deciding.

    Such a version has no decision tag, or ``state=pending``: the run died
    between registering it and recording the outcome. It is tagged
    ``decision=retired`` with the reason; if the alias already points at it
    (the crash came after the move), it stays champion and is only marked done.

    Returns:
        The versions retired.
    """
    champion = current_champion(client, name)
    retired = []
    for version in client.search_model_versions(f"name = '{name}'"):
        if not _unfinished(version):
            continue
        number = str(version.version)
        if champion is not None and str(champion.version) == number:
            client.set_model_version_tag(name, number, "state", DONE)
            continue
        client.set_model_version_tag(name, number, "decision", "retired")
        client.set_model_version_tag(
            name,
            number,
            "reasons",
            f"the run that registered it stopped before deciding; retired by {by}",
        )
        client.set_model_version_tag(name, number, "state", DONE)
        log.warning("%s v%s: unfinished promotion, retired by %s", name, number, by)
        retired.append(number)
    return retired


def champions(settings: Settings) -> dict[str, str | None]:
    """The version behind ``@champion`` of each registered model, or None."""
    from mlflow import MlflowClient

    setup_mlflow(settings)
    client = MlflowClient()
    found = {name: current_champion(client, name) for name in REGISTERED.values()}
    return {name: None if v is None else str(v.version) for name, v in found.items()}


def rollback_champion(
    settings: Settings, name: str, version: str, override_reason: str = ""
) -> None:
    """:func:`rollback` of a registered model, checked against its task's feature service.

    Raises:
        KeyError: if ``name`` is not one of :data:`REGISTERED`.
        mlflow.exceptions.MlflowException: if the version does not exist.
        ValueError: the schema differs, or an override is needed and missing.
    """
    from clm.data import feature_store

    task = {registered: t for t, registered in REGISTERED.items()}[name]
    setup_mlflow(settings)
    expected = feature_store.feature_names(settings, SERVICES[task]) if task in SERVICES else None
    rollback(name, version, expected, override_reason)


def rollback(
    name: str, version: str, expected: list[str] | None, override_reason: str = ""
) -> None:
    """Point ``@champion`` at another version.

    The version's inputs must match the feature service (``expected``), with
    no exception; a recommender (``expected`` None) must be one. A version
    that was never promoted (kept out, retired, or unfinished) moves only
    with ``override_reason``, which is recorded on it.

    Raises:
        mlflow.exceptions.MlflowException: if the version does not exist.
        ValueError: the schema differs, or an override is needed and missing.
    """
    from datetime import UTC, datetime

    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    target = client.get_model_version(name, version)
    uri = f"models:/{name}/{version}"
    if expected is None:
        metadata = mlflow.models.get_model_info(uri).metadata or {}
        task = {"clm-reco": "reco", "clm-clusters": "clusters"}.get(name)
        problem = None if metadata.get("task") == task else f"it is not a {task} model"
    else:
        problem = schema_problem(model_features(uri), expected)
    if problem:
        raise ValueError(f"{name} v{version}: {problem}; scoring cannot use it")
    tags = target.tags or {}
    promoted = tags.get("decision") == "promote" and not _unfinished(target)
    if not promoted and not override_reason.strip():
        raise ValueError(
            f"{name} v{version} was never promoted (decision: {tags.get('decision', 'none')}); "
            "to make it champion anyway, give the reason with --override-reason"
        )
    previous = current_champion(client, name)
    client.set_registered_model_alias(name, ALIAS, version)
    record = {
        "rolled_back_to": "true",
        "rolled_back_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rolled_back_from": "none" if previous is None else str(previous.version),
    }
    if override_reason.strip():
        record["override_reason"] = override_reason.strip()
    for key, value in record.items():
        client.set_model_version_tag(name, version, key, value)
    log.info("%s@%s -> v%s (%s)", name, ALIAS, version, override_reason or "rollback")
