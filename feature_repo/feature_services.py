"""Feature services: exactly what each model reads.

The anchor days stay out of the services: the on-demand view reads them to
derive recency, tenure and days since the last visit, and a model never sees
an absolute date.
"""

from feast import FeatureService
from feature_views import (
    acquisition,
    btyd_expectations,
    engagement_features,
    order_features,
    time_relative,
)

from clm.data.features import ENGAGEMENT_FEATURES, ORDER_FEATURES, TIME_RELATIVE

# What a prospect has before a first order: visits, views and carts, their age, and
# their channel's record. Orders, reviews and tickets come with buying.
CONVERSION_ENGAGEMENT = [
    "visits_30d",
    "visits_90d",
    "product_views_30d",
    "add_to_cart_30d",
    "visit_trend_30_90",
]


def _model_inputs() -> list:
    """The views' features without the anchors, then the derived ages.

    Built per service, never kept at module level: Feast collects every view
    object it finds in a module, and a projection is a copy with the same name.
    """
    return [
        order_features[[n for n in ORDER_FEATURES if n not in TIME_RELATIVE]],
        engagement_features[[n for n in ENGAGEMENT_FEATURES if n not in TIME_RELATIVE]],
        time_relative,
        btyd_expectations,
    ]


churn_v1 = FeatureService(
    name="churn_v1",
    features=_model_inputs(),
    description="Features of the churn model (clm-churn).",
    owner="data-team@example.com",
    tags={"model": "clm-churn"},
)

clv_v1 = FeatureService(
    name="clv_v1",
    features=_model_inputs(),
    description="Features of the future-spend model (clm-clv).",
    owner="data-team@example.com",
    tags={"model": "clm-clv"},
)

conversion_v1 = FeatureService(
    name="conversion_v1",
    features=[
        engagement_features[CONVERSION_ENGAGEMENT],
        time_relative[["days_since_last_visit"]],
        acquisition,
    ],
    description="Features of the first-order model for prospects (clm-conversion).",
    owner="data-team@example.com",
    tags={"model": "clm-conversion"},
)
