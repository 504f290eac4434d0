"""Section "bombs": large-but-legal images against a live service (issue 15).

The service runs as in the service section (``returnlens serve --seed-demo``, one
uvicorn worker, its own SQLite database and photo folder). Every figure is the worker
process's: peak RSS from ``VmHWM``, reset (``/proc/PID/clear_refs``) just before the
measured request(s); "extra" is that peak minus ``VmRSS`` just before.

1. **Peak memory of one pixel-bomb upload**: six different PNGs at the largest size the
   default budget lets a PNG have (6000 x 6000 RGBA, 36 MP: ~150 MB each to decode,
   a ~150 KB file each); six copies of the issue's 8000 x 8000 RGBA PNG (refused as
   duplicates from the bytes' hash); one copy of it (refused from its header:
   ``too_many_pixels``).
2. **Peak memory of a heatmap request** on a photo whose stored copy is a full
   8000 x 8000 JPEG: photos stored before stored copies were reduced can be that large
   (the harness writes such a file in place of a photo's stored copy, which the service
   reads by its name). First request (rendered from a DCT-draft working copy), second
   (cached), and four different such photos at once (the issue's 4-at-once case).
3. **Normal-upload latency with and without pixel-bomb clients**: one client sends
   one-photo 12 MP JPEG uploads back to back, first with the service otherwise idle,
   then while two clients send the six-PNG bomb upload of (1) back to back (each to a
   fresh return). p50 and p95 of each run and their ratio (target: p50 within 2x).

The client shares the machine with the server (and so do the bomb clients' uploads:
building a multipart body of six ~150 KB files costs the client little). Nothing here is
a test; the figures go to ``bombs.json`` and SUMMARY.md.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.harness.common import BenchConfig, log, machine_info, percentiles, ratio
from benchmarks.harness.inputs import PhotoFactory
from benchmarks.harness.service_load import TIMEOUT_S, LiveService, Shop

TARGET = "normal-upload p50 with two pixel-bomb clients <= 2x unloaded"


def solid_png(width: int, height: int, rgba: tuple[int, int, int, int]) -> bytes:
    """A real RGBA PNG of one colour (the issue's kind of bomb: tiny file, full decode).
    Rows after the first are 'Up'-filtered zeros, so building it costs little."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    z = zlib.compressobj(9)
    parts = [z.compress(b"\x00" + bytes(rgba) * width)]
    up = b"\x02" + bytes(4 * width)
    parts += [z.compress(up) for _ in range(height - 1)]
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def _bombs(side: int) -> list[bytes]:
    colours = [(40 * i + 20, 200 - 30 * i, 90, 255) for i in range(6)]
    return [solid_png(side, side, c) for c in colours]


def _post_photos(client: Any, return_id: str, token: str, photos: Sequence[bytes]) -> Any:
    files = [("photos", (f"p{i}.png", data, "image/png")) for i, data in enumerate(photos)]
    return client.post(
        f"/v1/returns/{return_id}/photos",
        files=files,
        headers={"Authorization": f"Bearer {token}"},
    )


def _peak(svc: LiveService, fn: Any) -> dict[str, Any]:
    """Run ``fn`` with the worker's peak RSS reset first; its answer, time and memory."""
    before = svc.memory().get("vmrss_mib")
    reset = svc.reset_peak()
    start = time.perf_counter()
    answer = fn()
    seconds = time.perf_counter() - start
    after = svc.memory()
    peak = after.get("vmhwm_mib")
    return {
        "answer": answer,
        "seconds": round(seconds, 3),
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "extra_peak_mib": round(peak - before, 1) if peak is not None and before else None,
        "peak_reset": reset,
    }


def _upload_memory(svc: LiveService, shop: Shop, side: int, over: int) -> dict[str, Any]:
    import httpx

    bombs, big = _bombs(side), solid_png(over, over, (120, 30, 200, 255))
    cases = {
        f"six_{side}x{side}_png": bombs,
        f"six_copies_{over}x{over}_png": [big] * 6,
        f"one_{over}x{over}_png": [big],
    }
    out: dict[str, Any] = {
        "png_bytes": {"legal": len(bombs[0]), "over_limit": len(big)},
    }
    with httpx.Client(base_url=svc.url, timeout=TIMEOUT_S) as client:
        for name, photos in cases.items():
            ((rid, token),) = shop.returns(1)
            res = _peak(svc, lambda p=photos, r=rid, t=token: _post_photos(client, r, t, p))
            r = res.pop("answer")
            res["status"] = r.status_code
            res["code"] = r.json().get("code") if r.status_code != 200 else "ok"
            out[name] = res
            log(
                f"  upload {name}: {res['status']} {res['code']}, {res['seconds']} s, "
                f"peak +{res['extra_peak_mib']} MiB"
            )
    return out


def _legacy_photo(svc: LiveService, shop: Shop, client: Any, photo: bytes, side: int) -> str:
    """Upload ``photo``, then put a full ``side`` x ``side`` JPEG where its stored copy is
    (the service reads stored copies by name): a photo stored before copies were reduced.
    Returns the photo's grade heatmap URL."""
    ((rid, token),) = shop.returns(1)
    r = client.post(
        f"/v1/returns/{rid}/photos",
        files=[("photos", ("p.jpg", photo, "image/jpeg"))],
        headers={"Authorization": f"Bearer {token}"},
    )
    if r.status_code != 200:
        raise RuntimeError(f"upload for the heatmap figure answered {r.status_code}: {r.text}")
    body = r.json()["photos"][0]
    stored = client.get(body["url"], headers=svc.admin_headers()).content
    digest = hashlib.sha256(stored).hexdigest()
    path = svc.workdir / "photos" / digest[:2] / f"{digest[2:]}.jpg"
    small = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_COLOR)
    if small is None:
        raise RuntimeError("the stored copy cannot be read")
    big = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    tmp = path.with_suffix(".bench")
    tmp.write_bytes(buf.tobytes())
    tmp.replace(path)
    return str(next(h["url"] for h in body["heatmaps"] if h["label"] == "grade"))


def _heatmap_memory(
    svc: LiveService, shop: Shop, factory: PhotoFactory, side: int
) -> dict[str, Any]:
    import httpx

    out: dict[str, Any] = {"stored_copy": f"{side}x{side} JPEG"}
    with httpx.Client(base_url=svc.url, timeout=TIMEOUT_S) as client:
        urls = [_legacy_photo(svc, shop, client, factory.make(800_000 + i), side) for i in range(5)]
        headers = svc.admin_headers()

        def get(url: str) -> Any:
            return client.get(url, headers=headers)

        for name in ("first", "cached"):
            res = _peak(svc, lambda: get(urls[0]))
            r = res.pop("answer")
            res["status"], res["png_bytes"] = r.status_code, len(r.content)
            out[name] = res
            log(
                f"  heatmap {name}: {r.status_code}, {res['seconds']} s, "
                f"peak +{res['extra_peak_mib']} MiB"
            )

        def four() -> list[int]:
            codes: list[int] = []
            with httpx.Client(base_url=svc.url, timeout=TIMEOUT_S) as c2:

                def one(u: str) -> None:
                    codes.append(c2.get(u, headers=headers).status_code)

                threads = [threading.Thread(target=one, args=(u,)) for u in urls[1:]]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            return codes

        res = _peak(svc, four)
        res["statuses"] = res.pop("answer")
        out["four_at_once"] = res
        log(
            f"  four heatmaps at once: {res['statuses']}, {res['seconds']} s, "
            f"peak +{res['extra_peak_mib']} MiB"
        )
    return out


def _normal_run(
    svc: LiveService, shop: Shop, factory: PhotoFactory, first: int, n: int
) -> dict[str, Any]:
    import httpx

    returns = shop.returns(n)
    photos = [factory.make(first + i) for i in range(n)]
    latencies, errors = [], []
    with httpx.Client(base_url=svc.url, timeout=TIMEOUT_S) as client:
        for (rid, token), photo in zip(returns, photos, strict=True):
            start = time.perf_counter()
            r = client.post(
                f"/v1/returns/{rid}/photos",
                files=[("photos", ("p.jpg", photo, "image/jpeg"))],
                headers={"Authorization": f"Bearer {token}"},
            )
            ms = (time.perf_counter() - start) * 1000.0
            if r.status_code == 200:
                latencies.append(ms)
            else:
                errors.append(f"{r.status_code}: {r.text[:200]}")
    return {
        "requests": n,
        "ok": len(latencies),
        "request_ms": percentiles(latencies),
        "errors": errors[:5],
    }


class BombClients:
    """Two clients sending the six-PNG bomb upload back to back, each to a fresh return."""

    def __init__(self, svc: LiveService, shop: Shop, bombs: list[bytes], per_client: int) -> None:
        self.svc, self.bombs = svc, bombs
        self.returns = [shop.returns(per_client) for _ in range(2)]
        self.stop = threading.Event()
        self.sent: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(r,), daemon=True) for r in self.returns
        ]

    def _run(self, returns: list[tuple[str, str]]) -> None:
        import httpx

        with httpx.Client(base_url=self.svc.url, timeout=TIMEOUT_S) as client:
            for rid, token in returns:
                if self.stop.is_set():
                    return
                start = time.perf_counter()
                r = _post_photos(client, rid, token, self.bombs)
                with self.lock:
                    self.sent.append(
                        {"status": r.status_code, "s": round(time.perf_counter() - start, 2)}
                    )

    def __enter__(self) -> BombClients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()


def run_bombs(cfg: BenchConfig, model: Path, factories: dict[str, PhotoFactory]) -> dict[str, Any]:
    quick = cfg.quick
    side, over, legacy = (1200, 1600, 1600) if quick else (6000, 8000, 8000)
    n = 6 if quick else 40
    factory = factories["12mp"]
    svc = LiveService(model, cfg.tmp / "bombs").start()
    log(f"service up on {svc.url} (pid {svc.pid}); worker RSS {svc.memory()}")
    from benchmarks.harness.service_section import _reference_jpeg

    shop = Shop(svc, *_reference_jpeg())
    result: dict[str, Any] = {
        "target": TARGET,
        "bomb_png": f"{side}x{side} RGBA, x6",
        "machine": machine_info(),  # its own: `--only bombs` runs leave run.json's figures
    }
    try:
        _normal_run(svc, shop, factory, 700_000, 3)  # warm-up
        result["worker_memory_after_warmup"] = svc.memory()
        log("one pixel-bomb upload: worker peak memory")
        result["upload"] = _upload_memory(svc, shop, side, over)
        log("heatmaps of full-size stored copies: worker peak memory")
        result["heatmap"] = _heatmap_memory(svc, shop, factory, legacy)
        log(f"normal uploads, unloaded ({n} one-photo 12 MP uploads)")
        result["normal_unloaded"] = _normal_run(svc, shop, factory, 0, n)
        log("normal uploads while two clients send pixel bombs")
        bombs = _bombs(side)
        svc.reset_peak()
        with BombClients(svc, shop, bombs, per_client=n) as clients:
            time.sleep(1.0)  # both bomb uploads in flight before the first timed request
            loaded = _normal_run(svc, shop, factory, n, n)  # new scenes, n..2n-1
        loaded["bomb_uploads"] = {
            "done": len(clients.sent),
            "statuses": sorted({s["status"] for s in clients.sent}),
            "seconds": percentiles([s["s"] * 1000 for s in clients.sent]),
        }
        loaded["worker_peak_rss_mib"] = svc.memory().get("vmhwm_mib")
        result["normal_with_two_bomb_clients"] = loaded
        p50 = (result["normal_unloaded"]["request_ms"].get("p50"), loaded["request_ms"].get("p50"))
        result["p50_ratio_loaded_over_unloaded"] = ratio(p50[1], p50[0])
        log(
            f"  normal p50 {p50[0]} ms unloaded, {p50[1]} ms with two bomb clients "
            f"(x{result['p50_ratio_loaded_over_unloaded']}); bomb uploads done "
            f"{loaded['bomb_uploads']['done']}"
        )
    finally:
        shop.close()
        svc.stop()
    return result
