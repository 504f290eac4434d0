"""Browser-test helpers: a live ReturnLens server and Debian's headless Chromium.

``LiveServer`` starts the real app (``create_app`` + the web router) under uvicorn in a
subprocess on 127.0.0.1. The child binds port 0 itself and writes the port it got to a
file, so there is no race for a "free" port; the parent then polls ``/readyz`` until it
answers 200, within a deadline, failing with the server's log otherwise.

``chromium()`` launches ``/usr/bin/chromium`` through Playwright (the sync API) with
flags for a sandbox-less CI box; tests that need it call ``require_chromium()``
(``tests/requires.py``): a skip naming what is missing, a failure under ``CI=true``.
``.ci/run`` installs the ``chromium`` package when absent.

Run as a module, this file is the server child: ``python -m tests.browser --port-file F
--database-url URL --photo-dir D --model M --admin-key K``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests import live
from tests.requires import CHROMIUM

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_KEY = "browser-test-admin-key-0123456789abcdef"
READY_TIMEOUT_S = 60.0
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
ARTIFACTS = REPO / "test-artifacts"


# --------------------------------------------------------------------------- chromium
@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium ``Browser`` (Playwright sync API); closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ (git-ignored) and return it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # sticky panels then sit where a person sees them
    page.screenshot(path=str(path), full_page=True)
    return path


# The basic accessibility check: every form control has an accessible label, every
# button a name, every image alt text, ids are unique. Runs in the page; returns a list
# of human-readable problems (empty when fine). Hidden elements are checked too: a
# control that appears later must be labelled as well.
A11Y_SCRIPT = """
() => {
  const problems = [];
  const name = (el) => {
    const aria = el.getAttribute('aria-label');
    if (aria && aria.trim()) return aria.trim();
    const by = el.getAttribute('aria-labelledby');
    if (by) {
      const t = by.split(/\\s+/).map((id) => document.getElementById(id))
        .filter(Boolean).map((n) => n.textContent.trim()).join(' ');
      if (t) return t;
    }
    if (el.labels && el.labels.length) {
      const t = Array.from(el.labels).map((l) => l.textContent.trim()).join(' ');
      if (t) return t;
    }
    return '';
  };
  const describe = (el) => el.outerHTML.slice(0, 120);
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden') continue;
    if (!name(el)) problems.push('unlabelled control: ' + describe(el));
  }
  for (const el of document.querySelectorAll('button, [role=button]')) {
    if (!(el.getAttribute('aria-label') || el.textContent || '').trim())
      problems.push('button without a name: ' + describe(el));
  }
  for (const el of document.querySelectorAll('img')) {
    if (!el.hasAttribute('alt')) problems.push('image without alt: ' + describe(el));
  }
  for (const el of document.querySelectorAll('[role=img]')) {
    if (!(el.getAttribute('aria-label') || '').trim())
      problems.push('role=img without a label: ' + describe(el));
  }
  const ids = {};
  for (const el of document.querySelectorAll('[id]')) ids[el.id] = (ids[el.id] || 0) + 1;
  for (const [id, n] of Object.entries(ids)) if (n > 1) problems.push('duplicate id: ' + id);
  if (!document.documentElement.lang) problems.push('<html> has no lang');
  if (!document.title.trim()) problems.push('the page has no title');
  return problems;
}
"""

# Colour contrast of visible text against its nearest opaque background (WCAG 2 relative
# luminance). Returns the elements under 4.5:1 (3:1 for large text).
CONTRAST_SCRIPT = """
() => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(',').map((x) => parseFloat(x));
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = ({r, g, b}) => {
    const f = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bgOf = (el) => {
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c.a > 0.9) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const bad = [];
  const seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const el = t.parentElement;
    if (!el || seen.has(el) || !t.textContent.trim()) continue;
    seen.add(el);
    const r = el.getBoundingClientRect();
    const cs = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || cs.visibility === 'hidden') continue;
    if (el.closest('[hidden], .visually-hidden')) continue;
    const fg = parse(cs.color);
    if (!fg) continue;
    const l1 = lum(fg), l2 = lum(bgOf(el));
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(cs.fontSize);
    const large = size >= 24 || (size >= 18.66 && parseInt(cs.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5))
      bad.push(`${ratio.toFixed(2)}:1 "${t.textContent.trim().slice(0, 40)}"`);
  }
  return bad;
}
"""


def accessibility_problems(page: Any) -> list[str]:
    problems: list[str] = page.evaluate(A11Y_SCRIPT)
    problems += [f"low contrast {c}" for c in page.evaluate(CONTRAST_SCRIPT)]
    return problems


def overflowing(page: Any) -> list[str]:
    """Elements that stick out past the viewport's right edge (the page would scroll
    sideways); empty when the layout fits."""
    found: list[str] = page.evaluate("""() => {
      const width = document.documentElement.clientWidth;
      const out = [];
      for (const el of document.body.querySelectorAll('*')) {
        if (el.closest('.visually-hidden, [hidden]')) continue;
        const r = el.getBoundingClientRect();
        if (r.width && r.right > width + 0.5)
          out.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className} ` +
                   `right=${Math.round(r.right)}`);
      }
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let t = walker.nextNode(); t; t = walker.nextNode()) {
        if (!t.parentElement || t.parentElement.closest('.visually-hidden, [hidden]')) continue;
        const range = document.createRange();
        range.selectNodeContents(t);
        const r = range.getBoundingClientRect();
        if (r.width && r.right > width + 0.5)
          out.push(`text "${t.textContent.trim().slice(0, 30)}" in ` +
                   `${t.parentElement.className} right=${Math.round(r.right)}`);
      }
      if (document.documentElement.scrollWidth > width && !out.length) out.push('document');
      return out.slice(0, 10);
    }""")
    return found


# --------------------------------------------------------------------------- server
@dataclass
class LiveServer:
    base: str
    root: Path
    database_url: str
    photo_dir: Path
    model: Path
    proc: subprocess.Popen[bytes]
    keys: dict[str, str] = field(default_factory=dict)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30.0)

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""


@contextmanager
def live_server(root: Path, model: Path, policy: Path | None = None) -> Iterator[LiveServer]:
    """The app under uvicorn in a subprocess, SQLite + photo store under ``root``;
    ``policy``: a policy file instead of the shipped one.

    The child binds port 0 itself and writes the port to a file (no race for a "free"
    port); ``tests.live.wait_ready`` polls for it, then for ``/readyz``, with a deadline.
    """
    root.mkdir(parents=True, exist_ok=True)
    port_file = root / "port"
    database_url = f"sqlite:///{root / 'returnlens.db'}"
    photo_dir = root / "photos"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETURNLENS_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    argv = [
        sys.executable,
        "-m",
        "tests.browser",
        "--port-file",
        str(port_file),
        "--database-url",
        database_url,
        "--photo-dir",
        str(photo_dir),
        "--model",
        str(model),
        "--admin-key",
        ADMIN_KEY,
        *(["--policy", str(policy)] if policy is not None else []),
    ]

    def base() -> str | None:
        text = port_file.read_text().strip() if port_file.is_file() else ""
        return f"http://127.0.0.1:{int(text)}" if text else None

    log = root / "server.log"
    with live.running(argv, base=base, env=env, cwd=REPO, log=log, timeout_s=READY_TIMEOUT_S) as (
        proc,
        url,
    ):
        yield LiveServer(
            base=url,
            root=root,
            database_url=database_url,
            photo_dir=photo_dir,
            model=model,
            proc=proc,
        )


def web_app(settings: Any) -> Any:
    """The real app; it mounts the web pages itself."""
    from serving.app import create_app

    return create_app(settings)


def live_settings(
    database_url: str, photo_dir: Path, model: Path, admin_key: str, policy: Path | None = None
) -> Any:
    from pydantic import SecretStr

    from serving.settings import Settings

    return Settings(
        database_url=database_url,
        data_dir=photo_dir.parent,
        photo_dir=photo_dir,
        model_path=model,
        admin_key=SecretStr(admin_key),
        rate_limit_per_ip=100_000,
        rate_limit_per_ip_burst=10_000,
        rate_limit_per_key=100_000,
        rate_limit_per_key_burst=10_000,
        ort_threads=1,
        log_level="warning",
        policy_path=policy,
    )


def _serve(argv: list[str]) -> int:
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m tests.browser")
    p.add_argument("--port-file", type=Path, required=True)
    p.add_argument("--database-url", required=True)
    p.add_argument("--photo-dir", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--admin-key", required=True)
    p.add_argument("--policy", type=Path, default=None)
    args = p.parse_args(argv)
    app = web_app(
        live_settings(args.database_url, args.photo_dir, args.model, args.admin_key, args.policy)
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(sock.getsockname()[1]))
    os.replace(tmp, args.port_file)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    asyncio.run(server.serve(sockets=[sock]))
    return 0


# --------------------------------------------------------------------------- shop data
def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    from tests.photo_factory import encode

    return encode(rgb, "JPEG", quality=quality)


@dataclass(frozen=True)
class Order:
    order_id: str
    email: str
    sku: str
    price: float | None = None  # None: the catalog price


def seed_shop(
    server: LiveServer, catalog: list[dict[str, Any]], orders: list[Order]
) -> dict[str, str]:
    """Catalog (with reference photos as JPEG bytes under "reference"), delivered orders
    and a reviewer key, all through the admin API. Returns {"reviewer": key}."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    rows = [
        {k: v for k, v in item.items() if k != "reference"}
        | (
            {"reference_photo_base64": base64.b64encode(item["reference"]).decode()}
            if item.get("reference")
            else {}
        )
        for item in catalog
    ]
    delivered = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    prices = {item["sku"]: float(item["price"]) for item in catalog}
    with server.http() as c:
        r = c.put("/v1/admin/catalog", json=rows, headers=admin)
        assert r.status_code == 200, r.text
        r = c.put(
            "/v1/admin/orders",
            headers=admin,
            json=[
                {
                    "order_id": o.order_id,
                    "customer_id": f"C-{o.email.split('@')[0]}",
                    "customer_email": o.email,
                    "sku": o.sku,
                    "price": prices[o.sku] if o.price is None else o.price,
                    "delivered_at": delivered,
                }
                for o in orders
            ],
        )
        assert r.status_code == 200, r.text
        r = c.post(
            "/v1/admin/api-keys",
            json={"name": "browser-reviewer", "role": "reviewer"},
            headers=admin,
        )
        assert r.status_code == 201, r.text
        server.keys["reviewer"] = r.json()["key"]
    return server.keys


def staff_key(server: LiveServer, role: str) -> str:
    """A new API key for ``role`` (dock, reviewer, admin), made with the admin key."""
    with server.http() as c:
        r = c.post(
            "/v1/admin/api-keys",
            json={"name": f"browser-{role}-{len(server.keys)}", "role": role},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert r.status_code == 201, r.text
        key = str(r.json()["key"])
    server.keys[role] = key
    return key


def inspect(server: LiveServer, return_id: str | None, key: str, *photos: bytes) -> Any:
    """A dock inspection through the API (the dock key is made on first use)."""
    dock = server.keys.get("dock") or staff_key(server, "dock")
    with server.http() as c:
        r = c.post(
            "/v1/dock/inspections",
            files=[("photos", (f"d{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)],
            data={"return_id": return_id or "", "station_id": "dock-1"},
            headers={"Authorization": f"Bearer {dock}", "Idempotency-Key": key},
        )
        assert r.status_code == 201, r.text
        return r.json()


def open_return(server: LiveServer, order: Order, reason: str) -> tuple[str, str]:
    with server.http() as c:
        r = c.post(
            "/v1/returns",
            json={
                "order_id": order.order_id,
                "email": order.email,
                "sku": order.sku,
                "reason": reason,
            },
        )
        assert r.status_code == 201, r.text
        body = r.json()
    return str(body["return_id"]), str(body["token"])


def upload(server: LiveServer, return_id: str, token: str, *photos: bytes) -> dict[str, Any]:
    with server.http() as c:
        r = c.post(
            f"/v1/returns/{return_id}/photos",
            files=[("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)],
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
    return out


# --------------------------------------------------------------------------- photos
@dataclass(frozen=True)
class PhotoKit:
    """The model the live server grades with, its catalog, and photos that steer it.

    With the shipped default model (``serving/models/returnlens-default.onnx``) the photos
    come from the synthetic generator, like the live scenario test's. Without it, the tiny
    test model (``benchmarks/tiny_model.py``) is used: neutral colours grade ``A_new``, a red
    item grades ``E_damaged`` with a crack, and the embedding is the photo's layout, so a
    photo of the catalog reference scene matches its SKU.
    """

    model: Path
    model_name: str
    catalog: list[dict[str, Any]]  # sku, category, name, price, reference (JPEG bytes)
    approve_sku: str  # a clean photo of it is approved
    retake_sku: str  # a blurred photo asks for a retake; a sharp retake is approved
    review_sku: str  # a damaged photo with reason changed_mind goes to review
    clean: np.ndarray
    blurred: np.ndarray
    retake: np.ndarray
    damaged: np.ndarray
    dock_damaged: np.ndarray  # the approve_sku item damaged at the dock (discrepancy)
    extra: tuple[np.ndarray, ...] = ()  # more distinct clean photos (loop test)


def _blur(rgb: np.ndarray, sigma: float = 9.0) -> np.ndarray:
    import cv2

    return np.asarray(cv2.GaussianBlur(rgb, (0, 0), sigma))


def photo_kit(workdir: Path) -> PhotoKit:
    from serving.models import default_model_path

    default = default_model_path()
    if default.is_file():
        return _default_kit(default)
    return tiny_kit(workdir)


def tiny_kit(workdir: Path) -> PhotoKit:
    from benchmarks.tiny_model import build_test_model
    from tests.photo_factory import item_scene

    def scene(seed: int, kind: str) -> np.ndarray:
        return item_scene(seed, kind=kind).rgb

    def red(rgb: np.ndarray) -> np.ndarray:
        out = rgb.astype(np.float32) * np.array([1.0, 0.25, 0.25], np.float32)
        out[..., 0] = np.maximum(out[..., 0], 150)
        return out.clip(0, 255).astype(np.uint8)

    refs = {
        "box-01": scene(1, "box"),
        "mug-01": scene(2, "mug"),
        "book-01": scene(3, "book"),
        "phone-01": scene(4, "phone"),
    }
    names = {
        "box-01": "Storage box",
        "mug-01": "Stoneware mug, teal",
        "book-01": "Hardback cookbook",
        "phone-01": "Phone, 128 GB",
    }
    prices = {"box-01": 49.0, "mug-01": 18.0, "book-01": 32.0, "phone-01": 240.0}
    catalog = [
        {
            "sku": sku,
            "category": sku.split("-")[0],
            "name": names[sku],
            "price": prices[sku],
            # The catalog's photo is the item from the other side (mirrored), not the
            # photo the tests upload: uploading a catalog photo is a catalog_photo.
            "reference": jpeg(np.ascontiguousarray(rgb[:, ::-1])),
        }
        for sku, rgb in refs.items()
    ]
    model = build_test_model(workdir / "tiny-test-model.onnx")
    return PhotoKit(
        model=model,
        model_name="tiny test model (benchmarks/tiny_model.py)",
        catalog=catalog,
        approve_sku="box-01",
        retake_sku="mug-01",
        review_sku="book-01",
        clean=refs["box-01"],
        blurred=_blur(refs["mug-01"]),
        retake=refs["mug-01"],
        damaged=red(refs["book-01"]),
        dock_damaged=red(scene(5, "box")),
        extra=(refs["phone-01"],),
    )


def _default_kit(model: Path) -> PhotoKit:
    """Generated photos the shipped model can judge: for each role the first seed whose
    render passes the quality gate and is familiar to the model (``PhotoScores.familiar``)
    is taken. The choice never looks at the grade, so the tests still check the model's
    grade and the policy's outcome, not a photo picked to give them."""
    from vision.pipeline import Grader
    from vision.synth import catalog_skus, render_photo, render_reference, sample_state

    skus = catalog_skus(7, 2)
    by_cat = {s.category: s for s in skus}
    chosen = [by_cat[c] for c in ("mug", "shoe", "book", "box") if c in by_cat]
    graders = {p: Grader.load(model, profile=p, intra_op_threads=1) for p in ("shopper", "dock")}

    def render(sku: Any, grade: str, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        rgb, _ = render_photo(sku, sample_state(sku, grade, rng), rng, 768, background="plain")
        return np.asarray(rgb)

    def photo(sku: Any, grade: str, seed: int, profile: str = "shopper") -> np.ndarray:
        for attempt in range(seed, seed + 40):
            rgb = render(sku, grade, attempt)
            graded = graders[profile].grade([jpeg(rgb)]).photos[0]
            score, spec = graded.scores.unfamiliarity, graders[profile].card.unfamiliarity
            # Well inside the bar: the page re-encodes the photo, which moves the score a bit.
            if (
                graded.quality.passed
                and spec
                and score is not None
                and score < 0.9 * spec.threshold
            ):
                return rgb
        raise AssertionError(f"no gate-passing, familiar {grade} render of {sku.sku}")

    catalog = [
        {
            "sku": s.sku,
            "category": s.category,
            "name": s.name,
            "price": float(s.price),
            "reference": jpeg(render_reference(s, 384)),
        }
        for s in chosen
    ]
    a, b, c = chosen[0], chosen[1], chosen[2]
    return PhotoKit(
        model=model,
        model_name="shipped default model",
        catalog=catalog,
        approve_sku=a.sku,
        retake_sku=b.sku,
        review_sku=c.sku,
        clean=photo(a, "A_new", 101),
        blurred=_blur(photo(b, "A_new", 102)),
        retake=photo(b, "A_new", 1050),
        damaged=photo(c, "E_damaged", 103),
        dock_damaged=photo(a, "E_damaged", 104, profile="dock"),
        extra=tuple(photo(s, "A_new", 110 + i) for i, s in enumerate(chosen[3:])),
    )


def phone_photo_file(rgb: np.ndarray, path: Path, long_side: int = 2400) -> Path:
    """A phone-sized JPEG: upscaled to ``long_side`` and stored sideways with EXIF
    Orientation 6, as phone cameras do; upright only when the reader applies the tag."""
    import cv2

    from tests.photo_factory import encode

    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    big = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
    sideways = np.ascontiguousarray(np.rot90(big, 1))  # 90 deg counter-clockwise
    path.write_bytes(encode(sideways, "JPEG", quality=90, exif_orientation=6))
    return path


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)[:3000]


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
