"""Section "training": images/s of the default recipe and the data-loading share.

The run is built by the training loop's own ``_Run`` from ``training/configs/default.yaml``
(backbone, image size, batch size, augmentation, losses, optimizer, SKU batch sampler,
DataLoader), so the figure is the recipe's, not a re-implementation. Changes: the
benchmark's synthetic manifest, random initial weights (same speed, no weights file
needed) and, on CPU, at most one loader worker per core (the recipe's 8 workers are
sized for GPU hosts; more processes than cores only steal the compute threads' time).

It runs in a fresh child process, like ``returnlens train``: DataLoader workers are
forked, and forking a process whose ORT/torch/OpenCV thread pools have run (the harness,
after the other sections) can deadlock the children on a lock held at fork time.

Per step: *wait* = time blocked on the next batch from the loader, *compute* = forward,
losses, backward, optimizer and scheduler step (CUDA synchronised on GPU). The loader
alone is then timed over as many batches: if it delivers far more images/s than the
step consumes, it is not the bottleneck.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness.common import ROOT, BenchConfig, cores, log

RECIPE = ROOT / "training" / "configs" / "default.yaml"


def _endless(run: Any) -> Iterator[Any]:
    epoch = 0
    while True:
        run.sampler.set_epoch(epoch)
        yield from run.train_loader
        epoch += 1


def _config(cfg: BenchConfig, manifest: Path, device: str) -> tuple[Any, Any]:
    from training.config import TrainConfig

    recipe = TrainConfig.load(RECIPE)
    changes: dict[str, Any] = {
        "manifest": [str(manifest)],
        "device": device,
        "out": str(cfg.tmp / "train-run"),
        "pretrained": "none",
    }
    if device == "cpu":
        changes["num_workers"] = min(recipe.num_workers, cores())
    if cfg.quick:
        changes.update(image_size=64, batch_size=8, photos_per_sku=2, num_workers=0)
    return recipe, recipe.replace(**changes)


def training_throughput(cfg: BenchConfig, manifest: Path, *, device: str = "cpu") -> dict[str, Any]:
    """Run :func:`measure` in a clean child process; its progress lines pass through."""
    args = json.dumps(
        {"out": str(cfg.out), "quick": cfg.quick, "manifest": str(manifest), "device": device}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.harness.training_bench", "--child", args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        if line.startswith("{"):
            last = line
        else:
            print(line, end="", flush=True)
    if proc.wait() != 0 or not last:
        raise RuntimeError(f"the training benchmark child failed (status {proc.returncode})")
    result: dict[str, Any] = json.loads(last)
    return result


def measure(cfg: BenchConfig, manifest: Path, *, device: str = "cpu") -> dict[str, Any]:
    import torch

    from training import engine
    from training.distributed import DistContext
    from training.train import _Run

    recipe, config = _config(cfg, manifest, device)
    warmup, steps = (1, 2) if cfg.quick else (2, 12)
    dev = engine.resolve_device(config.device)
    engine.seed_everything(config.seed, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    try:
        run = _Run(config, DistContext(), dev)
        run.model.train()
        batches = _endless(run)
        waits, computes, images = [], [], 0
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            batch = next(batches)
            t1 = time.perf_counter()
            run._step(batch)
            sync()
            t2 = time.perf_counter()
            if i >= warmup:
                waits.append(t1 - t0)
                computes.append(t2 - t1)
                images += len(batch["image"])
            log(
                f"  step {i + 1}/{warmup + steps}: wait {1000 * (t1 - t0):.0f} ms, "
                f"compute {1000 * (t2 - t1):.0f} ms"
            )
        start, loaded = time.perf_counter(), 0
        for _ in range(steps):
            loaded += len(next(batches)["image"])
        loader_s = time.perf_counter() - start
    finally:
        torch.use_deterministic_algorithms(False)  # seed_everything set it process-wide
    total = sum(waits) + sum(computes)
    return {
        "device": str(dev),
        "device_name": (torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"),
        "torch_threads": torch.get_num_threads(),
        "recipe": str(RECIPE.relative_to(ROOT)),
        "backbone": config.backbone,
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "num_workers": config.num_workers,
        "recipe_num_workers": recipe.num_workers,
        "aug_strength": config.aug_strength,
        "amp": str(engine.amp_dtype(config.amp, dev)),
        "steps": steps,
        "warmup_steps": warmup,
        "images": images,
        "images_per_s": round(images / total, 2),
        "step_ms_mean": round(1000 * total / steps, 1),
        "data_wait_ms_mean": round(1000 * sum(waits) / steps, 1),
        "data_wait_share": round(sum(waits) / total, 4),
        "loader_only_images_per_s": round(loaded / loader_s, 2),
        "manifest": str(manifest),
    }


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    _a = json.loads(sys.argv[2])
    _cfg = BenchConfig(out=Path(_a["out"]), quick=bool(_a["quick"]))
    print(json.dumps(measure(_cfg, Path(_a["manifest"]), device=_a["device"])), flush=True)
