"""The shopper's printable return label: the QR code the dock reads, as PNG and PDF.

The label is a 4 x 6 inch thermal-label page at 203 dpi (812 x 1218 px), the size
parcel printers and most carrier drop-off points take; on a home printer it prints at
that size on A4 or Letter. The QR code holds the return id and nothing else, which is
exactly what the dock station accepts from a label (``serving.dock.identify``: 1-64
letters, digits and ``_.:-``); the id is printed under it in large type for a person to
type in when a code is damaged. Pillow draws both formats (its PDF writer embeds the
same raster), so the label needs nothing beyond the serving install.

Issuing is a lifecycle step (``issue``): an approved (or reviewer-approved) return moves
to ``label_issued`` once, with its ``label.issued`` event; fetching the label changes
nothing and works again as often as the shopper needs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from serving.domain_errors import Conflict
from serving.services import lifecycle, outbox
from serving.services.service import ReturnLensService
from serving.storage import repo

DPI = 203
SIZE = (4 * DPI, 6 * DPI)
LABEL_STATUSES = ("approved", "reviewed", "label_issued")  # a label may be printed
FORMATS = {"png": "image/png", "pdf": "application/pdf"}


@dataclass(frozen=True)
class LabelFacts:
    return_id: str
    order_id: str
    sku: str
    item_name: str
    issued_at: datetime


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def qr_image(text: str, size: int) -> Image.Image:
    """A black-on-white QR code of ``text``, at most ``size`` px, whole pixels per module."""
    code = qrcode.QRCode(border=4, box_size=1, error_correction=ERROR_CORRECT_M)
    code.add_data(text)
    code.make(fit=True)
    modules = code.get_matrix()
    box = max(1, size // len(modules))
    qr = Image.new("L", (len(modules) * box, len(modules) * box), 255)
    qd = ImageDraw.Draw(qr)
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if dark:
                qd.rectangle((x * box, y * box, (x + 1) * box - 1, (y + 1) * box - 1), fill=0)
    return qr


def save(page: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "pdf":
        page.save(out, format="PDF", resolution=DPI)
    else:
        page.save(out, format="PNG", dpi=(DPI, DPI), optimize=True)
    return out.getvalue()


def centred_lines(draw: ImageDraw.ImageDraw, y: int, lines: list[tuple[str, int]]) -> int:
    """Draw each (text, size) centred on the page from ``y``; the y below the last."""
    for text, size in lines:
        face = font(size)
        w = draw.textlength(text, font=face)
        draw.text(((SIZE[0] - w) / 2, y), text, font=face, fill=0)
        y += size + 22
    return y


def render(facts: LabelFacts, fmt: str) -> bytes:
    """The label as ``fmt`` ("png" or "pdf") bytes."""
    page = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(page)
    width = SIZE[0]
    draw.rectangle((0, 0, width, 150), fill=0)
    draw.text((40, 40), "RETURN", font=font(72), fill=255)
    qr = qr_image(facts.return_id, 600)
    page.paste(qr, ((width - qr.width) // 2, 190))
    y = 190 + qr.height + 30
    lines = [
        (facts.return_id, 40),
        (f"Order {facts.order_id}", 34),
        (f"{facts.item_name} ({facts.sku})"[:44], 30),
        (f"Issued {facts.issued_at:%Y-%m-%d}", 28),
        ("Stick this label on the parcel. Do not cover the code.", 24),
    ]
    centred_lines(draw, y, lines)
    return save(page, fmt)


def _no_label(return_id: str, status: str) -> Conflict:
    return Conflict(
        f"Return {return_id} is {status}; a return label is issued once it is approved.",
        code="no_label",
        details={"status": status},
    )


def _facts(svc: ReturnLensService, return_id: str) -> LabelFacts:
    with svc.db.read() as s:
        ret = repo.require_return(s, return_id)
        if ret.status not in LABEL_STATUSES:
            raise _no_label(return_id, ret.status)
        item = repo.get_catalog_item(s, ret.sku)
        issued = next(
            (e.at for e in lifecycle.timeline(s, ret) if e.status == "label_issued"),
            ret.updated_at,
        )
        return LabelFacts(ret.id, ret.order_id, ret.sku, item.name if item else ret.sku, issued)


def label_bytes(svc: ReturnLensService, return_id: str, fmt: str) -> bytes:
    return render(_facts(svc, return_id), fmt)


def issue(svc: ReturnLensService, return_id: str, *, actor: str, label_url: str) -> str:
    """Issue the label (once): approved -> label_issued, with its event. The status."""
    now = svc.now()
    with svc.db.write() as s:
        ret = repo.require_return(s, return_id, lock=True)
        if ret.status == "label_issued":
            return ret.status
        if ret.status not in LABEL_STATUSES:
            raise _no_label(return_id, ret.status)
        lifecycle.move(s, ret, "label_issued", actor=actor, why="return label issued", now=now)
        outbox.emit(
            s,
            type="label.issued",
            return_id=return_id,
            payload={"label_url": label_url, "order_id": ret.order_id, "sku": ret.sku},
            now=now,
        )
        return ret.status
