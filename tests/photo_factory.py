"""Real test photos built in memory: encoded bytes, item-on-a-table scenes, degradations.

Nothing here is mocked: scenes are rendered to RGB arrays and encoded by the real
JPEG/PNG/WebP encoders, and the decoder under test reads those bytes. The scenes stand in
for a shopper's photo of a returned item: a textured object (box, mug, phone, book) with
edges, printed text, a real photo as printed artwork, shading and a contact shadow, on a
plain, wood or fabric table, plus sensor noise and JPEG compression.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

ITEM_KINDS = ("box", "mug", "phone", "book", "plainbox")
BACKGROUNDS = ("plain", "wood", "fabric")


# ----------------------------------------------------------------------------- encoding
def encode(
    rgb: np.ndarray,
    fmt: str = "JPEG",
    *,
    quality: int = 90,
    exif_orientation: int | None = None,
    **kwargs: object,
) -> bytes:
    """Encode an RGB(A)/L array with Pillow; optionally write an EXIF Orientation tag."""
    im = Image.fromarray(rgb)
    buf = io.BytesIO()
    if fmt in ("JPEG", "WEBP"):
        kwargs.setdefault("quality", quality)
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    im.save(buf, format=fmt, **kwargs)  # type: ignore[arg-type]
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with a valid CRC, so decoders accept the header as real."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def solid_png(
    width: int, height: int, rgba: tuple[int, int, int, int] = (120, 30, 200, 255)
) -> bytes:
    """A real RGBA PNG of one colour, built row by row (the first row raw, the others
    'Up'-filtered zeros), so a 36-megapixel file costs the test a few MB, not 144."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    z = zlib.compressobj(9)
    parts = [z.compress(b"\x00" + bytes(rgba) * width)]
    up = b"\x02" + bytes(4 * width)
    parts += [z.compress(up) for _ in range(height - 1)]
    parts.append(z.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid-looking PNG whose IHDR declares ``width`` x ``height`` RGB pixels.

    The IDAT holds one tiny compressed row, so the file is a few hundred bytes; a decoder
    that trusted the header would allocate width * height * 3 bytes (7.5 GB here).
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 64))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def webp_bomb(width: int, height: int) -> bytes:
    """A real lossless WebP whose VP8L header is patched to declare width x height."""
    data = bytearray(encode(np.zeros((16, 16, 3), np.uint8), "WEBP", lossless=True))
    assert data[12:16] == b"VP8L" and data[20] == 0x2F
    old = int.from_bytes(data[21:25], "little")
    bits = (old & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14)
    data[21:25] = bits.to_bytes(4, "little")
    return bytes(data)


def asymmetric_pattern(width: int = 160, height: int = 96) -> np.ndarray:
    """An RGB image whose every rotation/flip differs: coloured quadrants, no symmetry."""
    img = np.zeros((height, width, 3), np.uint8)
    hh, hw = height // 2, width // 2
    img[:hh, :hw] = (255, 0, 0)
    img[:hh, hw:] = (0, 255, 0)
    img[hh:, :hw] = (0, 0, 255)
    img[hh:, hw:] = (255, 255, 0)
    img[: height // 6, : width // 6] = (255, 255, 255)  # marks the top-left corner
    return img


# ------------------------------------------------------------------------------ scenes
@dataclass(frozen=True)
class Scene:
    """A rendered photo and the ground-truth item mask (1 = item)."""

    rgb: np.ndarray
    mask: np.ndarray  # HxW uint8 {0,1}

    @property
    def coverage(self) -> float:
        return float(self.mask.mean())


@functools.lru_cache(maxsize=8)
def _real_texture(index: int) -> np.ndarray:
    from skimage import data

    loaders = (data.astronaut, data.chelsea, data.coffee, data.rocket, data.immunohistochemistry)
    img = np.ascontiguousarray(loaders[index % len(loaders)]())
    img.flags.writeable = False  # cached: shared by every caller
    return img


def _smooth_noise(rng: np.random.Generator, w: int, h: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit std, made at 1/8 size (a large blur is slow)."""
    noise = rng.normal(0, 1, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
    small = np.asarray(cv2.GaussianBlur(noise, (0, 0), sigma / 8), np.float32)
    small /= max(float(small.std()), 1e-6)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), np.float32)


def _soft_shadow(mask: np.ndarray, shift: tuple[int, int], sigma: float) -> np.ndarray:
    """The item's mask shifted and blurred (at 1/4 size, then upsampled)."""
    h, w = mask.shape
    small = cv2.resize(
        np.roll(mask.astype(np.float32), shift, (0, 1)),
        (w // 4, h // 4),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.resize(
        cv2.GaussianBlur(small, (0, 0), sigma / 4), (w, h), interpolation=cv2.INTER_LINEAR
    )


def _background(rng: np.random.Generator, kind: str, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(120, 225, 3).astype(np.float32)
    if kind == "wood":
        base = np.array(
            [rng.uniform(120, 170), rng.uniform(80, 110), rng.uniform(45, 70)], np.float32
        )
        warp = _smooth_noise(rng, w, h, 40.0) * 18.0  # pixels of waviness
        grain = np.sin((yy + warp + 0.05 * xx) / rng.uniform(5, 9)) * 0.5 + 0.5
        streak = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
        shade = 1.0 - 0.18 * grain[..., None] + 0.04 * streak[..., None]
        bg = np.asarray(base * shade, np.float32)
    elif kind == "fabric":
        weave = (np.sin(xx * 1.3) * np.sin(yy * 1.3))[..., None] * 10
        fuzz = cv2.GaussianBlur(rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 1.2)
        bg = base + weave + fuzz[..., None]
    else:
        bg = np.broadcast_to(base, (h, w, 3)).astype(np.float32)
    # Soft room lighting: a gradient and a vignette.
    gx, gy = rng.uniform(-0.15, 0.15, 2)
    light = 1 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)
    vign = 1 - 0.18 * (((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * 2)
    return np.asarray(bg * (light * vign)[..., None].astype(np.float32), np.float32)


def _text_lines(
    img: np.ndarray,
    rng: np.random.Generator,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    colour: tuple[int, int, int],
) -> None:
    """Printed words: real glyphs from OpenCV's Hershey font."""
    letters = "ABCDEFGHKLMNPRSTUVWXYZ0123456789"
    scale = max(0.4, (y1 - y0) / 160)
    y = y0 + int(30 * scale)
    while y < y1:
        word = "".join(rng.choice(list(letters), size=int(rng.integers(4, 12))))
        cv2.putText(
            img,
            word,
            (x0, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            colour,
            max(1, int(2 * scale)),
            cv2.LINE_AA,
        )
        y += int(34 * scale)


def _paste(canvas: np.ndarray, mask: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    h, w = patch.shape[:2]
    canvas[y : y + h, x : x + w] = patch
    mask[y : y + h, x : x + w] = 1


def _draw_box(
    c: np.ndarray,
    m: np.ndarray,
    rng: np.random.Generator,
    x: int,
    y: int,
    w: int,
    h: int,
    *,
    plain: bool = False,
) -> None:
    col = np.array([rng.uniform(150, 200), rng.uniform(110, 150), rng.uniform(60, 90)])
    depth = int(0.18 * h)
    front = np.array(
        [[x, y + depth], [x + w - depth, y + depth], [x + w - depth, y + h], [x, y + h]], np.int32
    )
    top = np.array(
        [[x, y + depth], [x + depth, y], [x + w, y], [x + w - depth, y + depth]], np.int32
    )
    side = np.array(
        [[x + w - depth, y + depth], [x + w, y], [x + w, y + h - depth], [x + w - depth, y + h]],
        np.int32,
    )
    for poly, gain in ((front, 1.0), (top, 1.15), (side, 0.75)):
        cv2.fillPoly(c, [poly], tuple(float(v) for v in np.clip(col * gain, 0, 255)), cv2.LINE_AA)
        cv2.fillPoly(m, [poly], 1)
    if plain:  # a flat, untextured carton: only its outline and shading
        return
    cv2.polylines(c, [front, top, side], True, (70, 50, 30), 2, cv2.LINE_AA)
    # Packing tape, a label with text and a barcode.
    cv2.line(
        c,
        (x + depth // 2, y + depth // 2),
        (x + w - depth // 2, y + depth // 2),
        (200, 180, 140),
        max(3, depth // 5),
        cv2.LINE_AA,
    )
    lx, ly, lw, lh = x + w // 10, y + depth + h // 8, w // 2, h // 3
    cv2.rectangle(c, (lx, ly), (lx + lw, ly + lh), (240, 240, 235), -1)
    _text_lines(c, rng, lx + 8, ly + 4, lx + lw - 8, ly + lh * 2 // 3, (20, 20, 20))
    bx = lx + 8
    while bx < lx + lw - 10:
        bw = int(rng.integers(1, 4))
        cv2.rectangle(c, (bx, ly + lh * 3 // 4), (bx + bw, ly + lh - 6), (10, 10, 10), -1)
        bx += bw + int(rng.integers(1, 4))


def _draw_mug(
    c: np.ndarray, m: np.ndarray, rng: np.random.Generator, x: int, y: int, w: int, h: int
) -> None:
    body_w = int(w * 0.72)
    col = tuple(float(v) for v in rng.uniform(30, 230, 3))
    ex = body_w // 2
    ey = max(6, h // 10)
    cx = x + ex
    handle = ((x + body_w, y + h // 2), (w - body_w + 6, h // 4))
    cv2.ellipse(c, handle[0], handle[1], 0, -90, 90, col, max(6, w // 18), cv2.LINE_AA)
    cv2.ellipse(m, handle[0], handle[1], 0, -90, 90, 1, max(6, w // 18))
    cv2.rectangle(c, (x, y + ey), (x + body_w, y + h - ey), col, -1)
    cv2.ellipse(c, (cx, y + h - ey), (ex, ey), 0, 0, 180, col, -1, cv2.LINE_AA)
    cv2.rectangle(m, (x, y + ey), (x + body_w, y + h - ey), 1, -1)
    cv2.ellipse(m, (cx, y + h - ey), (ex, ey), 0, 0, 180, 1, -1)
    # Cylinder shading: darker towards both sides.
    xs = np.arange(x, x + body_w + 1)
    shade = 0.65 + 0.45 * np.sin(np.pi * (xs - x) / body_w)
    region = c[y : y + h, x : x + body_w + 1]
    gain = np.where(m[y : y + h, x : x + body_w + 1, None] > 0, shade[None, :, None], 1.0)
    region[:] = np.clip(region * gain, 0, 255).astype(np.uint8)
    cv2.ellipse(c, (cx, y + ey), (ex, ey), 0, 0, 360, (245, 245, 240), -1, cv2.LINE_AA)
    cv2.ellipse(c, (cx, y + ey), (ex - 6, ey - 3), 0, 0, 360, (60, 40, 30), -1, cv2.LINE_AA)
    cv2.ellipse(m, (cx, y + ey), (ex, ey), 0, 0, 360, 1, -1)
    logo = cv2.resize(_real_texture(int(rng.integers(0, 5))), (body_w // 2, h // 3))
    lx, ly = x + body_w // 4, y + h // 3
    c[ly : ly + logo.shape[0], lx : lx + logo.shape[1]] = logo
    _text_lines(
        c,
        rng,
        x + body_w // 4,
        y + h * 2 // 3 + 6,
        x + body_w * 3 // 4,
        y + h * 2 // 3 + 40,
        (250, 250, 250),
    )


def _draw_phone(
    c: np.ndarray, m: np.ndarray, rng: np.random.Generator, x: int, y: int, w: int, h: int
) -> None:
    r = max(8, w // 9)
    body = np.zeros(m.shape, np.uint8)
    cv2.rectangle(body, (x + r, y), (x + w - r, y + h), 1, -1)
    cv2.rectangle(body, (x, y + r), (x + w, y + h - r), 1, -1)
    for cx, cy in ((x + r, y + r), (x + w - r, y + r), (x + r, y + h - r), (x + w - r, y + h - r)):
        cv2.circle(body, (cx, cy), r, 1, -1, cv2.LINE_AA)
    c[body > 0] = rng.uniform(15, 60, 3)
    m |= body
    b = max(6, w // 20)
    sx0, sy0, sx1, sy1 = x + b, y + 3 * b, x + w - b, y + h - 3 * b
    screen = np.linspace(40, 110, sy1 - sy0)[:, None, None] * np.array([0.6, 0.8, 1.2])
    c[sy0:sy1, sx0:sx1] = screen
    icon = max(10, (sx1 - sx0) // 6)
    for row in range(4):
        for col in range(4):
            ix = sx0 + icon // 2 + col * int(icon * 1.4)
            iy = sy0 + icon + row * int(icon * 1.6)
            if ix + icon < sx1 and iy + icon < sy1:
                colour = tuple(float(v) for v in rng.uniform(40, 255, 3))
                cv2.rectangle(c, (ix, iy), (ix + icon, iy + icon), colour, -1, cv2.LINE_AA)
    _text_lines(c, rng, sx0 + 8, sy1 - (sy1 - sy0) // 4, sx1 - 8, sy1 - 8, (230, 230, 230))
    # A diagonal reflection band across the glass (not saturated).
    band = np.zeros(m.shape, np.float32)
    cv2.line(band, (sx0, sy1), (sx1, sy0), 1.0, max(8, w // 8), cv2.LINE_AA)
    lit = c + (band * 35.0)[..., None] * (body > 0)[..., None]
    c[:] = np.clip(lit, 0, 255).astype(np.uint8)


def _draw_book(
    c: np.ndarray, m: np.ndarray, rng: np.random.Generator, x: int, y: int, w: int, h: int
) -> None:
    spine = max(8, w // 14)
    cover = cv2.resize(
        _real_texture(int(rng.integers(0, 5))), (w - spine, h), interpolation=cv2.INTER_CUBIC
    )
    _paste(c, m, cover, x + spine, y)
    c[y : y + h, x : x + spine] = rng.uniform(30, 120, 3)
    m[y : y + h, x : x + spine] = 1
    band_h = max(30, h // 6)
    c[y + h // 12 : y + h // 12 + band_h, x + spine : x + w] = (245, 240, 230)
    _text_lines(c, rng, x + spine + 10, y + h // 12, x + w - 10, y + h // 12 + band_h, (25, 25, 90))
    cv2.rectangle(c, (x, y), (x + w, y + h), (20, 20, 20), 2, cv2.LINE_AA)


def _draw_plain_box(
    c: np.ndarray, m: np.ndarray, rng: np.random.Generator, x: int, y: int, w: int, h: int
) -> None:
    _draw_box(c, m, rng, x, y, w, h, plain=True)


_DRAW = {
    "box": _draw_box,
    "mug": _draw_mug,
    "phone": _draw_phone,
    "book": _draw_book,
    "plainbox": _draw_plain_box,
}
# width / height
_ASPECT = {"box": 1.25, "mug": 1.05, "phone": 0.52, "book": 0.75, "plainbox": 1.25}


def item_scene(
    seed: int,
    *,
    kind: str = "box",
    background: str = "plain",
    size: tuple[int, int] = (1200, 900),
    item_fraction: float = 0.55,
    center: tuple[float, float] = (0.5, 0.5),
    noise: float = 3.0,
) -> Scene:
    """An item photographed on a table, as a shopper would frame it.

    ``item_fraction`` is the item's height relative to the frame height (or its width
    relative to the frame width, whichever binds first); ``center`` is the item centre in
    frame fractions. Values above ~1 or centres near the border make the item run off the
    edges.
    """
    rng = np.random.default_rng(seed)
    fw, fh = size
    canvas = _background(rng, background, fw, fh)
    ih = int(fh * item_fraction)
    iw = int(ih * _ASPECT[kind])
    if iw > fw * item_fraction * 1.2:
        iw = int(fw * item_fraction * 1.2)
        ih = int(iw / _ASPECT[kind])
    x = int(center[0] * fw - iw / 2)
    y = int(center[1] * fh - ih / 2)
    # Draw on a canvas padded just enough for the item (and a mug handle) to fit, so
    # items may run off the frame.
    pad = max(0, -x, -y, x + iw - fw, y + ih - fh) + iw // 4 + 8
    big = np.pad(canvas, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    big_mask = np.zeros(big.shape[:2], np.uint8)
    item = np.clip(big, 0, 255).astype(np.uint8)
    _DRAW[kind](item, big_mask, rng, x + pad, y + pad, iw, ih)
    # Contact shadow below and right of the item, then the item on top.
    shadow = _soft_shadow(big_mask, (ih // 30 + 4, iw // 30 + 4), max(4.0, ih / 25))
    big *= 1 - 0.45 * shadow[..., None]
    big = np.where(big_mask[..., None] > 0, item.astype(np.float32), big)
    out = big[pad : pad + fh, pad : pad + fw]
    mask = big_mask[pad : pad + fh, pad : pad + fw].copy()
    out += rng.normal(0, noise, out.shape).astype(np.float32)
    return Scene(rgb=np.clip(out, 0, 255).astype(np.uint8), mask=mask)


@functools.lru_cache(maxsize=8)
def real_scene(name: str, long_side: int = 1200) -> np.ndarray:
    """A scikit-image sample photo upscaled to phone-like size (long side 1200)."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.dstack([img] * 3)
    img = np.ascontiguousarray(img[..., :3])
    h, w = img.shape[:2]
    s = long_side / max(h, w)
    out = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
    out.flags.writeable = False  # cached: shared by every caller
    return out


# ------------------------------------------------------------------------ degradations
def jpeg_roundtrip(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert bgr is not None
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def motion_blur(rgb: np.ndarray, length: int, angle_deg: float = 20.0) -> np.ndarray:
    """Linear camera-shake blur: a line kernel ``length`` pixels long."""
    line = np.zeros((length, length), np.float32)
    line[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle_deg, 1.0)
    k = np.asarray(cv2.warpAffine(line, rot, (length, length)), np.float32)
    return np.asarray(cv2.filter2D(rgb, -1, k / k.sum()))


def exposure(rgb: np.ndarray, gain: float, gamma: float = 1.0) -> np.ndarray:
    """Exposure shift in linear light: gain < 1 darkens, > 1 brightens (and clips)."""
    lin = (np.arange(256, dtype=np.float64) / 255.0) ** 2.2 * gain
    lut = (np.clip(lin, 0, 1) ** (1 / 2.2 / gamma) * 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(rgb), lut)


def add_glare(rgb: np.ndarray, center: tuple[float, float], radius_frac: float) -> np.ndarray:
    """A saturated specular blob (flash or window reflection) with a soft halo."""
    h, w = rgb.shape[:2]
    r = radius_frac * min(h, w)
    xx = (np.arange(w, dtype=np.float32) - center[0] * w) / r
    yy = (np.arange(h, dtype=np.float32) - center[1] * h) / r
    strength = np.clip(1.6 - 0.9 * (xx[None, :] ** 2 + yy[:, None] ** 2), 0, 1)[..., None]
    return np.clip(rgb * (1 - strength) + 255 * strength, 0, 255).astype(np.uint8)


def downscale(rgb: np.ndarray, long_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    return cv2.resize(
        rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
    )


def burn_out(rgb: np.ndarray) -> np.ndarray:
    """Overexposure until half of the frame clips (the meter exposed for a dark corner)."""
    median = float(np.median(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))) / 255.0
    return exposure(rgb, 1.0 / max(median**2.2, 1e-3))


def item_centre(mask: np.ndarray) -> tuple[float, float]:
    """Centre of the item mask in frame fractions (x, y)."""
    ys, xs = np.nonzero(mask)
    return float(xs.mean()) / mask.shape[1], float(ys.mean()) / mask.shape[0]


def crop_through_item(scene: Scene, *, fraction: float = 0.75, shift: float = 0.2) -> np.ndarray:
    """A 4:3 crop whose height is ``fraction`` of the item's, shifted sideways by
    ``shift`` of its width, resized back to the frame size: the item runs off the edges
    (what a shopper gets by standing too close)."""
    ys, xs = np.nonzero(scene.mask)
    h, w = scene.mask.shape
    win_h = fraction * (ys.max() - ys.min())
    win_w = win_h * w / h
    cx = xs.mean() + shift * win_w
    cy = ys.mean()
    x0 = int(np.clip(cx - win_w / 2, 0, w - win_w))
    y0 = int(np.clip(cy - win_h / 2, 0, h - win_h))
    crop = scene.rgb[y0 : y0 + int(win_h), x0 : x0 + int(win_w)]
    return cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC)
