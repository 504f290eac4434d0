"""``returnlens bench``: the benchmark harness (``benchmarks.harness``), one command.

Needs the training extra (torch) for the naive baseline, the runtime comparison and the
training figures; the service itself is started as ``returnlens serve`` would be.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vision.errors import ConfigError

DEFAULT_OUT = Path("benchmarks/results")
QUICK_OUT = DEFAULT_OUT / "tmp" / "quick"  # git-ignored: a smoke run never replaces figures


def register(sub: Any) -> None:  # argparse._SubParsersAction
    from benchmarks.harness.common import SECTIONS

    p = sub.add_parser(
        "bench",
        help="benchmark latency, throughput, dock fps, grade accuracy, training and memory",
        description="Run the benchmark harness: a live service against the decode + "
        "inference floor and a naive PyTorch baseline, the model runtime "
        "(ORT vs torch, int8, threads), the dock station, grade accuracy on "
        "simulated dock videos and held-out shopper photos, training throughput "
        "and memory. Writes OUT/<section>.json and OUT/SUMMARY.md. "
        "Benchmarks are not tests: nothing asserts a timing.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny inputs and counts with the tiny test model (smoke run)",
    )
    p.add_argument(
        "--out", type=Path, help=f"results folder (default {DEFAULT_OUT}; with --quick {QUICK_OUT})"
    )
    p.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})",
    )
    p.add_argument(
        "--model",
        type=Path,
        help="ONNX model to measure (default: the shipped default model, else "
        "an untrained EfficientNet-Lite0 of the same size)",
    )
    p.add_argument(
        "--training-device",
        dest="training_device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="device for the training figures; cuda writes training_gpu.json",
    )
    p.set_defaults(handler=bench)


def parse_sections(text: str) -> tuple[str, ...]:
    from benchmarks.harness.common import SECTIONS

    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise ConfigError(
            f"unknown benchmark section(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(SECTIONS)}",
            code="invalid_argument",
        )
    return names


def bench(args: argparse.Namespace) -> int:
    from benchmarks.harness.common import BenchConfig
    from benchmarks.harness.runner import run_bench

    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    cfg = BenchConfig(
        out=Path(out).resolve(),
        sections=parse_sections(args.only),
        quick=bool(args.quick),
        model=args.model,
        training_device=args.training_device,
    )
    written = run_bench(cfg)
    print(f"summary: {written['summary']}")
    return 0
