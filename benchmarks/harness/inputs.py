"""Deterministic benchmark photos: 12-megapixel phone-like JPEGs and 1600 px web JPEGs.

Source: the synthetic generator (``vision.synth.render_photo``, torch-free) renders
returned items at 1024 px; only scenes whose photo passes the shopper quality gate are
used (a shopper's photo usually does; see ``scenes``, which caches them on disk). The
centre 4:3 crop of each square gets a lens vignette and is upscaled (bicubic) to the
phone's frame (4032 x 3024), then per-photo sensor noise (luma sigma 4, chroma sigma
1.5) is added and it is encoded by libjpeg at quality 92 with 4:2:0 chroma (no
metadata). The noise gives the texture that makes a phone JPEG 2-5 MB instead of the
few hundred kB of a flat render. The 1600 px photos are such a frame downscaled with
area averaging (as the shopper page's canvas does) with lighter noise, at the page's
JPEG quality 0.9.

Distinct items, as shoppers send them: photo ``i`` of a kind, for ``i`` below the
factory's ``distinct`` count, is the only photo of its rendered scene, and the two kinds
draw disjoint scenes (12 MP the even-numbered passing scenes, 1600 px the odd ones), so
no upload of a run repeats an item and the service's copy detection and perceptual-hash
checks see what real traffic gives them. ``distinct`` covers the service plan's photos
per kind. Indices past it (warm-ups, the explicit copy-heavy cell) map onto a few spare
scenes per kind with a new noise offset each: near-duplicates, on purpose.
``PhotoFactory.make(i)`` is deterministic in ``i``; frames are built per call from the
cached crop, so hundreds of 12 MP arrays are never held.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.harness.common import log
from benchmarks.harness.scenes import SceneCache

RENDER_SIZE = 1024
QUICK_RENDER_SIZE = 256
PHONE = (4032, 3024)
WEB_LONG_SIDE = 1600
QUICK_PHONE = (800, 600)
QUICK_WEB_LONG_SIDE = 640
SPARES = 6  # scenes per kind for indices past the distinct ones (warm-ups, repeats)
SOURCE_NOTE = (
    "vision.synth render_photo at 1024 px, gate-passing scenes only, one distinct scene "
    "per timed photo, 12 MP and 1600 px sets from disjoint scenes; centre 4:3 crop, "
    "vignette, bicubic upscale to 4032 x 3024, per-photo sensor noise "
    "(luma sigma 4, chroma 1.5), libjpeg q92 4:2:0; 1600 px set: area "
    "downscale of such a frame, noise sigma 1.5, q90 (the page's quality)"
)
OFFSETS = 31  # noise offsets per axis: 961 different noise fields per factory


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


def _vignette(crop: np.ndarray) -> np.ndarray:
    """Lens fall-off, applied before the upscale: the gain is smooth, so this matches a
    vignette of the full frame while costing a 12th of the float work."""
    h, w = crop.shape[:2]
    ys, xs = np.ogrid[-1.0 : 1.0 : complex(0, h), -1.0 : 1.0 : complex(0, w)]
    gain = (1.0 - 0.18 * (xs * xs * 0.75 + ys * ys)).astype(np.float32)
    return np.clip(crop.astype(np.float32) * gain[..., None], 0, 255).astype(np.uint8)


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
    """JPEGs of one kind, one scene per index below ``distinct``; ``make(i)`` is deterministic."""

    def __init__(
        self,
        kind: PhotoKind,
        crops: Sequence[Path],
        *,
        spares: Sequence[Path],
        frame_size: tuple[int, int] = PHONE,
        seed: int = 0,
    ) -> None:
        """``crops``: one cached 4:3 render (PNG) per distinct photo; ``spares``: the
        scenes repeated for indices past them; ``frame_size``: the phone frame built
        before any downscale."""
        if not spares:
            raise ValueError("at least one spare scene is needed")
        self.kind, self.frame_size = kind, frame_size
        self.paths = [*crops, *spares]
        self.distinct, self.spares = len(crops), len(spares)
        rng = np.random.default_rng([seed, 97])
        self.pos, self.neg = _noise(
            (kind.height + OFFSETS, kind.width + OFFSETS), kind.luma_sigma, kind.chroma_sigma, rng
        )

    def scene(self, index: int) -> int:
        """Position in ``paths`` of photo ``index``'s scene."""
        if index < 0:
            raise ValueError("photo indices start at 0")
        if index < self.distinct:
            return index
        return self.distinct + (index - self.distinct) % self.spares

    def frame(self, index: int) -> np.ndarray:
        """BGR pixels of photo ``index`` before noise: vignette, phone frame, downscale."""
        path = self.paths[self.scene(index)]
        crop = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if crop is None:
            raise RuntimeError(f"cannot read benchmark scene {path}")
        frame = cv2.resize(_vignette(crop), self.frame_size, interpolation=cv2.INTER_CUBIC)
        if (frame.shape[1], frame.shape[0]) != (self.kind.width, self.kind.height):
            size = (self.kind.width, self.kind.height)
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        return frame

    def pixels(self, index: int) -> np.ndarray:
        """BGR pixels of photo ``index``: its frame plus noise at an offset set by ``index``
        (so repeats of a spare scene differ in every pixel)."""
        base = self.frame(index)
        dy, dx = index % OFFSETS, (index // OFFSETS) % OFFSETS
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


def photos_per_kind(quick: bool) -> int:
    """Photos the service plan uploads per kind (the bombs and memory sections use fewer)."""
    from benchmarks.harness.service_load import plan

    cells = plan(quick)
    return max(sum(c.requests * c.photos for c in cells if c.kind == k) for k in ("12mp", "1600px"))


def make_factories(
    quick: bool,
    seed: int = 0,
    *,
    scenes: int | None = None,
    spares: int = SPARES,
    cache_root: Path | None = None,
    workers: int | None = None,
) -> dict[str, PhotoFactory]:
    """One factory per kind with ``scenes`` distinct scenes each (default: the service
    plan's photos per kind), rendering the scenes the cache lacks first."""
    per_kind = photos_per_kind(quick) if scenes is None else scenes
    log(f"benchmark photos: {per_kind} distinct scenes per kind (+{spares} spare)")
    render = QUICK_RENDER_SIZE if quick else RENDER_SIZE
    cache = SceneCache(seed, render, cache_root)
    paths = cache.ensure(2 * (per_kind + spares), workers)
    phone, web = kinds(quick)
    size = (phone.width, phone.height)
    out = {}
    for offset, kind in enumerate((phone, web)):  # even scenes for 12 MP, odd for 1600 px
        own = paths[offset::2]
        out[kind.name] = PhotoFactory(
            kind, own[:per_kind], spares=own[per_kind:], frame_size=size, seed=seed
        )
    return out


def describe(factories: dict[str, PhotoFactory], sample: int = 8) -> dict[str, Any]:
    """Sizes of a sample of each kind and the scene counts, for inputs.json and the summary."""
    out: dict[str, Any] = {
        "source": SOURCE_NOTE,
        "distinct_scenes": sum(f.distinct for f in factories.values()),
    }
    for name, f in factories.items():
        sizes = [len(f.make(i)) for i in range(min(sample, f.distinct) or 1)]
        out[name] = {
            "width": f.kind.width,
            "height": f.kind.height,
            "megapixels": round(f.kind.width * f.kind.height / 1e6, 2),
            "jpeg_quality": f.kind.quality,
            "scenes": f.distinct,
            "spare_scenes": f.spares,
            "bytes_min": min(sizes),
            "bytes_median": int(statistics.median(sizes)),
            "bytes_max": max(sizes),
        }
    return out
