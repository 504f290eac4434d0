"""The warehouse routing label of a dock inspection, reprinted after a re-disposition.

The dock station prints a routing label when it routes an item; when a reviewer changes
the disposition (``serving.services.redisposition``) the item needs a new one with the
new channel. The label says where the item goes in letters a person reads across a
warehouse (the channel, the tier), HOLD when it goes nowhere yet, and carries the
inspection id as a QR code so the next scan finds the record.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from serving.domain_errors import NotFound
from serving.services.labels import SIZE, centred_lines, font, qr_image, save
from serving.services.service import ReturnLensService
from serving.storage.tables import Inspection


def routing_label(svc: ReturnLensService, inspection_id: str, fmt: str = "png") -> bytes:
    with svc.db.read() as s:
        ins = s.get(Inspection, inspection_id)
        if ins is None:
            raise NotFound(f"There is no inspection {inspection_id!r}.", code="unknown_inspection")
        channel, tier, grade = ins.channel, ins.tier, ins.grade
        return_id, recovery = ins.return_id, ins.expected_recovery
    page = Image.new("L", SIZE, 255)
    draw = ImageDraw.Draw(page)
    heading = (channel or "HOLD - REVIEW").upper().replace("_", " ")
    draw.rectangle((0, 0, SIZE[0], 190), fill=0)
    size = 88 if len(heading) <= 12 else 56
    w = draw.textlength(heading, font=font(size))
    draw.text(((SIZE[0] - w) / 2, (190 - size) / 2), heading, font=font(size), fill=255)
    qr = qr_image(inspection_id, 520)
    page.paste(qr, ((SIZE[0] - qr.width) // 2, 230))
    lines = [
        (f"Tier {tier or '-'}  Grade {grade or '-'}", 40),
        (inspection_id, 32),
        (f"Return {return_id}" if return_id else "Unmatched parcel", 30),
        (f"Expected recovery {recovery:.2f}" if recovery is not None else "Not routed", 28),
    ]
    centred_lines(draw, 230 + qr.height + 30, lines)
    return save(page, fmt)
