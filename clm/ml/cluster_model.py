"""The behavioural clusters as an MLflow model: registered model ``clm-clusters``.

A pyfunc model whose artifact is a fitted :class:`clm.ml.clusters.Clusters`
(plain arrays and JSON). Its input is one row per customer with the behaviour
features, its output the cluster's name.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from clm.ml.clusters import Clusters

ARTIFACT = "clusters"
SERVING_PACKAGES = ("mlflow", "numpy", "pandas")


class ClusterModel(PythonModel):  # type: ignore[misc]
    """Names the behavioural cluster of each customer (nearest centroid)."""

    def load_context(self, context: Any) -> None:
        self.clusters = Clusters.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        return pd.Series(
            self.clusters.label(model_input), index=model_input.index, name="behaviour_cluster"
        )


def log_clusters(clusters: Clusters, example: pd.DataFrame) -> str:
    """Log ``clusters`` as the model of the active run; returns its model URI."""
    from mlflow.models import infer_signature

    example = example[clusters.features].astype("float64")
    labels = pd.Series(clusters.label(example), name="behaviour_cluster")
    with tempfile.TemporaryDirectory() as tmp:
        clusters.save(Path(tmp) / ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ClusterModel(),
            artifacts={ARTIFACT: str(Path(tmp) / ARTIFACT)},
            signature=infer_signature(example, labels),
            input_example=example,
            metadata={"task": "clusters", "k": clusters.k, "names": clusters.names},
            pip_requirements=[f"{name}=={version(name)}" for name in SERVING_PACKAGES],
        )
    return str(info.model_uri)


def load_clusters(uri: str) -> Clusters:
    """The fitted clusters of a logged or registered model.

    Raises:
        ValueError: if the model is not a clustering.
    """
    info = mlflow.models.get_model_info(uri)
    if (info.metadata or {}).get("task") != "clusters":
        raise ValueError(f"{uri} is not a behavioural clustering (metadata task is not 'clusters')")
    clusters: Clusters = mlflow.pyfunc.load_model(uri).unwrap_python_model().clusters
    return clusters
