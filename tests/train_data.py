"""A tiny labelled photo set and a tiny training config (tests/test_train.py, test_ddp.py).

``make_tiny_dataset`` draws n PNG photos: the SKU is the item colour (4 SKUs), the grade
the number of scratch lines; ``tiny_config`` is a MobileNetV3-small run on them that takes
seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from training.config import TrainConfig

GRADES = ["A_new", "B_like_new", "C_good", "D_fair", "E_damaged"]
DAMAGE = ["scratch", "dent"]
COLOURS = [(200, 40, 40), (40, 170, 60), (40, 60, 200), (210, 190, 40)]
VAL_IDS = {3, 8, 13, 19, 24, 31, 36, 38}


def make_tiny_dataset(
    root: Path, n: int = 40, size: int = 64, grade_labels: list[str] | None = None
) -> Path:
    """n PNG photos: SKU = item colour, grade = number of scratch lines, 4 SKUs."""
    rng = np.random.default_rng(0)
    labels = grade_labels or GRADES
    (root / "images").mkdir(parents=True, exist_ok=True)
    header = {
        "kind": "returnlens-manifest",
        "version": 1,
        "source": "test",
        "grade_labels": labels,
        "damage_labels": DAMAGE,
    }
    lines = [json.dumps(header)]
    for i in range(n):
        grade = i % 5
        img = np.full((size, size, 3), 225, np.uint8)
        cv2.rectangle(img, (10, 10), (size - 10, size - 10), COLOURS[i % 4], -1)
        for _ in range(grade * 2):
            x = int(rng.integers(12, size - 16))
            cv2.line(img, (x, 12), (x + 4, size - 12), (10, 10, 10), 2)
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), img[..., ::-1])
        split = "val" if i in VAL_IDS else "train"
        lines.append(
            json.dumps(
                {
                    "id": f"photo-{i:03d}",
                    "image": f"images/{i:03d}.png",
                    "grade": labels[grade],
                    "damage": ["scratch"] if grade >= 2 else [],
                    "category": "box",
                    "sku": f"sku-{i % 4}",
                    "split": split,
                }
            )
        )
    path = root / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_config(manifest: Path, out: Path, **changes: object) -> TrainConfig:
    base = TrainConfig(
        manifest=(str(manifest),),
        backbone="mobilenet_v3_small",
        pretrained=None,
        image_size=64,
        epochs=2,
        batch_size=8,
        embedding_dim=16,
        num_workers=0,
        freeze_epochs=0,
        warmup_epochs=0.5,
        out=str(out),
        device="cpu",
    )
    return base.replace(**changes)
