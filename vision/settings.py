"""Settings every runtime shares, read once from ``RETURNLENS_*`` by pydantic-settings.

The service's :class:`serving.settings.Settings` extends this class, and the torch-free
tools that run without a service (the model registry CLI, ``returnlens grade``, the dock
station) read the same fields through it, so each variable is parsed and validated in
exactly one place and means the same thing everywhere. Nothing else in ``vision``
reads the environment: modules take these values from their caller.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SharedSettings(BaseSettings):
    """The model registry folder and the ONNX Runtime thread count."""

    model_config = SettingsConfigDict(
        env_prefix="RETURNLENS_", extra="ignore", validate_default=True
    )

    models_dir: Path = Path("./models")  # the model registry (vision.registry)
    # ONNX Runtime intra-op threads per process; None: the service divides the cores
    # between its workers, a standalone tool uses them all.
    ort_threads: int | None = Field(default=None, ge=1)
