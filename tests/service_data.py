"""Photos and dates for the service tests (tests/test_service.py and its neighbours).

The tiny test model (benchmarks/tiny_model.py) grades by the photo's redness and embeds
by where the item sits in the frame, so each photo here is painted for what a test needs:
``clean`` (neutral), ``damaged`` (red), ``blurry`` (fails the quality gate), an item in
one quadrant (``corner``) for the wrong-item check. The ``svc`` fixture over these lives
in ``tests/conftest.py``.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
from PIL import Image

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DELIVERED = NOW - timedelta(days=9)
NEUTRAL_BG, NEUTRAL_ITEM = (176, 172, 168), (86, 88, 92)
RED_BG, RED_ITEM = (232, 34, 30), (128, 22, 20)


# ----------------------------------------------------------------------------- photos
def scene(
    *,
    corner: str = "tl",
    bg: tuple[int, int, int] = NEUTRAL_BG,
    item: tuple[int, int, int] = NEUTRAL_ITEM,
    seed: int = 0,
    blur: float = 0.0,
    size: tuple[int, int] = (640, 480),
) -> np.ndarray:
    """An item (a textured rectangle) in one quadrant of a plain table, 640x480 RGB.

    ``seed`` moves a few large light/dark patches on the item: a different perceptual hash
    (low frequencies) without moving the item, and lays out the item's light and dark
    12 px tiles: different fine detail, so photos of distinct seeds are not copies of each
    other for the copy detection either (``vision/copydetect.py``). The same seed is the
    same photo.
    """
    w, h = size
    img = np.empty((h, w, 3), np.float32)
    img[:] = bg
    x0 = int(w * (0.05 if corner in ("tl", "bl") else 0.5))
    y0 = int(h * (0.05 if corner in ("tl", "tr") else 0.5))
    iw, ih = int(w * 0.45), int(h * 0.45)
    yy, xx = np.mgrid[0:ih, 0:iw]
    tiles = np.random.default_rng([seed, 12]).choice([1.0, -1.0], (ih // 12 + 1, iw // 12 + 1))
    checker = tiles[yy // 12, xx // 12][..., None]
    patch = np.asarray(item, np.float32) * (1.0 + 0.18 * checker)
    rng = np.random.default_rng(seed)
    for _ in range(3 if seed else 0):
        px, py = rng.integers(0, iw - iw // 3), rng.integers(0, ih - ih // 3)
        patch[py : py + ih // 3, px : px + iw // 3] *= rng.choice([0.55, 1.45])
    img[y0 : y0 + ih, x0 : x0 + iw] = patch
    out = np.clip(img, 0, 255).astype(np.uint8)
    return np.asarray(cv2.GaussianBlur(out, (0, 0), blur), np.uint8) if blur else out


def jpeg(rgb: np.ndarray, *, exif: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": 92}
    if exif is not None:
        kwargs["exif"] = exif
    Image.fromarray(rgb).save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


# The catalog reference photos of the ``svc`` fixture: the item as a catalog shows it, a
# photo no test uploads (uploading one is a catalog_photo).
REFERENCE_SEED = 1000


def clean(seed: int = 0, corner: str = "tl") -> bytes:
    return jpeg(scene(seed=seed, corner=corner))


def damaged(seed: int = 0, corner: str = "tl") -> bytes:
    return jpeg(scene(seed=seed, corner=corner, bg=RED_BG, item=RED_ITEM))


def blurry(seed: int = 0) -> bytes:
    return jpeg(scene(seed=seed, blur=9.0))


def gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPSInfo
    return exif.tobytes()


def service_on(db_url: str, photo_dir: Any, model: Any) -> Any:
    """The service the service tests use: ``model`` (an ``OnnxModel``) grading for both the
    shopper and the dock, the shipped policy, SQLite or PostgreSQL at ``db_url`` and the
    clock fixed at ``NOW``. Call ``service.db.dispose()`` when done."""
    from serving.policy import load_policy
    from serving.services.service import ReturnLensService
    from serving.storage.db import Database
    from serving.storage.photostore import PhotoStore
    from vision.pipeline import Grader

    return ReturnLensService(
        Database(db_url),
        PhotoStore(photo_dir),
        Grader(model),
        Grader(model, profile="dock"),
        load_policy(),
        clock=lambda: NOW,
    )


def routed_damaged(svc: Any) -> tuple[str, Any]:
    """An approved mug (order o-1 of the ``svc`` fixture) that the dock then sees damaged:
    routed on E_damaged and flagged for review. The return id and the inspection view."""
    from serving.services import dock, shopper
    from serving.services.inputs import CreateReturnRequest, InspectionRequest

    rid = shopper.create_return(
        svc, CreateReturnRequest(order_id="o-1", sku="mug-01", reason="changed_mind")
    ).return_id
    assert shopper.upload_photos(svc, rid, [clean(seed=1)]).decision.outcome == "approved"
    req = InspectionRequest(
        return_id=rid, photos=[damaged(seed=2)], idempotency_key="k-1", station_id="d-1"
    )
    view = dock.inspect(svc, req)
    assert view.grade == "E_damaged" and view.channel is not None and view.needs_review
    return rid, view
