"""Admin: catalog and orders upserts, API keys, model info.

Rows arrive validated (``CatalogRow``, ``OrderRow``: the same models the API's JSON and
CSV loaders use), so this module checks only what needs the database: known SKUs and
who owns an order. Catalog reference photos go through the same safe decoder as shopper
uploads, are stored metadata-free in the photo store and embedded with the serving
model; the embedding is stored with the model version that produced it (a new model
recomputes it lazily). API keys live in ``serving.services.keys`` (shared with the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from serving.domain_errors import Invalid, NotFound
from serving.services import keys
from serving.services.familiarity import unfamiliarity_status
from serving.services.inputs import ApiKeyRequest, CatalogRow, OrderRow
from serving.services.records import ApiKeyInfoOut, ModelInfoOut
from serving.services.scores import rounded_list
from serving.services.service import ReturnLensService
from serving.storage import repo
from serving.storage.gc import drop_if_unreferenced
from serving.storage.tables import CatalogItem, Customer, Order, OrderLine
from vision import copydetect
from vision.model import SERVING_BATCH
from vision.types import DecodedPhoto


def _point_reference(
    row: CatalogItem,
    digest: str,
    embedding: np.ndarray,
    version: str,
    copy: copydetect.CopyDescriptor,
) -> str | None:
    """Point a SKU at a new reference photo (digest, embedding, the model that embedded
    it, its copy-detection descriptor for the catalog-photo check); the digest it pointed
    at before when that one is now superseded, else None."""
    old = row.reference_digest
    row.reference_digest = digest
    row.reference_embedding = rounded_list(embedding)
    row.reference_model_version = version
    row.reference_copy_vector = copydetect.vector_to_bytes(copy.vector)
    row.reference_copy_features = copy.local.to_bytes()
    return old if old and old != digest else None


def upsert_catalog(
    svc: ReturnLensService,
    rows: Sequence[CatalogRow],
    *,
    photos: Mapping[str, bytes] | None = None,
    actor: str = "admin",
) -> int:
    """Insert or update SKUs; ``photos`` (by SKU) are reference photos, every one decoded
    before anything is stored."""
    photos = photos or {}
    started = time.time()
    decoded = {sku: svc.grader.decode(data) for sku, data in photos.items()}
    refs: list[DecodedPhoto] = list(decoded.values())
    embeddings: list[np.ndarray] = []
    if refs:
        with svc.grader.lanes.inference:  # the process's inference bound
            embeddings = list(
                svc.grader.model.predict_images([p.rgb for p in refs], SERVING_BATCH).embedding
            )
    now, version = svc.now(), svc.model_version
    digests = svc.photos.put_all(refs, list(photos.values()))  # all encoded, then written
    copies = [copydetect.describe(p.rgb) for p in refs]
    stored = dict(zip(decoded, zip(digests, embeddings, copies, strict=True), strict=True))
    superseded: set[str] = set()
    with svc.db.write() as s:
        for r in rows:
            row = s.get(CatalogItem, r.sku) or CatalogItem(sku=r.sku)
            row.category, row.name, row.price, row.updated_at = r.category, r.name, r.price, now
            if r.sku in stored:
                digest, embedding, copy = stored[r.sku]
                old = _point_reference(row, digest, embedding, version, copy)
                if old:
                    superseded.add(old)
            s.add(row)
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="catalog_upserted",
            subject_type="catalog",
            subject_id="catalog",
            payload={"skus": [r.sku for r in rows][:1000], "count": len(rows)},
        )
    for old in superseded - set(digests):
        drop_if_unreferenced(svc.db, svc.photos, old, since=started)
    return len(rows)


def set_reference_photo(
    svc: ReturnLensService, sku: str, data: bytes, *, actor: str = "admin"
) -> None:
    """Replace one SKU's reference photo (decoded, embedded and stored like upserts)."""
    with svc.db.read() as s:
        if s.get(CatalogItem, sku) is None:
            raise NotFound(
                f"There is no SKU {sku!r} in the catalog.", code="unknown_sku", details={"sku": sku}
            )
    started = time.time()
    photo = svc.grader.decode(data)
    embedding = svc.grader.embed(photo)
    copy = copydetect.describe(photo.rgb)
    digest = svc.photos.put(photo, data)
    now = svc.now()
    with svc.db.write() as s:
        row = s.get(CatalogItem, sku)
        if row is None:
            raise NotFound(f"There is no SKU {sku!r} in the catalog.", code="unknown_sku")
        superseded = _point_reference(row, digest, embedding, svc.model_version, copy)
        row.updated_at = now
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="reference_photo_set",
            subject_type="catalog",
            subject_id=sku,
            payload={"digest": digest, "replaced": superseded},
        )
    if superseded:
        drop_if_unreferenced(svc.db, svc.photos, superseded, since=started)


def upsert_orders(
    svc: ReturnLensService, orders: Sequence[OrderRow], *, actor: str = "admin"
) -> int:
    """One row per order line. Unknown SKUs refuse the whole batch."""
    now = svc.now()
    with svc.db.write() as s:
        for i, o in enumerate(orders):
            order_id, customer_id, sku = o.order_id, o.customer_id, o.sku
            if s.get(CatalogItem, sku) is None:
                raise NotFound(
                    f"Row {i + 1}: unknown SKU {sku!r}; upsert the catalog first.",
                    code="unknown_sku",
                    details={"row": i, "sku": sku},
                )
            customer = s.get(Customer, customer_id) or Customer(id=customer_id, created_at=now)
            customer.email = o.customer_email or customer.email
            s.add(customer)
            s.flush()  # parent rows first: the view-only relationships order no inserts
            order = s.get(Order, order_id) or Order(
                id=order_id, created_at=now, customer_id=customer_id
            )
            if order.customer_id != customer_id:
                raise Invalid(
                    f"Row {i + 1}: order {order_id!r} belongs to another customer.",
                    code="invalid_field",
                    details={"row": i, "field": "customer_id"},
                )
            order.delivered_at = o.delivered_at
            s.add(order)
            s.flush()
            line = s.get(OrderLine, (order_id, sku)) or OrderLine(order_id=order_id, sku=sku)
            line.price = o.price
            line.quantity = o.quantity
            s.add(line)
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="orders_upserted",
            subject_type="orders",
            subject_id="orders",
            payload={"count": len(orders)},
        )
    return len(orders)


def create_api_key(svc: ReturnLensService, req: ApiKeyRequest, *, actor: str = "admin") -> str:
    """A new key for ``req.role``, returned in plaintext once (``serving.services.keys``)."""
    return keys.create_key(svc.db, req, now=svc.now(), actor=actor)


def authenticate_key(svc: ReturnLensService, key: str) -> tuple[str, str] | None:
    return keys.authenticate(svc.db, key, now=svc.now())


def list_api_keys(svc: ReturnLensService) -> list[ApiKeyInfoOut]:
    return keys.list_keys(svc.db)


def revoke_api_key(svc: ReturnLensService, name: str, *, actor: str = "admin") -> None:
    keys.revoke_key(svc.db, name, now=svc.now(), actor=actor)


def model_info(svc: ReturnLensService) -> ModelInfoOut:
    card = svc.grader.card
    status = unfamiliarity_status(svc)
    return ModelInfoOut(
        unfamiliarity=status.available,
        unfamiliarity_note=status.note,
        model_version=card.model_version,
        model_sha256=svc.grader.model.sha256,
        dock_model_version=svc.dock_grader.card.model_version,
        policy_version=svc.policy.version,
        policy_name=svc.policy.spec.name,
        grade_labels=list(card.grade_labels),
        damage_labels=list(card.damage_labels),
        card=card.to_dict(),
    )
