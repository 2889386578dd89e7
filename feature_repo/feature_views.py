"""Feature views, grouped by source. Names and descriptions come from clm.data.features.

The views store what changes only when a customer does something; the ages that
grow every day (recency, tenure, days since the last visit) are stored as anchor
days, and the on-demand view ``time_relative`` derives them at read time.
"""

from datetime import timedelta

import pandas as pd
from data_sources import (
    engagement_features_source,
    order_features_source,
    profile_features_source,
)
from entities import customer
from feast import FeatureView, Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, String

from clm.data.acquisition import RATES
from clm.data.btyd import REQUEST_FIELDS
from clm.data.features import (
    ACQUISITION_FEATURES,
    AS_OF,
    BTYD_FEATURES,
    ENGAGEMENT_VIEW,
    ORDER_VIEW,
    PROFILE_VIEW,
    SCALE_FREE,
    TIME_RELATIVE,
    stored_features,
)

# A snapshot is valid for its day only: a row never borrows an older snapshot.
SNAPSHOT_TTL = timedelta(days=1)


TEXT = {"acquisition_channel"}  # every other stored column is a number


def _schema(view: str) -> list[Field]:
    return [
        Field(name=n, dtype=String if n in TEXT else Float64, description=d)
        for n, d in stored_features(view).items()
    ]


order_features = FeatureView(
    name=ORDER_VIEW,
    entities=[customer],
    ttl=SNAPSHOT_TTL,
    schema=_schema(ORDER_VIEW),
    source=order_features_source,
    online=True,
    description="RFM over 30/90/365 days and lifetime, first and last order day, inter-purchase "
    "time, trend, category breadth, discount share, cancellation and return rates.",
    owner="data-team@example.com",
    tags={"source": "orders", "team": "clm"},
)

engagement_features = FeatureView(
    name=ENGAGEMENT_VIEW,
    entities=[customer],
    ttl=SNAPSHOT_TTL,
    schema=_schema(ENGAGEMENT_VIEW),
    source=engagement_features_source,
    online=True,
    description="Engagement from events: visits, last visit day, views, add-to-cart, tickets "
    "and ratings.",
    owner="data-team@example.com",
    tags={"source": "events", "team": "clm"},
)

profile_features = FeatureView(
    name=PROFILE_VIEW,
    entities=[customer],
    ttl=SNAPSHOT_TTL,
    schema=_schema(PROFILE_VIEW),
    source=profile_features_source,
    online=True,
    description="The signup record of every customer signed up by ds, buyers and prospects: "
    "signup day and acquisition channel.",
    owner="data-team@example.com",
    tags={"source": "customers", "team": "clm"},
)

# The day a lookup or a training row asks about, as a day number (days since 1970-01-01).
as_of = RequestSource(
    name="as_of",
    schema=[Field(name=AS_OF, dtype=Float64, description="The day asked about, as a day number.")],
    description="The day the features are as of: a training row's cutoff, or the day looked up.",
)


@on_demand_feature_view(
    sources=[order_features, engagement_features, as_of],
    # No descriptions on these fields: Feast compares them with fields it infers,
    # descriptions included (FEATURE_DESCRIPTIONS has them).
    schema=[Field(name=n, dtype=Float64) for n in [*TIME_RELATIVE, *SCALE_FREE]],
    mode="pandas",
    description="Recency, tenure and days since the last visit, from their anchor days at read "
    "time, and the scale-free rates and ratios that divide by them: a day's materialization "
    "writes only the customers whose stored values changed.",
    owner="data-team@example.com",
    tags={"team": "clm"},
)
def time_relative(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function serialized, without this module's names: import here.
    from clm.data.features import time_relative_features

    return time_relative_features(inputs)


# The BG/NBD and Gamma-Gamma parameters fit as of the day asked about, and the horizon.
btyd_params = RequestSource(
    name="btyd_params",
    schema=[Field(name=n, dtype=Float64) for n in REQUEST_FIELDS],
    description="BG/NBD and Gamma-Gamma population parameters fit on the history up to the "
    "day asked about (a training row's cutoff), and the label horizon in days.",
)


@on_demand_feature_view(
    sources=[order_features, as_of, btyd_params],
    schema=[Field(name=n, dtype=Float64) for n in BTYD_FEATURES],
    mode="pandas",
    description="BG/NBD P(alive) and expected purchase days, Gamma-Gamma spend per day, and "
    "their product, in closed form from the order view and the day's parameters: they change "
    "every day for everyone, so they are derived at read time, never stored.",
    owner="data-team@example.com",
    tags={"team": "clm"},
)
def btyd_expectations(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function serialized, without this module's names: import here.
    from clm.data.btyd import on_demand

    return on_demand(inputs)


# Each channel's conversion record as of the day asked about (clm.data.acquisition).
channel_record = RequestSource(
    name="channel_record",
    schema=[Field(name=RATES, dtype=String)],
    description="Each acquisition channel's conversion record as of the day asked about, "
    "from the signups whose H-day window closed by then: a JSON object channel -> rate.",
)


@on_demand_feature_view(
    sources=[profile_features, as_of, channel_record],
    schema=[Field(name=n, dtype=Float64) for n in ACQUISITION_FEATURES],
    mode="pandas",
    description="Days since the signup, and the customer's channel's conversion record as of "
    "the day asked about: both change every day, so they are derived at read time.",
    owner="data-team@example.com",
    tags={"team": "clm"},
)
def acquisition(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores this function serialized, without this module's names: import here.
    from clm.data.acquisition import on_demand

    return on_demand(inputs)
