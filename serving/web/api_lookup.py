"""``POST /v1/orders/lookup``: the items of one order, for the shopper page's first step.

The shopper types an order number and the email the order was placed with; the answer
lists the order's items so they can pick the one to return. An unknown order and a wrong
email get the same 404 ``unknown_order`` (as ``POST /v1/returns`` does), so order
numbers cannot be probed, and the lookup is a POST so the email never lands in an access
log or browser history.

The query is read-only and runs through the service's database handle. When the service
grows its own ``lookup_order`` use case (asked of the storage/service owners), this route
should call it instead; the HTTP contract below stays the same.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from serving.api.deps import ServiceDep
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services.errors import NotFound
from serving.services.service import ReturnLensService
from serving.storage.tables import CatalogItem, Customer, Order, OrderLine

router = APIRouter(prefix=V1, tags=["shopper"])


class OrderLookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    order_id: str = Field(min_length=1, max_length=64, examples=["ORD-1001"])
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$",
                       description="The email the order was placed with.")


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


def _same_email(a: str | None, b: str) -> bool:
    return a is not None and a.strip().casefold() == b.strip().casefold()


def lookup_order(svc: ReturnLensService, order_id: str, email: str) -> OrderLookupOut:
    """The order's lines with their catalog names; NotFound(unknown_order) otherwise."""
    unknown = NotFound("We can't find an order with that number and email address.",
                       code="unknown_order")
    with svc.db.read() as s:
        order = s.get(Order, order_id)
        customer = s.get(Customer, order.customer_id) if order is not None else None
        if order is None or customer is None or not _same_email(customer.email, email):
            raise unknown
        rows = s.execute(
            select(OrderLine, CatalogItem)
            .join(CatalogItem, CatalogItem.sku == OrderLine.sku)
            .where(OrderLine.order_id == order_id)
            .order_by(OrderLine.sku)).all()
        items = [OrderItemOut(sku=line.sku, name=item.name, category=item.category,
                              price=float(line.price), quantity=int(line.quantity or 1))
                 for line, item in rows]
        return OrderLookupOut(order_id=order.id, delivered_at=order.delivered_at, items=items)


@router.post("/orders/lookup", response_model=OrderLookupOut,
             responses=error_responses(404, 422, 429),
             summary="The items of an order (order number + the order's email)")
def post_order_lookup(body: OrderLookupIn, svc: ServiceDep) -> OrderLookupOut:
    return lookup_order(svc, body.order_id, body.email)
