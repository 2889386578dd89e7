"""Airflow Assets that chain the four DAGs (the Asset graph in the UI)."""

from airflow.sdk import Asset

VALIDATED = Asset(name="clm_validated", uri="clm://validated", group="clm")
FEATURES = Asset(name="clm_features", uri="clm://features", group="clm")
CHAMPION = Asset(name="clm_champion", uri="clm://champion", group="clm")
SEGMENTS = Asset(name="clm_segments", uri="clm://segments", group="clm")
# Emitted by clm_score only when drift crosses a threshold; clm_train runs on it.
DRIFT = Asset(name="clm_drift", uri="clm://drift", group="clm")
