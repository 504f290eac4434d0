"""Photographic variety for the wide mode: cast shadows, colour casts, camera tilt, mild
lens blur, signal-dependent sensor noise and a second, harsher JPEG generation.

The classic renders already vary exposure, a slight white balance, a little blur and
Gaussian noise (``scene._lighting``/``_camera``). Phone photos go further: a shadow of
the photographer across the item, tungsten or fluorescent casts, keystone from a tilted
phone, defocus, chroma noise in dim rooms, and photos re-compressed by messaging apps.
Each effect is small enough that the quality gate still accepts the photo (the blur stays
under one pixel sigma at 256 px), because none of them is a reason to retake it.
"""

from __future__ import annotations

import cv2
import numpy as np

ILLUMINANTS = {  # per-channel RGB gains
    "tungsten": (1.14, 1.0, 0.78),
    "fluorescent": (0.93, 1.05, 0.92),
    "shade": (0.88, 0.98, 1.12),
    "sunset": (1.1, 0.97, 0.86),
}


def cast_shadow(img: np.ndarray, rng: np.random.Generator) -> None:
    """Darken a soft-edged polygon entering from one side (a person or a shelf blocking
    the light), in place on float RGB."""
    size = img.shape[0]
    edge = int(rng.integers(0, 4))
    depth = rng.uniform(0.15, 0.55) * size
    t = np.sort(rng.uniform(-0.2, 1.2, 3)) * size
    inner = np.stack([t, depth + rng.uniform(-0.1, 0.1, 3) * size], axis=1)
    pts = np.concatenate([[[t[0], -size]], inner, [[t[-1], -size]]])
    if edge % 2:
        pts = pts[:, ::-1]
    if edge >= 2:
        pts = size - 1 - pts
    shadow = np.zeros((size, size), np.float32)
    cv2.fillPoly(shadow, [pts.astype(np.int32)], 1.0, cv2.LINE_AA)
    soft = np.asarray(cv2.GaussianBlur(shadow, (0, 0), size * rng.uniform(0.01, 0.05)))
    img *= (1 - rng.uniform(0.2, 0.45) * soft)[..., None]


def colour_cast(img: np.ndarray, rng: np.random.Generator) -> str:
    """A white-balance error under a named illuminant, in place; returns its name."""
    names = tuple(ILLUMINANTS)
    name = names[int(rng.integers(0, len(names)))]
    gains = np.array(ILLUMINANTS[name], np.float32) * rng.uniform(0.96, 1.04, 3).astype(np.float32)
    strength = np.float32(rng.uniform(0.5, 1.0))
    img *= 1 + strength * (gains - 1)
    return name


def keystone(
    img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, strength: float = 0.04
) -> tuple[np.ndarray, np.ndarray]:
    """Tilt the camera: map a slightly smaller, skewed quadrilateral onto the full frame
    (so no empty border appears); the damage mask is warped with it."""
    size = img.shape[0]
    full = np.array([[0, 0], [size, 0], [size, size], [0, size]], np.float32)
    inward = rng.uniform(0, strength, (4, 2)).astype(np.float32) * size
    src = full + inward * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float32)
    H = cv2.getPerspectiveTransform(src, full)
    out = cv2.warpPerspective(
        img, H, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    m = cv2.warpPerspective(mask, H, (size, size), flags=cv2.INTER_NEAREST, borderValue=0)
    return np.asarray(out), np.asarray(m)


def lens_blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild defocus: Gaussian sigma 0.4-0.9 px per 256 px of image side."""
    sigma = rng.uniform(0.4, 0.9) * img.shape[0] / 256
    return np.asarray(cv2.GaussianBlur(img, (0, 0), sigma))


def sensor_noise(img: np.ndarray, rng: np.random.Generator) -> None:
    """Shot noise (grows with brightness) plus blotchy low-frequency chroma noise, in place."""
    size = img.shape[0]
    shot = rng.standard_normal(img.shape, dtype=np.float32)
    img += shot * np.sqrt(np.maximum(img, 0)) * np.float32(rng.uniform(0.1, 0.35))
    cells = max(4, size // 6)
    coarse = rng.standard_normal((cells, cells, 3)).astype(np.float32)
    chroma = np.asarray(cv2.resize(coarse, (size, size), interpolation=cv2.INTER_LINEAR))
    img += chroma * np.float32(rng.uniform(0.5, 3.0))


def jpeg_generation(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One earlier, harsher JPEG round trip (quality 30-65), as messaging apps do."""
    quality = int(rng.integers(30, 66))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:
        return rgb
    return np.asarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB))
