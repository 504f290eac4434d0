"""Deterministic benchmark photos: 12-megapixel phone-like JPEGs and 1600 px web JPEGs.

Source: the synthetic generator (``vision.synth.render_photo``, torch-free) renders
returned items at 1024 px; the first scenes whose photo passes the shopper quality gate
are kept (a shopper's photo usually does). The centre 4:3 crop of each square is
upscaled (bicubic) to the phone's frame (4032 x 3024), then a lens vignette and
per-photo sensor noise (luma sigma 4, chroma sigma 1.5) are added, and it is encoded by
libjpeg at quality 92 with 4:2:0 chroma (no metadata). The noise gives the texture that
makes a phone JPEG 2-5 MB instead of the few hundred kB of a flat render. The 1600 px
set is the same frame downscaled with area averaging (as the shopper page's canvas
does) with lighter noise, at the page's JPEG quality 0.9.

Every photo the harness uploads is *new bytes and new pixels* (its own noise offset), so
the service's duplicate checks and its content-addressed photo store never short-cut
the work; ``PhotoFactory.make(i)`` is deterministic in ``i``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from benchmarks.harness.common import log

RENDER_SIZE = 1024
PHONE = (4032, 3024)
WEB_LONG_SIDE = 1600
QUICK_PHONE = (800, 600)
QUICK_WEB_LONG_SIDE = 640
GRADES = ("A_new", "B_like_new", "C_good", "D_fair")
SOURCE_NOTE = (
    "vision.synth render_photo at 1024 px, centre 4:3 crop, bicubic upscale to "
    "4032 x 3024, vignette + per-photo sensor noise "
    "(luma sigma 4, chroma 1.5), libjpeg q92 4:2:0; 1600 px set: area "
    "downscale of the same scenes, noise sigma 1.5, q90 (the page's quality)"
)
OFFSETS = 31  # noise offsets per axis: 961 unique photos per base scene


@dataclass(frozen=True)
class PhotoKind:
    name: str  # "12mp" | "1600px"
    width: int
    height: int
    quality: int
    luma_sigma: float
    chroma_sigma: float


def kinds(quick: bool) -> tuple[PhotoKind, PhotoKind]:
    phone = QUICK_PHONE if quick else PHONE
    long_side = QUICK_WEB_LONG_SIDE if quick else WEB_LONG_SIDE
    web = (long_side, round(long_side * phone[1] / phone[0]))
    return (
        PhotoKind("12mp", phone[0], phone[1], 92, 4.0, 1.5),
        PhotoKind("1600px", web[0], web[1], 90, 1.5, 0.5),
    )


def _scene(index: int, seed: int, render_size: int) -> np.ndarray:
    """One rendered returned item, RGB uint8 square."""
    from vision.synth import catalog_skus, render_photo, sample_state

    skus = catalog_skus(seed + 3, 2)
    sku = skus[(index * 5) % len(skus)]
    rng = np.random.default_rng([seed, index, 11])
    state = sample_state(sku, GRADES[index % len(GRADES)], rng)
    rgb, _mask = render_photo(sku, state, rng, render_size)
    return rgb


def _crop_43(square: np.ndarray) -> np.ndarray:
    side = square.shape[0]
    crop_h = round(side * 3 / 4)
    top = (side - crop_h) // 2
    return square[top : top + crop_h]


def _passes_gate(rgb: np.ndarray) -> bool:
    """Would a shopper's photo of this scene pass the quality gate? (blur, framing...)
    The resolution check is left out: the photo is upscaled to the phone frame later."""
    from dataclasses import replace

    from vision.decode import decode_image
    from vision.quality import PROFILES, assess_quality

    gate = replace(PROFILES["shopper"], min_long_side=0, min_short_side=0)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    photo = decode_image(buf.tobytes(), target_long_side=None)
    return bool(ok) and assess_quality(photo, gate, profile="shopper").passed


def passing_scenes(count: int, seed: int, render_size: int, tries: int = 64) -> list[np.ndarray]:
    """The first ``count`` rendered scenes whose 4:3 crop passes the shopper gate, so the
    service runs the whole chain (a retake would skip nothing, but would be unrealistic)."""
    found: list[np.ndarray] = []
    for i in range(tries):
        crop = _crop_43(_scene(i, seed, render_size))
        if _passes_gate(crop):
            found.append(crop)
            if len(found) == count:
                return found
    if not found:
        raise RuntimeError("no rendered scene passes the shopper quality gate")
    return found


def _phone_frame(crop: np.ndarray, width: int, height: int) -> np.ndarray:
    """4:3 render -> width x height photo: bicubic upscale plus a lens vignette."""
    frame = cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.ogrid[-1.0 : 1.0 : complex(0, height), -1.0 : 1.0 : complex(0, width)]
    gain = (1.0 - 0.18 * (xs * xs * 0.75 + ys * ys)).astype(np.float32)
    return np.clip(frame.astype(np.float32) * gain[..., None], 0, 255).astype(np.uint8)


def _noise(
    shape: tuple[int, int], luma: float, chroma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Signed noise split into (positive, negative) uint8 planes for saturating add/sub."""
    h, w = shape
    n = rng.normal(0.0, luma, (h, w, 1)).astype(np.float32)
    n = n + rng.normal(0.0, chroma, (h, w, 3)).astype(np.float32)
    n = np.rint(n)
    return (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))


class PhotoFactory:
    """Unique JPEGs of one kind from a few base scenes; ``make(i)`` is deterministic."""

    def __init__(
        self,
        kind: PhotoKind,
        crops: list[np.ndarray],
        *,
        frame_size: tuple[int, int] = PHONE,
        seed: int = 0,
    ) -> None:
        """``crops``: 4:3 renders; ``frame_size``: the phone frame built before any downscale."""
        self.kind = kind
        rng = np.random.default_rng([seed, 97])
        self.bases: list[np.ndarray] = []
        for crop in crops:
            frame = _phone_frame(crop, *frame_size)
            if (frame.shape[1], frame.shape[0]) != (kind.width, kind.height):
                frame = cv2.resize(frame, (kind.width, kind.height), interpolation=cv2.INTER_AREA)
            self.bases.append(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.pos, self.neg = _noise(
            (kind.height + OFFSETS, kind.width + OFFSETS), kind.luma_sigma, kind.chroma_sigma, rng
        )

    def pixels(self, index: int) -> np.ndarray:
        """BGR pixels of photo ``index`` (scene index % scenes, noise offset by the rest)."""
        base = self.bases[index % len(self.bases)]
        k = index // len(self.bases)
        dy, dx = k % OFFSETS, (k // OFFSETS) % OFFSETS
        h, w = base.shape[:2]
        out = cv2.add(base, self.pos[dy : dy + h, dx : dx + w])
        return cv2.subtract(out, self.neg[OFFSETS - 1 - dy : OFFSETS - 1 - dy + h, dx : dx + w])

    def make(self, index: int) -> bytes:
        ok, buf = cv2.imencode(
            ".jpg", self.pixels(index), [cv2.IMWRITE_JPEG_QUALITY, self.kind.quality]
        )
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        return buf.tobytes()

    def batch(self, start: int, count: int) -> list[bytes]:
        return [self.make(start + i) for i in range(count)]


def make_factories(quick: bool, seed: int = 0) -> dict[str, PhotoFactory]:
    log("rendering benchmark photos (synthetic scenes -> phone-like JPEGs)")
    render = 256 if quick else RENDER_SIZE
    scenes = 2 if quick else 4
    phone, web = kinds(quick)
    crops = passing_scenes(scenes, seed, render)
    size = (phone.width, phone.height)
    return {k.name: PhotoFactory(k, crops, frame_size=size, seed=seed) for k in (phone, web)}


def describe(factories: dict[str, PhotoFactory], sample: int = 8) -> dict[str, Any]:
    """Sizes of a sample of each kind, for inputs.json and the summary."""
    out: dict[str, Any] = {"source": SOURCE_NOTE}
    for name, f in factories.items():
        sizes = [len(f.make(10_000 + i)) for i in range(sample)]
        out[name] = {
            "width": f.kind.width,
            "height": f.kind.height,
            "megapixels": round(f.kind.width * f.kind.height / 1e6, 2),
            "jpeg_quality": f.kind.quality,
            "scenes": len(f.bases),
            "bytes_min": min(sizes),
            "bytes_median": int(statistics.median(sizes)),
            "bytes_max": max(sizes),
        }
    return out
