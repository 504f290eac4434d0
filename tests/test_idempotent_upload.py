"""Shopper uploads are safe to retry: an ``Idempotency-Key`` replays the stored answer.

A shopper whose connection drops after the upload was stored (a client timeout) sends
the same photos again. With the key of the first attempt the service answers the
decision it stored then (``replayed``), even though the return is now decided and the
photos are already on it, instead of 409 ``already_decided`` / ``duplicate_upload``;
nothing is stored twice. The same key with other photos is a 409
``idempotency_conflict``. On SQLite and PostgreSQL (service and API), with two attempts
racing each other, and in Chromium: the shopper page sends one key per upload attempt
and the same key when the person retries it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from serving.domain_errors import Conflict
from serving.services import shopper
from serving.services.inputs import CreateReturnRequest
from serving.services.service import ReturnLensService
from serving.storage.tables import Decision, Photo
from tests.service_data import clean
from tests.shop import Shop, jpeg, scene


def _open(svc: ReturnLensService) -> str:
    req = CreateReturnRequest(order_id="o-1", sku="mug-01", reason="changed_mind")
    return shopper.create_return(svc, req).return_id


def _rows(svc: ReturnLensService, return_id: str) -> tuple[int, int]:
    with svc.db.read() as s:
        decisions = s.scalar(
            select(func.count()).select_from(Decision).where(Decision.return_id == return_id)
        )
        photos = s.scalar(
            select(func.count()).select_from(Photo).where(Photo.return_id == return_id)
        )
    return int(decisions or 0), int(photos or 0)


def test_a_retry_with_the_key_gets_the_stored_answer(svc: ReturnLensService) -> None:
    rid = _open(svc)
    photos = [clean(seed=1), clean(seed=2)]
    first = shopper.upload_photos(svc, rid, photos, idempotency_key="attempt-1")
    assert first.decision.outcome == "approved" and not first.replayed
    # The answer was lost on the way; the page sends the same photos with the same key.
    again = shopper.upload_photos(svc, rid, photos, idempotency_key="attempt-1")
    assert again.replayed
    assert again.decision.decision_id == first.decision.decision_id
    assert [p.photo_id for p in again.photos] == [p.photo_id for p in first.photos]
    assert again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    assert _rows(svc, rid) == (1, 2)  # nothing stored twice
    # Without the key the same retry is what it always was: the return is decided.
    with pytest.raises(Conflict) as err:
        shopper.upload_photos(svc, rid, photos)
    assert err.value.code == "already_decided"
    # The key belongs to those photos: other photos under it are refused.
    with pytest.raises(Conflict) as err:
        shopper.upload_photos(svc, rid, [clean(seed=3)], idempotency_key="attempt-1")
    assert err.value.code == "idempotency_conflict"
    assert _rows(svc, rid) == (1, 2)


def test_keys_are_per_return_and_a_new_key_is_a_new_upload(svc: ReturnLensService) -> None:
    a, b = _open(svc), _open(svc)
    first = shopper.upload_photos(svc, a, [clean(seed=4)], idempotency_key="k")
    other = shopper.upload_photos(svc, b, [clean(seed=5)], idempotency_key="k")
    assert not other.replayed and other.decision.decision_id != first.decision.decision_id
    with pytest.raises(Conflict) as err:  # a new key on a decided return: a new upload
        shopper.upload_photos(svc, a, [clean(seed=4)], idempotency_key="k2")
    assert err.value.code == "already_decided"


def test_two_attempts_racing_get_one_decision(svc: ReturnLensService) -> None:
    """The retry starts while the first attempt is still grading: whichever stores first
    decides, the other answers that decision (never a 409, never two decisions)."""
    rid = _open(svc)
    photos = [clean(seed=6)]
    start = threading.Barrier(2)
    answers: list[Any] = []

    def attempt() -> None:
        start.wait(timeout=30)
        try:
            answers.append(shopper.upload_photos(svc, rid, photos, idempotency_key="race"))
        except Exception as exc:  # recorded, so the assertion names it
            answers.append(exc)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(not isinstance(a, Exception) for a in answers), answers
    assert len(answers) == 2
    assert answers[0].decision.decision_id == answers[1].decision.decision_id
    assert sorted(a.replayed for a in answers) == [False, True]
    assert _rows(svc, rid) == (1, 1)


def test_the_api_takes_the_header(shop: Shop) -> None:
    rid, token = shop.open_return()
    photo = jpeg(scene(1))
    files = [("photos", ("p.jpg", photo, "image/jpeg"))]

    def post(key: str | None, data: list[Any] = files) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return shop.client.post(f"/v1/returns/{rid}/photos", files=data, headers=headers)

    first = post("web-0001")
    assert first.status_code == 200, first.text
    assert first.json()["replayed"] is False
    counts = shop.counts()
    again = post("web-0001")
    assert again.status_code == 200, again.text
    assert again.json()["replayed"] is True
    assert again.json()["decision"] == first.json()["decision"]
    assert shop.counts() == counts
    decided = post(None)
    assert decided.status_code == 409 and decided.json()["code"] == "already_decided"
    other = post("web-0001", [("photos", ("q.jpg", jpeg(scene(2)), "image/jpeg"))])
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"
    bad = post("not a key!")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_field"
    assert shop.counts() == counts


# ----------------------------------------------------------------------- in Chromium
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.browser import Order, live_server, photo_kit, seed_shop
    from tests.requires import require_chromium

    require_chromium()
    root = tmp_path_factory.mktemp("live-retry")
    kit = photo_kit(root)
    with live_server(root / "server", kit.model) as server:
        seed_shop(server, kit.catalog, [Order("WEB-R", "ria@example.com", kit.approve_sku)])
        yield server, kit


@pytest.mark.browser
def test_the_page_retries_a_lost_answer_with_the_same_key(live: Any, tmp_path: Path) -> None:
    """The first upload reaches the server and is decided, but its answer never reaches
    the page (the connection drops). The person presses send again: the page sends the
    same key and shows the decision, not "already sent"."""
    from tests.browser import chromium
    from tests.photo_factory import encode

    server, kit = live
    photo = tmp_path / "clean.jpg"
    photo.write_bytes(encode(kit.clean, "JPEG", quality=90))
    sent: list[dict[str, Any]] = []

    def lose_first_answer(route: Any) -> None:
        request = route.request
        sent.append({"key": request.headers.get("idempotency-key")})
        if len(sent) == 1:
            route.fetch()  # the server stores and decides ...
            route.abort("connectionreset")  # ... and the answer is lost
        else:
            response = route.fetch()
            sent[-1]["replayed"] = response.json().get("replayed")
            route.fulfill(response=response)

    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.route("**/v1/returns/*/photos", lose_first_answer)
        page.goto(f"{server.base}/")
        page.wait_for_selector("body[data-ready]")
        page.fill("#order-id", "WEB-R")
        page.fill("#email", "ria@example.com")
        page.click("#order-submit")
        page.wait_for_selector("#step-item:not([hidden])")
        page.select_option("#reason", "changed_mind")
        page.click("#item-submit")
        page.wait_for_selector("#step-photos:not([hidden])")
        page.set_input_files("#library-input", str(photo))
        page.wait_for_selector("#send-photos:not([disabled])")
        page.click("#send-photos")
        page.wait_for_selector("#photo-error:not([hidden])")
        assert "interrupted" in page.inner_text("#photo-error").lower()
        page.click("#send-photos")  # the retry
        page.wait_for_selector("#decision.decision--approved")
        context.close()
    assert len(sent) == 2, sent
    key = sent[0]["key"]
    assert key and sent[1]["key"] == key, sent  # one key per attempt, reused by its retry
    assert sent[1]["replayed"] is True, (sent, server.log())
