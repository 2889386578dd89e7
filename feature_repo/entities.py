"""Feast entities."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A shop customer, by the id of the landing tables.",
    owner="data-team@example.com",
    tags={"domain": "clm"},
)
