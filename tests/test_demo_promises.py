"""Every promise the demo prints holds against a live service with the shipped model.

``returnlens serve --seed-demo`` prints, per order, which bundled sample photo to upload
and what the service will answer ("return (changed_mind) with
datasets/samples/mug-01-A_new.jpg -> approved"). Someone trying the product follows
those lines first, so a line that is not true is a bug. This test seeds the demo
in-process to get the promises from the seeding result itself (``DemoResult.promises``),
then starts the README's command on the same database and data folder (seeding again is
idempotent: same keys, same history) and, for each promise, opens the return and uploads
the named sample over HTTP, asserting the promised outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.demo_samples import SAMPLES
from serving.models import default_model_path
from tests import live

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "demo-promise-admin-key-0123456789abcdef"
READY_TIMEOUT_S = 180.0


def _seed(root: Path, model: Path) -> Any:
    """Seed the demo in this process, as ``returnlens serve --seed-demo`` does."""
    from serving.app import build_runtime
    from serving.demo import seed_demo
    from serving.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{root / 'demo.db'}",
        data_dir=root,
        photo_dir=root / "photos",
        models_dir=root / "models",
        model_path=model,
        ort_threads=2,
    )
    runtime = build_runtime(settings)
    try:
        return seed_demo(runtime.service, settings.data_dir)
    finally:
        if runtime.close is not None:
            runtime.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    model = default_model_path()
    if not model.is_file():
        pytest.skip(f"the shipped default model is missing: {model} (make default-model)")
    root = tmp_path_factory.mktemp("demo")
    result = _seed(root, model)
    with live.serve_demo(root, model, admin_key=ADMIN_KEY, timeout_s=READY_TIMEOUT_S) as base:
        yield base, result


def test_every_printed_promise_names_a_bundled_sample(demo: tuple[str, Any]) -> None:
    _, result = demo
    promises = result.promises()
    printed = "\n".join(result.lines())
    assert len(promises) >= 6, printed
    bundled = {s.file for s in SAMPLES}
    for order, promise in promises:
        assert promise.text() in printed, (order.order_id, printed)
        if promise.sample is not None:
            assert promise.sample in bundled
            assert (ROOT / "datasets" / "samples" / promise.sample).is_file(), promise.sample
            sku = next(s.sku for s in SAMPLES if s.file == promise.sample)
            assert sku == order.sku, (
                f"{promise.sample} shows {sku}, {order.order_id} is {order.sku}"
            )
    outcomes = {p.outcome for _, p in promises}
    assert {"approved", "needs_review", "retake"} <= outcomes


def _try(client: httpx.Client, order: Any, promise: Any) -> str:
    """Open the return as the note says and upload its sample; the outcome (or refusal)."""
    r = client.post(
        "/v1/returns",
        json={
            "order_id": order.order_id,
            "sku": order.sku,
            "reason": promise.reason,
            "email": order.email,
        },
    )
    if r.status_code != 201:
        return f"{r.status_code}:{r.json().get('code')}"
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    data = (ROOT / "datasets" / "samples" / promise.sample).read_bytes()
    up = client.post(
        f"/v1/returns/{r.json()['return_id']}/photos",
        headers=auth,
        files=[("photos", (promise.sample, data, "image/jpeg"))],
    )
    assert up.status_code == 200, up.text
    decision = up.json()["decision"]
    flags = sorted(f["code"] for f in decision["flags"])
    grade = (decision.get("grade") or {}).get("label")
    return f"{decision['outcome']} {flags} grade {grade}"


def test_every_printed_promise_holds_over_http(demo: tuple[str, Any]) -> None:
    base, result = demo
    got: dict[str, str] = {}
    broken: list[str] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for order, promise in result.promises():
            answer = _try(client, order, promise)
            got[order.order_id] = answer
            expected = f"422:{promise.outcome}" if promise.refused else promise.outcome
            if answer.split(" ")[0] != expected:
                broken.append(f"{order.order_id}: promised {promise.text()!r}, got {answer}")
    assert not broken, "\n".join(broken) + f"\nall answers: {got}"
