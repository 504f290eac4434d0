"""The second reference: a minimal FastAPI + ONNX Runtime service (decode, infer, answer).

What a competent engineer would ship as "the model behind an HTTP endpoint": the same
FastAPI, uvicorn and multipart stack as the product, the same decode
(``vision.pipeline.decode_for_grading``: header checks, DCT-domain downscale) and the
same ONNX session settings, the product's uvicorn workers and ORT threads per worker, and
a JSON answer with each photo's grade. No quality gate, no perceptual hash or copy
detection, no database, no stored photo, no policy, no outbox. The URL is the product's
upload URL, so ``service_load.run_cell`` drives both with the same photos.

Against the in-process floor (decode + one ONNX run) it shows what HTTP + framework
alone cost; against the product it shows what the product's features cost.

    RETURNLENS_BENCH_MODEL=model.onnx RETURNLENS_BENCH_THREADS=2 \\
        uvicorn benchmarks.harness.minimal_service:create_app --factory
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

# At module level: the endpoint's annotations are strings (postponed evaluation) that
# FastAPI resolves in this module's namespace.
from fastapi import File, UploadFile

from benchmarks.harness.service_load import LiveService

MODEL_ENV = "RETURNLENS_BENCH_MODEL"
THREADS_ENV = "RETURNLENS_BENCH_THREADS"


def create_app() -> Any:
    """The FastAPI app: ``POST /v1/returns/{return_id}/photos`` and ``GET /readyz``."""
    from fastapi import FastAPI

    from vision.model import OnnxModel
    from vision.pipeline import decode_for_grading

    model = OnnxModel(os.environ[MODEL_ENV], intra_op_threads=int(os.environ[THREADS_ENV]))
    size = model.card.preprocess.input_size
    labels = model.card.grade_labels
    model.warmup()
    app = FastAPI()

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/returns/{return_id}/photos")
    def grade(return_id: str, photos: list[UploadFile] = File(...)) -> dict[str, Any]:  # noqa: B008
        # A sync endpoint, like the product's: FastAPI runs it on its thread pool, and
        # decode and ONNX Runtime release the GIL.
        decoded = [decode_for_grading(p.file.read(), size) for p in photos]
        out = model.predict_images([d.rgb for d in decoded])
        grades = [labels[int(out.photo(i).grade_probs.argmax())] for i in range(len(decoded))]
        return {"return_id": return_id, "grades": grades, "decision": {"outcome": "scored"}}

    return app


class MinimalService(LiveService):
    """The minimal service in a uvicorn subprocess, with ``workers`` processes."""

    def __init__(self, model: Path, workdir: Path, *, threads: int, workers: int = 1) -> None:
        super().__init__(model, workdir, threads=threads)
        self.workers = workers

    def env(self) -> dict[str, str]:
        env = super().env()
        env[MODEL_ENV] = str(self.model)
        env[THREADS_ENV] = str(self.threads)
        return env

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.harness.minimal_service:create_app",
            "--factory",
            "--workers",
            str(self.workers),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
