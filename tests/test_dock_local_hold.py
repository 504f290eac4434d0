"""The standalone dock station holds what the model cannot vouch for, like the server.

Real parts: the tiny contract-valid ONNX model under ONNX Runtime, the shipped policy,
real JPEG bytes decoded by ``vision``. The "older model" is the same tiny model built
without its unfamiliarity output, so the policy must abstain (``model_cannot_tell``)
and the station must not print a channel for the item.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from benchmarks.tiny_model import build_test_model
from serving.dock.identify import Identity
from serving.dock.process import Capture, Prepared, local_result
from serving.policy import load_policy
from vision.pipeline import Grader


def _prepared(grader: Grader, rgb: np.ndarray) -> Prepared:
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    data = jpg.tobytes()
    photo = grader.decode(data)
    capture = Capture(frames=(rgb[..., ::-1].copy(),), box=None, frame_index=0)
    return Prepared(capture, Identity("ret-1", "cli"), (data,), (photo,), (True,))


def _item_photo() -> np.ndarray:
    """A grey item on a light table: the tiny model grades it A_new and finds it familiar."""
    rgb = np.full((480, 640, 3), 225, np.uint8)
    rgb[120:360, 180:460] = (120, 120, 125)
    rgb[150:200, 220:300] = (90, 90, 95)  # some texture so the gate sees edges
    return rgb


def _result(model: Path) -> dict[str, object]:
    grader = Grader.load(model, profile="dock", intra_op_threads=1)
    policy = load_policy(None).for_model(grader.card.thresholds)
    return local_result(
        grader, policy, _prepared(grader, _item_photo()), category="mug", price=20.0
    )


def test_a_familiar_item_is_routed_and_an_older_model_holds_it(tmp_path: Path) -> None:
    routed = _result(build_test_model(tmp_path / "new.onnx"))
    held = _result(build_test_model(tmp_path / "old.onnx", unfamiliarity=False))
    codes = {f["code"] for f in held["flags"]}  # type: ignore[attr-defined]
    assert "model_cannot_tell" in codes
    assert held["channel"] is None and held["expected_recovery"] is None
    assert held["needs_review"] is True
    assert held["alternatives"], "the priced options stay for the reviewer"
    assert "model_cannot_tell" not in {f["code"] for f in routed["flags"]}  # type: ignore[attr-defined]
    assert routed["channel"] is not None
