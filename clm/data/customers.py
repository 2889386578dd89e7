"""One customer as the CLI shows them: online features from Feast, the latest segment row."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from clm.core.settings import Settings
from clm.data import feature_store, queries

FEATURE_SERVICE = "churn_v1"
# A prospect (no order yet) has no order features: theirs are the conversion model's.
PROSPECT_SERVICE = "conversion_v1"


class NoFeaturesRegistered(LookupError):
    """Feast has no feature views yet: nothing has been run on this home."""


@dataclass
class CustomerView:
    """A customer's online features and latest segment row, with the lookup's timings."""

    customer_id: str
    features: dict[str, Any]
    segment: dict[str, Any] | None
    opened_ms: float
    lookup_ms: float
    service: str = FEATURE_SERVICE

    @property
    def known(self) -> bool:
        """Whether the customer has any online value or a segment row."""
        return self.has_features or self.segment is not None

    @property
    def has_features(self) -> bool:
        """Whether any online feature value was found."""
        return any(v is not None for v in self.features.values())


def look_up(settings: Settings, customer_id: str) -> CustomerView:
    """Read a customer from the online store and the warehouse.

    Raises:
        NoFeaturesRegistered: if nothing has been registered in Feast yet.
    """
    from feast.errors import FeastObjectNotFoundException

    started = time.perf_counter()
    store = feature_store.get_store(settings)
    opened_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    service = FEATURE_SERVICE
    try:
        features = feature_store.online_features(settings, customer_id, service, store=store)
        if features.get("recency_days") is None:  # no order: a prospect, or unknown
            service = PROSPECT_SERVICE
            features = feature_store.online_features(settings, customer_id, service, store=store)
    except FeastObjectNotFoundException as exc:
        raise NoFeaturesRegistered(str(exc)) from exc
    lookup_ms = (time.perf_counter() - started) * 1000
    row = queries.customer(settings.warehouse, customer_id)
    return CustomerView(
        customer_id=customer_id,
        features={k: v for k, v in features.items() if k != "customer_id"},
        segment=None if row.empty else {str(k): v for k, v in row.iloc[0].items()},
        opened_ms=opened_ms,
        lookup_ms=lookup_ms,
        service=service,
    )
