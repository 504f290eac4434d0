"""The stored JSON of a photo's scores (``serving.services.scores``): the embedding is
rounded by numpy for speed and must give exactly the values Python's ``round`` gives."""

from __future__ import annotations

import numpy as np

from serving.services.scores import photo_scores_from_json, photo_scores_json, rounded_list
from vision.types import PhotoScores


def test_rounded_list_equals_python_round_on_float32_vectors() -> None:
    rng = np.random.default_rng(7)
    vectors = [
        rng.normal(size=1280).astype(np.float32) * scale for scale in (1e-4, 0.03, 1.0, 50.0)
    ]
    edges = np.array([0.0, -0.0, 1.0, -1.0, 0.5e-6, 1.5e-6, 2.5e-6, 0.1234565], np.float32)
    for v in [*vectors, edges]:
        expected = [round(float(x), 6) for x in v]
        got = rounded_list(v)
        assert got == expected
        assert all(type(x) is float for x in got)


def test_photo_scores_round_trip_through_their_json() -> None:
    rng = np.random.default_rng(3)
    emb = rng.normal(size=64).astype(np.float32)
    scores = PhotoScores(
        grade_probs=np.array([0.7, 0.2, 0.1], np.float32),
        damage_probs=np.array([0.05, 0.9], np.float32),
        embedding=emb / np.linalg.norm(emb),
        damage_cam=rng.random((2, 3, 3)).astype(np.float32),
    )
    data = photo_scores_json(scores, ["A", "B", "C"], ["scratch", "dent"], "m-1")
    assert data["embedding"] == [round(float(x), 6) for x in scores.embedding]
    back = photo_scores_from_json(data, ["A", "B", "C"], ["scratch", "dent"])
    np.testing.assert_allclose(back.embedding, scores.embedding, atol=5e-7)
    np.testing.assert_allclose(back.grade_probs, scores.grade_probs, atol=5e-7)
