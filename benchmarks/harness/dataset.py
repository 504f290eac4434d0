"""A small synthetic labelled set for the int8 accuracy check and the training figures.

Generated once per size by ``vision.synth`` into the harness's tmp dir (git-ignored)
and reused by later runs; 80/10/10 train/val/test split.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness.common import BenchConfig, log


def bench_manifest(cfg: BenchConfig) -> Path:
    from vision.synth import SynthConfig, generate_dataset

    count, size = (48, 64) if cfg.quick else (320, 256)
    folder = cfg.tmp / f"synth-{count}-{size}"
    manifest = folder / "manifest.jsonl"
    if manifest.is_file():
        return manifest
    log(f"generating {count} synthetic labelled photos ({size} px) into {folder}")
    return Path(
        generate_dataset(
            folder, SynthConfig(count=count, seed=5, image_size=size), workers=1, progress=False
        )
    )
