"""Training augmentations that look like shopper phone photos and dock camera frames.

They run on the *decoded* RGB photo, before the shared ``vision.preprocess`` resize, so
training never restates resizing or normalisation: the eval transform is decode +
preprocess, and training is decode + augment + preprocess. All randomness comes from
the ``numpy.random.Generator`` passed in, which the dataset derives from
(seed, epoch, index): a sample's augmentation does not depend on worker count or order.

``strength`` (0..1) scales every magnitude and probability; 0 returns the photo unchanged.
What each step imitates:

* geometry: hand-held framing (rotation, slight perspective, scale and shift that keep
  the item in frame) and mirror images (horizontal flip);
* colour: exposure and contrast differences, saturation, hue shift and white balance of
  phone cameras and warehouse lighting;
* blur: focus misses (gaussian) and hand or conveyor motion (linear motion kernel);
* noise: sensor noise in dim light;
* JPEG: re-encoding by phones and messaging apps (quality 40..95).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augmenter:
    strength: float = 0.5

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = float(self.strength)
        if s <= 0.0:
            return rgb
        out = geometry(rgb, rng, s)
        out = colour(out, rng, s)
        if rng.random() < 0.3 * s:
            out = blur(out, rng, s)
        if rng.random() < 0.3 * s:
            out = sensor_noise(out, rng, s)
        if rng.random() < 0.5 * s:
            out = jpeg_reencode(out, rng, int(rng.integers(40, 96)))
        return out


def geometry(rgb: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """One perspective warp: rotation, scale, shift, corner jitter and an optional flip."""
    h, w = rgb.shape[:2]
    angle = rng.uniform(-15, 15) * s
    scale = 1.0 + rng.uniform(-0.12, 0.12) * s
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    rot[:, 2] += rng.uniform(-0.06, 0.06, size=2) * s * np.array([w, h])
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    dst = np.hstack([src, np.ones((4, 1), np.float32)]) @ rot.T
    dst += rng.uniform(-0.04, 0.04, size=(4, 2)) * s * np.array([w, h])
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    out = cv2.warpPerspective(
        rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def colour(rgb: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Brightness, contrast, saturation, hue and white balance in one float pass."""
    img = rgb.astype(np.float32)
    gains = 1.0 + rng.uniform(-0.08, 0.08, size=3) * s  # white balance
    img *= gains[None, None, :]
    brightness = 1.0 + rng.uniform(-0.25, 0.25) * s
    contrast = 1.0 + rng.uniform(-0.25, 0.25) * s
    mean = img.mean()
    img = (img - mean) * contrast + mean * brightness
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    saturation = 1.0 + rng.uniform(-0.3, 0.3) * s
    img = grey[..., None] + (img - grey[..., None]) * saturation
    out = np.clip(img, 0, 255).astype(np.uint8)
    hue = rng.uniform(-8, 8) * s  # degrees
    if abs(hue) >= 1.0:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + round(hue / 2)) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return out


def blur(rgb: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    """Gaussian (defocus) or linear motion blur, sized relative to the photo."""
    unit = max(rgb.shape[:2]) / 224.0  # so the blur is visible at model resolution
    if rng.random() < 0.5:
        sigma = max(0.3, rng.uniform(0.3, 1.5) * s * unit)
        return cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma)
    length = max(3, round(rng.uniform(3, 9) * s * unit) | 1)
    kernel: np.ndarray = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
    kernel = np.asarray(cv2.warpAffine(kernel, rot, (length, length)), np.float32)
    kernel = kernel / max(float(kernel.sum()), 1e-6)
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT_101)


def sensor_noise(rgb: np.ndarray, rng: np.random.Generator, s: float) -> np.ndarray:
    sigma = rng.uniform(2.0, 10.0) * s
    noise = rng.normal(0.0, sigma, size=rgb.shape).astype(np.float32)
    return np.clip(rgb.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def jpeg_reencode(rgb: np.ndarray, rng: np.random.Generator, quality: int) -> np.ndarray:
    del rng
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if decoded is None:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        return rgb
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
