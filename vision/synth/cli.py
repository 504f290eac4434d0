"""``returnlens synth``: generate a synthetic returns dataset (numpy/OpenCV only)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:  # argparse._SubParsersAction
    p = sub.add_parser(
        "synth",
        help="generate synthetic photos of returned items (manifest, masks, catalog)",
        description="Render procedurally generated photos of returned items with grade and damage "
        "labels, per-image damage masks, a catalog with reference photos, and a contact sheet.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--count", required=True, type=int, help="number of photos")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument(
        "--bad-photos",
        type=float,
        default=0.0,
        metavar="FRAC",
        help="fraction of deliberately bad photos (blur, dark, bright, cut_off, small)",
    )
    p.add_argument(
        "--photos-per-item",
        type=int,
        default=1,
        metavar="K",
        help="views of each physical item (share item_id)",
    )
    p.add_argument("--skus-per-category", type=int, default=4)
    p.add_argument(
        "--variety",
        choices=("classic", "wide"),
        default="classic",
        help="classic: the shipped model's training renders (default); wide: adds dock scenes, "
        "parcel labels, QR codes, tape, stickers, hands, clutter and camera effects "
        "(vision/synth/variety.py)",
    )
    p.add_argument(
        "--dock-share",
        type=float,
        default=0.35,
        metavar="FRAC",
        help="wide only: fraction of dock-camera scenes (default 0.35)",
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--contact-sheet",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write contact_sheet.png (default: yes)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from vision.synth.contact import write_contact_sheet
    from vision.synth.dataset import SynthConfig, generate_dataset

    config = SynthConfig(
        count=args.count,
        seed=args.seed,
        image_size=args.size,
        bad_photo_fraction=args.bad_photos,
        photos_per_item=args.photos_per_item,
        skus_per_category=args.skus_per_category,
        variety=args.variety,
        dock_share=args.dock_share,
    )
    start = time.perf_counter()
    manifest = generate_dataset(args.out, config, workers=args.workers, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {config.count} photos to {manifest} in {elapsed:.1f} s "
        f"({config.count / max(elapsed, 1e-9):.0f} photos/s, {args.workers} workers)"
    )
    if args.contact_sheet:
        sheet = write_contact_sheet(manifest, Path(args.out) / "contact_sheet.png")
        print(f"contact sheet: {sheet}")
    return 0
