"""Feature services: exactly what each model reads."""

from feast import FeatureService
from feature_views import engagement_features, order_features

churn_v1 = FeatureService(
    name="churn_v1",
    features=[order_features, engagement_features],
    description="Features of the churn model (clm-churn).",
    owner="data-team@example.com",
    tags={"model": "clm-churn"},
)

clv_v1 = FeatureService(
    name="clv_v1",
    features=[order_features, engagement_features],
    description="Features of the future-spend model (clm-clv).",
    owner="data-team@example.com",
    tags={"model": "clm-clv"},
)
