"""``OnnxModel.predict_images`` in runs of at most ``max_batch`` photos (the serving paths
run one photo at a time to bound ONNX Runtime's memory): the same outputs, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vision.model import SERVING_BATCH, OnnxModel

SHIPPED = Path(__file__).parents[1] / "serving/models/returnlens-default.onnx"


def _photos(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (120 + 10 * i, 160, 3), dtype=np.uint8) for i in range(n)]


def _counting(model: OnnxModel) -> list[int]:
    """Record the batch size of every session run."""
    sizes: list[int] = []
    run = model.session.run

    def counted(names: Any, feeds: dict[str, np.ndarray]) -> Any:
        sizes.append(int(next(iter(feeds.values())).shape[0]))
        return run(names, feeds)

    model.session = type("Counted", (), {"run": staticmethod(counted)})()  # type: ignore[assignment]
    return sizes


@pytest.mark.parametrize("max_batch", [1, 2, 3])
def test_runs_of_at_most_max_batch_give_the_one_batch_outputs(max_batch: int) -> None:
    photos = _photos(5)
    whole = OnnxModel(SHIPPED, intra_op_threads=1).predict_images(photos)
    model = OnnxModel(SHIPPED, intra_op_threads=1)
    sizes = _counting(model)
    parts = model.predict_images(photos, max_batch)
    assert sizes and max(sizes) <= max_batch and sum(sizes) == 5
    assert len(parts) == 5
    for name in ("grade_probs", "damage_probs", "embedding", "damage_cam", "unfamiliarity"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), atol=1e-5)
    assert whole.familiar is not None and parts.familiar is not None
    assert np.array_equal(parts.familiar, whole.familiar)


def test_the_serving_batch_is_one_photo_and_none_means_one_run() -> None:
    model = OnnxModel(SHIPPED, intra_op_threads=1)
    sizes = _counting(model)
    model.predict_images(_photos(4))
    model.predict_images(_photos(4), SERVING_BATCH)
    assert sizes == [4, 1, 1, 1, 1] and SERVING_BATCH == 1
