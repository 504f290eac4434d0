"""Label order survives storage: heatmaps and the review export on SQLite AND PostgreSQL.

PostgreSQL JSONB does not keep the key order of a JSON object (it sorts keys by length,
then bytes), so the order of the stored ``damage_probs`` dict is not the order of the
rows of the stored ``damage_cam``. The label lists are stored with the scores and used
wherever order matters.

The model is the tiny test model (benchmarks/tiny_model.py) with one change made here: its
CAM weights become a [1,7,4,4] constant that lights a DIFFERENT cell for each damage
label (the original weights only scale one map per label, so every label's normalised
map looks the same). A heatmap built from the wrong label's CAM row then lights the
wrong place, which these tests would see.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from sqlalchemy import update

from benchmarks.tiny_model import DAMAGE, GRADES, build_test_model
from serving.domain_errors import NotFound
from serving.services import admin, media, review, shopper
from serving.services.inputs import CatalogRow, CreateReturnRequest, OrderRow, ReviewRequest
from serving.services.service import ReturnLensService
from serving.storage.review_export import ExportOptions, export_reviewed
from serving.storage.tables import Photo
from tests.photo_factory import item_scene
from tests.service_data import DELIVERED, jpeg, service_on
from vision.errors import DataError
from vision.heatmap import cam_to_photo, render_overlay
from vision.model import OnnxModel
from vision.pipeline import Grader

# Label i lights CAM cell HOT[i] (rows 1-2: inside the letterboxed photo).
HOT = [(1, 0), (1, 3), (2, 1), (2, 2), (1, 1), (2, 0), (2, 3)]
VISIBLE = ("scratch", "dent", "crack")  # probability > 0.2 on a red photo: drawn
TOLERANCE = 0.5  # mean |difference| per channel value (CAM and probs are stored rounded)


def _spatial_cam_model(path: Path) -> Path:
    model = onnx.load(str(build_test_model(path)))
    weights = np.full((1, len(DAMAGE), 4, 4), 0.05, np.float32)
    for i, (r, c) in enumerate(HOT):
        weights[0, i, r, c] = 1.0
    for k, init in enumerate(model.graph.initializer):
        if init.name == "w_cam":
            model.graph.initializer[k].CopyFrom(numpy_helper.from_array(weights, "w_cam"))
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def grader(tmp_path_factory: pytest.TempPathFactory) -> Grader:
    path = _spatial_cam_model(tmp_path_factory.mktemp("model") / "spatial.onnx")
    return Grader(OnnxModel(path, intra_op_threads=1))


@pytest.fixture()
def svc(db_url: str, tmp_path: Path, grader: Grader) -> Iterator[ReturnLensService]:
    service = service_on(db_url, tmp_path / "photos", grader.model)
    admin.upsert_catalog(
        service, [CatalogRow(sku="mug-01", category="mug", name="Blue mug", price=25.0)]
    )
    admin.upsert_orders(
        service,
        [
            OrderRow(
                order_id="o-1",
                customer_id="c-1",
                customer_email="a@example.com",
                sku="mug-01",
                price=25.0,
                delivered_at=DELIVERED,
            )
        ],
    )
    yield service
    service.db.dispose()


def red_photo() -> bytes:
    """A textured item scene pushed to red: the tiny model sees scratch, dent, crack."""
    rgb = item_scene(7, kind="mug", size=(640, 480), item_fraction=0.7).rgb.astype(np.float32)
    rgb[..., 0] = 230.0
    rgb[..., 1:] *= 0.3
    return jpeg(rgb.clip(0, 255).astype(np.uint8))


def _upload(svc: ReturnLensService) -> tuple[str, str, bytes]:
    """(return id, photo id, uploaded bytes) of one red photo."""
    created = shopper.create_return(
        svc, CreateReturnRequest(order_id="o-1", sku="mug-01", reason="changed_mind")
    )
    data = red_photo()
    result = shopper.upload_photos(svc, created.return_id, [data])
    return created.return_id, result.photos[0].photo_id, data


def _decode(png_or_jpeg: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(png_or_jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), np.float32)


def _expected(
    svc: ReturnLensService, grader: Grader, photo_id: str, data: bytes, rows: list[int]
) -> np.ndarray:
    """The overlay drawn straight from the model's CAM rows ``rows`` (card order)."""
    scores = grader.grade([data]).photos[0].scores
    stored = _decode(media.photo_bytes(svc, photo_id)[0]).astype(np.uint8)
    h, w = stored.shape[:2]
    heat = np.zeros((h, w), np.float32)
    for i in rows:
        cam = scores.damage_cam[i]
        heat = np.maximum(
            heat,
            cam_to_photo(cam / cam.max(), h, w, grader.card.preprocess)
            * float(scores.damage_probs[i]),
        )
    return render_overlay(stored, heat).astype(np.float32)


def _scores(svc: ReturnLensService, photo_id: str) -> dict[str, Any]:
    with svc.db.read() as s:
        row = s.get(Photo, photo_id)
        assert row is not None
        return dict(row.scores)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_each_heatmap_is_drawn_from_its_own_labels_cam_row(
    svc: ReturnLensService,
    grader: Grader,
    db_url: str,
) -> None:
    _, pid, data = _upload(svc)
    scores = _scores(svc, pid)
    assert scores["damage_labels"] == list(DAMAGE) and scores["grade_labels"] == list(GRADES)
    if db_url.startswith("postgresql"):  # the condition the fix is about is really there
        assert list(scores["damage_probs"]) != list(DAMAGE)
    photo = shopper.get_return(svc, media.photo_subject(svc, pid)[1]).photos[0]
    assert photo.heatmap_labels == ("grade", *DAMAGE)
    assert list(photo.damage_probs) == list(DAMAGE) and list(photo.grade_probs) == list(GRADES)
    for label in VISIBLE:
        got = _decode(media.heatmap_png(svc, pid, label))
        own = DAMAGE.index(label)
        assert _diff(got, _expected(svc, grader, pid, data, [own])) < TOLERANCE, label
        for other in VISIBLE:  # another label's map would be visibly different
            if other != label:
                wrong = _expected(svc, grader, pid, data, [DAMAGE.index(other)])
                assert _diff(got, wrong) > 5 * TOLERANCE, (label, other)
    combined = _decode(media.heatmap_png(svc, pid, "grade"))
    assert _diff(combined, _expected(svc, grader, pid, data, list(range(len(DAMAGE))))) < TOLERANCE


def test_rows_stored_without_label_lists_use_the_card_of_the_same_model_only(
    svc: ReturnLensService, grader: Grader
) -> None:
    _, pid, data = _upload(svc)
    scores = _scores(svc, pid)
    legacy = {k: v for k, v in scores.items() if k not in ("grade_labels", "damage_labels")}
    with svc.db.write() as s:
        s.execute(update(Photo).where(Photo.id == pid).values(scores=legacy))
    got = _decode(media.heatmap_png(svc, pid, "scratch"))
    assert _diff(got, _expected(svc, grader, pid, data, [DAMAGE.index("scratch")])) < TOLERANCE
    with svc.db.write() as s:  # graded by another model: the row order is unknown
        s.execute(
            update(Photo)
            .where(Photo.id == pid)
            .values(scores={**legacy, "model_version": "older-model"})
        )
    with pytest.raises(NotFound) as err:
        media.heatmap_png(svc, pid, "scratch")
    assert err.value.code == "not_found"


def test_review_export_reads_the_stored_label_lists(
    svc: ReturnLensService,
    tmp_path: Path,
    db_url: str,
) -> None:
    rid, pid, _ = _upload(svc)
    review.submit_review(
        svc,
        ReviewRequest(
            subject_type="return",
            subject_id=rid,
            verdict="correct",
            grade="D_fair",
            damage=["dent"],
        ),
        reviewer="rita",
    )
    options = ExportOptions(include_failed_quality=True)
    photos = svc.photos.root
    report = export_reviewed(db_url, photos, tmp_path / "out", options)
    header = json.loads(report.manifest.read_text(encoding="utf-8").splitlines()[0])
    assert (header["grade_labels"], header["damage_labels"]) == (list(GRADES), list(DAMAGE))

    # A row stored before the lists existed: PostgreSQL cannot tell its order.
    scores = _scores(svc, pid)
    with svc.db.write() as s:
        s.execute(
            update(Photo)
            .where(Photo.id == pid)
            .values(
                scores={
                    k: v for k, v in scores.items() if k not in ("grade_labels", "damage_labels")
                }
            )
        )
    if db_url.startswith("postgresql"):
        with pytest.raises(DataError) as err:
            export_reviewed(db_url, photos, tmp_path / "out2", options)
        assert err.value.code == "labels_required"
    else:  # SQLite keeps the JSON text, so the dict order is the model's
        export_reviewed(db_url, photos, tmp_path / "out2", options)
    # --labels-from stays an override (here the first export's manifest header).
    again = export_reviewed(
        db_url,
        photos,
        tmp_path / "out3",
        ExportOptions(include_failed_quality=True, labels_from=report.manifest),
    )
    assert again.records == 1
