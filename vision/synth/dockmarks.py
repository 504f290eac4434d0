"""Things stuck on a returned item that are never damage: parcel labels, stickers, stamps.

Each maker returns an RGBA patch (uint8, straight alpha) at pixel size; ``stick`` puts a
patch on the item cut-out. The rule that keeps the labels honest: an opaque decoration
never covers damage. ``stick`` tries a few positions where the patch lies wholly on the
item and over no damage pixel, and skips the decoration when none fits, so the damage
mask stays exactly what is visible and the grade still shows in the photo.
"""

from __future__ import annotations

import cv2
import numpy as np

from vision.synth.codes import FONT, barcode_patch, qr_patch, random_word, rma_code, text_block

RGBA = np.ndarray
TRIES = 8


def _rgba(h: int, w: int, color: tuple[int, int, int]) -> RGBA:
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3] = color
    out[..., 3] = 255
    return out


def _ink(patch: RGBA, gray: np.ndarray, y: int, x: int) -> None:
    """Print a greyscale mark (0 = ink) into the patch at (y, x), in place."""
    h, w = gray.shape
    region = patch[y : y + h, x : x + w, :3]
    np.minimum(region, gray[: region.shape[0], : region.shape[1], None], out=region)


def parcel_label(rng: np.random.Generator, width: int, code: str | None = None) -> RGBA:
    """A white/cream shipping label: carrier bar, address text, barcode, QR code."""
    w = max(24, width)
    h = int(w * rng.uniform(1.2, 1.5))
    tone = int(rng.integers(232, 252))
    lab = _rgba(h, w, (tone, tone, int(tone * rng.uniform(0.93, 1.0))))
    pad = max(2, w // 16)
    bar = max(2, h // 10)
    lab[pad : pad + bar, pad : w - pad, :3] = 25
    cv2.putText(lab, random_word(rng, 3, 5), (pad + 2, pad + bar - 2), FONT, bar / 32, (240,) * 3)
    text_block(lab, rng, (pad, pad + bar + pad, w - pad, pad + bar + h // 4), (30, 30, 30))
    qside = int(w * 0.55)
    qr = qr_patch(code or rma_code(rng), qside)
    qy = h - pad - qr.shape[0]
    _ink(lab, qr, qy, pad)
    bh = max(3, h // 8)
    _ink(lab, barcode_patch(rng, w - 2 * pad, bh), max(pad, qy - bh - pad), pad)
    side = w - 2 * pad - qr.shape[0] - pad
    if side > 4:
        text_block(lab, rng, (pad * 2 + qr.shape[0], qy, w - pad, h - pad), (40, 40, 40))
    cv2.rectangle(lab, (0, 0), (w - 1, h - 1), (200, 200, 200, 255), 1)
    return lab


def price_tag(rng: np.random.Generator, width: int) -> RGBA:
    colors = ((250, 250, 245), (252, 214, 60), (255, 150, 40), (250, 120, 150))
    c = colors[int(rng.integers(0, len(colors)))]
    w = max(16, width)
    h = max(10, int(w * rng.uniform(0.5, 0.7)))
    tag = _rgba(h, w, c)
    price = f"${int(rng.integers(1, 200))}.{int(rng.integers(0, 100)):02d}"
    text_block(tag, rng, (2, 1, w - 2, h // 2), (20, 20, 20), [price])
    _ink(tag, barcode_patch(rng, w - 6, max(2, h // 3)), h - h // 3 - 2, 3)
    return tag


def word_sticker(rng: np.random.Generator, width: int) -> RGBA:
    """FRAGILE / RETURN / OPEN BOX style stickers in loud colours with a white border."""
    words = ("FRAGILE", "RETURN", "OPEN BOX", "HANDLE WITH CARE", "INSPECTED", "RMA")
    colors = ((210, 30, 35), (240, 120, 20), (30, 140, 70), (30, 80, 190), (250, 210, 30))
    w = max(20, width)
    h = max(10, int(w * rng.uniform(0.35, 0.6)))
    stk = _rgba(h, w, colors[int(rng.integers(0, len(colors)))])
    b = max(1, h // 12)
    cv2.rectangle(stk, (b, b), (w - 1 - b, h - 1 - b), (255, 255, 255, 255), b)
    word = words[int(rng.integers(0, len(words)))]
    lines = [word, rma_code(rng)] if word in ("RETURN", "RMA") else [word]
    text_block(stk, rng, (3 * b, 2 * b, w - 3 * b, h - 2 * b), (255, 255, 255), lines)
    return stk


def dot_sticker(rng: np.random.Generator, width: int) -> RGBA:
    """A round colour-code dot (warehouse sorting dots)."""
    w = max(8, width // 2)
    dot = np.zeros((w, w, 4), np.uint8)
    c = tuple(int(v) for v in rng.integers(20, 255, 3))
    cv2.circle(dot, (w // 2, w // 2), w // 2 - 1, (*c, 255), -1, cv2.LINE_AA)
    return dot


def stamp(rng: np.random.Generator, width: int) -> RGBA:
    """An ink stamp (THIS SIDE UP, arrows, a round customs mark): translucent, speckled."""
    w = max(20, width)
    h = max(12, int(w * rng.uniform(0.4, 0.7)))
    ink = ((180, 30, 30), (30, 30, 30), (30, 50, 150))[int(rng.integers(0, 3))]
    out = np.zeros((h, w, 4), np.uint8)
    out[..., :3] = ink
    a = np.zeros((h, w), np.uint8)
    t = max(1, h // 14)
    if rng.random() < 0.4:
        cv2.circle(a, (w // 2, h // 2), min(w, h) // 2 - t, 255, t, cv2.LINE_AA)
        text_block(a, rng, (w // 4, h // 3, 3 * w // 4, 2 * h // 3), (255,), [random_word(rng)])
    else:
        cv2.rectangle(a, (t, t), (w - 1 - t, h - 1 - t), 255, t)
        word = ("THIS SIDE UP", "KEEP DRY", "DO NOT STACK", "PRIORITY")[int(rng.integers(0, 4))]
        text_block(a, rng, (3 * t, 2 * t, w - 3 * t, h - 2 * t), (255,), [word])
    speckle = rng.random((h, w)) < rng.uniform(0.1, 0.35)
    a[speckle] = 0
    out[..., 3] = (a * rng.uniform(0.55, 0.85)).astype(np.uint8)
    return out


STICKER_MAKERS = {"price_tag": price_tag, "sticker": word_sticker, "dot": dot_sticker}


def rotate(patch: RGBA, degrees: float) -> RGBA:
    """Rotate an RGBA patch about its centre onto a canvas that fits it whole."""
    h, w = patch.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c) + 1, int(h * c + w * s) + 1
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return np.asarray(cv2.warpAffine(patch, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=0))


def stick(rgba: np.ndarray, mask: np.ndarray, patch: RGBA, rng: np.random.Generator) -> bool:
    """Blend ``patch`` onto the item cut-out ``rgba`` in place, wholly on the item and over
    no damage (``mask`` bits); False, and nothing drawn, when no such place is found."""
    ph, pw = patch.shape[:2]
    H, W = mask.shape
    if ph >= H or pw >= W:
        return False
    pa = patch[..., 3] > 0
    ys, xs = np.nonzero(rgba[..., 3] > 200)
    if len(xs) == 0:
        return False
    for _ in range(TRIES):
        k = int(rng.integers(0, len(xs)))
        y = int(np.clip(ys[k] - ph // 2, 0, H - ph))
        x = int(np.clip(xs[k] - pw // 2, 0, W - pw))
        on_item = rgba[y : y + ph, x : x + pw, 3] > 200
        if not on_item[pa].all() or mask[y : y + ph, x : x + pw][pa].any():
            continue
        a = patch[..., 3:4].astype(np.float32) / 255
        region = rgba[y : y + ph, x : x + pw, :3].astype(np.float32)
        blended = region * (1 - a) + patch[..., :3].astype(np.float32) * a
        rgba[y : y + ph, x : x + pw, :3] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return True
    return False
