"""Airflow Assets that chain the four DAGs (the Asset graph in the UI).

Every event carries ``ds`` in its extra; events that concern several days
carry them all in ``days``.
"""

from airflow.sdk import Asset

VALIDATED = Asset(name="clm_validated", uri="clm://validated", group="clm")
FEATURES = Asset(name="clm_features", uri="clm://features", group="clm")
# Emitted by clm_features instead of FEATURES when training is due first.
TRAINING = Asset(name="clm_training_due", uri="clm://training-due", group="clm")
CHAMPION = Asset(name="clm_champion", uri="clm://champion", group="clm")
SEGMENTS = Asset(name="clm_segments", uri="clm://segments", group="clm")
# Emitted by clm_score only when drift crosses a threshold; clm_train runs on it.
DRIFT = Asset(name="clm_drift", uri="clm://drift", group="clm")
