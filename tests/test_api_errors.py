"""Bad input gets a 4xx JSON {code, message, details}, never a 500, and stores nothing.

Every case counts the database rows (every table) and the photo files before and after
the refused request. TestClient re-raises any exception that would have become a 500,
so an unhandled error fails the test loudly.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.photo_factory import gaussian_blur, png_bomb
from tests.shop import Shop, jpeg, scene


def _assert_error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    assert isinstance(body["details"], dict)
    return body  # type: ignore[no-any-return]


def _gif() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, format="GIF")
    return buf.getvalue()


def _oversized(limit: int) -> bytes:
    """A real JPEG padded past the per-photo limit (a comment segment of noise)."""
    data = jpeg(scene(1))
    return data[:2] + b"\xff\xfe\xff\xff" + bytes(65533) + data[2:] + bytes(limit)


BAD_PHOTOS: dict[str, tuple[Callable[[Shop], bytes], int, str]] = {
    "corrupt": (
        lambda s: b"\xff\xd8\xff\xe0" + np.random.default_rng(0).bytes(20_000),
        422,
        "unreadable_image",
    ),
    "truncated": (lambda s: jpeg(scene(1))[: len(jpeg(scene(1))) // 2], 422, "unreadable_image"),
    "oversized": (lambda s: _oversized(s.settings.max_upload_bytes), 413, "too_large"),
    "decompression_bomb": (lambda s: png_bomb(50_000, 50_000), 413, "too_many_pixels"),
    "text_file": (lambda s: b"order_id,sku\nORD-1,box-01\n" * 20, 415, "unsupported_media_type"),
    "gif": (lambda s: _gif(), 415, "unsupported_media_type"),
}


def test_bad_photos_are_refused_and_nothing_is_stored(shop: Shop) -> None:
    rid, token = shop.open_return()
    for case, (make, status, code) in sorted(BAD_PHOTOS.items()):
        before = shop.counts()
        # The bad file sits between two good ones: the whole request is refused.
        r = shop.upload(rid, token, jpeg(scene(1), 80), make(shop), jpeg(scene(1), 90))
        assert r.status_code == status, (case, r.text)
        _assert_error(r, status, code)
        assert shop.counts() == before, case
    got = shop.client.get(f"/v1/returns/{rid}", headers={"Authorization": f"Bearer {token}"})
    assert got.json()["status"] == "awaiting_photos" and got.json()["photos"] == []


def test_duplicate_upload_seventh_photo_and_decided_return(shop: Shop) -> None:
    # A decided return takes no more photos.
    rid, token = shop.open_return("ORD-2", email="bob@example.com")
    assert shop.upload(rid, token, jpeg(scene(1))).json()["decision"]["outcome"] == "approved"
    before = shop.counts()
    _assert_error(shop.upload(rid, token, jpeg(scene(1), 70)), 409, "already_decided")
    assert shop.counts() == before
    # An open return (blurred photo -> retake) refuses the same bytes twice and a 7th photo.
    rid, token = shop.open_return()
    first = jpeg(gaussian_blur(scene(1), 9), 90)
    assert shop.upload(rid, token, first).json()["decision"]["outcome"] == "retake"
    before = shop.counts()
    _assert_error(shop.upload(rid, token, first), 409, "duplicate_upload")
    assert shop.counts() == before
    five = [jpeg(gaussian_blur(scene(1), 9), q) for q in (70, 75, 80, 85, 95)]
    assert shop.upload(rid, token, *five).status_code == 200  # 6 photos in all
    before = shop.counts()
    body = _assert_error(shop.upload(rid, token, jpeg(scene(1), 60)), 422, "too_many_photos")
    assert body["details"]["max_photos"] == 6
    assert shop.counts() == before


def test_seven_photos_in_one_request(sqlite_shop: Shop) -> None:
    rid, token = sqlite_shop.open_return()
    before = sqlite_shop.counts()
    seven = [jpeg(scene(1), q) for q in (60, 65, 70, 75, 80, 85, 90)]
    _assert_error(sqlite_shop.upload(rid, token, *seven), 422, "too_many_photos")
    _assert_error(sqlite_shop.upload(rid, token, *(seven * 3)), 422, "too_many_photos")
    assert sqlite_shop.counts() == before


CREATE_REFUSALS: list[tuple[dict[str, Any], int, str, str | None]] = [
    (
        {"order_id": "ORD-1", "reason": "changed_mind", "email": "ada@example.com"},
        422,
        "invalid_field",
        "sku",
    ),
    (
        {"order_id": "ORD-1", "sku": "box-01", "reason": "bored", "email": "ada@example.com"},
        422,
        "invalid_field",
        "reason",
    ),
    (
        {"order_id": "ORD-1", "sku": "box-01", "reason": "changed_mind"},
        422,
        "invalid_field",
        "email",
    ),
    (
        {
            "order_id": "ORD-404",
            "sku": "box-01",
            "reason": "changed_mind",
            "email": "ada@example.com",
        },
        404,
        "unknown_order",
        None,
    ),
    (
        {
            "order_id": "ORD-1",
            "sku": "box-01",
            "reason": "changed_mind",
            "email": "mallory@example.com",
        },
        404,
        "unknown_order",
        None,
    ),
    (
        {
            "order_id": "ORD-1",
            "sku": "mug-01",
            "reason": "changed_mind",
            "email": "ada@example.com",
        },
        404,
        "unknown_sku",
        None,
    ),
    (
        {
            "order_id": "ORD-1",
            "sku": "nope-9",
            "reason": "changed_mind",
            "email": "ada@example.com",
        },
        404,
        "unknown_sku",
        None,
    ),
    (
        {
            "order_id": "ORD-OLD",
            "sku": "mug-01",
            "reason": "changed_mind",
            "email": "ada@example.com",
        },
        422,
        "outside_return_window",
        None,
    ),
]


def test_create_return_refusals(shop: Shop) -> None:
    for body, status, code, field in CREATE_REFUSALS:
        before = shop.counts()
        err = _assert_error(shop.client.post("/v1/returns", json=body), status, code)
        if field:
            assert err["details"]["field"] == field and f"'{field}'" in err["message"]
        assert shop.counts() == before, body


def test_unknown_order_and_wrong_email_look_the_same(sqlite_shop: Shop) -> None:
    base = {"sku": "box-01", "reason": "changed_mind"}
    unknown = sqlite_shop.client.post(
        "/v1/returns", json={**base, "order_id": "ORD-404", "email": "ada@example.com"}
    ).json()
    wrong = sqlite_shop.client.post(
        "/v1/returns", json={**base, "order_id": "ORD-1", "email": "eve@example.com"}
    ).json()
    assert unknown["code"] == wrong["code"] == "unknown_order"


def test_request_shape_errors(sqlite_shop: Shop) -> None:
    s = sqlite_shop
    rid, token = s.open_return()
    auth = {"Authorization": f"Bearer {token}"}
    before = s.counts()
    c = s.client
    _assert_error(
        c.post(f"/v1/returns/{rid}/photos", headers=auth, json={"photos": []}),
        415,
        "unsupported_media_type",
    )
    _assert_error(
        c.post(
            f"/v1/returns/{rid}/photos",
            headers=auth,
            files=[("other", ("a.jpg", jpeg(scene(1)), "image/jpeg"))],
        ),
        422,
        "invalid_field",
    )
    _assert_error(
        c.post(
            f"/v1/returns/{rid}/photos",
            headers=auth,
            data={"note": "hi"},
            files=[("x", ("", b"", "application/octet-stream"))],
        ),
        422,
        "no_photos",
    )  # the photos field is missing
    _assert_error(
        c.post(
            f"/v1/returns/{rid}/photos",
            headers={**auth, "Content-Type": "multipart/form-data; boundary=abc"},
            content=b"--abc\r\nbogus header line\r\n\r\nxx\r\n--abc--\r\n",
        ),
        400,
        "invalid_multipart",
    )
    _assert_error(
        c.post("/v1/returns", content=b"{not json", headers={"Content-Type": "application/json"}),
        422,
        "invalid_field",
    )
    _assert_error(c.get("/v1/nothing-here"), 404, "not_found")
    _assert_error(c.delete("/v1/returns"), 405, "method_not_allowed")
    _assert_error(
        c.get("/v1/review/queue?sort=price", headers=s.headers("reviewer")), 422, "invalid_field"
    )
    _assert_error(
        c.post(
            "/v1/dock/inspections",
            headers=s.headers("dock"),
            files=[("photos", ("a.jpg", jpeg(scene(1)), "image/jpeg"))],
        ),
        422,
        "invalid_field",
    )
    _assert_error(c.get(f"/v1/returns/{rid}/nope", headers=auth), 404, "not_found")
    assert s.counts() == before


def test_body_over_the_request_cap_is_413_before_parsing(sqlite_shop: Shop) -> None:
    s = sqlite_shop
    rid, token = s.open_return()
    before = s.counts()
    cap = s.settings.max_request_bytes()
    r = s.client.post(
        f"/v1/returns/{rid}/photos",
        content=bytes(cap + 1),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "multipart/form-data; boundary=x",
        },
    )
    _assert_error(r, 413, "too_large")
    # Chunked (no Content-Length): counted while streaming.
    r = s.client.post(
        f"/v1/returns/{rid}/photos",
        content=iter([bytes(cap // 2)] * 3),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "multipart/form-data; boundary=x",
        },
    )
    _assert_error(r, 413, "too_large")
    big_json = b'{"order_id": "' + b"x" * (s.settings.max_json_bytes + 10) + b'"}'
    _assert_error(
        s.client.post(
            "/v1/returns", content=big_json, headers={"Content-Type": "application/json"}
        ),
        413,
        "too_large",
    )
    assert s.counts() == before


def test_admin_table_errors_name_the_row_and_store_nothing(shop: Shop) -> None:
    admin = shop.headers("admin")
    before = shop.counts()
    bad_csv = "sku,category,name,price\nok-1,book,Fine,3\nbad-1,book,Broken,-4\n"
    err = _assert_error(
        shop.client.put(
            "/v1/admin/catalog", content=bad_csv, headers={**admin, "Content-Type": "text/csv"}
        ),
        422,
        "invalid_field",
    )
    assert "row 3" in err["message"] and "price" in err["message"]
    _assert_error(
        shop.client.put(
            "/v1/admin/catalog",
            content="sku,name\nx,y\n",
            headers={**admin, "Content-Type": "text/csv"},
        ),
        422,
        "invalid_csv",
    )
    _assert_error(
        shop.client.put(
            "/v1/admin/orders",
            content=b"<orders/>",
            headers={**admin, "Content-Type": "application/xml"},
        ),
        415,
        "unsupported_media_type",
    )
    _assert_error(
        shop.client.put("/v1/admin/orders", json={"order_id": "x"}, headers=admin),
        422,
        "invalid_field",
    )
    bad_photo = [
        {
            "sku": "p-1",
            "category": "book",
            "name": "P",
            "price": 1,
            "reference_photo_base64": "bm90IGFuIGltYWdl",
        }
    ]  # "not an image"
    _assert_error(
        shop.client.put("/v1/admin/catalog", json=bad_photo, headers=admin),
        415,
        "unsupported_media_type",
    )
    _assert_error(
        shop.client.put(
            "/v1/admin/catalog",
            json=[{**bad_photo[0], "reference_photo_base64": "***"}],
            headers=admin,
        ),
        422,
        "invalid_field",
    )
    _assert_error(
        shop.client.put(
            "/v1/admin/catalog/nope-1/reference",
            content=jpeg(scene(1)),
            headers={**admin, "Content-Type": "image/jpeg"},
        ),
        404,
        "unknown_sku",
    )
    assert shop.counts() == before


def test_serve_refuses_a_missing_model_with_one_sentence(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from returnlens.cli import main

    assert main(["serve", "--models-dir", str(tmp_path), "--model-version", "v404"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model version 'v404' is not in the registry")
    assert "Traceback" not in err
    assert main(["serve", "--model-path", str(tmp_path / "none.onnx")]) == 2
    assert "does not exist [model_not_found]" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "invalid setting port" in capsys.readouterr().err


def test_settings_come_from_flags_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from serving.commands.service import settings_from_args

    monkeypatch.setenv("RETURNLENS_DATABASE_URL", "postgresql+psycopg://u@db/returns")
    monkeypatch.setenv("RETURNLENS_PORT", "9001")
    monkeypatch.setenv("RETURNLENS_WORKERS", "4")
    monkeypatch.delenv("RETURNLENS_ORT_THREADS", raising=False)
    args = argparse.Namespace(
        host=None,
        port=9100,
        workers=None,
        database_url=None,
        model_version=None,
        model_path=None,
        models_dir=None,
        seed_demo=None,
        log_level=None,
    )
    monkeypatch.setattr("serving.settings.usable_cores", lambda: 16)
    s = settings_from_args(args)
    assert (s.database_url, s.port, s.workers) == ("postgresql+psycopg://u@db/returns", 9100, 4)
    assert s.threads_per_worker() == 4  # 16 cores shared by 4 workers
    monkeypatch.setenv("RETURNLENS_WORKERS", "32")
    assert settings_from_args(args).threads_per_worker() == 1  # never below one thread
    monkeypatch.setenv("RETURNLENS_ORT_THREADS", "3")
    assert settings_from_args(args).threads_per_worker() == 3  # an explicit setting wins
