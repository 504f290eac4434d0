"""``POST /v1/orders/lookup``: the items of one order, for the shopper page's first step.

The shopper types an order number and the email the order was placed with; the answer
lists the order's items so they can pick the one to return. An unknown order and a wrong
email get the same 404 ``unknown_order`` (as ``POST /v1/returns`` does), so order
numbers cannot be probed, and the lookup is a POST so the email never lands in an access
log or browser history.

The lookup itself is the service's ``shopper.lookup_order``; its answer is the response.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from serving.api.deps import ServiceDep
from serving.api.schemas import V1
from serving.errors import error_responses
from serving.services import shopper
from serving.services.fields import Email, ShopId
from serving.services.inputs import InputModel
from serving.services.outputs import OrderLookupOut

router = APIRouter(prefix=V1, tags=["shopper"])


class OrderLookupIn(InputModel):
    order_id: ShopId = Field(examples=["ORD-1001"])
    email: Email = Field(description="The email the order was placed with.")


@router.post(
    "/orders/lookup",
    response_model=OrderLookupOut,
    responses=error_responses(404, 422, 429),
    summary="The items of an order (order number + the order's email)",
)
def post_order_lookup(body: OrderLookupIn, svc: ServiceDep) -> OrderLookupOut:
    """Unknown order and wrong email: the same 404 ``unknown_order``."""
    return shopper.lookup_order(svc, body.order_id, body.email)
