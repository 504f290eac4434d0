"""One return's full record for staff: everything the service holds about it.

The shopper's view (``shopper.get_return``: item, decisions, photos, timeline,
resolution) is reused as is, so staff and shopper never read a return differently; staff
also see the timeline with who and why, every dock inspection of the parcel, and every
reviewer verdict on the return or on one of its inspections.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from serving.domain_errors import NotFound
from serving.services import shopper
from serving.services.outputs import ReturnOut, StaffTimelineOut
from serving.services.records import InspectionOut, ReviewOut
from serving.services.service import ReturnLensService
from serving.storage.tables import CatalogItem, Inspection, Review


class StaffReturnOut(BaseModel):
    return_detail: ReturnOut = Field(description="The return as its shopper sees it.")
    staff_timeline: list[StaffTimelineOut] = Field(
        description="Status changes, oldest first, with who and why."
    )
    inspections: list[InspectionOut] = Field(description="Dock inspections, oldest first.")
    reviews: list[ReviewOut] = Field(
        description="Verdicts on the return or its inspections, oldest first."
    )


def full_record(svc: ReturnLensService, return_id: str) -> StaffReturnOut:
    """404 ``unknown_return`` (from ``get_return``) before anything else is read."""
    detail = shopper.get_return(svc, return_id)
    timeline = shopper.staff_timeline(svc, return_id)
    with svc.db.read() as s:
        inspections = list(
            s.scalars(
                select(Inspection)
                .where(Inspection.return_id == return_id)
                .order_by(Inspection.created_at, Inspection.id)
            )
        )
        ins_ids = [i.id for i in inspections]
        reviews = list(
            s.scalars(
                select(Review)
                .where(or_(Review.return_id == return_id, Review.inspection_id.in_(ins_ids)))
                .order_by(Review.created_at, Review.id)
            )
        )
        return StaffReturnOut(
            return_detail=detail,
            staff_timeline=timeline,
            inspections=[InspectionOut.model_validate(i) for i in inspections],
            reviews=[ReviewOut.model_validate(r) for r in reviews],
        )


def reference_photo(svc: ReturnLensService, sku: str) -> bytes:
    """A SKU's catalog reference photo (the stored JPEG copy), for the evidence of a
    ``catalog_photo`` or ``wrong_item`` flag: reference photos have no photo row."""
    with svc.db.read() as s:
        item = s.get(CatalogItem, sku)
        if item is None:
            raise NotFound(f"There is no SKU {sku!r} in the catalog.", code="unknown_sku")
        digest = item.reference_digest
    if digest is None:
        raise NotFound(f"SKU {sku!r} has no catalog reference photo.", code="no_reference_photo")
    return svc.photos.get(digest)
