"""The scaled-out deployment, end to end: ``serving.cluster.launch.up`` (what ``make
cluster`` runs) starts PostgreSQL, SeaweedFS, two API replicas and a job worker as real
processes on 127.0.0.1, and the shopper and dock flows run across both replicas.

Checked, in order, on one cluster:

1. a return opened on one replica takes its photos on the other, and either replica
   shows the decision; the photos are objects in the S3 bucket;
2. a photo reused by another customer is caught when the second upload reaches the
   other replica (the hash index reads what the first replica committed);
3. the rate limit is shared: one key alternating between the replicas gets the
   configured burst, not twice it;
4. replica 1 killed (SIGKILL) in the middle of a burst of uploads loses no decision it
   acknowledged: each is readable through replica 2, and the uploads it never answered
   go through replica 2;
5. a dock station given both replicas, with replica 1 dead, delivers every inspection
   through replica 2.
"""

from __future__ import annotations

import base64
import dataclasses
import signal
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.cluster import launch
from tests.dock_data import FAST
from tests.requires import require_postgres, require_seaweedfs
from tests.shop import jpeg, scene

BURST = 8  # the per-key burst the cluster runs with (per-key refill: 1 a minute)
EMAIL = "cluster@example.com"


@pytest.fixture(scope="module")
def cluster() -> Iterator[launch.ClusterState]:
    require_postgres()
    require_seaweedfs()
    # Not pytest's tmp_path: its parent is private to root, and PostgreSQL runs as its own
    # user when the suite runs as root.
    root = Path(tempfile.mkdtemp(prefix="returnlens-cluster-"))
    root.chmod(0o755)  # mkdtemp's 0700 would keep the postgres user out
    limits = {
        "RETURNLENS_RATE_LIMIT_PER_KEY": "1",
        "RETURNLENS_RATE_LIMIT_PER_KEY_BURST": str(BURST),
        "RETURNLENS_RATE_LIMIT_PER_IP": "100000",
        "RETURNLENS_RATE_LIMIT_PER_IP_BURST": "100000",
        "RETURNLENS_ORT_THREADS": "1",
        "RETURNLENS_LOG_LEVEL": "warning",
    }
    state = launch.up(root, replicas=2, seed_demo=False, extra_env=limits)
    try:
        _seed(state)
        yield state
    finally:
        launch.down(root)


def _admin(state: launch.ClusterState, method: str, path: str, **kw: Any) -> Any:
    r = httpx.request(
        method,
        f"{state.urls[0]}{path}",
        headers={"Authorization": f"Bearer {state.admin_key}"},
        timeout=60,
        **kw,
    )
    assert r.status_code < 300, r.text
    return r.json()


def _seed(state: launch.ClusterState) -> None:
    """Two SKUs with reference photos and one order line each (4 admin calls in all)."""
    catalog = [
        {
            "sku": sku,
            "category": sku.split("-")[0],
            "name": sku,
            "price": 40.0,
            "reference_photo_base64": base64.b64encode(jpeg(scene(seed, kind))).decode(),
        }
        for sku, seed, kind in (("box-01", 1, "box"), ("mug-01", 2, "mug"))
    ]
    _admin(state, "PUT", "/v1/admin/catalog", json=catalog)
    recent = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    orders = [
        {
            "order_id": f"CL-{sku}",
            "customer_id": f"C-{sku}",
            "customer_email": EMAIL,
            "sku": sku,
            "price": 40.0,
            "delivered_at": recent,
            "quantity": 50,
        }
        for sku in ("box-01", "mug-01")
    ]
    _admin(state, "PUT", "/v1/admin/orders", json=orders)


def _open(url: str, sku: str = "box-01") -> tuple[str, str]:
    r = httpx.post(
        f"{url}/v1/returns",
        json={"order_id": f"CL-{sku}", "sku": sku, "email": EMAIL, "reason": "changed_mind"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    return r.json()["return_id"], r.json()["token"]


def _upload(url: str, rid: str, token: str, photo: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/returns/{rid}/photos",
        files=[("photos", ("p.jpg", photo, "image/jpeg"))],
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )


def _shown(url: str, rid: str, token: str) -> Any:
    r = httpx.get(
        f"{url}/v1/returns/{rid}", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_1_a_return_moves_between_replicas_and_its_photos_live_in_s3(
    cluster: launch.ClusterState,
) -> None:
    a, b = cluster.urls
    rid, token = _open(a)
    up = _upload(b, rid, token, jpeg(scene(11, "box")))
    assert up.status_code == 200, up.text
    decision = up.json()["decision"]
    for url in (a, b):
        assert _shown(url, rid, token)["decision"]["decision_id"] == decision["decision_id"]
    objects = cluster.store().client().list_objects_v2(Bucket=launch.BUCKET)
    keys = [o["Key"] for o in objects.get("Contents", [])]
    assert len(keys) >= 3  # two reference photos and this upload
    assert all(k.startswith("photos/") and k.endswith(".jpg") for k in keys)


def test_2_a_reused_photo_is_caught_across_replicas(cluster: launch.ClusterState) -> None:
    a, b = cluster.urls
    photo = scene(12, "box")
    first, token = _open(a)
    assert _upload(a, first, token, jpeg(photo)).status_code == 200
    second, token = _open(b)
    up = _upload(b, second, token, jpeg(photo, quality=80))
    assert up.status_code == 200, up.text
    flags = {f["code"]: f for f in up.json()["decision"]["flags"]}
    assert "reused_photo" in flags and flags["reused_photo"]["evidence"]["other_return_id"] == first


def test_3_one_key_gets_the_configured_burst_across_both_replicas(
    cluster: launch.ClusterState,
) -> None:
    key = _admin(cluster, "POST", "/v1/admin/api-keys", json={"name": "rl", "role": "reviewer"})
    headers = {"Authorization": f"Bearer {key['key']}"}
    codes = []
    for i in range(BURST * 2 + 2):
        url = cluster.urls[i % 2]
        codes.append(httpx.get(f"{url}/v1/review/queue", headers=headers, timeout=30).status_code)
    assert codes[:BURST] == [200] * BURST
    assert set(codes[BURST:]) == {429}  # not 2 x BURST: the replicas share one count


def test_4_a_killed_replica_loses_no_acknowledged_decision(cluster: launch.ClusterState) -> None:
    a, b = cluster.urls
    returns = [_open(b) for _ in range(8)]
    acked: dict[str, str] = {}
    unanswered: list[tuple[str, str]] = []
    first_ack = threading.Event()
    lock = threading.Lock()

    def send(i: int) -> None:
        rid, token = returns[i]
        try:
            r = _upload(a, rid, token, jpeg(scene(40 + i, "box")))
        except httpx.HTTPError:
            with lock:
                unanswered.append(returns[i])
            return
        with lock:
            if r.status_code == 200:
                acked[rid] = r.json()["decision"]["decision_id"]
                first_ack.set()
            else:
                unanswered.append(returns[i])

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(send, i) for i in range(len(returns))]
        assert first_ack.wait(timeout=120), "replica 1 acknowledged nothing"
        launch.kill(cluster, "replica-1", signal.SIGKILL)
        for f in futures:
            f.result()
    assert acked, "no upload was acknowledged before the kill"
    tokens = dict(returns)
    for rid, decision_id in acked.items():  # every acknowledged decision survives
        assert _shown(b, rid, tokens[rid])["decision"]["decision_id"] == decision_id
    for rid, token in unanswered:  # what replica 1 never answered goes through replica 2
        r = _upload(b, rid, token, jpeg(scene(60, "box")))
        assert r.status_code == 200, r.text


def test_5_the_dock_station_fails_over_to_the_live_replica(
    cluster: launch.ClusterState, tmp_path: Path
) -> None:
    from serving.dock.app import DockOptions, run_station
    from serving.dock.sim import SimConfig, simulate

    a, b = cluster.urls
    with pytest.raises(httpx.HTTPError):  # replica 1 is down since test 4
        httpx.get(f"{a}/readyz", timeout=2)
    ids = tuple(_open(b, "mug-01")[0] for _ in range(2))
    cfg = SimConfig(
        items=2,
        seed=21,
        width=640,
        height=360,
        fps=20,
        hand_passes=0,
        flicker_episodes=0,
        timing=FAST,
        return_ids=ids,
    )
    video = tmp_path / "dock.mp4"
    simulate(cfg, video)
    key = _admin_via(b, cluster, "POST", "/v1/admin/api-keys", json={"name": "d", "role": "dock"})
    summary = run_station(
        DockOptions(
            source=str(video),
            api=f"{a},{b}",
            key=key["key"],
            station_id="dock-1",
            out=tmp_path / "station",
            drain_timeout=120,
        )
    )
    assert summary["inspections"] == 2 and summary["drained"]
    assert summary["spool"]["delivered"] == 2 and summary["spool"]["pending"] == 0
    for rid in ids:  # each parcel's inspection is on its return, read through replica 2
        record = _admin_via(b, cluster, "GET", f"/v1/staff/returns/{rid}")
        assert [i["return_id"] for i in record["inspections"]] == [rid]


def _admin_via(url: str, state: launch.ClusterState, method: str, path: str, **kw: Any) -> Any:
    return _admin(
        dataclasses.replace(state, replica_ports=[int(url.rsplit(":", 1)[1])]), method, path, **kw
    )
