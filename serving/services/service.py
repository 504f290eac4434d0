"""``ReturnLensService``: the one object the HTTP layer talks to.

It composes storage, the two graders (shopper and dock quality profiles, usually one
shared ONNX session), the policy and an injected clock, and delegates each use case to a
small module (shopper, dock, review, admin, media). Every method is synchronous and
thread-safe; the API runs them off the event loop. Every write appends to the audit log
in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from serving.policy import Policy
from serving.services import admin, decide, dock, media, review, shopper
from serving.services.context import Deps
from serving.services.views import (
    CreatedReturn,
    CreateReturnRequest,
    InspectionRequest,
    InspectionView,
    OrderView,
    QueueItem,
    ReturnView,
    ReviewRequest,
    ReviewView,
    UploadResult,
)
from serving.storage.db import Database
from serving.storage.photostore import PhotoStore
from vision.pipeline import Grader


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReturnLensService:
    def __init__(
        self,
        db: Database,
        photos: PhotoStore,
        grader: Grader,
        dock_grader: Grader,
        policy: Policy,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """Checks at construction that the policy's grade/damage names are the model's
        (ConfigError otherwise), so a mismatch stops start-up, not the first request."""
        decide.check_policy_fits(policy, grader.card)
        decide.check_policy_fits(policy, dock_grader.card)
        self.deps = Deps(
            db=db, photos=photos, grader=grader, dock_grader=dock_grader, policy=policy, clock=clock
        )

    @property
    def db(self) -> Database:
        return self.deps.db

    @property
    def policy(self) -> Policy:
        return self.deps.policy

    # --- shopper -------------------------------------------------------------------
    def lookup_order(self, order_id: str, email: str) -> OrderView:
        return shopper.lookup_order(self.deps, order_id, email)

    def create_return(self, req: CreateReturnRequest) -> CreatedReturn:
        return shopper.create_return(self.deps, req)

    def check_shopper_token(self, return_id: str, token: str) -> None:
        shopper.check_shopper_token(self.deps, return_id, token)

    def upload_photos(self, return_id: str, uploads: list[bytes]) -> UploadResult:
        return shopper.upload_photos(self.deps, return_id, uploads)

    def get_return(self, return_id: str) -> ReturnView:
        return shopper.get_return(self.deps, return_id)

    def photo_bytes(self, photo_id: str) -> tuple[bytes, str]:
        return media.photo_bytes(self.deps, photo_id)

    def photo_subject(self, photo_id: str) -> tuple[str, str]:
        return media.photo_subject(self.deps, photo_id)

    def heatmap_png(self, photo_id: str, label: str) -> bytes:
        return media.heatmap_png(self.deps, photo_id, label)

    # --- dock ----------------------------------------------------------------------
    def inspect(self, req: InspectionRequest) -> InspectionView:
        return dock.inspect(self.deps, req)

    def get_inspection(self, inspection_id: str) -> InspectionView:
        return dock.get_inspection(self.deps, inspection_id)

    # --- review --------------------------------------------------------------------
    def review_queue(self, *, sort: str = "age", limit: int = 50) -> list[QueueItem]:
        return review.review_queue(self.deps, sort=sort, limit=limit)

    def submit_review(self, req: ReviewRequest) -> ReviewView:
        return review.submit_review(self.deps, req)

    def reviews_for(self, subject_type: str, subject_id: str) -> list[ReviewView]:
        return review.reviews_for(self.deps, subject_type, subject_id)

    def audit_history(self, subject_type: str, subject_id: str) -> list[dict[str, Any]]:
        return review.audit_history(self.deps, subject_type, subject_id)

    # --- admin ---------------------------------------------------------------------
    def upsert_catalog(self, items: list[dict[str, Any]], *, actor: str = "admin") -> int:
        return admin.upsert_catalog(self.deps, items, actor=actor)

    def upsert_orders(self, orders: list[dict[str, Any]], *, actor: str = "admin") -> int:
        return admin.upsert_orders(self.deps, orders, actor=actor)

    def set_reference_photo(self, sku: str, data: bytes, *, actor: str = "admin") -> None:
        admin.set_reference_photo(self.deps, sku, data, actor=actor)

    def list_catalog(self) -> list[dict[str, Any]]:
        return admin.list_catalog(self.deps)

    def catalog_reference(self, sku: str) -> tuple[bytes, str]:
        return admin.catalog_reference(self.deps, sku)

    def create_api_key(self, name: str, role: str, *, actor: str = "admin") -> str:
        return admin.create_api_key(self.deps, name, role, actor=actor)

    def revoke_api_key(self, name: str, *, actor: str = "admin") -> None:
        admin.revoke_api_key(self.deps, name, actor=actor)

    def authenticate_key(self, key: str) -> tuple[str, str] | None:
        return admin.authenticate_key(self.deps, key)

    def model_info(self) -> dict[str, Any]:
        return admin.model_info(self.deps)
