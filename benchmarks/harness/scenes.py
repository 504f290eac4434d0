"""Rendered benchmark scenes that pass the shopper gate, cached on disk.

Why a cache: the service section uploads about 350 photos per photo kind, and each must
show its own item (shoppers send distinct photos of distinct items; near-duplicates
make the service's copy detection fire on every upload and measure its worst case
instead). A 1024 px render costs about 0.3 s and only a quarter to a half of them pass
the gate, so the passing 4:3 crops are kept as PNG files under
``var/bench-scenes/<seed>-<render size>/`` (git-ignored) and reused by later runs;
missing ones are rendered by a process pool over the machine's cores.

Scene ``n`` is the ``n``-th render index, in order, whose crop passes the gate, so the
numbering depends neither on the number of workers nor on what the cache held before.
``state.json`` records how many render indices were examined (``tried``); a PNG file is
named by its render index. Delete the folder when ``vision.synth`` or the shopper gate
change: the cache does not notice.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.harness.common import ROOT, log

CACHE_ROOT = ROOT / "var" / "bench-scenes"
GRADES = ("A_new", "B_like_new", "C_good", "D_fair")
FIRST_PASS_RATE = 0.3  # guess for sizing the first batch; later batches use the measured rate
MAX_TRIES_PER_SCENE = 64  # give up when the gate rejects (nearly) everything
RENDERS = [0]  # candidates rendered by this process's pools (the tests read it)


def shop_sku(seed: int = 0) -> Any:
    """The SKU the benchmark shop sells and every scene shows: the catalog's first mug.

    One SKU, because a shopper photographs the item they are returning: photos of other
    products would be (rightly) held for review as ``wrong_item`` and measure that path
    instead of the usual one."""
    from vision.synth import catalog_skus

    return next(s for s in catalog_skus(seed + 3, 2) if s.category == "mug")


def render_scene(index: int, seed: int, render_size: int) -> np.ndarray:
    """One rendered returned item of the shop's SKU, RGB uint8 square: its grade, state,
    pose, table and light vary with ``index``."""
    from vision.synth import render_photo, sample_state

    sku = shop_sku(seed)
    rng = np.random.default_rng([seed, index, 11])
    state = sample_state(sku, GRADES[index % len(GRADES)], rng)
    rgb, _mask = render_photo(sku, state, rng, render_size)
    return rgb


def crop_43(square: np.ndarray) -> np.ndarray:
    """The centre 4:3 (landscape) part of a square render, the phone's aspect."""
    side = square.shape[0]
    crop_h = round(side * 3 / 4)
    top = (side - crop_h) // 2
    return square[top : top + crop_h]


def passes_gate(rgb: np.ndarray) -> bool:
    """Would a shopper's photo of this scene pass the quality gate? (blur, framing...)
    The resolution check is left out: the photo is upscaled to the phone frame later."""
    from dataclasses import replace

    from vision.decode import decode_image
    from vision.quality import PROFILES, assess_quality

    gate = replace(PROFILES["shopper"], min_long_side=0, min_short_side=0)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
    )
    photo = decode_image(buf.tobytes(), target_long_side=None)
    return bool(ok) and assess_quality(photo, gate, profile="shopper").passed


def _render_job(job: tuple[int, int, int, str]) -> bool:
    """Worker: render candidate ``index``; keep its crop as ``<index>.png`` if it passes."""
    index, seed, render_size, folder = job
    crop = crop_43(render_scene(index, seed, render_size))
    if not passes_gate(crop):
        return False
    path = Path(folder) / f"{index:05d}.png"
    tmp = path.with_suffix(".tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)):
        raise RuntimeError(f"could not write {tmp}")
    tmp.replace(path)
    return True


class SceneCache:
    """The gate-passing crops of one (seed, render size), rendered once and kept."""

    def __init__(self, seed: int, render_size: int, root: Path | None = None) -> None:
        self.seed, self.render_size = seed, render_size
        self.dir = (root or CACHE_ROOT) / f"{seed}-{render_size}"

    def _tried(self) -> int:
        try:
            return int(json.loads((self.dir / "state.json").read_text())["tried"])
        except (OSError, ValueError, KeyError):
            return 0

    def _save(self, tried: int) -> None:
        tmp = self.dir / "state.tmp"
        tmp.write_text(json.dumps({"tried": tried, "seed": self.seed, "size": self.render_size}))
        tmp.replace(self.dir / "state.json")

    def _cached(self, tried: int) -> list[int]:
        """Render indices below ``tried`` with a kept crop (files past it: an interrupted
        run's, rendered again)."""
        found = []
        for p in self.dir.glob("*.png"):
            if p.stem.isdigit() and int(p.stem) < tried:
                found.append(int(p.stem))
        return sorted(found)

    def ensure(self, count: int, workers: int | None = None) -> list[Path]:
        """Paths of scenes ``0 .. count-1``, rendering the missing ones first."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tried = self._tried()
        passing = self._cached(tried)
        if len(passing) < count:
            self._render(count, tried, passing, workers)
        return [self.dir / f"{i:05d}.png" for i in passing[:count]]

    def _render(self, count: int, tried: int, passing: list[int], workers: int | None) -> None:
        cores = workers or len(os.sched_getaffinity(0))
        log(
            f"rendering {count - len(passing)} more benchmark scenes at {self.render_size} px "
            f"on {cores} processes ({len(passing)} cached in {self.dir})"
        )
        started = last = time.monotonic()
        # spawn: the harness may already hold threads (ONNX Runtime, httpx) that fork would copy
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(cores, mp_context=ctx) as pool:
            while len(passing) < count:
                if tried >= MAX_TRIES_PER_SCENE * max(count, 1) and len(passing) * 20 < tried:
                    raise RuntimeError("rendered scenes (nearly) never pass the shopper gate")
                rate = len(passing) / tried if tried >= 8 and passing else FIRST_PASS_RATE
                batch = max(cores, math.ceil((count - len(passing)) / rate))
                jobs = [
                    (i, self.seed, self.render_size, str(self.dir))
                    for i in range(tried, tried + batch)
                ]
                for (index, *_), ok in zip(jobs, pool.map(_render_job, jobs), strict=True):
                    RENDERS[0] += 1
                    tried = index + 1
                    if ok:
                        passing.append(index)
                    if time.monotonic() - last > 10:
                        last = time.monotonic()
                        self._save(tried)
                        log(f"  {len(passing)}/{count} scenes ({tried} rendered)")
                self._save(tried)
        spent = time.monotonic() - started
        log(f"  {len(passing)}/{count} scenes ({tried} rendered) in {spent:.0f} s")
