"""How often a request leaves the event loop for a worker thread.

FastAPI runs every plain ``def`` dependency and route on a worker thread: a hand-off and
a wake-up of the event loop each time. The dependencies that only read the app's state
or the headers are ``async def`` (``serving/api/deps.py``), so an upload leaves the loop
twice: for its token check (a database read) and for the grading itself. Counted at
``anyio.to_thread.run_sync``, which FastAPI, the upload route and the rate limiter (its
storage here is the database: ``check``, first) call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest

from tests.shop import Shop, jpeg, scene

GETTERS = {
    "get_settings",
    "get_metrics",
    "get_service",
    "get_authenticator",
    "get_upload_slots",
    "get_credential",
}


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    names: list[str] = []
    real = anyio.to_thread.run_sync

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        inner = func.func if isinstance(func, functools.partial) else func
        names.append(inner.__name__)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_sync)
    return names


def test_an_upload_leaves_the_event_loop_twice(
    sqlite_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid, token = sqlite_shop.open_return()
    photo = jpeg(scene(3))
    names = _counting(monkeypatch)
    r = sqlite_shop.upload(rid, token, photo)
    assert r.status_code == 200, r.text
    assert names == ["check", "return_owner", "upload_photos"]


def test_reading_a_return_runs_no_getter_on_a_thread(
    sqlite_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid, token = sqlite_shop.open_return()
    names = _counting(monkeypatch)
    r = sqlite_shop.client.get(f"/v1/returns/{rid}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    # FastAPI's own for a plain route (the route, its response's validation) follow
    assert names[:2] == ["check", "return_principal"]
    assert not GETTERS & set(names), names


def test_a_refused_upload_says_why_without_a_thread_for_the_getters(
    sqlite_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another return's token is refused by the principal's check, the last hand-off."""
    rid, _ = sqlite_shop.open_return()
    _, other = sqlite_shop.open_return(order_id="ORD-2", email="bob@example.com")
    names = _counting(monkeypatch)
    r = sqlite_shop.upload(rid, other, jpeg(scene(4)))
    assert r.status_code == 403, r.text
    assert names == ["check", "return_owner"]
