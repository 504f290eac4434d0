"""Shared pieces of the harness: configuration, progress lines, statistics, /proc facts."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from vision.fsio import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]  # the repository (benchmarks/, tests/ live here)
SECTIONS = ("service", "runtime", "dock", "accuracy", "training", "memory", "bombs", "search")
VERSIONED = (
    "numpy",
    "pillow",
    "opencv-python-headless",
    "onnxruntime",
    "torch",
    "torchvision",
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "httpx",
)


@dataclass(frozen=True)
class BenchConfig:
    """One run of the harness. ``quick`` shrinks every input and count (smoke test)."""

    out: Path = ROOT / "benchmarks" / "results"
    sections: tuple[str, ...] = SECTIONS
    quick: bool = False
    model: Path | None = None  # None: shipped default, else an untrained Lite0 export
    training_device: str = "cpu"
    seed: int = 0

    @property
    def tmp(self) -> Path:
        """Generated inputs, models and service state (git-ignored)."""
        return self.out / "tmp"

    def wants(self, section: str) -> bool:
        return section in self.sections


def log(message: str) -> None:
    """One progress line on stdout (the harness runs for minutes)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentiles(values_ms: Sequence[float]) -> dict[str, Any]:
    """n, p50/p95/p99, mean, min and max of millisecond samples (linear interpolation)."""
    if not values_ms:
        return {"n": 0}
    xs = sorted(float(v) for v in values_ms)

    def pct(q: float) -> float:
        pos = (len(xs) - 1) * q
        lo, hi = math.floor(pos), math.ceil(pos)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    return {
        "n": len(xs),
        "p50": round(pct(0.50), 2),
        "p95": round(pct(0.95), 2),
        "p99": round(pct(0.99), 2),
        "mean": round(sum(xs) / len(xs), 2),
        "min": round(xs[0], 2),
        "max": round(xs[-1], 2),
    }


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)


def timed_ms(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn(*args)
    return value, (time.perf_counter() - start) * 1000.0


def proc_memory(pid: int | None = None) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process in MiB, from /proc/<pid>/status."""
    path = Path(f"/proc/{pid or 'self'}/status")
    out: dict[str, float] = {}
    try:
        for line in path.read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[f"{key.lower()}_mib"] = round(int(rest.split()[0]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        pass
    return out


def proc_cpu_seconds(pid: int | None = None) -> float | None:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid or 'self'}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/<pid>/task/*/children``), parents first: a
    service with several workers is a supervisor and the worker processes it started."""
    out = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out += process_tree(int(child))
    return out


def tree_cpu_seconds(pid: int) -> float | None:
    """``proc_cpu_seconds`` summed over ``process_tree(pid)`` (None if ``pid`` is gone)."""
    own = proc_cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(proc_cpu_seconds(p) or 0.0 for p in process_tree(pid)[1:])


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: ``echo 5 > /proc/PID/clear_refs``)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    """What the figures were taken on; the load average says how busy the box was."""
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gib": _ram_gib(),
        "load_average": load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in VERSIONED},
        "executable": sys.executable,
    }


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
    return path


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cores() -> int:
    """CPU cores this process may use (the service splits ORT threads the same way)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
