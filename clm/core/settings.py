"""One typed home for every setting (environment prefix ``CLM_``).

Settings are built when a task runs (``get_settings()``), never at import, so an
Airflow worker, a test with ``tmp_path`` and the CLI each see their own
environment. Connection URLs switch a component from embedded to production.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LANDING_TABLES = ("customers", "orders", "events")


class Settings(BaseSettings):
    """Pipeline settings. Every field reads ``CLM_<NAME>`` from the environment or ``.env``."""

    model_config = SettingsConfigDict(env_prefix="CLM_", env_file=".env", extra="ignore")

    home: Path = Field(
        default=PROJECT_ROOT / ".clm", description="Folder holding all pipeline state."
    )
    seed: int = Field(default=42, description="Seed for simulation, splits and models.")
    horizon_days: int = Field(default=90, ge=7, description="Label horizon H in days.")
    train_cutoffs: int = Field(
        default=20,
        ge=1,
        description="Training cutoffs, CLM_CUTOFF_SPACING_DAYS apart, the latest the last "
        "whose label window closes by the test cutoff (those before the data begin are "
        "left out). Many time slices stacked beat one, and not only through more rows.",
    )
    cutoff_spacing_days: int = Field(default=7, ge=1, description="Days between cutoffs.")
    max_training_rows: int = Field(
        default=800_000,
        ge=0,
        description="Rows (customer x cutoff, every role) a training run learns and is tested "
        "on; a bigger set keeps that many rows drawn at random with the seed (0: all). "
        "Bounds training time and memory; benchmarks/training_size.py measures the learning "
        "curve behind the default.",
    )
    model_families: list[str] = Field(default=["xgboost", "lightgbm"])
    tuning_trials: int = Field(
        default=0, ge=0, description="Optuna trials per family (0: defaults)."
    )
    train_baselines: bool = Field(
        default=True,
        description="Fit the baselines beside the models in every training run (child runs).",
    )
    promotion_margin: float = Field(
        default=0.002, ge=0, description="Primary-metric gain a challenger needs over the champion."
    )
    churn_auc_floor: float = Field(default=0.6, description="Minimum ROC AUC to be promoted.")
    clv_gini_floor: float = Field(
        default=0.2, description="Minimum normalised Gini to be promoted."
    )
    conversion_auc_floor: float = Field(
        default=0.6,
        description="Minimum ROC AUC for a first-order model to be promoted (clm-conversion).",
    )
    reco_ndcg_floor: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Minimum NDCG at 3 for a recommender to be promoted (clm-reco).",
    )
    ingest_chunk_mb: float = Field(
        default=32,
        gt=0,
        description="Landing megabytes (decompressed) validated per GX run when ingest "
        "catches up many days; bounds memory.",
    )
    training_weekday: int = Field(
        default=6, ge=0, le=6, description="Weekday (Mon=0) on which `clm run` trains."
    )

    landing_grace_days: int = Field(
        default=3,
        ge=0,
        description="A run whose ds is at most this many days past the newest landed day "
        "waits for its data; further out (a historical shop) it fails at once.",
    )
    landing_timeout_minutes: float = Field(
        default=360, gt=0, description="How long a run waits for its day's data to land."
    )
    quiet_days: Literal["auto", "accept", "refuse"] = Field(
        default="auto",
        description="A day with no orders: 'refuse' it (a broken export), 'accept' it "
        "(flagged as a quiet day), or 'auto': refuse it only when the 7 days before averaged "
        "at least quiet_day_orders orders, so that an empty day is next to impossible by chance.",
    )
    quiet_day_orders: float = Field(
        default=14.0,
        gt=0,
        description="Under quiet_days=auto, the trailing mean of daily orders from which an "
        "empty day is refused (Poisson: P(no order) = exp(-14) < 1e-6).",
    )
    lock_wait_minutes: float = Field(
        default=60,
        ge=0,
        description="How long a task waits for the CLM_HOME lock (held by `clm run` or "
        "another task) before it fails and retries.",
    )

    # repr=False: these URLs may carry credentials; a printed Settings never shows them.
    warehouse_url: str = Field(
        default="", repr=False, description="duckdb:///path (default) or postgresql://"
    )
    mlflow_tracking_uri: str = Field(
        default="", repr=False, description="Default: sqlite under home."
    )
    mlflow_ui_url: str = Field(
        default="",
        description="Where users open the MLflow UI; the report and the Airflow page link "
        "there. Default: where `clm ui mlflow` last served it, else http://localhost:5000.",
    )
    feast_repo: Path = Field(default=PROJECT_ROOT / "feature_repo")
    feast_yaml: str = Field(
        default="feature_store.yaml", description="feature_store.yaml variant inside the repo."
    )
    expectations_dir: Path = Field(default=PROJECT_ROOT / "expectations")
    segments_config: Path = Field(default=PROJECT_ROOT / "clm" / "config" / "segments.yaml")

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    # Folders under home -------------------------------------------------------------
    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def validated_dir(self) -> Path:
        return self.home / "validated"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def features_dir(self) -> Path:
        return self.home / "features"

    @property
    def truth_dir(self) -> Path:
        return self.home / "truth"

    @property
    def gx_dir(self) -> Path:
        return self.home / "gx"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def warehouse(self) -> str:
        return self.warehouse_url or f"duckdb:///{self.home / 'warehouse' / 'clm.duckdb'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_ui_file(self) -> Path:
        """Where ``clm ui mlflow`` records the URL it serves."""
        return self.home / "mlflow" / "ui_url"

    @property
    def mlflow_ui(self) -> str:
        """The MLflow UI's base URL, without a trailing slash."""
        if self.mlflow_ui_url:
            return self.mlflow_ui_url.rstrip("/")
        try:
            served = self.mlflow_ui_file.read_text().strip()
        except OSError:
            served = ""
        return served.rstrip("/") or "http://localhost:5000"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    def home_env(self) -> dict[str, str]:
        """The paths of this home that Feast's yaml and sources read from the environment."""
        return {
            "CLM_HOME": str(self.home),
            "CLM_FEAST_DIR": str(self.feast_dir),
            "CLM_FEATURES_DIR": str(self.features_dir),
        }

    def export_env(self) -> None:
        """Export the environment that Feast's yaml and Airflow read.

        ``feature_store.yaml`` expands ``${CLM_FEAST_DIR}``; Airflow reads
        ``AIRFLOW_HOME`` and friends. The paths under the home always follow
        this home (a value left by another home would make two homes share a
        store); for Airflow, existing values win, so production overrides survive.
        """
        os.environ.update(self.home_env())
        airflow_env = {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.airflow_home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }
        for key, value in airflow_env.items():
            os.environ.setdefault(key, value)


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment now (not at import time)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def parse_ds(value: str | date) -> date:
    """Parse a ``YYYY-MM-DD`` partition date.

    Raises:
        ValueError: if ``value`` is not an ISO date.
    """
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"ds must be an ISO date YYYY-MM-DD, got {value!r}") from exc
