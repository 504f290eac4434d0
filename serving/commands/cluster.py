"""``returnlens cluster up|down|status``: the scaled-out deployment on one machine
(``serving.cluster``; ``make cluster`` and ``make cluster-stop`` call it)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("var/cluster")


def register(sub: Any) -> None:  # argparse._SubParsersAction
    p = sub.add_parser(
        "cluster",
        help="start/stop PostgreSQL, S3 (SeaweedFS), API replicas and a job worker locally",
    )
    inner = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    up = inner.add_parser("up", help="start the cluster (or restart it on its data)")
    up.add_argument("--replicas", type=int, default=2, help="API replicas (default 2)")
    up.add_argument("--no-demo", dest="demo", action="store_false", help="no demo shop")
    down = inner.add_parser("down", help="stop everything `up` started")
    status = inner.add_parser("status", help="processes and each replica's readiness")
    for q in (up, down, status):
        q.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="default var/cluster")
    up.set_defaults(handler=_up)
    down.set_defaults(handler=_down)
    status.set_defaults(handler=_status)


def _up(args: argparse.Namespace) -> int:
    from serving.cluster.launch import up
    from vision.errors import ConfigError

    if not 1 <= args.replicas <= 8:
        raise ConfigError("--replicas must be 1 to 8", code="invalid_argument")
    try:
        state = up(args.root, replicas=args.replicas, seed_demo=args.demo)
    except (RuntimeError, OSError) as exc:
        raise ConfigError(f"the cluster did not start: {exc}", code="cluster_failed") from exc
    print(f"ReturnLens cluster up in {state.root}")
    for i, url in enumerate(state.urls, 1):
        print(f"  replica {i}: {url}  (shop {url}/, review {url}/review, ops {url}/ops)")
    print(f"  PostgreSQL: {state.postgres().url()}")
    print(f"  S3 (SeaweedFS): {state.store().endpoint}  bucket returnlens")
    print(f"  job worker: pid {state.pids['worker']}; logs in {state.root}/logs")
    print(f"  admin key: {state.admin_key}  (also in {state.root}/cluster.json)")
    print("Stop it with: make cluster-stop")
    return 0


def _down(args: argparse.Namespace) -> int:
    from serving.cluster.launch import down

    print("cluster stopped" if down(args.root) else f"no cluster recorded in {args.root}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from serving.cluster.launch import status

    print(json.dumps(status(args.root), indent=2))
    return 0
