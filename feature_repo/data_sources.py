"""Offline sources: the date-partitioned snapshots written by clm.data.features.

The folder comes from CLM_FEATURES_DIR (set by clm from CLM_HOME), so one
environment switch moves the repo between checkouts, tests and production.
"""

import os

from feast import FileSource
from feast.data_format import ParquetFormat

_FEATURES_DIR = os.environ.get("CLM_FEATURES_DIR", os.path.join(os.getcwd(), "data"))

order_features_source = FileSource(
    name="order_features_source",
    path=os.path.join(_FEATURES_DIR, "order_features"),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Order-derived customer features, one snapshot per ds.",
    owner="data-team@example.com",
)

engagement_features_source = FileSource(
    name="engagement_features_source",
    path=os.path.join(_FEATURES_DIR, "engagement_features"),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Event-derived engagement features, one snapshot per ds.",
    owner="data-team@example.com",
)

profile_features_source = FileSource(
    name="profile_features_source",
    path=os.path.join(_FEATURES_DIR, "profile_features"),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="The signup record of every customer signed up by ds, one snapshot per ds.",
    owner="data-team@example.com",
)
