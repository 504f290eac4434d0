"""Damage heatmaps drawn over the photo the shopper or the dock camera took.

The class-activation map covers the model's square input, which may be letterboxed or
centre-cropped; ``cam_to_photo`` undoes that geometry with the same spec, so the heat
sits on the item and not on the padding.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.preprocess import PreprocessSpec


def cam_to_photo(cam: np.ndarray, height: int, width: int, spec: PreprocessSpec) -> np.ndarray:
    """Map one [h,w] activation map (model input frame) to a [height,width] float map."""
    size = spec.input_size
    full = cv2.resize(cam.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    if spec.resize_mode == "stretch":
        return cv2.resize(full, (width, height), interpolation=cv2.INTER_LINEAR)
    if spec.resize_mode == "center_crop":
        side = min(height, width)
        out = np.zeros((height, width), dtype=np.float32)
        top, left = (height - side) // 2, (width - side) // 2
        out[top : top + side, left : left + side] = cv2.resize(full, (side, side))
        return out
    scale = size / max(height, width)
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    top, left = (size - nh) // 2, (size - nw) // 2
    inner = full[top : top + nh, left : left + nw]
    return cv2.resize(inner, (width, height), interpolation=cv2.INTER_LINEAR)


def render_overlay(
    rgb: np.ndarray, heat: np.ndarray, *, alpha: float = 0.45, floor: float = 0.2
) -> np.ndarray:
    """Blend a [0,1] heat map (same HxW as ``rgb``) onto the photo as a JET colour map.

    Values under ``floor`` stay transparent so undamaged areas keep their true colours.
    """
    heat = np.clip(heat, 0.0, 1.0)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = (alpha * np.clip((heat - floor) / max(1e-6, 1 - floor), 0, 1))[..., None]
    out = rgb.astype(np.float32) * (1 - weight) + colour * weight
    return np.clip(out, 0, 255).astype(np.uint8)


def encode_png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray, quality: int = 88) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
