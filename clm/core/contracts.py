"""Landing-table contracts (DESIGN §4): columns, types and what is required.

The GX suites in ``expectations/`` hold the rules; this module holds the column
types needed to parse CSV and Parquet alike, and which column is the key. A
unit test checks both agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contract:
    """Columns of a landing table and how to type them."""

    table: str
    key: str
    timestamp: str
    columns: dict[str, str]  # name -> one of: string, timestamp, float, int
    optional: frozenset[str] = frozenset()
    references: str | None = None  # a landing table whose ids ``customer_id`` must name

    @property
    def required(self) -> list[str]:
        return [c for c in self.columns if c not in self.optional]


CONTRACTS: dict[str, Contract] = {
    "customers": Contract(
        table="customers",
        key="customer_id",
        timestamp="signup_ts",
        columns={
            "customer_id": "string",
            "signup_ts": "timestamp",
            "country": "string",
            "acquisition_channel": "string",
        },
    ),
    "orders": Contract(
        table="orders",
        key="order_id",
        timestamp="order_ts",
        columns={
            "order_id": "string",
            "customer_id": "string",
            "order_ts": "timestamp",
            "amount": "float",
            "n_items": "int",
            "category": "string",
            "discount": "float",
            "status": "string",
        },
        references="customers",
    ),
    "events": Contract(
        table="events",
        key="event_id",
        timestamp="event_ts",
        columns={
            "event_id": "string",
            "customer_id": "string",
            "event_ts": "timestamp",
            "event_type": "string",
            "rating": "int",
            "review_text": "string",
        },
        optional=frozenset({"rating", "review_text"}),
        references="customers",
    ),
}
