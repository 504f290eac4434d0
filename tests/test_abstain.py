"""Abstention and no silent skips, through the real service (tiny model, SQLite and
PostgreSQL).

The tiny model (benchmarks/tiny_model.py) scores a photo's green excess as its
unfamiliarity: the neutral test photos are familiar, a strongly green one is a photo the
model has never seen. Checked: an unfamiliar photo is never approved or refused on its
grade, and the verdict survives later uploads (it is stored with the photo); an older
model without the score abstains on every photo; a SKU without a catalog reference photo
goes to review at the shopper and at the dock; the dock holds a wrong item or an
unfamiliar photo for review instead of routing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.policy.shopper import CANNOT_TELL_MESSAGE, UNFAMILIAR_MESSAGE
from serving.services import admin, dock, lifecycle, review, shopper
from serving.services.familiarity import grader_status, unfamiliarity_status
from serving.services.inputs import CatalogRow, CreateReturnRequest, InspectionRequest, OrderRow
from serving.services.service import ReturnLensService
from serving.storage import repo
from tests.service_data import DELIVERED, REFERENCE_SEED, clean, jpeg, scene, service_on
from vision.model import OnnxModel
from vision.pipeline import Grader

GREEN_BG, GREEN_ITEM = (40, 230, 40), (15, 110, 15)  # green excess ~0.6 > 0.4


def green(corner: str = "tl", seed: int = 0) -> bytes:
    return jpeg(scene(corner=corner, bg=GREEN_BG, item=GREEN_ITEM, seed=seed))


def new_return(svc: ReturnLensService, order: str = "o-1", sku: str = "mug-01") -> str:
    req = CreateReturnRequest(order_id=order, sku=sku, reason="changed_mind")
    return shopper.create_return(svc, req).return_id


def inspection(key: str, photos: list[bytes], return_id: str | None) -> InspectionRequest:
    return InspectionRequest(
        return_id=return_id, photos=photos, idempotency_key=key, station_id="dock-1"
    )


def codes(flags: list[Any]) -> list[str]:
    return [f.code for f in flags]


def accepted(svc: ReturnLensService, rid: str) -> str:
    """The return approved for the dock (through the lifecycle, as a reviewer would):
    these tests are about the dock's own checks, not the shopper's photos."""
    with svc.db.write() as s:
        ret = repo.get_return(s, rid, lock=True)
        assert ret is not None
        lifecycle.move(s, ret, "approved", actor="test", why="dock test", now=svc.now())
    return rid


@pytest.fixture
def lamp(svc: ReturnLensService) -> str:
    """A SKU WITHOUT a catalog reference photo, on order o-lamp."""
    admin.upsert_catalog(svc, [CatalogRow(sku="lamp-03", category="lamp", name="Lamp", price=30)])
    admin.upsert_orders(
        svc,
        [
            OrderRow(
                order_id="o-lamp",
                customer_id="c-3",
                customer_email="l@example.com",
                sku="lamp-03",
                price=30.0,
                delivered_at=DELIVERED,
            )
        ],
    )
    return new_return(svc, "o-lamp", "lamp-03")


# ----------------------------------------------------------------------------- shopper
def test_an_unfamiliar_photo_goes_to_a_person_with_a_plain_sentence(
    svc: ReturnLensService,
) -> None:
    rid = new_return(svc)
    out = shopper.upload_photos(svc, rid, [green()])
    assert out.decision.outcome == "needs_review"
    # the tiny model's embedding reads the green too, so the layout check disagrees:
    # review-only, like every flag on an item the engine abstains on
    assert codes(out.decision.flags) == ["unfamiliar_photo", "wrong_item"]
    assert out.decision.message == UNFAMILIAR_MESSAGE
    assert out.photos[0].familiar is False and out.photos[0].unfamiliarity > 0.4
    assert out.decision.flags[0].evidence["model_grade"] == "A_new"  # not used
    # the same scene in familiar colours is approved: only the unfamiliarity held it
    familiar = shopper.upload_photos(svc, new_return(svc, "o-2"), [clean(seed=7)])
    assert familiar.decision.outcome == "approved"
    # the verdict is stored with the photo: a later familiar photo does not wash it out
    again = shopper.upload_photos(svc, rid, [clean(seed=3)])
    assert again.decision.outcome == "needs_review"
    assert "unfamiliar_photo" in codes(again.decision.flags)
    got = shopper.get_return(svc, rid)
    assert [p.familiar for p in got.photos] == [False, True]


def test_familiar_photos_keep_their_verdict_across_uploads(svc: ReturnLensService) -> None:
    rid = new_return(svc)
    first = shopper.upload_photos(svc, rid, [clean(corner="br")])  # wrong layout: review
    assert codes(first.decision.flags) == ["wrong_item"]
    second = shopper.upload_photos(svc, rid, [clean(seed=4)])
    assert not {"unfamiliar_photo", "model_cannot_tell"} & set(codes(second.decision.flags))


def test_a_sku_without_reference_photo_goes_to_review(svc: ReturnLensService, lamp: str) -> None:
    out = shopper.upload_photos(svc, lamp, [clean()])
    assert out.decision.outcome == "needs_review"
    assert codes(out.decision.flags) == ["no_reference_photo"]
    assert out.decision.flags[0].evidence == {"sku": "lamp-03"}


# ----------------------------------------------------------------------------- dock
def test_the_dock_routes_the_right_familiar_item(svc: ReturnLensService) -> None:
    view = dock.inspect(svc, inspection("k-ok", [clean(seed=5)], accepted(svc, new_return(svc))))
    assert view.channel is not None and view.expected_recovery is not None
    assert view.similarity > 0.9 and view.familiar is True
    assert view.flags == [] and not view.needs_review


@pytest.mark.parametrize(
    ("photo", "code"),
    [(lambda: clean(corner="br"), "wrong_item"), (green, "unfamiliar_photo")],
    ids=["wrong_item", "unfamiliar_photo"],
)
def test_the_dock_holds_a_wrong_or_unfamiliar_item_for_review(
    svc: ReturnLensService, photo: object, code: str
) -> None:
    rid = accepted(svc, new_return(svc))
    view = dock.inspect(svc, inspection(f"k-{code}", [photo()], rid))  # type: ignore[operator]
    assert view.status == "matched" and view.return_id == rid
    assert code in codes(view.flags) and view.needs_review
    assert view.channel is None and view.expected_recovery is None  # not routed
    assert view.alternatives, "the priced options stay for the reviewer"
    assert view.familiar is (code != "unfamiliar_photo")
    queue = review.review_queue(svc)
    assert ("inspection", view.inspection_id) in {(q.subject_type, q.subject_id) for q in queue}
    replay = dock.inspect(svc, inspection(f"k-{code}", [photo()], rid))  # type: ignore[operator]
    assert replay.replayed and replay.channel is None


def test_the_dock_holds_a_sku_without_reference_photo(svc: ReturnLensService, lamp: str) -> None:
    view = dock.inspect(svc, inspection("k-lamp", [clean()], accepted(svc, lamp)))
    assert codes(view.flags) == ["no_reference_photo"] and view.needs_review
    assert view.channel is None and view.similarity is None


# ----------------------------------------------------------------------------- older model
@pytest.fixture(scope="module")
def older_onnx(tmp_path_factory: pytest.TempPathFactory) -> OnnxModel:
    from benchmarks.tiny_model import build_test_model

    path = build_test_model(tmp_path_factory.mktemp("old") / "old.onnx", unfamiliarity=False)
    return OnnxModel(path, intra_op_threads=1)


@pytest.fixture
def older_svc(db_url: str, tmp_path: Path, older_onnx: OnnxModel) -> Iterator[ReturnLensService]:
    service = service_on(db_url, tmp_path / "photos", older_onnx)
    catalog = [CatalogRow(sku="mug-01", category="mug", name="Mug", price=25.0)]
    admin.upsert_catalog(service, catalog, photos={"mug-01": clean(seed=REFERENCE_SEED)})
    order = OrderRow(
        order_id="o-1",
        customer_id="c-1",
        customer_email="a@example.com",
        sku="mug-01",
        price=25.0,
        delivered_at=DELIVERED,
    )
    admin.upsert_orders(service, [order])
    yield service
    service.db.dispose()


def test_an_older_model_abstains_on_every_photo(older_svc: ReturnLensService) -> None:
    status = unfamiliarity_status(older_svc)
    assert not status.available and "no unfamiliarity parameters" in status.note
    rid = new_return(older_svc)
    out = shopper.upload_photos(older_svc, rid, [clean()])  # would be approved
    assert out.decision.outcome == "needs_review"
    assert codes(out.decision.flags) == ["model_cannot_tell"]
    assert out.decision.message == CANNOT_TELL_MESSAGE
    assert out.photos[0].familiar is None and out.photos[0].unfamiliarity is None
    view = dock.inspect(older_svc, inspection("k-old", [clean(seed=2)], rid))
    # still waiting for its review, so also not_pre_approved
    assert codes(view.flags) == ["model_cannot_tell", "not_pre_approved"]
    assert view.channel is None and view.familiar is None and view.similarity > 0.9


def test_a_card_naming_an_output_the_graph_lacks_cannot_tell(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    from benchmarks.tiny_model import build_test_model, model_card

    path = build_test_model(tmp_path / "half.onnx", unfamiliarity=False)
    model = onnx.load(str(path))
    del model.metadata_props[:]
    helper.set_model_props(model, {"returnlens_card": model_card().to_json()})
    onnx.save(model, str(path))
    grader = Grader(OnnxModel(path, intra_op_threads=1))
    assert not grader.model.has_unfamiliarity
    status = grader_status(grader)
    assert not status.available and "'unfamiliarity', which its graph lacks" in status.note
    result = grader.grade([clean()])
    assert result.item is not None and result.item.familiar is None
