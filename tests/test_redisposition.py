"""A reviewer's verdict on a dock inspection re-runs its disposition
(``serving.services.redisposition``), SQLite and PostgreSQL, tiny model: the corrected
grade is routed by the dock's economics, both readings are recorded, the shop hears of
it, and the new routing label carries the inspection id."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from sqlalchemy import select

from serving.dock.identify import QrReader
from serving.policy.dock import recovery_table
from serving.policy.types import Scores
from serving.services import dock, review, shopper
from serving.services.inputs import ReviewRequest
from serving.services.routing_label import routing_label
from serving.services.service import ReturnLensService
from serving.storage.tables import AuditLog, OutboxEvent
from tests import service_data


def routed_damaged(svc: ReturnLensService) -> tuple[str, str]:
    rid, view = service_data.routed_damaged(svc)
    return rid, view.inspection_id


def verdict(svc: ReturnLensService, ins_id: str, kind: str, grade: str | None = None) -> None:
    req = ReviewRequest.model_validate(
        {"subject_type": "inspection", "subject_id": ins_id, "verdict": kind, "grade": grade}
    )
    review.submit_review(svc, req, reviewer="dora")


def test_a_corrected_grade_is_routed_again_and_both_readings_kept(
    svc: ReturnLensService,
) -> None:
    rid, ins_id = routed_damaged(svc)
    before = dock.get_inspection(svc, ins_id)
    verdict(svc, ins_id, "correct", grade="A_new")
    after = dock.get_inspection(svc, ins_id)
    assert after.grade == "A_new"
    # The dock's own economics for a certain A_new: the best eligible channel.
    cat = svc.policy.fitted_to(svc.grader.card.grade_labels, svc.grader.card.damage_labels)
    _, mug = cat.category("mug")
    labels = svc.grader.card.grade_labels
    certain = Scores(labels, {g: float(g == "A_new") for g in labels}, dict(before.damage_probs))
    best = recovery_table(mug, 25.0, certain)[0]
    assert after.channel == best.channel and after.channel != before.channel
    assert after.expected_recovery == round(best.expected_recovery, 2)
    assert after.expected_recovery > before.expected_recovery
    with svc.db.read() as s:
        audit = s.scalars(
            select(AuditLog).where(
                AuditLog.action == "disposition_changed", AuditLog.subject_id == ins_id
            )
        ).one()
        event = s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "disposition.changed")
        ).one()
    assert audit.payload["before"]["channel"] == before.channel
    assert audit.payload["after"]["channel"] == after.channel and audit.actor == "reviewer:dora"
    assert event.return_id == rid and event.payload["after"]["grade"] == "A_new"
    timeline = shopper.staff_timeline(svc, rid)
    assert timeline[-2].status == "dispositioned" and timeline[-2].actor == "reviewer:dora"
    assert timeline[-2].details["channel"] == after.channel
    assert timeline[-1].status == "resolved"  # nothing left to check: settled
    label = np.asarray(Image.open(io.BytesIO(routing_label(svc, ins_id))).convert("L"))
    assert QrReader().read(label) == ins_id  # the station's reader: both OpenCV detectors


def test_a_rejected_item_goes_to_no_channel(svc: ReturnLensService) -> None:
    _, ins_id = routed_damaged(svc)
    verdict(svc, ins_id, "reject")
    after = dock.get_inspection(svc, ins_id)
    assert after.channel is None and after.expected_recovery is None
