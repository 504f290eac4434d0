"""Stored photos and their damage heatmaps.

A heatmap is drawn from the class-activation map stored with the photo's scores, mapped
back through the same preprocess geometry onto the stored upright photo, and scaled by
the label's probability, so an unlikely label stays faint instead of being stretched to
full heat. ``grade`` draws the strongest label at each pixel. CAM row i belongs to the
i-th label of the damage list stored with the scores (never the probability dict's key
order, which PostgreSQL JSONB does not keep).
"""

from __future__ import annotations

import cv2
import numpy as np

from serving.domain_errors import NotFound
from serving.services.service import ReturnLensService
from serving.storage.label_order import stored_label_order
from serving.storage.tables import Photo
from vision.heatmap import cam_to_photo, encode_png, render_overlay


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
    data = svc.photos.get(row.digest)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise NotFound("The stored photo cannot be read.", code="not_found")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    spec = (svc.dock_grader if row.role == "dock" else svc.grader).card.preprocess
    indices = range(len(labels)) if label == "grade" else [labels.index(label)]
    heat = np.zeros((h, w), np.float32)
    for i in indices:
        peak = float(cam[i].max())
        norm = cam[i] / peak if peak > 0 else cam[i]
        heat = np.maximum(heat, cam_to_photo(norm, h, w, spec) * float(damage[labels[i]]))
    return encode_png(render_overlay(rgb, heat))
