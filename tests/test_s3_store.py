"""The photo store on S3 (``serving/storage/s3store.py``) against a real SeaweedFS.

- put/get/exists/list: content-addressed keys under the prefix, the bytes read back;
- no overwrite: every write is conditional (``If-None-Match: *``), SeaweedFS honours it,
  and a reused photo is made young again without its bytes being rewritten;
- the shopper flow through the API with ``RETURNLENS_PHOTO_STORE=s3``: the uploaded JPEG
  carries EXIF GPS, the stored object has no metadata, the photo route reads it back,
  nothing lands in the local photo folder;
- failures: wrong credentials, a missing bucket, a store that never answers, the server
  stopped: the upload answers 503 ``photo_store_unavailable`` with ``Retry-After``, no
  decision is stored, ``/readyz`` turns false, and true again once the store is back;
- ``returnlens storage gc`` on the bucket.

The server is the session's ``s3_server`` fixture (``tests/s3.py``): skipped with the
reason when SeaweedFS cannot start, a failure under CI=true.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from returnlens.cli import main
from serving.app import create_app
from serving.domain_errors import NotFound, StoreUnavailable
from serving.storage.gc import collect_garbage
from serving.storage.photostore import encode_clean_jpeg
from serving.storage.s3store import S3PhotoStore
from tests.s3 import ACCESS_KEY, SECRET_KEY, S3Server
from tests.service_data import gps_exif
from tests.shop import Shop, load_shop, make_settings, scene
from vision.decode import decode_image
from vision.jpegclean import strip_metadata

POLL_S = 0.2  # polling interval of the bounded waits below, not a timing guess


def _store(server: S3Server, bucket: str, tmp: Path, **overrides: Any) -> S3PhotoStore:
    args: dict[str, Any] = {
        "local_root": tmp / "cache",
        "prefix": "shop-1/photos/",
        "endpoint_url": server.endpoint,
        "region": "us-east-1",
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 2.0,
        "max_attempts": 1,
    }
    args.update(overrides)
    return S3PhotoStore(bucket, **args)


def _rgb(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _s3_env(server: S3Server, bucket: str) -> dict[str, Any]:
    return {
        "photo_store": "s3",
        "s3_bucket": bucket,
        "s3_prefix": "photos/",
        "s3_endpoint_url": server.endpoint,
        "s3_access_key_id": ACCESS_KEY,
        "s3_secret_access_key": SECRET_KEY,
        "s3_connect_timeout_s": 1.0,
        "s3_read_timeout_s": 3.0,
        "s3_max_attempts": 1,
    }


@pytest.fixture
def s3_shop(s3_server: S3Server, tmp_path: Path, tiny_model: Path) -> Iterator[Shop]:
    """The API demo shop on SQLite with its photos (references included) in a fresh
    bucket of the session's SeaweedFS."""
    bucket = s3_server.new_bucket()
    settings = make_settings(
        f"sqlite:///{tmp_path / 'api.db'}", tmp_path, tiny_model, **_s3_env(s3_server, bucket)
    )
    with TestClient(create_app(settings)) as client:
        yield load_shop(client, settings)


def _exif_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90, exif=gps_exif())
    data = buf.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get(0x8825) is not None  # GPS is there
    return data


def _keys(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _wait_ready(client: TestClient, want: int, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = client.get("/readyz")
        if r.status_code == want or time.monotonic() > deadline:
            assert r.status_code == want, r.text
            return dict(r.json())
        time.sleep(POLL_S)


# --------------------------------------------------------------------------- the store
def test_put_get_exists_under_the_prefix(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    store = _store(s3_server, bucket, tmp_path)
    assert store.ready()
    digest = store.put(_rgb(1))
    key = f"shop-1/photos/{digest[:2]}/{digest[2:]}.jpg"
    assert _keys(s3_server, bucket) == [key]
    data = store.get(digest)
    assert hashlib.sha256(data).hexdigest() == digest and data.startswith(b"\xff\xd8")
    assert store.exists(digest) and store.put(_rgb(1)) == digest  # idempotent
    assert _keys(s3_server, bucket) == [key]
    missing = hashlib.sha256(b"nothing").hexdigest()
    assert not store.exists(missing)
    with pytest.raises(NotFound):
        store.get(missing)
    with pytest.raises(NotFound):
        store.get("../../etc/passwd")
    [listed] = store.list_photos()
    assert listed.digest == digest and listed.size == len(data)
    assert listed.location == f"s3://{bucket}/{key}"
    two = store.put_all([_rgb(2), _rgb(3)])
    assert {p.digest for p in store.list_photos()} == {digest, *two}
    upload = _exif_jpeg(_rgb(5))  # upright, full size: stored as the upload minus metadata
    (lossless,) = store.put_all([decode_image(upload)], [upload])
    assert store.get(lossless) == strip_metadata(upload) and b"Exif" not in store.get(lossless)


def test_a_stored_photo_is_never_overwritten(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    store = _store(s3_server, bucket, tmp_path)
    raw = s3_server.client()
    data = encode_clean_jpeg(_rgb(4))
    digest = store.put_bytes(data)
    key = store.key(digest)
    # The server honours the condition: a second conditional write of the key is refused.
    with pytest.raises(Exception, match="PreconditionFailed"):
        raw.put_object(Bucket=bucket, Key=key, Body=b"other", IfNoneMatch="*")
    # Whatever sits under the key stays: the store's write is conditional too.
    raw.put_object(Bucket=bucket, Key=key, Body=b"planted")
    before = raw.head_object(Bucket=bucket, Key=key)["LastModified"]
    time.sleep(1.1)  # Last-Modified has one-second resolution
    assert store.put_bytes(data) == digest
    assert raw.get_object(Bucket=bucket, Key=key)["Body"].read() == b"planted"
    # ... but a reused photo is young again (the garbage collector's grace period).
    assert raw.head_object(Bucket=bucket, Key=key)["LastModified"] > before


def test_a_store_that_never_answers_is_unavailable(s3_server: S3Server, tmp_path: Path) -> None:
    with _silent_server() as endpoint:
        store = _store(s3_server, "any-bucket", tmp_path, endpoint_url=endpoint)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as err:
            store.put(_rgb(5))
        assert time.monotonic() - started < 10  # bounded by the read timeout
        assert err.value.code == "photo_store_unavailable"
        assert not store.ready()


class _Silent:
    """A TCP server that accepts connections and never answers (a stalled store)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


class _silent_server:  # a context manager used like a function
    def __enter__(self) -> str:
        self.server = _Silent()
        return self.server.endpoint

    def __exit__(self, *exc: object) -> None:
        self.server.close()


# --------------------------------------------------------------------------- the API
def test_shopper_upload_on_s3_strips_metadata_and_reads_back(
    s3_shop: Shop, s3_server: S3Server
) -> None:
    client, settings = s3_shop.client, s3_shop.settings
    assert _wait_ready(client, 200)["ready"] is True
    rid, token = s3_shop.open_return()
    r = s3_shop.upload(rid, token, _exif_jpeg(scene(1, "box")))
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["outcome"] == "approved"
    photo = r.json()["photos"][0]
    auth = {"Authorization": f"Bearer {token}"}
    img = client.get(photo["url"], headers=auth)
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    stored = Image.open(io.BytesIO(img.content))
    assert len(stored.getexif()) == 0 and "exif" not in stored.info  # GPS gone
    digest = hashlib.sha256(img.content).hexdigest()
    assert settings.s3_bucket is not None
    keys = _keys(s3_server, settings.s3_bucket)
    assert f"photos/{digest[:2]}/{digest[2:]}.jpg" in keys
    # Two catalog reference photos (mirrored scenes: tests/shop.py) and the upload.
    assert len(keys) == 3
    assert not list(settings.photo_dir.rglob("*.jpg"))  # nothing on the local disk
    heat = client.get(r.json()["decision"]["heatmaps"][0]["url"], headers=auth)
    assert heat.status_code == 200 and heat.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("failure", ["wrong_credentials", "missing_bucket", "slow_store"])
def test_a_failing_store_refuses_the_upload_whole(
    s3_shop: Shop, s3_server: S3Server, tmp_path: Path, failure: str
) -> None:
    client = s3_shop.client
    svc = client.app.state.service  # type: ignore[attr-defined]
    good = svc.photos
    rid, token = s3_shop.open_return()
    before = s3_shop.counts()
    with _silent_server() as silent:
        cases: dict[str, dict[str, Any]] = {
            "wrong_credentials": {"secret_access_key": "not-the-secret"},
            "missing_bucket": {"bucket": "no-such-bucket"},
            "slow_store": {"endpoint_url": silent, "read_timeout_s": 1.0},
        }
        bad = dict(cases[failure])
        bucket = bad.pop("bucket", good.bucket)
        svc.photos = _store(s3_server, bucket, tmp_path, prefix="photos/", **bad)
        try:
            r = s3_shop.upload(rid, token, _exif_jpeg(scene(1, "box")))
            assert r.status_code == 503, r.text
            assert r.json()["code"] == "photo_store_unavailable"
            assert int(r.headers["Retry-After"]) > 0
            assert s3_shop.counts() == before  # no decision, photo or audit row
            assert _wait_ready(client, 503)["details"]["photo_store"] is False
        finally:
            svc.photos = good
    _wait_ready(client, 200)
    assert s3_shop.upload(rid, token, _exif_jpeg(scene(1, "box"))).status_code == 200


def test_the_store_stopped_then_back(s3_shop: Shop, s3_server: S3Server) -> None:
    client = s3_shop.client
    rid, token = s3_shop.open_return()
    before = s3_shop.counts()
    s3_server.stop()
    try:
        r = s3_shop.upload(rid, token, _exif_jpeg(scene(1, "box")))
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "photo_store_unavailable" and r.headers["Retry-After"]
        assert s3_shop.counts() == before
        assert _wait_ready(client, 503)["details"] == {"ready": False, "photo_store": False}
    finally:
        s3_server.start()
    assert _wait_ready(client, 200)["ready"] is True
    r = s3_shop.upload(rid, token, _exif_jpeg(scene(1, "box")))
    assert r.status_code == 200, r.text
    assert r.json()["decision"]["outcome"] == "approved"


# --------------------------------------------------------------------------- gc
def test_gc_on_the_bucket(
    s3_shop: Shop,
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    svc = s3_shop.client.app.state.service  # type: ignore[attr-defined]
    store, settings = svc.photos, s3_shop.settings
    rid, token = s3_shop.open_return()
    assert s3_shop.upload(rid, token, _exif_jpeg(scene(1, "box"))).status_code == 200
    orphan = store.put(_rgb(9))
    assert len(store.list_photos()) == 4  # two references, the upload, the orphan
    young = collect_garbage(svc.db, store, min_age=timedelta(hours=1), delete=True)
    assert young.orphans == () and young.young == 1 and young.removed == ()
    time.sleep(1.1)  # Last-Modified has one-second resolution
    dry = collect_garbage(svc.db, store, min_age=timedelta(0))
    assert dry.files == 4 and dry.referenced == 3
    assert dry.orphans == (store.location(orphan),) and dry.removed == ()
    # The command, configured as the service is (RETURNLENS_PHOTO_STORE=s3 ...).
    assert settings.s3_bucket is not None
    for name, value in _s3_env(s3_server, settings.s3_bucket).items():
        monkeypatch.setenv(f"RETURNLENS_{name.upper()}", str(value))
    monkeypatch.setenv("RETURNLENS_PHOTO_DIR", str(settings.photo_dir))
    where = ["--database-url", settings.database_url, "--min-age", "0", "--json"]
    assert main(["storage", "gc", *where, "--delete"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["removed"] == [store.location(orphan)]
    assert not store.exists(orphan) and len(store.list_photos()) == 3
    r = s3_shop.client.get(f"/v1/returns/{rid}", headers={"Authorization": f"Bearer {token}"})
    photo_url = r.json()["photos"][0]["url"]
    img = s3_shop.client.get(photo_url, headers={"Authorization": f"Bearer {token}"})
    assert img.status_code == 200  # the referenced photo is still there
