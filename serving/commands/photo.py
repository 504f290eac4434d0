"""Subcommands (filled in by the issue that owns them)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:  # argparse._SubParsersAction
    del sub
