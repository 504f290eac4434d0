"""A reviewer's verdict on a dock inspection re-runs its disposition.

The dock routed (or held) the item on the model's reading. When a person settles it,
the item must be routed on *their* reading, by the same economics
(``serving.policy.dock``): a ``correct`` verdict with a grade prices every channel for
that grade (the reviewer is certain: the grade's probability is 1), an ``approve``
accepts the model's grade and releases an item that was held (wrong item, unfamiliar
photo: the reviewer looked and vouches for it), a ``reject`` keeps the item off every
channel. The inspection keeps both readings: its row takes the new tier, channel and
recovery, and the audit row and the ``disposition.changed`` event carry the old and the
new. The return moves to (or stays at) ``dispositioned``. The new routing label is
``GET /v1/dock/inspections/{id}/routing-label.png``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from serving.policy.types import DockContext
from serving.services import lifecycle, outbox, resolutions
from serving.services.scores import policy_scores
from serving.services.service import ReturnLensService
from serving.storage import repo, search_facts
from serving.storage.tables import Inspection

ROUTED = ("tier", "markdown", "channel", "expected_recovery", "grade")


def _snapshot(ins: Inspection) -> dict[str, Any]:
    return {k: getattr(ins, k) for k in ROUTED}


def redispose(
    s: Session,
    svc: ReturnLensService,
    ins: Inspection,
    *,
    verdict: str,
    grade: str | None,
    reviewer: str,
    now: datetime,
) -> dict[str, Any] | None:
    """Route the inspection on the verdict; the change ({before, after}) or None."""
    before = _snapshot(ins)
    ret = repo.get_return(s, ins.return_id, lock=True) if ins.return_id else None
    line = repo.order_line(s, ret.order_id, ret.sku) if ret else None
    item = repo.get_catalog_item(s, ret.sku) if ret else None
    if verdict == "reject":
        ins.channel, ins.expected_recovery = None, None
    elif ret is None or line is None or item is None:  # unmatched: no price to route on
        if grade is not None:
            ins.grade = grade
        return None
    else:
        from serving.policy.dock import decide_disposition

        # A person's grade is certain; an approval keeps the dock's own reading.
        scores = policy_scores(
            svc.dock_grader.card, ins.grade_probs, ins.damage_probs, certain=grade,
            fallback=ins.grade,
        )  # fmt: skip
        assert scores is not None  # a matched inspection always stores its grade
        ctx = DockContext(
            category=item.category,
            price=float(line.price),
            scores=scores,
            shopper_grade=None,  # the person has settled any discrepancy
            quality_passed=True,
            sku=item.sku,
            similarity=None,
            has_reference=None,  # the person has checked what the item is
        )
        disp = decide_disposition(svc.policy, ctx)
        ins.grade, ins.tier, ins.markdown = disp.grade, disp.tier, disp.markdown
        ins.channel, ins.expected_recovery = disp.channel, round(disp.expected_recovery, 2)
        ins.alternatives = [a.to_dict() for a in disp.alternatives]
    after = _snapshot(ins)
    search_facts.refresh_id(s, ins.return_id)
    change = {"inspection_id": ins.id, "verdict": verdict, "before": before, "after": after}
    repo.append_audit(
        s,
        at=now,
        actor=f"reviewer:{reviewer}",
        action="disposition_changed",
        subject_type="inspection",
        subject_id=ins.id,
        payload=change,
    )
    outbox.emit(s, type="disposition.changed", return_id=ins.return_id, payload=change, now=now)
    if (
        ret is not None
        and ins.channel is not None
        and lifecycle.can_move(ret.status, "dispositioned")
    ):
        lifecycle.move(
            s,
            ret,
            "dispositioned",
            actor=f"reviewer:{reviewer}",
            why=f"inspection {ins.id} reviewed ({verdict})",
            now=now,
            details={"inspection_id": ins.id, "grade": ins.grade, "channel": ins.channel},
        )
        resolutions.settle(s, ret, now=now, actor=f"reviewer:{reviewer}")
    return change
