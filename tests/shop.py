"""The API tests' demo shop: a real app over a real database and the tiny ONNX model.

The fixtures over it (``tiny_model``, ``shop`` on SQLite and PostgreSQL, ``sqlite_shop``)
live in ``tests/conftest.py``; this module holds the plain pieces they are built from.

Nothing is mocked. ``create_app`` runs its real lifespan (migrations, model load and
warm-up, policy check); the catalog and orders are loaded through the admin endpoints;
photos are rendered scenes encoded by the real encoders (``tests.photo_factory``).

With the tiny model (``benchmarks.tiny_model``) the photo's colours steer the scores:
neutral colours grade ``A_new``, a red item grades ``E_damaged`` with a crack; the
embedding is the photo's quadrant layout, so a photo of another scene layout is a
different item for the wrong-item check.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, table

from serving.settings import Settings
from tests.photo_factory import encode, item_scene

ADMIN_KEY = "test-bootstrap-admin-key-0123456789"
EMAIL = "ada@example.com"
COUNTED_TABLES = (
    "customers",
    "catalog_items",
    "orders",
    "order_lines",
    "returns",
    "inspections",
    "photos",
    "gradings",
    "decisions",
    "reviews",
    "api_keys",
    "audit_log",
)


@functools.lru_cache(maxsize=32)
def scene(seed: int, kind: str = "box") -> np.ndarray:
    """A rendered item photo (cached: tests reuse a handful of scenes; read-only)."""
    rgb = item_scene(seed, kind=kind).rgb
    rgb.flags.writeable = False
    return rgb


@functools.lru_cache(maxsize=8)
def catalog_photo(seed: int, kind: str) -> np.ndarray:
    """The catalog's reference photo of the item of ``scene(seed, kind)``: the same item
    shot from the other side (mirrored), so it is not the shopper's photo: uploading
    ``scene(seed, kind)`` is no ``catalog_photo``, uploading this one is."""
    rgb = np.ascontiguousarray(scene(seed, kind)[:, ::-1])
    rgb.flags.writeable = False
    return rgb


def red(rgb: np.ndarray) -> np.ndarray:
    """The same scene, turned red: the tiny model grades it E_damaged with a crack."""
    out = rgb.astype(np.float32) * np.array([1.0, 0.25, 0.25], np.float32)
    out[..., 0] = np.maximum(out[..., 0], 150)
    return out.clip(0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    return encode(rgb, "JPEG", quality=quality)


@dataclass
class Shop:
    """A loaded shop: catalog, orders and keys, all created through the API."""

    client: TestClient
    settings: Settings
    keys: dict[str, str]
    references: dict[str, np.ndarray]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def open_return(
        self,
        order_id: str = "ORD-1",
        sku: str = "box-01",
        reason: str = "changed_mind",
        email: str = EMAIL,
    ) -> tuple[str, str]:
        r = self.client.post(
            "/v1/returns", json={"order_id": order_id, "sku": sku, "reason": reason, "email": email}
        )
        assert r.status_code == 201, r.text
        body = r.json()
        return body["return_id"], body["token"]

    def upload(
        self,
        return_id: str,
        token: str,
        *photos: bytes,
        filename: str = "p.jpg",
        content_type: str = "image/jpeg",
    ) -> Any:
        files = [
            ("photos", (f"{i}-{filename}", data, content_type)) for i, data in enumerate(photos)
        ]
        return self.client.post(
            f"/v1/returns/{return_id}/photos",
            files=files,
            headers={"Authorization": f"Bearer {token}"},
        )

    def counts(self) -> dict[str, int]:
        """Rows per table plus stored photo files: the 'nothing half-stored' probe."""
        engine = create_engine(self.settings.database_url)
        try:
            with engine.connect() as conn:
                out = {
                    name: int(
                        conn.execute(select(func.count()).select_from(table(name))).scalar_one()
                    )
                    for name in COUNTED_TABLES
                }
        finally:
            engine.dispose()
        root = self.settings.photo_dir
        out["photo_files"] = sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0
        return out


def make_settings(db: str, root: Path, model: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db,
        "data_dir": root,
        "photo_dir": root / "photos",
        "model_path": model,
        "admin_key": ADMIN_KEY,
        "rate_limit_per_ip": 100_000,
        "rate_limit_per_ip_burst": 10_000,
        "rate_limit_per_key": 100_000,
        "rate_limit_per_key_burst": 10_000,
        "max_upload_bytes": 2 * 1024 * 1024,
        "ort_threads": 1,
        # No outbox dispatcher thread: a test that reads the outbox sees what the request
        # wrote; tests/test_outbox.py drives the dispatcher (and starts the thread) itself.
        "outbox_dispatch": False,
    }
    values.update(overrides)
    return Settings(**values)


def load_shop(client: TestClient, settings: Settings) -> Shop:
    """Catalog (two SKUs with reference photos, ``catalog_photo``), orders and staff keys
    via the API."""
    admin = {"X-API-Key": ADMIN_KEY}
    refs = {"box-01": catalog_photo(1, "box"), "mug-01": catalog_photo(2, "mug")}
    catalog = [
        {
            "sku": sku,
            "category": sku.split("-")[0],
            "name": f"Test {sku}",
            "price": price,
            "reference_photo_base64": base64.b64encode(jpeg(refs[sku])).decode(),
        }
        for sku, price in (("box-01", 49.0), ("mug-01", 15.0))
    ]
    r = client.put("/v1/admin/catalog", json=catalog, headers=admin)
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    recent, old = (now - timedelta(days=2)).isoformat(), (now - timedelta(days=200)).isoformat()
    csv_text = (
        # Quantities let a test open several returns of one line (the per-line limit
        # has its own test, tests/test_limits.py).
        "order_id,customer_id,customer_email,sku,price,delivered_at,quantity\n"
        f"ORD-1,C-1,{EMAIL},box-01,49.0,{recent},20\n"
        f"ORD-2,C-2,bob@example.com,box-01,49.0,{recent},20\n"
        f"ORD-OLD,C-1,{EMAIL},mug-01,15.0,{old},20\n"
    )
    r = client.put(
        "/v1/admin/orders", content=csv_text, headers={**admin, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    keys = {}
    for role in ("admin", "dock", "reviewer"):
        r = client.post(
            "/v1/admin/api-keys", json={"name": f"test-{role}", "role": role}, headers=admin
        )
        assert r.status_code == 201, r.text
        keys[role] = r.json()["key"]
    return Shop(client=client, settings=settings, keys=keys, references=refs)
