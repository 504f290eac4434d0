"""Stored photos and their damage heatmaps.

A heatmap is drawn from the class-activation map stored with the photo's scores, mapped
back through the same preprocess geometry onto the stored upright photo, and scaled by
the label's probability, so an unlikely label stays faint instead of being stretched to
full heat. ``grade`` draws the strongest label at each pixel. CAM row i belongs to the
i-th label of the damage list stored with the scores (never the probability dict's key
order, which PostgreSQL JSONB does not keep).

Bounded and cached. The overlay is drawn on a working copy of the stored photo decoded
with its long side in [512, 1024) (``HEATMAP_LONG_SIDE``; a DCT draft, since stored
copies are JPEGs): new photos are stored that small already, and a photo stored full
size before that (up to 64 MP) costs its draft decode, not a 64 MP float32 render (the
draw allocates ~50 bytes per pixel). The render takes a slot of the same lane as
inference (``vision.pipeline.Lanes.inference``) and its PNG is cached on disk
(``serving.storage.heatmap_cache``) under a key of everything it depends on, so a second
request for the same heatmap reads a file.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from serving.domain_errors import NotFound
from serving.services.service import ReturnLensService
from serving.storage.heatmap_cache import HeatmapCache, cache_root_for
from serving.storage.label_order import stored_label_order
from serving.storage.tables import Photo
from vision.decode import DecodeLimits, decode_image
from vision.errors import DecodeError
from vision.heatmap import cam_to_photo, encode_png, render_overlay

HEATMAP_LONG_SIDE = 512  # the working copy's long side is at least this, below twice it
HEATMAP_VERSION = "1"  # bump when the drawing changes: cached files get new names
# Stored copies are the service's own baseline JPEGs; legacy ones may be full size.
_STORED = DecodeLimits(max_bytes=1 << 31, max_decode_bytes=1 << 31)


def _photo(svc: ReturnLensService, photo_id: str) -> Photo:
    with svc.db.read() as s:
        row = s.get(Photo, photo_id)
    if row is None:
        raise NotFound(f"There is no photo {photo_id!r}.", code="unknown_photo")
    return row


def photo_bytes(svc: ReturnLensService, photo_id: str) -> tuple[bytes, str]:
    row = _photo(svc, photo_id)
    return svc.photos.get(row.digest), row.media_type


def photo_subject(svc: ReturnLensService, photo_id: str) -> tuple[str, str]:
    """("return", return id) or ("inspection", inspection id): who may see the photo."""
    row = _photo(svc, photo_id)
    if row.return_id is not None:
        return "return", row.return_id
    if row.inspection_id is not None:
        return "inspection", row.inspection_id
    raise NotFound(f"There is no photo {photo_id!r}.", code="unknown_photo")


def _damage_order(svc: ReturnLensService, row: Photo) -> tuple[str, ...] | None:
    """The damage labels in the order of the stored CAM rows (None: unknown).

    Stored with the scores; rows stored before that fall back to the grading model's card
    when it graded them (same model version), so no heatmap is ever drawn from another
    label's activation map.
    """
    card = (svc.dock_grader if row.role == "dock" else svc.grader).card
    same_model = row.scores.get("model_version") == card.model_version
    return stored_label_order(row.scores, fallback=card.damage_labels if same_model else None)


def heatmap_key(svc: ReturnLensService, row: Photo, label: str) -> str:
    """Cache key: the stored photo and scores, the model whose geometry maps the CAM, the
    label and the drawing version."""
    card = (svc.dock_grader if row.role == "dock" else svc.grader).card
    parts = {
        "v": HEATMAP_VERSION,
        "photo": row.id,
        "digest": row.digest,
        "scores_model": row.scores.get("model_version"),
        "model": card.model_version,
        "preprocess": card.preprocess.to_dict(),
        "label": label,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


def heatmap_png(svc: ReturnLensService, photo_id: str, label: str) -> bytes:
    row = _photo(svc, photo_id)
    damage: dict[str, float] = row.scores.get("damage_probs") or {}
    cam = np.asarray(row.scores.get("damage_cam") or [], dtype=np.float32)
    order = _damage_order(svc, row)
    if order is None or cam.ndim != 3 or cam.shape[0] != len(order):
        raise NotFound("This photo has no heatmap.", code="not_found")
    labels = list(order)
    if label != "grade" and label not in damage:
        raise NotFound(
            f"No heatmap named {label!r}; choose grade or one of {', '.join(labels)}.",
            code="not_found",
            details={"labels": ["grade", *labels]},
        )
    cache = svc.heatmaps or HeatmapCache(cache_root_for(svc.photos.local_root))
    key = heatmap_key(svc, row, label)
    cached = cache.get(key)
    if cached is not None:
        return cached
    grader = svc.dock_grader if row.role == "dock" else svc.grader
    data = svc.photos.get(row.digest)
    with grader.lanes.inference:  # the same bound as inference: one render per slot
        try:
            rgb = decode_image(data, limits=_STORED, target_long_side=HEATMAP_LONG_SIDE).rgb
        except DecodeError as exc:
            raise NotFound("The stored photo cannot be read.", code="not_found") from exc
        del data
        h, w = rgb.shape[:2]
        spec = grader.card.preprocess
        indices = range(len(labels)) if label == "grade" else [labels.index(label)]
        heat = np.zeros((h, w), np.float32)
        for i in indices:
            peak = float(cam[i].max())
            norm = cam[i] / peak if peak > 0 else cam[i]
            heat = np.maximum(heat, cam_to_photo(norm, h, w, spec) * float(damage[labels[i]]))
        png = encode_png(render_overlay(rgb, heat))
    cache.put(key, png)
    return png
