"""Typed domain errors shared by every runtime.

Every error carries a stable machine-readable ``code`` and a sentence a person can act
on. The HTTP layer maps codes to statuses once (``serving.errors``); the CLI prints the
sentence and exits non-zero. Nothing below the boundary knows about HTTP.
"""

from __future__ import annotations

from typing import Any


class ReturnLensError(Exception):
    """Base class: a refusal with a code, a human sentence and optional details."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details if details is not None else {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class DecodeError(ReturnLensError):
    """Upload bytes that cannot become a photo (codes: unsupported_media_type, too_large,
    too_many_pixels, image_too_long, unreadable_image)."""

    code = "unreadable_image"


class ModelError(ReturnLensError):
    """A model file that is missing, malformed or does not follow the ONNX contract."""

    code = "model_error"


class ConfigError(ReturnLensError):
    """Invalid configuration: policy YAML, settings, training config."""

    code = "invalid_config"


class DataError(ReturnLensError):
    """Invalid dataset or manifest content."""

    code = "invalid_data"
