"""The hostile-input corpus against a live server, on SQLite and on PostgreSQL (issue 15).

One ``uvicorn`` subprocess per database (module-scoped) serves the tiny test model with
the shipped limits (rate limits off: the corpus is one client sending a thousand
requests). Its shop is loaded through the API. Then every case of
``tests/hostile_corpus.py`` is sent over real HTTP, and each answer must be:

- what the case expects: a 4xx, a 2xx, or either (never a 5xx);
- for a 4xx, JSON ``{code, message, details}`` with a machine-readable code and a
  sentence (and, where the case names them, one of its codes); a 401 or 403 only where
  the case is about credentials (none are: a refusal must come from the input);
- for a 2xx that stored photos, stored copies free of the polyglot's other half;
- answered within ``HANG_S`` (the client's timeout: a hang guard, not a benchmark).

After the corpus, the database and the photo store must reconcile: every photo row and
catalog reference has its file, every file belongs to a row, every file is the clean
JPEG its name promises, and every photo id a grading, decision, inspection or review
lists is a row. The last test reads the server log for tracebacks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import live
from tests.hostile_corpus import (
    CUSTOMER,
    EMAIL,
    ORDER,
    RETURN_ID,
    REVIEW_SUBJECT,
    SKU,
    Case,
    Expect,
    Request,
    cases_by_seed,
    corpus,
    damaged_jpeg,
    good_jpeg,
    read_stamp,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "hostile-test-admin-key-0123456789abcdef"
HANG_S = 20.0  # the client's timeout: no case may take longer to answer
READY_S = 90.0
DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
CASES = corpus()
CODE = re.compile(r"^[a-z][a-z0-9_]*$")
JPEG_SOI = b"\xff\xd8\xff"
# Never in a stored copy: metadata (EXIF) or the other half of a polyglot.
STORE_MARKERS = (b"Exif\x00\x00", b"PK\x03\x04", b"<script", b"<html")


@dataclass
class Live:
    """One running server, its shop's credentials and where it keeps things."""

    base: str
    db_url: str
    photo_dir: Path
    log: Path
    client: httpx.Client
    keys: dict[str, str] = field(default_factory=dict)

    def record(self, case: Case, r: httpx.Response, elapsed: float) -> None:
        """One line per answer in ``answers.jsonl`` beside the log (for reading failures)."""
        try:
            code = r.json().get("code") if r.status_code >= 400 else None
        except (ValueError, AttributeError):
            code = None
        line = {"case": case.name, "status": r.status_code, "code": code, "s": round(elapsed, 3)}
        with (self.log.parent / "answers.jsonl").open("a") as fh:
            fh.write(json.dumps(line) + "\n")

    def open_return(self) -> tuple[str, str]:
        r = self.client.post(
            "/v1/returns",
            json={"order_id": ORDER, "sku": SKU, "reason": "changed_mind", "email": EMAIL},
        )
        assert r.status_code == 201, f"cannot open a return for a case: {r.status_code} {r.text}"
        body = r.json()
        return body["return_id"], body["token"]

    def review_subject(self) -> str:
        """A new return waiting for a reviewer: a damaged item's photo uploaded."""
        rid, token = self.open_return()
        r = self.client.post(
            f"/v1/returns/{rid}/photos",
            files=[("photos", ("d.jpg", damaged_jpeg(), "image/jpeg"))],
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, f"cannot make a review subject: {r.status_code} {r.text}"
        assert r.json()["decision"]["outcome"] == "needs_review", r.text
        return rid

    def send(self, req: Request) -> tuple[httpx.Response, dict[str, str]]:
        """Send ``req`` (placeholders filled); returns the answer and the auth used."""
        path, auth = req.path, {}
        if req.auth == "shopper":
            rid, token = self.open_return()
            path = path.replace(RETURN_ID, rid)
            auth = {"Authorization": f"Bearer {token}"}
        elif req.auth is not None:
            auth = {"Authorization": f"Bearer {self.keys[req.auth]}"}
        content = req.content
        if REVIEW_SUBJECT in content:
            content = content.replace(REVIEW_SUBJECT, self.review_subject().encode())
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in req.headers]
        headers += [(k.encode(), v.encode()) for k, v in auth.items()]
        body: bytes | Iterator[bytes] = content
        if req.chunked:
            body = iter([content[i : i + 65536] for i in range(0, len(content), 65536)])
        r = self.client.request(req.method, path, content=body, headers=headers)
        return r, auth


def _excerpt(r: httpx.Response, n: int = 300) -> str:
    text = r.content[:n].decode("utf-8", "replace")
    return text + ("..." if len(r.content) > n else "")


def _problems(case: Case, r: httpx.Response, *, setup: bool = False) -> list[str]:
    """What is wrong with the answer ``r`` to ``case`` (empty: nothing)."""
    status = r.status_code
    out: list[str] = []
    if status >= 500:
        return [f"answered {status}: {_excerpt(r)}"]
    if not setup:
        wanted = {
            Expect.REFUSE: 400 <= status < 500,
            Expect.ACCEPT: 200 <= status < 300,
            Expect.EITHER: 200 <= status < 300 or 400 <= status < 500,
        }[case.expect]
        if not wanted:
            out.append(f"expected {case.expect.value}, got {status}: {_excerpt(r)}")
    if 200 <= status < 300:
        if status != 204:
            try:
                r.json()
            except ValueError:
                out.append(f"a {status} whose body is not JSON: {_excerpt(r)}")
        return out
    if not 400 <= status < 500:
        return [*out, f"answered {status}: {_excerpt(r)}"]
    ctype = r.headers.get("content-type", "")
    try:
        body: Any = r.json()
    except ValueError:
        return [*out, f"a {status} that is not JSON ({ctype!r}): {_excerpt(r)}"]
    if not ctype.startswith("application/json"):
        out.append(f"a {status} with content type {ctype!r}")
    if not isinstance(body, dict):
        return [*out, f"a {status} whose JSON is not an object: {_excerpt(r)}"]
    code, message = body.get("code"), body.get("message")
    if not isinstance(code, str) or not CODE.match(code):
        out.append(f"a {status} without a machine-readable code: {_excerpt(r)}")
    if not isinstance(message, str) or not message.strip():
        out.append(f"a {status} without a message: {_excerpt(r)}")
    if status in (401, 403) and not setup:
        out.append(f"refused for its credentials ({status} {code}), not for its input")
    if str(message).startswith("no such endpoint") and not setup:
        out.append(f"the corpus sent it to no route: {message}")
    if case.codes and not setup and code not in case.codes:
        out.append(f"code {code!r} is not one of {sorted(case.codes)}: {_excerpt(r)}")
    return out


def _stored_photo_problems(
    srv: Live, case: Case, r: httpx.Response, auth: dict[str, str]
) -> list[str]:
    """An accepted upload's stored copies: JPEGs without the polyglot's other half."""
    if not case.absent_from_store or not 200 <= r.status_code < 300 or not r.content:
        return []  # a 204 (reference photo) is checked by the reconciliation
    body = r.json()
    urls = [p["url"] for p in body.get("photos", []) if isinstance(p, dict) and "url" in p]
    urls += list(body.get("photo_urls", []))
    out = []
    for url in urls:
        got = srv.client.get(
            url, headers=auth or {"Authorization": f"Bearer {srv.keys['reviewer']}"}
        )
        if got.status_code != 200:
            out.append(f"its stored photo {url} answers {got.status_code}")
            continue
        if not got.content.startswith(JPEG_SOI):
            out.append(f"its stored photo {url} is not a JPEG")
        out += [
            f"its stored photo {url} holds {m!r}"
            for m in case.absent_from_store
            if m in got.content
        ]
    return out


# --------------------------------------------------------------------------- the server
def _load_shop(srv: Live) -> None:
    """Catalog, one delivered order and staff keys, all through the API."""
    c, admin = srv.client, {"X-API-Key": ADMIN_KEY}
    r = c.put(
        "/v1/admin/catalog",
        json=[
            {
                "sku": SKU,
                "category": "box",
                "name": "Hostile box",
                "price": 40.0,
                "reference_photo_base64": base64.b64encode(good_jpeg()).decode(),
            }
        ],
        headers=admin,
    )
    assert r.status_code == 200, r.text
    recent = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    order = {
        "order_id": ORDER,
        "customer_id": CUSTOMER,
        "customer_email": EMAIL,
        "sku": SKU,
        "price": 40.0,
        "delivered_at": recent,
        "quantity": 10_000,  # cases open a return each (the per-line limit: test_limits.py)
    }
    r = c.put("/v1/admin/orders", json=[order], headers=admin)
    assert r.status_code == 200, r.text
    for role in ("admin", "dock", "reviewer"):
        r = c.post("/v1/admin/api-keys", json={"name": f"hx-{role}", "role": role}, headers=admin)
        assert r.status_code == 201, r.text
        srv.keys[role] = r.json()["key"]
    srv.review_subject()  # fails early if the shop cannot make one


@pytest.fixture(scope="module", params=DATABASES)
def srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        db_url = cluster.url(cluster.create_database(migrated=True))
    else:
        db_url = f"sqlite:///{root / 'hostile.db'}"
    port = live.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETURNLENS_")}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "RETURNLENS_DATABASE_URL": db_url,
            "RETURNLENS_DATA_DIR": str(root),
            "RETURNLENS_PHOTO_DIR": str(root / "photos"),
            "RETURNLENS_MODEL_PATH": str(tiny_model),
            "RETURNLENS_ADMIN_KEY": ADMIN_KEY,
            "RETURNLENS_ORT_THREADS": "1",
            "RETURNLENS_RATE_LIMIT_PER_IP": "0",
            "RETURNLENS_RATE_LIMIT_PER_KEY": "0",
            "RETURNLENS_LOG_LEVEL": "warning",
        }
    )
    argv = live.uvicorn_argv(port)
    log = root / "server.log"
    with (
        live.running(argv, base=base, env=env, cwd=ROOT, log=log, timeout_s=READY_S),
        httpx.Client(base_url=base, timeout=HANG_S) as client,
    ):
        server = Live(base, db_url, root / "photos", log, client)
        _load_shop(server)
        yield server


# --------------------------------------------------------------------------- the corpus
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(srv: Live, case: Case) -> None:
    problems: list[str] = []
    for make in case.before:
        try:
            r, _ = srv.send(make())
        except httpx.HTTPError as exc:
            pytest.fail(f"{case.name}: its set-up request failed: {type(exc).__name__}: {exc}")
        problems += [
            f"set-up {r.request.method} {r.request.url.path}: {p}"
            for p in _problems(case, r, setup=True)
        ]
    req = case.build()
    started = time.monotonic()
    try:
        r, auth = srv.send(req)
    except httpx.TimeoutException:
        pytest.fail(f"{case.name} [{case.route}]: no answer within {HANG_S:.0f} s")
    except httpx.HTTPError as exc:
        alive = srv_alive(srv)
        pytest.fail(
            f"{case.name} [{case.route}]: no answer ({type(exc).__name__}: {exc}); "
            f"server {'still up' if alive else 'DOWN'}:\n{live.log_tail(srv.log, 1500)}"
        )
    elapsed = time.monotonic() - started
    srv.record(case, r, elapsed)
    problems += _problems(case, r)
    problems += _stored_photo_problems(srv, case, r, auth)
    assert not problems, f"{case.name} [{case.route}] ({elapsed:.1f} s): " + "; ".join(problems)


def srv_alive(srv: Live) -> bool:
    try:
        return httpx.get(f"{srv.base}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


# --------------------------------------------------------------------------- afterwards
def _stored_files(root: Path) -> tuple[dict[str, Path], list[Path]]:
    """Photo files by digest (``root/ab/cdef...jpg``), and anything else found there."""
    files: dict[str, Path] = {}
    stray: list[Path] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        digest = path.parent.name + path.stem
        if (
            path.parent.parent == root
            and path.suffix == ".jpg"
            and re.fullmatch(r"[0-9a-f]{64}", digest)
        ):
            files[digest] = path
        else:
            stray.append(path)
    return files, stray


def reconcile(db_url: str, photo_dir: Path) -> tuple[list[str], str]:
    """Every way the database and the photo store disagree, and what was compared."""
    from sqlalchemy import create_engine, select

    from serving.storage.tables import CatalogItem, Decision, Grading, Inspection, Photo, Review

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            photos = {row.id: row.digest for row in conn.execute(select(Photo.id, Photo.digest))}
            refs = select(CatalogItem.sku, CatalogItem.reference_digest).where(
                CatalogItem.reference_digest.is_not(None)
            )
            references = {row.sku: row.reference_digest for row in conn.execute(refs)}
            listed: dict[str, list[str]] = {}
            for table in (Grading, Decision, Inspection, Review):
                for row in conn.execute(select(table.id, table.photo_ids)):
                    listed[f"{table.__tablename__} {row.id}"] = list(row.photo_ids or [])
    finally:
        engine.dispose()
    files, stray = _stored_files(photo_dir)
    owned = set(photos.values()) | set(references.values())
    problems = [f"photo row {pid} has no file {d}" for pid, d in photos.items() if d not in files]
    problems += [
        f"catalog item {sku!r} has no reference file {d}"
        for sku, d in references.items()
        if d not in files
    ]
    problems += [
        f"file {files[d]} belongs to no row{_sender(files[d])}" for d in sorted(set(files) - owned)
    ]
    problems += [f"stray file {p} in the photo store" for p in stray]
    problems += [
        f"{subject} lists photo {pid}, which is no row"
        for subject, ids in listed.items()
        for pid in ids
        if pid not in photos
    ]
    for digest, path in files.items():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            problems.append(f"file {path} does not hash to its name")
        if not data.startswith(JPEG_SOI):
            problems.append(f"file {path} is not a JPEG")
        problems += [f"file {path} holds {m!r}" for m in STORE_MARKERS if m in data]
    compared = f"{len(photos)} photo rows, {len(references)} references, {len(files)} files"
    return problems, compared


def _sender(path: Path) -> str:
    """Which case sent the photo stored at ``path``, read from the seed in its pixels."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    seed = read_stamp(bgr[..., ::-1]) if bgr is not None else None
    if seed is None:
        return ""
    return f" (its pixels carry seed {seed}: {', '.join(cases_by_seed().get(seed, ['?']))})"


def test_database_and_photo_store_reconcile(srv: Live) -> None:
    """No row without its file, no file without its row, nothing half-stored."""
    assert srv_alive(srv), f"the server is down after the corpus:\n{live.log_tail(srv.log)}"
    problems, compared = reconcile(srv.db_url, srv.photo_dir)
    assert not problems, f"{len(problems)} reconciliation problem(s) ({compared}):\n" + "\n".join(
        problems[:50]
    )


def test_server_logged_no_traceback(srv: Live) -> None:
    text = srv.log.read_text(errors="replace") if srv.log.is_file() else ""
    tracebacks = text.count("Traceback (most recent call last)")
    assert tracebacks == 0, (
        f"the server logged {tracebacks} traceback(s); the last:\n"
        + text[text.rfind("Traceback (most recent call last)") :][:3000]
    )
