"""The generator's output folder: create it, clear an earlier synth run, refuse foreign data.

Kept apart from ``dataset.py`` so that module stays about rendering and writing records.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from vision.errors import ReturnLensError


def prepare_output(out_dir: Path) -> None:
    """Create the output tree; clear images of an earlier synth run; refuse foreign data."""
    try:
        if (
            out_dir.exists()
            and any(out_dir.iterdir())
            and not (out_dir / "synth_config.json").exists()
        ):
            raise ReturnLensError(
                f"Output folder {out_dir} is not empty and was not written by 'returnlens synth'; "
                "choose an empty or new folder.",
                code="output_not_empty",
            )
        for sub in ("images", "masks", "catalog"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
            (out_dir / sub).mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ReturnLensError(
            f"Cannot write to output folder {out_dir}: {exc.strerror or exc}.",
            code="unwritable_output",
        ) from exc
