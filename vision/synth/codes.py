"""Machine-readable marks for the wide variety: QR codes, barcodes and printed text blocks.

The dock camera sees a parcel label with a QR code and a barcode on every item, and the
shipped model (trained on classic renders only) read those high-contrast squares as
damage. These helpers draw them as greyscale patches (0 = ink, 255 = paper) that the
label and sticker makers in ``dockmarks.py`` place on a coloured background. The QR
payloads are real (``qrcode`` package) so tests can decode them with OpenCV.
"""

from __future__ import annotations

import string

import cv2
import numpy as np
import qrcode
import qrcode.constants

_ALNUM = np.array(list(string.ascii_uppercase + string.digits))
FONT = cv2.FONT_HERSHEY_SIMPLEX


def rma_code(rng: np.random.Generator) -> str:
    """A return/tracking number like ``RMA-483920`` (short: a version-1 QR code)."""
    prefix = ("RMA", "RET", "TRK", "SHP")[int(rng.integers(0, 4))]
    return f"{prefix}-{int(rng.integers(100000, 1000000))}"


def random_word(rng: np.random.Generator, lo: int = 3, hi: int = 9) -> str:
    n = int(rng.integers(lo, hi + 1))
    return "".join(_ALNUM[rng.integers(0, 26, n)])


def qr_patch(text: str, side_px: int) -> np.ndarray:
    """(side, side) uint8 QR code of ``text`` with its quiet zone, nearest-neighbour scaled
    so the modules stay crisp (blur comes later, from the camera)."""
    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text)
    qr.make(fit=True)
    modules = np.asarray(qr.get_matrix(), dtype=bool)
    img = np.where(modules, 0, 255).astype(np.uint8)
    side = max(side_px, modules.shape[0])
    return np.asarray(cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST))


def barcode_patch(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """(h, w) uint8 1-D barcode: alternating bars of 1-4 unit widths between quiet zones.
    Not a valid symbology (nothing reads it); it only has to look like one."""
    units = rng.integers(1, 5, 60)
    bits = np.repeat(np.arange(len(units)) % 2 == 0, units)
    quiet = max(2, len(bits) // 12)
    row = np.concatenate([np.zeros(quiet, bool), bits, np.zeros(quiet, bool)])
    xs = (np.arange(max(w, 1)) * len(row) / max(w, 1)).astype(int)
    line = np.where(row[xs], 0, 255).astype(np.uint8)
    return np.repeat(line[None, :], max(h, 1), axis=0)


def text_block(
    img: np.ndarray,
    rng: np.random.Generator,
    box: tuple[int, int, int, int],
    color: tuple[int, ...],
    lines: list[str] | None = None,
) -> None:
    """Print lines of text (given, else random words) into ``box`` = (x0, y0, x1, y1) of a
    uint8 image, in place. The font scale follows the box height, so small labels get
    the unreadable grey texture a real address block has at photo resolution."""
    x0, y0, x1, y1 = box
    n = len(lines) if lines else int(rng.integers(2, 5))
    pitch = max(3.0, (y1 - y0) / max(n, 1))
    scale = max(0.15, pitch / 30.0)
    thick = 1 if pitch < 14 else 2
    for k in range(n):
        text = lines[k] if lines else " ".join(random_word(rng) for _ in range(3))
        y = int(y0 + pitch * (k + 0.8))
        (tw, _), _ = cv2.getTextSize(text, FONT, scale, thick)
        s = scale * min(1.0, (x1 - x0) / max(tw, 1))
        cv2.putText(img, text, (x0, y), FONT, s, color, thick, cv2.LINE_AA)
