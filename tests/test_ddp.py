"""Multi-process training: torchrun with 2 CPU processes on the gloo backend.

Each rank trains on its own shard; gradients are all-reduced, so after training the
parameters must be bit-identical on both ranks, and only rank 0 writes the run folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train_data import make_tiny_dataset, tiny_config

WORKER = """
import hashlib, os, sys
from pathlib import Path
import torch
from training.config import TrainConfig
from training.train import train

result = train(TrainConfig.load(Path(sys.argv[1])), progress=False)
digest = hashlib.sha256()
for name, p in sorted(result.model.named_parameters()):
    digest.update(name.encode())
    digest.update(p.detach().cpu().numpy().tobytes())
Path(sys.argv[2], "rank%s.txt" % os.environ["RANK"]).write_text(
    "%s %d %d" % (digest.hexdigest(), result.global_step, int(os.environ["WORLD_SIZE"])))
"""


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    manifest = make_tiny_dataset(tmp_path / "ds")
    out = tmp_path / "run"
    config = tiny_config(manifest, out, epochs=2, max_steps=3, freeze_epochs=1)
    config.save(tmp_path / "config.yaml")
    (tmp_path / "worker.py").write_text(WORKER)
    report = tmp_path / "report"
    report.mkdir()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(tmp_path / "worker.py"),
            str(tmp_path / "config.yaml"),
            str(report),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [(report / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert ranks[0][1:] == ranks[1][1:] == ["3", "2"]  # both finished 3 steps, world of 2
    assert ranks[0][0] == ranks[1][0]  # identical parameters on both ranks
    # only rank 0 wrote: one metrics line per epoch, checkpoints and the resolved config
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    assert (out / "config.yaml").is_file()
