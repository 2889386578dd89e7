"""Feature views, grouped by source. Names and descriptions come from clm.data.features."""

from datetime import timedelta

from data_sources import engagement_features_source, order_features_source
from entities import customer
from feast import FeatureView, Field
from feast.types import Float64

from clm.data.features import ENGAGEMENT_FEATURES, ORDER_FEATURES

# A snapshot is valid for its day only: a row never borrows an older snapshot.
SNAPSHOT_TTL = timedelta(days=1)

order_features = FeatureView(
    name="order_features",
    entities=[customer],
    ttl=SNAPSHOT_TTL,
    schema=[Field(name=n, dtype=Float64, description=d) for n, d in ORDER_FEATURES.items()],
    source=order_features_source,
    online=True,
    description="RFM over 30/90/365 days and lifetime, tenure, inter-purchase time, trend, "
    "category breadth, discount share, cancellation and return rates.",
    owner="data-team@example.com",
    tags={"source": "orders", "team": "clm"},
)

engagement_features = FeatureView(
    name="engagement_features",
    entities=[customer],
    ttl=SNAPSHOT_TTL,
    schema=[Field(name=n, dtype=Float64, description=d) for n, d in ENGAGEMENT_FEATURES.items()],
    source=engagement_features_source,
    online=True,
    description="Engagement from events: visits, views, add-to-cart, tickets and ratings.",
    owner="data-team@example.com",
    tags={"source": "events", "team": "clm"},
)
