"""The default grading model shipped inside the package.

``returnlens-default.onnx`` is package data (``pyproject.toml`` ships ``models/*.onnx``),
so a plain ``pip install returnlens`` can grade photos offline. Serving falls back to it
when no model is promoted in the models directory (``Settings.resolve_model_path``).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL_NAME = "returnlens-default.onnx"


def default_model_path() -> Path:
    """Path of the shipped default model (the file may be absent in a development tree)."""
    return Path(__file__).resolve().parent / DEFAULT_MODEL_NAME
