"""The dock simulator: a top-down dock-camera video with ground truth, for demos and tests.

A fixed camera looks at a laminate table (grain, vignetting, sensor noise, mains
flicker). Each item from the synthetic returns generator is pushed in by a hand from a
table edge together with its parcel label (a QR code of the return id, readable by
``cv2.QRCodeDetector`` at 720p), rests, and is pulled out again. Between items the table
is empty; hands reach in and leave without an item; lighting flicker episodes dim and
brighten the whole scene. The sidecar JSON holds the ground truth: per item its return
id, SKU, grade and frame ranges (enter / rest / exit), plus the hand-pass and flicker
frame ranges, so tests can assert "one inspection per item, none for the rest".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from serving.dock.simdraw import (
    EDGES,
    SKIN,
    SLEEVES,
    Sprite,
    draw_arm,
    make_sprite,
    parcel_label,
    paste,
    placeholder_rgba,
    table_texture,
)
from vision.errors import ConfigError, ReturnLensError

GRADES = ("A_new", "B_like_new", "C_good", "D_fair", "E_damaged")


@dataclass(frozen=True)
class SimTiming:
    """Seconds per phase."""

    lead_in: float = 1.0
    gap: float = 1.0
    enter: float = 1.0
    retract: float = 0.6
    rest: float = 2.0
    fetch: float = 0.6
    exit: float = 0.9
    hand_pass: float = 1.2
    flicker: float = 1.5


@dataclass(frozen=True)
class SimConfig:
    items: int = 4
    seed: int = 0
    width: int = 1280
    height: int = 720
    fps: float = 25.0
    hand_passes: int = 2
    flicker_episodes: int = 1
    timing: SimTiming = field(default_factory=SimTiming)
    return_ids: tuple[str, ...] | None = None  # default R<seed>-0001, ...
    no_qr: tuple[int, ...] = ()  # item indices whose label carries no QR code

    def __post_init__(self) -> None:
        if self.width < 160 or self.height < 120 or not 1 <= self.fps <= 120 or self.items < 0:
            raise ConfigError("simulator size must be at least 160x120, fps 1-120, items >= 0")
        if self.return_ids is not None and len(self.return_ids) < self.items:
            raise ConfigError(
                f"{self.items} items need {self.items} return ids, got {len(self.return_ids)}"
            )


@dataclass(frozen=True)
class Shot:
    """What one frame shows."""

    sprite: int | None = None
    pos: tuple[int, int] = (0, 0)
    hand: tuple[float, float] | None = None
    edge: str = "left"
    gain: float = 1.0
    who: int = 0  # skin/sleeve choice


def _n(seconds: float, fps: float) -> int:
    return max(1, round(seconds * fps))


def _ease(u: float) -> float:
    return 1.0 - (1.0 - u) ** 3


def _item_sprite(
    cfg: SimConfig, i: int, rng: np.random.Generator, return_id: str
) -> tuple[Sprite, dict[str, Any]]:
    canvas = max(64, int(0.5 * cfg.height))
    grade = GRADES[int(rng.integers(0, len(GRADES)))]
    info: dict[str, Any] = {
        "index": i,
        "return_id": return_id,
        "qr": i not in cfg.no_qr,
        "grade": grade,
    }
    try:
        from vision.synth import catalog_skus, render_item, sample_state

        skus = catalog_skus(cfg.seed, 2)
        sku = skus[int(rng.integers(0, len(skus)))]
        state = sample_state(sku, grade, rng)
        rgba = render_item(sku, state, rng, canvas).rgba
        info.update(
            sku=sku.sku,
            category=sku.category,
            price=sku.price,
            grade=state.grade,
            damage=[[k, round(v, 3)] for k, v in state.damage],
            generator="vision.synth",
        )
    except ImportError:
        rgba = placeholder_rgba(canvas, rng, GRADES.index(grade))
        info.update(
            sku=f"placeholder-{i}",
            category="default",
            price=50.0,
            damage=[],
            generator="placeholder",
        )
    module = max(3, round(cfg.height / 240))
    label = parcel_label(return_id if info["qr"] else None, module, rng)
    return make_sprite(rgba, label), info


def _offscreen(points: np.ndarray, edge: str, w: int, h: int, margin: float) -> float:
    """Displacement along -d that takes every point past the frame edge."""
    d = np.array(EDGES[edge])
    bound = {"left": 0.0, "top": 0.0, "right": -float(w), "bottom": -float(h)}[edge]
    return float((points @ d).max() - bound + margin)


def _item_shots(
    cfg: SimConfig, sprite: Sprite, k: int, rng: np.random.Generator, t: SimTiming
) -> tuple[list[Shot], dict[str, list[int]], str]:
    W, H, fps = cfg.width, cfg.height, cfg.fps
    sh, sw = sprite.alpha.shape
    edge = ("left", "right", "bottom")[int(rng.integers(0, 3))]
    d = np.array(EDGES[edge])
    cx = W / 2 + rng.uniform(-0.12, 0.12) * W
    cy = H / 2 + rng.uniform(-0.08, 0.08) * H
    rest = np.array([cx - sw / 2, cy - sh / 2])
    arm_w = 0.09 * H
    extent = sw if d[0] else sh
    contact = np.array([cx, cy]) - d * (extent / 2 + 0.2 * arm_w)  # hand behind the item
    corners = rest + np.array([[0, 0], [sw, 0], [0, sh], [sw, sh]])
    t_item = _offscreen(corners, edge, W, H, 12)
    t_hand = _offscreen(contact[None, :] + d * 0.3 * arm_w, edge, W, H, 0.7 * arm_w + 12)
    t_clear = _offscreen(contact[None, :] + d * 0.4 * arm_w, edge, W, H, 12)  # hand out of view

    def shot(disp_item: float, disp_hand: float | None) -> Shot:
        pos = rest - d * disp_item
        hand = None if disp_hand is None else tuple(contact - d * disp_hand)
        return Shot(k, (round(pos[0]), round(pos[1])), hand, edge)  # type: ignore[arg-type]

    phases = [
        ("enter", _n(t.enter, fps)),
        ("retract", _n(t.retract, fps)),
        ("rest", _n(t.rest, fps)),
        ("fetch", _n(t.fetch, fps)),
        ("exit", _n(t.exit, fps)),
    ]
    shots: list[Shot] = []
    ranges: dict[str, list[int]] = {}
    for name, n in phases:
        start = len(shots)
        for j in range(n):
            u = (j + 1) / n
            if name == "enter":
                disp = t_item * (1 - _ease(u))
                shots.append(shot(disp, disp))
            elif name == "retract":
                shots.append(shot(0.0, t_hand * (1 - _ease(1 - u))))
            elif name == "rest":
                shots.append(shot(0.0, None))
            elif name == "fetch":
                shots.append(shot(0.0, t_hand * (1 - _ease(u))))
            else:
                disp = t_item * (1 - _ease(1 - u))
                shots.append(shot(disp, disp))
        ranges[name] = [start, len(shots)]
    # "clear": the item at rest with no hand in view (where the trigger may fire)
    out = [i for i, s in enumerate(shots) if s.hand is None or _hand_disp(s, contact, d) >= t_clear]
    r0, f1 = ranges["retract"][0], ranges["fetch"][1]
    window = [i for i in out if r0 <= i < f1]
    ranges["clear"] = [window[0], window[-1] + 1] if window else list(ranges["rest"])
    return shots, ranges, edge


def _hand_disp(s: Shot, contact: np.ndarray, d: np.ndarray) -> float:
    assert s.hand is not None
    return float((contact - np.array(s.hand)) @ d)


def _hand_pass(cfg: SimConfig, rng: np.random.Generator, n: int) -> list[Shot]:
    W, H = cfg.width, cfg.height
    edge = ("left", "right", "bottom", "top")[int(rng.integers(0, 4))]
    d = np.array(EDGES[edge])
    target = np.array([W * rng.uniform(0.35, 0.65), H * rng.uniform(0.35, 0.65)])
    t_off = _offscreen(target[None, :] + d * 0.03 * H, edge, W, H, 0.07 * H + 12)
    shots = []
    for j in range(n):
        u = 1.0 - abs(2.0 * (j + 0.5) / n - 1.0)  # in, then out, at constant speed
        shots.append(Shot(None, (0, 0), tuple(target - d * t_off * (1 - u)), edge))  # type: ignore[arg-type]
    return shots


def plan(cfg: SimConfig) -> tuple[list[Shot], list[Sprite], dict[str, Any]]:
    """Every frame's content, the sprites, and the ground truth."""
    rng = np.random.default_rng(cfg.seed)
    t, fps = cfg.timing, cfg.fps
    ids = cfg.return_ids or tuple(f"R{cfg.seed}-{i + 1:04d}" for i in range(cfg.items))
    kinds = ["item"] * cfg.items + ["hand"] * cfg.hand_passes + ["flicker"] * cfg.flicker_episodes
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    shots: list[Shot] = [Shot() for _ in range(_n(t.lead_in, fps))]
    sprites: list[Sprite] = []
    truth: dict[str, Any] = {"items": [], "hands": [], "flicker": []}
    for kind in order:
        start = len(shots)
        who = int(rng.integers(0, len(SKIN)))
        if kind == "item":
            k = len(sprites)
            sprite, info = _item_sprite(cfg, k, rng, ids[k])
            sprites.append(sprite)
            seg, ranges, edge = _item_shots(cfg, sprite, k, rng, t)
            shots += [Shot(s.sprite, s.pos, s.hand, s.edge, 1.0, who) for s in seg]
            info.update(
                edge=edge, frames={n: [a + start, b + start] for n, (a, b) in ranges.items()}
            )
            truth["items"].append(info)
        elif kind == "hand":
            shots += [
                Shot(None, s.pos, s.hand, s.edge, 1.0, who)
                for s in _hand_pass(cfg, rng, _n(t.hand_pass, fps))
            ]
            truth["hands"].append([start, len(shots)])
        else:
            shots += [
                Shot(gain=float(1.0 + rng.uniform(-0.14, 0.14))) for _ in range(_n(t.flicker, fps))
            ]
            truth["flicker"].append([start, len(shots)])
        shots += [Shot() for _ in range(_n(t.gap * rng.uniform(0.8, 1.2), fps))]
    truth["frames"] = len(shots)
    return shots, sprites, truth


def render_frames(cfg: SimConfig) -> tuple[dict[str, Any], Iterator[np.ndarray]]:
    """Ground truth plus a lazy iterator of BGR frames (no file written)."""
    shots, sprites, truth = plan(cfg)
    rng = np.random.default_rng([cfg.seed, 1])
    table = table_texture(cfg.width, cfg.height, rng)
    noise = [np.abs(rng.normal(0, 2.0, table.shape)).astype(np.uint8) for _ in range(6)]

    def frames() -> Iterator[np.ndarray]:
        for i, s in enumerate(shots):
            frame = table.copy()
            if s.sprite is not None:
                paste(frame, sprites[s.sprite], *s.pos)
            if s.hand is not None:
                draw_arm(frame, s.hand, s.edge, 0.09 * cfg.height, SKIN[s.who], SLEEVES[s.who])
            mains = 1.0 + 0.015 * np.sin(2 * np.pi * i * 0.37) + rng.uniform(-0.005, 0.005)
            frame = cv2.convertScaleAbs(frame, alpha=s.gain * mains)
            cv2.add(frame, noise[i % 6], dst=frame)
            cv2.subtract(frame, noise[(i + 3) % 6], dst=frame)
            yield frame

    return truth, frames()


def simulate(cfg: SimConfig, out: Path) -> dict[str, Any]:
    """Write the video (mp4v) and ``<out>.json`` with the ground truth; returns the truth."""
    truth, frames = render_frames(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(
        str(out), cv2.VideoWriter.fourcc(*"mp4v"), cfg.fps, (cfg.width, cfg.height)
    )
    if not writer.isOpened():
        raise ReturnLensError(
            f"cannot write the video {out} (OpenCV has no mp4v writer here)",
            code="video_write_failed",
        )
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
    cfg_json = asdict(cfg)
    cfg_json["return_ids"] = list(cfg.return_ids) if cfg.return_ids else None
    truth.update(
        video=out.name,
        width=cfg.width,
        height=cfg.height,
        fps=cfg.fps,
        seed=cfg.seed,
        config=cfg_json,
    )
    sidecar_path(out).write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return truth


def sidecar_path(video: Path) -> Path:
    return video.with_suffix(".json")
