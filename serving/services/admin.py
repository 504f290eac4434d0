"""Admin: catalog and orders upserts, API keys, model info.

Catalog reference photos go through the same safe decoder as shopper uploads, are stored
metadata-free in the photo store and embedded with the serving model; the embedding is
stored with the model version that produced it (a new model recomputes it lazily).
API keys are 256-bit random strings; only their sha256 is stored (a pepper adds nothing
for keys of that entropy), looked up through a UNIQUE index and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from serving.domain_errors import Conflict, Invalid, NotFound
from serving.services.context import Deps
from serving.services.views import ROLES
from serving.storage import repo
from serving.storage.tables import ApiKey, CatalogItem, Customer, Order, OrderLine
from vision.phash import phash, phash_hex
from vision.types import DecodedPhoto

KEY_PREFIX = "rlk_"


def _field(
    row: dict[str, Any], name: str, i: int, *, required: bool = True, max_len: int = 200
) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise Invalid(
                f"Row {i + 1}: the field {name!r} is required.",
                code="invalid_field",
                details={"row": i, "field": name},
            )
        return None
    text = str(value).strip()
    if len(text) > max_len:
        raise Invalid(
            f"Row {i + 1}: {name!r} is longer than {max_len} characters.",
            code="invalid_field",
            details={"row": i, "field": name},
        )
    return text


def _price(row: dict[str, Any], i: int) -> float:
    try:
        price = float(row.get("price"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        price = math.nan
    if not math.isfinite(price) or price < 0:
        raise Invalid(
            f"Row {i + 1}: price must be a number >= 0.",
            code="invalid_field",
            details={"row": i, "field": "price"},
        )
    return round(price, 2)


def _when(value: Any, i: int) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise Invalid(
                f"Row {i + 1}: delivered_at {value!r} is not an ISO 8601 time.",
                code="invalid_field",
                details={"row": i, "field": "delivered_at"},
            ) from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def upsert_catalog(deps: Deps, items: list[dict[str, Any]], *, actor: str = "admin") -> int:
    """Insert or update SKUs; every reference photo is decoded before anything is stored."""
    rows = []
    for i, it in enumerate(items):
        ref = it.get("reference_photo")
        if ref is not None and not isinstance(ref, bytes | bytearray):
            raise Invalid(
                f"Row {i + 1}: reference_photo must be image bytes.",
                code="invalid_field",
                details={"row": i, "field": "reference_photo"},
            )
        rows.append(
            (
                _field(it, "sku", i, max_len=64),
                _field(it, "category", i, max_len=64),
                _field(it, "name", i, required=False) or "",
                _price(it, i),
                deps.grader.decode(bytes(ref)) if ref is not None else None,
            )
        )
    refs: list[DecodedPhoto] = [r[4] for r in rows if r[4] is not None]
    embeddings: list[np.ndarray] = (
        list(deps.grader.model.predict_images([p.rgb for p in refs]).embedding) if refs else []
    )
    emb_iter = iter(embeddings)
    now, version = deps.now(), deps.model_version
    stored = [
        (deps.photos.put(r[4].rgb), next(emb_iter)) if r[4] is not None else None for r in rows
    ]
    with deps.db.write() as s:
        for (sku, category, name, price, photo), ref_data in zip(rows, stored, strict=True):
            assert sku is not None and category is not None
            row = s.get(CatalogItem, sku) or CatalogItem(sku=sku)
            row.category, row.name, row.price, row.updated_at = category.lower(), name, price, now
            if photo is not None and ref_data is not None:
                row.reference_digest = ref_data[0]
                row.reference_embedding = [round(float(v), 6) for v in ref_data[1]]
                row.reference_model_version = version
                row.reference_phash = phash_hex(phash(photo.rgb))
            s.add(row)
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="catalog_upserted",
            subject_type="catalog",
            subject_id="catalog",
            payload={"skus": [r[0] for r in rows][:1000], "count": len(rows)},
        )
    return len(rows)


def set_reference_photo(deps: Deps, sku: str, data: bytes, *, actor: str = "admin") -> None:
    """Replace one SKU's reference photo (decoded, embedded and stored like upserts)."""
    with deps.db.read() as s:
        if s.get(CatalogItem, sku) is None:
            raise NotFound(
                f"There is no SKU {sku!r} in the catalog.", code="unknown_sku", details={"sku": sku}
            )
    photo = deps.grader.decode(data)
    embedding = deps.grader.embed(photo)
    digest = deps.photos.put(photo.rgb)
    now = deps.now()
    with deps.db.write() as s:
        row = s.get(CatalogItem, sku)
        if row is None:
            raise NotFound(f"There is no SKU {sku!r} in the catalog.", code="unknown_sku")
        row.reference_digest = digest
        row.reference_embedding = [round(float(v), 6) for v in embedding]
        row.reference_model_version = deps.model_version
        row.reference_phash = phash_hex(phash(photo.rgb))
        row.updated_at = now
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="reference_photo_set",
            subject_type="catalog",
            subject_id=sku,
            payload={"digest": digest},
        )


def upsert_orders(deps: Deps, orders: list[dict[str, Any]], *, actor: str = "admin") -> int:
    """One row per order line: {order_id, customer_id, customer_email, sku, price,
    delivered_at}. Unknown SKUs refuse the whole batch."""
    now = deps.now()
    with deps.db.write() as s:
        for i, o in enumerate(orders):
            order_id = _field(o, "order_id", i, max_len=64)
            customer_id = _field(o, "customer_id", i, max_len=64)
            sku = _field(o, "sku", i, max_len=64)
            email = _field(o, "customer_email", i, required=False, max_len=320)
            price, delivered = _price(o, i), _when(o.get("delivered_at"), i)
            assert order_id is not None and customer_id is not None and sku is not None
            if s.get(CatalogItem, sku) is None:
                raise NotFound(
                    f"Row {i + 1}: unknown SKU {sku!r}; upsert the catalog first.",
                    code="unknown_sku",
                    details={"row": i, "sku": sku},
                )
            customer = s.get(Customer, customer_id) or Customer(id=customer_id, created_at=now)
            customer.email = email or customer.email
            s.add(customer)
            s.flush()  # parent rows first: there are no ORM relationships to order them
            order = s.get(Order, order_id) or Order(
                id=order_id, created_at=now, customer_id=customer_id
            )
            if order.customer_id != customer_id:
                raise Invalid(
                    f"Row {i + 1}: order {order_id!r} belongs to another customer.",
                    code="invalid_field",
                    details={"row": i, "field": "customer_id"},
                )
            order.delivered_at = delivered
            s.add(order)
            s.flush()
            line = s.get(OrderLine, (order_id, sku)) or OrderLine(order_id=order_id, sku=sku)
            line.price = price
            line.quantity = int(o.get("quantity") or 1)
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


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(deps: Deps, name: str, role: str, *, actor: str = "admin") -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise Invalid(
            "A key name of 1 to 100 characters is required.",
            code="invalid_field",
            details={"field": "name"},
        )
    if role not in ROLES:
        raise Invalid(
            f"role must be one of {', '.join(ROLES)}.",
            code="invalid_field",
            details={"field": "role", "allowed": list(ROLES)},
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = deps.now()
    with deps.db.write() as s:
        if s.scalars(select(ApiKey).where(ApiKey.name == name)).first() is not None:
            raise Conflict(f"An API key named {name!r} already exists.", code="name_taken")
        s.add(
            ApiKey(
                id=repo.new_id("key"),
                name=name,
                role=role,
                key_hash=hash_key(key),
                prefix=key[:10],
                created_at=now,
            )
        )
        repo.append_audit(
            s,
            at=now,
            actor=actor,
            action="api_key_created",
            subject_type="api_key",
            subject_id=name,
            payload={"role": role, "prefix": key[:10]},
        )
    return key


def authenticate_key(deps: Deps, key: str) -> tuple[str, str] | None:
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = hash_key(key)
    with deps.db.read() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return row.name, row.role


def revoke_api_key(deps: Deps, name: str, *, actor: str = "admin") -> None:
    now = deps.now()
    with deps.db.write() as s:
        row = s.scalars(select(ApiKey).where(ApiKey.name == name)).first()
        if row is None:
            raise NotFound(f"There is no API key named {name!r}.", code="not_found")
        if row.revoked_at is None:
            row.revoked_at = now
            repo.append_audit(
                s,
                at=now,
                actor=actor,
                action="api_key_revoked",
                subject_type="api_key",
                subject_id=name,
                payload={},
            )


def list_catalog(deps: Deps) -> list[dict[str, Any]]:
    with deps.db.read() as s:
        rows = s.scalars(select(CatalogItem).order_by(CatalogItem.sku)).all()
        return [
            {
                "sku": r.sku,
                "category": r.category,
                "name": r.name,
                "price": r.price,
                "reference_digest": r.reference_digest,
            }
            for r in rows
        ]


def catalog_reference(deps: Deps, sku: str) -> tuple[bytes, str]:
    with deps.db.read() as s:
        row = s.get(CatalogItem, sku)
    if row is None or row.reference_digest is None:
        raise NotFound(f"SKU {sku!r} has no reference photo.", code="unknown_sku")
    return deps.photos.get(row.reference_digest), deps.photos.media_type


def model_info(deps: Deps) -> dict[str, Any]:
    card = deps.grader.card
    return {
        "model_version": card.model_version,
        "model_sha256": deps.grader.model.sha256,
        "dock_model_version": deps.dock_grader.card.model_version,
        "policy_version": deps.policy.version,
        "policy_name": deps.policy.spec.name,
        "grade_labels": list(card.grade_labels),
        "damage_labels": list(card.damage_labels),
        "card": card.to_dict(),
    }
