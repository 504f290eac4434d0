"""Upload admission (``serving/api/admission.py``): a photo upload reserves its declared
size before its body is read, waits while the worker holds its budget, and is answered
``503 uploads_busy`` with ``Retry-After`` when no room comes in time. Then the worker's
two sets of grading threads (``UploadSlots``): a request with a heavy photo runs on the
other set than a light one. And the service's other per-process setting for its request
threads: OpenCV without its own pool.

The reservation rules run on a real asyncio loop; the routes run in the real app (its
lifespan, SQLite, the tiny model). The "body left unread" check calls the app through
httpx's ASGI transport, which hands the app each body chunk only when the app asks for
it, so the test sees whether the upload's body was touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from serving.api.admission import UploadAdmission, UploadSlots, declared_size
from serving.app import create_app
from serving.errors import UploadsBusy
from serving.services import shopper
from serving.settings import Settings, usable_cores
from tests.photo_factory import solid_png
from tests.shop import Shop, jpeg, load_shop, make_settings, scene


async def _until(condition: Callable[[], bool], rounds: int = 1000) -> None:
    """Let the loop run other tasks until ``condition()`` holds (no wall-clock wait)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_a_reservation_waits_for_room_and_gets_it_when_an_upload_ends() -> None:
    async def scenario() -> list[str]:
        admission = UploadAdmission(budget_bytes=10, wait_s=30)
        order: list[str] = []
        release_first = asyncio.Event()

        async def upload(name: str, size: int, hold: asyncio.Event | None = None) -> None:
            async with admission.admit(size):
                order.append(f"{name} in ({admission.held} held)")
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(upload("first", 6, release_first))
        await _until(lambda: admission.held == 6)
        second = asyncio.create_task(upload("second", 6))
        await _until(lambda: admission.waiting == 1)
        assert order == ["first in (6 held)"]  # 6 + 6 > 10: the second waits
        release_first.set()
        await asyncio.gather(first, second)
        assert admission.held == 0 and admission.waiting == 0
        return order

    assert asyncio.run(scenario()) == ["first in (6 held)", "second in (6 held)"]


def test_small_uploads_share_the_budget_and_one_larger_than_it_runs_alone() -> None:
    async def scenario() -> None:
        admission = UploadAdmission(budget_bytes=10, wait_s=30)
        async with admission.admit(4), admission.admit(5):
            assert admission.held == 9  # both fit at once
        async with admission.admit(25):  # larger than the budget: admitted with nothing held
            assert admission.held == 25

    asyncio.run(scenario())


def test_a_reservation_without_room_in_time_is_refused_busy_and_holds_nothing() -> None:
    async def scenario() -> None:
        admission = UploadAdmission(budget_bytes=10, wait_s=0.05)
        async with admission.admit(8):
            with pytest.raises(UploadsBusy) as caught:
                async with admission.admit(5):
                    raise AssertionError("admitted without room")
            assert caught.value.code == "uploads_busy"
            assert admission.held == 8 and admission.waiting == 0
        assert admission.held == 0

    asyncio.run(scenario())


def test_a_zero_budget_turns_admission_off() -> None:
    async def scenario() -> None:
        admission = UploadAdmission(budget_bytes=0, wait_s=0.01)
        async with admission.admit(10**9), admission.admit(10**9):
            assert admission.held == 0

    asyncio.run(scenario())


def test_the_reservation_is_the_declared_length_or_the_cap() -> None:
    def request(headers: dict[str, str]) -> Request:
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        return Request({"type": "http", "method": "POST", "headers": raw})

    assert declared_size(request({"content-length": "1234"}), 10_000) == 1234
    assert declared_size(request({"content-length": "99999"}), 10_000) == 10_000
    assert declared_size(request({"transfer-encoding": "chunked"}), 10_000) == 10_000


# ----------------------------------------------------------------------------- the routes
@pytest.fixture
def busy_shop(tmp_path: Path, tiny_model: Path) -> Iterator[Shop]:
    """The demo shop whose uploads give up waiting for admission after 0.2 s."""
    settings = make_settings(
        f"sqlite:///{tmp_path / 'api.db'}", tmp_path, tiny_model, upload_admission_wait_s=0.2
    )
    with TestClient(create_app(settings)) as client:
        yield load_shop(client, settings)


def _fill(shop: Shop) -> UploadAdmission:
    """Another upload holds the worker's whole budget."""
    admission: UploadAdmission = shop.client.app.state.upload_admission  # type: ignore[attr-defined]
    admission.held = admission.budget
    return admission


def test_an_upload_while_the_worker_is_full_is_busy_and_stores_nothing(busy_shop: Shop) -> None:
    rid, token = busy_shop.open_return()
    before = busy_shop.counts()
    admission = _fill(busy_shop)
    r = busy_shop.upload(rid, token, jpeg(scene(1)))
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "uploads_busy" and r.json()["message"]
    assert int(r.headers["Retry-After"]) >= 1
    assert busy_shop.counts() == before  # nothing stored, the return still open
    admission.held = 0  # the other upload ended
    r = busy_shop.upload(rid, token, jpeg(scene(1)))
    assert r.status_code == 200, r.text
    assert admission.held == 0  # released with the answer


def test_a_waiting_upload_leaves_its_body_unread(busy_shop: Shop) -> None:
    rid, token = busy_shop.open_return()
    built = httpx.Request(
        "POST",
        f"http://shop/v1/returns/{rid}/photos",
        files=[("photos", ("p.jpg", jpeg(scene(1)), "image/jpeg"))],
        headers={"Authorization": f"Bearer {token}"},
    )
    body = built.read()
    chunks_read: list[int] = []

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 4096):
            chunks_read.append(start)
            yield body[start : start + 4096]

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=busy_shop.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            return await client.post(built.url.path, content=stream(), headers=built.headers)

    _fill(busy_shop)
    r = asyncio.run(send())
    assert r.status_code == 503 and r.json()["code"] == "uploads_busy"
    assert chunks_read == []  # refused before one byte of the body was asked for


# ------------------------------------------------------------------------ upload slots
def test_light_slots_default_to_the_workers_cores_and_at_least_two() -> None:
    cores = usable_cores()
    assert Settings(workers=1).light_upload_slots() == max(2, cores)
    assert Settings(workers=64).light_upload_slots() == 2
    assert Settings(upload_concurrency=5).light_upload_slots() == 5


def test_a_request_with_a_heavy_photo_runs_on_the_other_slots(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which set's thread an upload runs on, read from inside the upload: a light one
    borrows a light slot only; one with a photo whose decode needs over 32 MiB (a
    3000 x 3000 PNG: 36 MB) a heavy slot only, so bombs never hold a light upload's."""
    settings = make_settings(
        f"sqlite:///{tmp_path / 'api.db'}",
        tmp_path,
        tiny_model,
        upload_concurrency=3,
        heavy_upload_concurrency=4,
    )
    seen: list[tuple[int, int]] = []
    real = shopper.upload_photos
    with TestClient(create_app(settings)) as client:
        shop = load_shop(client, settings)
        slots: UploadSlots = client.app.state.upload_slots  # type: ignore[attr-defined]
        assert (slots.light.total_tokens, slots.heavy.total_tokens) == (3, 4)

        def spy(*args: Any, **kwargs: Any) -> Any:
            seen.append((int(slots.light.borrowed_tokens), int(slots.heavy.borrowed_tokens)))
            return real(*args, **kwargs)

        monkeypatch.setattr(shopper, "upload_photos", spy)
        rid, token = shop.open_return()
        assert shop.upload(rid, token, jpeg(scene(1))).status_code == 200
        heavy = solid_png(3000, 3000, (128, 128, 128, 255))
        r = shop.upload(rid, token, jpeg(scene(2)), heavy)
        assert r.status_code in (200, 409), r.text  # graded, or the return was decided
    assert seen == [(1, 0), (0, 1)]


def test_the_service_runs_opencv_on_the_threads_that_call_it(
    tmp_path: Path, tiny_model: Path
) -> None:
    """The request threads and the gate pool are the service's parallelism; OpenCV's own
    pool would only add hand-offs (``vision.pipeline.opencv_on_caller_threads``)."""
    import cv2

    cv2.setNumThreads(2)
    settings = make_settings(f"sqlite:///{tmp_path / 'api.db'}", tmp_path, tiny_model)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        assert cv2.getNumThreads() == 1


def test_one_worker_per_usable_core_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker is bound by the GIL, not the cores, so the default is one per core;
    each then gets its share of the cores for ONNX Runtime, at least one thread."""
    monkeypatch.delenv("RETURNLENS_WORKERS", raising=False)
    monkeypatch.delenv("RETURNLENS_ORT_THREADS", raising=False)
    assert Settings().workers == usable_cores()
    assert Settings().threads_per_worker() == 1
    assert Settings(workers=1).threads_per_worker() == usable_cores()
