"""Full vs DCT-domain downscaled JPEG decode of a 12-megapixel phone-sized photo.

A 4032 x 3024 JPEG (quality 92) with photographic texture: scikit-image's chelsea and
astronaut upscaled side by side, with grass texture and sensor noise so that it compresses
like a phone photo (a few MB). Each variant is timed interleaved with the others, several
rounds, and the median is reported.

    python benchmarks/decode_dct.py [--rounds 15]

Prints a table and writes benchmarks/results/decode_dct.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vision.decode import decode_image  # noqa: E402

WIDTH, HEIGHT = 4032, 3024


def phone_like_jpeg(quality: int = 92) -> bytes:
    from skimage import data

    left = cv2.resize(data.chelsea(), (WIDTH // 2, HEIGHT), interpolation=cv2.INTER_CUBIC)
    right = cv2.resize(data.astronaut(), (WIDTH // 2, HEIGHT), interpolation=cv2.INTER_CUBIC)
    img = np.hstack([left, right]).astype(np.float32)
    grass = np.tile(data.grass(), (HEIGHT // 512 + 1, WIDTH // 512 + 1))[:HEIGHT, :WIDTH]
    img *= (0.85 + 0.3 * grass.astype(np.float32) / 255.0)[..., None]
    img += np.random.default_rng(0).normal(0, 4.0, img.shape).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def pillow_load(data: bytes, scale: int = 1) -> tuple[int, int]:
    """Pillow alone: decode into Pillow's own buffer (no numpy array), optional draft."""
    with Image.open(io.BytesIO(data)) as im:
        if scale > 1:
            im.draft("RGB", (WIDTH // scale, HEIGHT // scale))
        im.load()
        return im.size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/decode_dct.json")
    args = parser.parse_args()

    data = phone_like_jpeg()
    variants = {
        "pillow_full_load": lambda: pillow_load(data),
        "pillow_draft_1/2_load": lambda: pillow_load(data, 2),
        "pillow_draft_1/8_load": lambda: pillow_load(data, 8),
        "decode_image_full": lambda: decode_image(data, target_long_side=None).rgb.shape,
        "decode_image_1600": lambda: decode_image(data, target_long_side=1600).rgb.shape,
        "decode_image_512": lambda: decode_image(data, target_long_side=512).rgb.shape,
    }
    shapes = {name: fn() for name, fn in variants.items()}  # warm-up, and output sizes
    # Wall time, and this process's CPU time (decoding is single-threaded, so CPU time is
    # the work done and is less disturbed by other processes on a shared machine).
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    median = {name: statistics.median(v) for name, v in cpu.items()}
    median_wall = {name: statistics.median(v) for name, v in wall.items()}
    base = median["decode_image_full"]
    result = {
        "image": {"width": WIDTH, "height": HEIGHT, "jpeg_quality": 92, "bytes": len(data)},
        "rounds": args.rounds,
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "pillow": Image.__version__,
        },
        "median_cpu_ms": {k: round(v * 1000, 2) for k, v in median.items()},
        "median_wall_ms": {k: round(v * 1000, 2) for k, v in median_wall.items()},
        "output_shape": {k: list(v) for k, v in shapes.items()},
        "ratio_vs_full_decode": {k: round(v / base, 3) for k, v in median.items()},
        "ratio_vs_pillow_full": {
            k: round(v / median["pillow_full_load"], 3) for k, v in median.items()
        },
        "ratio_vs_full_decode_wall": {
            k: round(v / median_wall["decode_image_full"], 3) for k, v in median_wall.items()
        },
    }
    print(
        f"{WIDTH} x {HEIGHT} JPEG q92, {len(data) / 1e6:.2f} MB, median of {args.rounds} "
        "(CPU time; wall time in brackets)"
    )
    for name in variants:
        print(
            f"  {name:22s} {median[name] * 1000:7.1f} ms [{median_wall[name] * 1000:7.1f}]"
            f"  ratio {median[name] / base:5.3f}  -> {shapes[name]}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
