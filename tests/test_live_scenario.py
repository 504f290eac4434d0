"""The shopper scenario against a live ``returnlens serve`` (uvicorn) over real HTTP.

The server is the README's main command in a subprocess: the SHIPPED default model,
SQLite in a temporary folder, the demo data seeded. The photos come from the synthetic
generator: a clean photo of the ordered SKU, the same kind of photo heavily blurred, a
damaged item, and a photo of an item from another category.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from serving.models import default_model_path

pytestmark = pytest.mark.slow
ADMIN_KEY = "live-test-admin-key-0123456789abcdef"
READY_TIMEOUT_S = 180.0
SEED = 7


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = default_model_path()
    if not model.is_file():
        pytest.skip("default model not trained yet")
    root = tmp_path_factory.mktemp("live")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETURNLENS_")}
    env.update(
        {
            "RETURNLENS_DATA_DIR": str(root),
            "RETURNLENS_PHOTO_DIR": str(root / "photos"),
            "RETURNLENS_MODELS_DIR": str(root / "models"),
            "RETURNLENS_ADMIN_KEY": ADMIN_KEY,
            "RETURNLENS_DEMO_SEED": str(SEED),
            "RETURNLENS_ORT_THREADS": "2",
        }
    )
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "returnlens.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{root / 'live.db'}",
            "--model-path",
            str(model),
            "--seed-demo",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(root),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc, root / "server.log")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll /readyz until 200; fail with the server's output if it dies or never gets there."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"server not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
    )
    assert ok
    return buf.tobytes()


def _photos() -> tuple[Any, dict[str, bytes]]:
    """The ordered SKU and four photos of returned items (from the synthetic generator)."""
    from vision.synth import catalog_skus, render_photo, sample_state

    skus = catalog_skus(SEED, 2)
    ordered = next(s for s in skus if s.category == "mug")
    other = next(s for s in skus if s.category == "shoe")

    def photo(sku: Any, grade: str, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        state = sample_state(sku, grade, rng)
        rgb, _ = render_photo(sku, state, rng, 768, background="plain")
        return rgb

    clean = photo(ordered, "A_new", 101)
    return ordered, {
        "clean": _jpeg(clean),
        "blurred": _jpeg(cv2.GaussianBlur(photo(ordered, "A_new", 102), (0, 0), 9)),
        "damaged": _jpeg(photo(ordered, "E_damaged", 103)),
        "wrong_sku": _jpeg(photo(other, "A_new", 104)),
    }


def _open_return(
    client: httpx.Client, order_id: str, sku: str, email: str, reason: str
) -> tuple[str, dict[str, str]]:
    r = client.post(
        "/v1/returns", json={"order_id": order_id, "sku": sku, "reason": reason, "email": email}
    )
    assert r.status_code == 201, r.text
    return r.json()["return_id"], {"Authorization": f"Bearer {r.json()['token']}"}


def _upload(client: httpx.Client, rid: str, auth: dict[str, str], data: bytes) -> Any:
    r = client.post(
        f"/v1/returns/{rid}/photos",
        headers=auth,
        files=[("photos", ("photo.jpg", data, "image/jpeg"))],
    )
    assert r.status_code == 200, r.text
    return r.json()["decision"]


def test_shopper_scenario_over_real_http(server: str) -> None:
    sku, photos = _photos()
    when = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    cases = ("clean", "blurred", "damaged", "wrong_sku")
    with httpx.Client(base_url=server, timeout=60) as client:
        # One order (and customer) per case, so no case sees another's history.
        orders = [
            {
                "order_id": f"LIVE-{i}",
                "customer_id": f"LC-{i}",
                "customer_email": f"live{i}@example.com",
                "sku": sku.sku,
                "price": sku.price,
                "delivered_at": when,
            }
            for i in range(len(cases))
        ]
        r = client.put("/v1/admin/orders", json=orders, headers={"X-API-Key": ADMIN_KEY})
        assert r.status_code == 200, r.text
        reasons = {
            "clean": "changed_mind",
            "blurred": "changed_mind",
            "damaged": "changed_mind",
            "wrong_sku": "does_not_fit",
        }
        got = {}
        for i, case in enumerate(cases):
            rid, auth = _open_return(
                client, f"LIVE-{i}", sku.sku, f"live{i}@example.com", reasons[case]
            )
            got[case] = _upload(client, rid, auth, photos[case])
            if case == "clean":
                ret = client.get(f"/v1/returns/{rid}", headers=auth).json()
                assert ret["status"] == "approved"
        flags = {c: {f["code"] for f in d["flags"]} for c, d in got.items()}
        assert got["clean"]["outcome"] == "approved", got["clean"]
        assert got["blurred"]["outcome"] == "retake", got["blurred"]
        assert "photo_quality" in flags["blurred"]
        assert got["damaged"]["outcome"] == "needs_review", got["damaged"]
        assert got["damaged"]["grade"]["label"] in ("D_fair", "E_damaged")
        assert got["wrong_sku"]["outcome"] == "needs_review", got["wrong_sku"]
        assert "wrong_item" in flags["wrong_sku"]
        metrics = client.get("/metrics").text
        assert 'returnlens_decisions_total{outcome="approved"}' in metrics
