"""Limits on opening returns (``serving.services.limits``), SQLite and PostgreSQL: no more
returns of an order line than were bought, the shopper's own unphotographed tries give
way to a new return, abandoned returns expire, and neither counts towards the
repeat-returner rule."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from returnlens.cli import main
from serving.domain_errors import Conflict
from serving.services import admin, limits, shopper
from serving.services.inputs import CreateReturnRequest, OrderRow
from serving.services.service import ReturnLensService
from serving.storage.tables import Decision
from tests.service_data import DELIVERED, NOW, clean


@pytest.fixture
def lines(svc: ReturnLensService) -> ReturnLensService:
    """Order o-q: one mug (quantity 1) and two boxes (quantity 2), customer c-q."""
    admin.upsert_orders(
        svc,
        [
            OrderRow(
                order_id="o-q",
                customer_id="c-q",
                sku="mug-01",
                price=25.0,
                delivered_at=DELIVERED,
                quantity=1,
            ),
            OrderRow(
                order_id="o-q",
                customer_id="c-q",
                sku="box-02",
                price=40.0,
                delivered_at=DELIVERED,
                quantity=2,
            ),
        ],
    )
    return svc


def open_return(svc: ReturnLensService, sku: str, order: str = "o-q") -> str:
    req = CreateReturnRequest(order_id=order, sku=sku, reason="changed_mind")
    return shopper.create_return(svc, req).return_id


def test_a_line_of_one_accepts_one_return(lines: ReturnLensService) -> None:
    first = open_return(lines, "mug-01")
    shopper.upload_photos(lines, first, [clean(seed=1)])  # photographed: a real return
    with pytest.raises(Conflict) as err:
        open_return(lines, "mug-01")
    assert err.value.code == "quantity_exceeded"
    assert first in err.value.message and err.value.details["quantity"] == 1


def test_a_line_of_two_accepts_two(lines: ReturnLensService) -> None:
    for seed in (1, 2):
        rid = open_return(lines, "box-02")
        shopper.upload_photos(lines, rid, [clean(seed=seed, corner="br")])
    with pytest.raises(Conflict) as err:
        open_return(lines, "box-02")
    assert err.value.code == "quantity_exceeded" and "All 2" in err.value.message


def test_an_unphotographed_try_gives_way_to_a_new_return(lines: ReturnLensService) -> None:
    abandoned = open_return(lines, "mug-01")  # no photos: a closed tab, a lost link
    fresh = open_return(lines, "mug-01")
    old = shopper.get_return(lines, abandoned)
    assert old.status == "expired"
    assert shopper.staff_timeline(lines, abandoned)[-1].why == "replaced by a new return"
    assert shopper.get_return(lines, fresh).status == "awaiting_photos"
    with pytest.raises(Conflict) as err:
        shopper.upload_photos(lines, abandoned, [clean(seed=1)])
    assert "expired" in err.value.message


def test_abandoned_returns_expire_after_the_setting(lines: ReturnLensService) -> None:
    rid = open_return(lines, "box-02")
    with lines.db.write() as s:
        assert limits.expire_abandoned(s, NOW + timedelta(hours=71), lines.abandoned_after) == []
    with lines.db.write() as s:
        expired = limits.expire_abandoned(s, NOW + timedelta(hours=72), lines.abandoned_after)
    assert rid in expired
    entry = shopper.staff_timeline(lines, rid)[-1]
    assert entry.status == "expired" and entry.actor == "system"
    assert "72 hours" in entry.why


def test_abandoned_tries_do_not_count_as_returns(lines: ReturnLensService) -> None:
    """Three tries without photos on other lines, then a real return: its decision read
    a history without the tries (the policy's repeat-returner window)."""
    for order, sku in (("o-1", "mug-01"), ("o-1", "box-02"), ("o-2", "mug-01")):
        open_return(lines, sku, order=order)
    kept = open_return(lines, "mug-01", order="o-1")  # c-1 again: o-1's mug has quantity 20
    earlier = open_return(lines, "box-02", order="o-1")
    shopper.upload_photos(lines, earlier, [clean(seed=3, corner="br")])  # counts
    decision = shopper.upload_photos(lines, kept, [clean(seed=4)]).decision
    with lines.db.read() as s:
        row = s.scalars(select(Decision).where(Decision.id == decision.decision_id)).one()
    assert len(row.inputs["history_times"]) == 1  # only the photographed return


def test_the_expire_command_expires_what_waited_too_long(
    lines: ReturnLensService, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fixture's clock is months behind the real one, so a return opened by it has
    waited far longer than the 72-hour default when the command runs now."""
    waiting = open_return(lines, "box-02")
    photographed = open_return(lines, "box-02")
    shopper.upload_photos(lines, photographed, [clean(seed=5, corner="br")])
    assert main(["returns", "expire", "--database-url", db_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert waiting in report["expired"] and photographed not in report["expired"]
    assert report["hours"] == 72
    assert shopper.get_return(lines, waiting).status == "expired"
    assert main(["returns", "expire", "--database-url", db_url, "--hours", "0"]) == 2
    assert "--hours" in capsys.readouterr().err
