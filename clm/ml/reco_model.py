"""The recommender as an MLflow model: registered model ``clm-reco``.

A pyfunc model whose artifact is a fitted :class:`clm.ml.reco.Recommender`.
Its input is one row per customer and one column per category (completed
orders of that category), its output the score of each category (higher:
recommend first), so any MLflow consumer can serve it. Scoring unwraps the
recommender itself, which also leaves out the recently bought categories.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from scipy import sparse

from clm.ml.reco import K, Recommender

ARTIFACT = "recommender"
# What loading the model needs; pinned to the versions that trained it.
SERVING_PACKAGES = ("mlflow", "numpy", "pandas", "scipy", "implicit", "threadpoolctl")


class RecommenderModel(PythonModel):  # type: ignore[misc]
    """Scores categories for purchase histories with a fitted recommender."""

    def load_context(self, context: Any) -> None:
        self.recommender = Recommender.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        rec = self.recommender
        counts = model_input.reindex(columns=rec.categories, fill_value=0).astype("float32")
        scores = rec.scores(sparse.csr_matrix(counts.to_numpy()))
        return pd.DataFrame(scores, columns=rec.categories, index=model_input.index)


def log_recommender(rec: Recommender, example: pd.DataFrame, description: str) -> str:
    """Log ``rec`` as the model of the active run; returns its model URI."""
    from mlflow.models import infer_signature

    example = example.reindex(columns=rec.categories, fill_value=0).astype("float32")
    scores = pd.DataFrame(rec.scores(sparse.csr_matrix(example.to_numpy())), columns=rec.categories)
    with tempfile.TemporaryDirectory() as tmp:
        rec.save(Path(tmp) / ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=RecommenderModel(),
            artifacts={ARTIFACT: str(Path(tmp) / ARTIFACT)},
            signature=infer_signature(example, scores),
            input_example=example,
            metadata={
                "task": "reco",
                "kind": rec.kind,
                "k": K,
                "categories": rec.categories,
                "description": description,
            },
            pip_requirements=[f"{name}=={version(name)}" for name in SERVING_PACKAGES],
        )
    return str(info.model_uri)


def load_recommender(uri: str) -> Recommender:
    """The fitted recommender of a logged or registered model.

    Raises:
        ValueError: if the model is not a recommender.
    """
    info = mlflow.models.get_model_info(uri)
    if (info.metadata or {}).get("task") != "reco":
        raise ValueError(f"{uri} is not a recommender (metadata task is not 'reco')")
    model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    recommender: Recommender = model.recommender
    return recommender


def history_frame(counts: sparse.csr_matrix, categories: list[str], rows: int = 5) -> pd.DataFrame:
    """The first ``rows`` histories as the model's input frame (the logged input example)."""
    head = counts[: min(rows, counts.shape[0])].toarray().astype(np.float32)
    return pd.DataFrame(head, columns=categories)
