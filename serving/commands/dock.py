"""``returnlens dock`` (the dock camera station) and ``returnlens dock-sim`` (its simulator)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from vision.errors import ConfigError

_SIZE = re.compile(r"^(\d{3,4})x(\d{3,4})$")


def register(sub: Any) -> None:  # argparse._SubParsersAction
    p = sub.add_parser(
        "dock",
        help="watch a dock camera: grade each placed item once, post it to the API",
        description="Watch a camera index, RTSP/HTTP URL, video file or folder of frames. "
        "Each item placed under the camera is inspected once (motion, then still), "
        "identified by the QR code on its parcel label, and graded; in API mode the "
        "service grades the posted frames and picks the channel, in --standalone mode "
        "the station does. Inspections are spooled in SQLite until the API confirms them.",
    )
    p.add_argument(
        "--source",
        required=True,
        help="camera index (0), stream URL (rtsp://...), video file or folder",
    )
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--api",
        metavar="URL[,URL...]",
        help="service base URL, e.g. http://127.0.0.1:8000; several replicas comma-separated "
        "(a replica that does not answer hands over to the next)",
    )
    mode.add_argument(
        "--standalone",
        action="store_true",
        help="grade and decide locally; store results in the local spool",
    )
    p.add_argument("--key", help="dock API key (default: $RETURNLENS_DOCK_KEY)")
    p.add_argument("--station-id", default="dock-1")
    p.add_argument("--return-id", help="return id for items without a readable QR code")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("var/dock"),
        help="events.jsonl, spool.db, labels/, snapshots/ (default: var/dock)",
    )
    p.add_argument("--spool", type=Path, help="spool file (default: OUT/spool.db)")
    p.add_argument("--k", type=int, default=3, help="sharpest frames per inspection (1-6)")
    p.add_argument("--loop", action="store_true", help="replay a video file or folder forever")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument(
        "--model",
        type=Path,
        help="ONNX model (standalone: default as `returnlens serve`; API mode: "
        "optional, only draws heatmaps on snapshots)",
    )
    p.add_argument("--policy", type=Path, help="policy YAML for --standalone")
    p.add_argument("--category", default="default", help="policy category for --standalone")
    p.add_argument("--price", type=float, help="item price for --standalone recovery economics")
    p.add_argument("--still-frames", type=int, default=8, help="still frames before inspecting")
    p.add_argument("--empty-frames", type=int, default=6, help="empty frames to re-arm")
    p.add_argument("--min-item", type=float, default=0.01, help="smallest item, share of frame")
    p.add_argument("--motion", type=float, default=0.003, help="changed share that is motion")
    p.add_argument("--diff", type=float, default=30.0, help="per-pixel change threshold 0-255")
    p.add_argument(
        "--stdin",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read return ids typed/scanned on stdin (default: when a terminal)",
    )
    p.add_argument(
        "--id-wait",
        type=float,
        default=0.0,
        help="seconds to wait for a typed id when no QR code is read",
    )
    p.add_argument("--no-crop", action="store_true", help="post whole frames, not item crops")
    p.add_argument("--save-frames", action="store_true", help="also write the posted JPEGs")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="re-queue inspections the service refused earlier",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to keep delivering after the source ends",
    )
    p.add_argument("--quiet", action="store_true", help="no result lines on stdout")
    p.set_defaults(handler=run_dock)

    s = sub.add_parser(
        "dock-sim",
        help="render a simulated dock-camera video with ground truth",
        description="Items from the synthetic generator are pushed in by a hand "
        "with a QR-labelled parcel label, rest, and leave; hands pass by and the "
        "light flickers. Writes VIDEO and VIDEO.json (ground truth).",
    )
    s.add_argument("--out", type=Path, required=True, help="video file (.mp4)")
    s.add_argument("--items", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT, e.g. 1920x1080")
    s.add_argument("--fps", type=float, default=25.0)
    s.add_argument("--hand-passes", type=int, default=2)
    s.add_argument("--flicker", type=int, default=1, help="lighting flicker episodes")
    s.add_argument("--return-ids", help="comma-separated return ids for the QR labels")
    s.add_argument("--no-qr", default="", help="comma-separated item indices without a QR code")
    s.set_defaults(handler=run_sim)


def _size(text: str) -> tuple[int, int]:
    m = _SIZE.match(text.strip())
    if not m:
        raise ConfigError(f"size {text!r} must look like 1280x720", code="invalid_argument")
    return int(m.group(1)), int(m.group(2))


def run_sim(args: argparse.Namespace) -> int:
    from serving.dock.sim import SimConfig, sidecar_path, simulate

    width, height = _size(args.size)
    ids = tuple(x.strip() for x in args.return_ids.split(",")) if args.return_ids else None
    try:
        no_qr = tuple(int(x) for x in args.no_qr.split(",") if x.strip())
    except ValueError as exc:
        raise ConfigError(
            "--no-qr takes item indices such as 0,2", code="invalid_argument"
        ) from exc
    cfg = SimConfig(
        items=args.items,
        seed=args.seed,
        width=width,
        height=height,
        fps=args.fps,
        hand_passes=args.hand_passes,
        flicker_episodes=args.flicker,
        return_ids=ids,
        no_qr=no_qr,
    )
    truth = simulate(cfg, args.out)
    print(
        f"wrote {args.out} ({truth['frames']} frames, {len(truth['items'])} items) and "
        f"{sidecar_path(args.out)}"
    )
    return 0


def _echo(record: dict[str, Any]) -> None:
    kind = record["event"]
    if kind == "result":
        rid = record.get("return_id") or "UNMATCHED"
        print(
            f"{rid}: grade {record.get('grade')} tier {record.get('tier')} channel "
            f"{record.get('channel')}{' REVIEW' if record.get('needs_review') else ''} "
            f"({record.get('latency_ms')} ms)",
            flush=True,
        )
    elif kind in (
        "delivery_retry",
        "delivery_failed",
        "source_read_failed",
        "source_open_failed",
        "inspection_error",
    ):
        print(f"{kind}: {record.get('error', '')}", file=sys.stderr, flush=True)


def run_dock(args: argparse.Namespace) -> int:
    from serving.dock.app import DockOptions, run_station

    key = args.key or os.environ.get("RETURNLENS_DOCK_KEY")
    if args.api and not key:
        raise ConfigError(
            "API mode needs a dock key: --key or $RETURNLENS_DOCK_KEY", code="missing_key"
        )
    if not 1 <= args.k <= 6:
        raise ConfigError("--k must be between 1 and 6", code="invalid_argument")
    use_stdin = args.stdin if args.stdin is not None else sys.stdin.isatty()
    opts = DockOptions(
        source=args.source,
        api=args.api,
        key=key,
        station_id=args.station_id,
        return_id=args.return_id,
        out=args.out,
        spool=args.spool or args.out / "spool.db",
        k=args.k,
        loop=args.loop,
        max_frames=args.max_frames,
        model=args.model,
        policy=args.policy,
        category=args.category,
        price=args.price,
        still_frames=args.still_frames,
        empty_frames=args.empty_frames,
        min_item=args.min_item,
        motion=args.motion,
        diff=args.diff,
        use_stdin=use_stdin,
        id_wait=args.id_wait,
        crop=not args.no_crop,
        save_frames=args.save_frames,
        retry_failed=args.retry_failed,
        drain_timeout=args.drain_timeout,
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    summary = run_station(opts, echo=None if args.quiet else _echo, stop=stop)
    print(
        f"{summary['frames']} frames at {summary['fps']:.1f} fps, "
        f"{summary['inspections']} inspections; spool: {summary['spool']}",
        flush=True,
    )
    return 0
