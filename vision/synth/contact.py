"""Contact sheet of a generated dataset, for a person to check the labels by eye.

Layout: one row per grade (mixed categories), then one row per category showing two
photos of each grade in order A..E, then a row of bad photos if there are any. Every
tile carries its grade letter (and bad-photo kind) in the corner.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vision.errors import ReturnLensError

LABEL_W = 170
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _tile(root: Path, record: dict[str, Any], tile: int) -> np.ndarray:
    img = cv2.imread(str(root / record["image"]), cv2.IMREAD_COLOR)
    if img is None:
        img = np.zeros((tile, tile, 3), np.uint8)
    img = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
    tag = record["grade"][0]
    bad = (record.get("meta") or {}).get("bad")
    if bad:
        tag += f" {bad}"
    cv2.rectangle(img, (0, 0), (14 + 8 * len(tag), 16), (0, 0, 0), -1)
    cv2.putText(img, tag, (3, 12), FONT, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _row(label: str, tiles: list[np.ndarray], n: int, tile: int) -> np.ndarray:
    row = np.full((tile, LABEL_W + n * tile, 3), 30, np.uint8)
    lines = label.split("\n")
    for k, text in enumerate(lines):
        cv2.putText(
            row,
            text,
            (8, tile // 2 - 8 * (len(lines) - 1) + 18 * k),
            FONT,
            0.5,
            (235, 235, 235),
            1,
            cv2.LINE_AA,
        )
    for i, t in enumerate(tiles[:n]):
        row[:, LABEL_W + i * tile : LABEL_W + (i + 1) * tile] = t
    return row


def write_contact_sheet(
    manifest: Path, out_path: Path, *, per_row: int = 10, tile: int = 128
) -> Path:
    """Render the contact sheet of ``manifest`` to ``out_path`` (PNG)."""
    root = manifest.parent
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ReturnLensError(
            f"Cannot read manifest {manifest}: {exc.strerror or exc}.", code="unreadable_manifest"
        ) from exc
    head = json.loads(lines[0])
    records = [json.loads(x) for x in lines[1:] if x.strip()]
    grades = head.get("grade_labels") or sorted({r["grade"] for r in records})
    good = [r for r in records if not (r.get("meta") or {}).get("bad")]
    by_grade: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_cat_grade: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in good:
        by_grade[r["grade"]].append(r)
        by_cat_grade[(r["category"], r["grade"])].append(r)
    rows = []
    title = np.full((34, LABEL_W + per_row * tile, 3), 30, np.uint8)
    cv2.putText(
        title,
        f"ReturnLens synthetic returns: {len(records)} photos ({manifest.parent.name})",
        (8, 23),
        FONT,
        0.6,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    rows.append(title)
    for g in grades:
        picks = _diverse(by_grade.get(g, []), per_row)
        rows.append(_row(g, [_tile(root, r, tile) for r in picks], per_row, tile))
    rows.append(np.full((8, LABEL_W + per_row * tile, 3), 90, np.uint8))
    for cat in sorted({r["category"] for r in good}):
        picks = [r for g in grades for r in by_cat_grade.get((cat, g), [])[:2]]
        rows.append(
            _row(f"{cat}\nA..E, 2 each", [_tile(root, r, tile) for r in picks], per_row, tile)
        )
    bad = [r for r in records if (r.get("meta") or {}).get("bad")]
    if bad:
        rows.append(
            _row("bad photos", [_tile(root, r, tile) for r in bad[:per_row]], per_row, tile)
        )
    sheet = np.vstack(rows)
    if not cv2.imwrite(str(out_path), sheet):
        raise ReturnLensError(f"Cannot write contact sheet {out_path}.", code="unwritable_output")
    return out_path


def _diverse(records: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Round-robin over categories so one row shows every category."""
    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_cat[r["category"]].append(r)
    out: list[dict[str, Any]] = []
    k = 0
    while len(out) < n and any(len(v) > k for v in by_cat.values()):
        for cat in sorted(by_cat):
            if len(by_cat[cat]) > k and len(out) < n:
                out.append(by_cat[cat][k])
        k += 1
    return out
