"""``POST /v1/orders/lookup``: the items of one order, for the shopper page's first step.

The shopper types an order number and the email the order was placed with; the answer
lists the order's items so they can pick the one to return. An unknown order and a wrong
email get the same 404 ``unknown_order`` (as ``POST /v1/returns`` does), so order
numbers cannot be probed, and the lookup is a POST so the email never lands in an access
log or browser history.

The lookup itself is the service's ``lookup_order`` use case; this route only maps JSON.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from serving.api.deps import ServiceDep
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services.views import OrderView

router = APIRouter(prefix=V1, tags=["shopper"])


class OrderLookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    order_id: str = Field(min_length=1, max_length=64, examples=["ORD-1001"])
    email: str = Field(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="The email the order was placed with.",
    )


class OrderItemOut(BaseModel):
    sku: str
    name: str
    category: str
    price: float
    quantity: int


class OrderLookupOut(BaseModel):
    order_id: str
    delivered_at: datetime | None
    items: list[OrderItemOut]


def order_out(view: OrderView) -> OrderLookupOut:
    return OrderLookupOut(
        order_id=view.order_id,
        delivered_at=view.delivered_at,
        items=[
            OrderItemOut(
                sku=i.sku, name=i.name, category=i.category, price=i.price, quantity=i.quantity
            )
            for i in view.items
        ],
    )


@router.post(
    "/orders/lookup",
    response_model=OrderLookupOut,
    responses=error_responses(404, 422, 429),
    summary="The items of an order (order number + the order's email)",
)
def post_order_lookup(body: OrderLookupIn, svc: ServiceDep) -> OrderLookupOut:
    """Unknown order and wrong email: the same 404 ``unknown_order``."""
    return order_out(svc.lookup_order(body.order_id, body.email))
