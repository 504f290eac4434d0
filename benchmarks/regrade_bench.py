"""Batch regrading throughput: photos per second per core, process pool vs Ray Data.

``python -m benchmarks.regrade_bench [--decisions 120] [--photos 2] [--size 640]``

A temporary shop (SQLite, local photo store, the shipped model) gets ``--decisions``
returns through the real API, each with ``--photos`` synthetic photos
(``vision.synth.render_photo``). Then ``serving.services.regrade.regrade`` runs the
shipped model over that history (as a challenger would run) with each engine and
worker count; the stored predictions are removed between runs so each run grades
everything. Start-up (spawning the pool, starting Ray and its actors, loading the
model in each) is inside the timing: it is what an operator waits for. Writes
``benchmarks/results/regrade.{json,md}``.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import delete

from benchmarks.harness.common import machine_info, write_json
from serving.app import create_app
from serving.commands.regrade import open_context
from serving.services.regrade import regrade
from serving.settings import Settings
from serving.storage.db import Database
from serving.storage.tables import ShadowPrediction
from vision.heatmap import encode_jpeg
from vision.synth import catalog_skus, render_photo, sample_state

ADMIN = "bench-regrade-admin-key-0123456789"
OUT = Path(__file__).resolve().parent / "results"


def _settings(root: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{root / 'bench.db'}",
        data_dir=root,
        photo_dir=root / "photos",
        admin_key=SecretStr(ADMIN),
        rate_limit_per_ip=1_000_000,
        rate_limit_per_ip_burst=100_000,
        rate_limit_per_key=1_000_000,
        rate_limit_per_key_burst=100_000,
        outbox_dispatch=False,
    )


def seed_history(settings: Settings, decisions: int, photos: int, size: int) -> int:
    """``decisions`` returns with ``photos`` synthetic photos each, through the API."""
    rng = np.random.default_rng(20)
    skus = catalog_skus(20, 1)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(create_app(settings)) as c:
        catalog = [
            {"sku": s.sku, "category": s.category, "name": s.name, "price": s.price} for s in skus
        ]
        assert c.put("/v1/admin/catalog", json=catalog, headers=auth).status_code < 300
        orders = [
            {
                "order_id": f"B-{i}",
                "customer_id": f"C-{i}",
                "customer_email": f"c{i}@example.com",
                "sku": skus[i % len(skus)].sku,
                "price": skus[i % len(skus)].price,
                "delivered_at": "2026-11-30T00:00:00Z",
            }
            for i in range(decisions)
        ]
        assert c.put("/v1/admin/orders", json=orders, headers=auth).status_code < 300
        for i, order in enumerate(orders):
            sku = skus[i % len(skus)]
            r = c.post(
                "/v1/returns",
                json={
                    "order_id": order["order_id"],
                    "sku": sku.sku,
                    "email": order["customer_email"],
                    "reason": "changed_mind",
                },
            )
            body = r.json()
            files = []
            for k in range(photos):
                state = sample_state(sku, "B_like_new", rng)
                rgb, _ = render_photo(sku, state, rng, size)
                files.append(("photos", (f"p{k}.jpg", encode_jpeg(rgb, 90), "image/jpeg")))
            up = c.post(
                f"/v1/returns/{body['return_id']}/photos",
                files=files,
                headers={"Authorization": f"Bearer {body['token']}"},
            )
            assert up.status_code == 200, up.text
    return decisions


def run(decisions: int, photos: int, size: int, engines: list[tuple[str, int]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="regrade-bench-") as tmp:
        settings = _settings(Path(tmp))
        print(f"seeding {decisions} returns x {photos} photos ({size} px) ...", flush=True)
        seed_history(settings, decisions, photos, size)
        model = settings.resolve_model_path()
        opener = functools.partial(open_context, settings.model_dump(), str(model))
        db = Database(settings.database_url)
        rows = []
        try:
            from vision.model import OnnxModel

            version = OnnxModel(model, intra_op_threads=1).card.model_version
            for engine, workers in engines:
                with db.write() as s:
                    s.execute(delete(ShadowPrediction))
                print(f"{engine} x{workers} ...", flush=True)
                result = regrade(db, opener, model_version=version, engine=engine, workers=workers)
                rows.append(result.to_dict())
                print(
                    f"  {result.photos} photos in {result.seconds:.1f} s: "
                    f"{result.photos_per_second / workers:.1f} photos/s/core",
                    flush=True,
                )
        finally:
            db.dispose()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": version,
        "decisions": decisions,
        "photos_per_decision": photos,
        "size": size,
        "machine": machine_info(),
        "runs": rows,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Regrade throughput: {report['decisions']} decisions x {report['photos_per_decision']} "
        f"photos ({report['size']} px), model {report['model']}, "
        f"{report['machine'].get('cpu_count', '?')} CPUs (load average "
        f"{report['machine'].get('load_average')}), {report['date']}.",
        "",
        "| engine | workers | photos | seconds | photos/s | photos/s per core |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['engine']} | {r['workers']} | {r['photos']} | {r['seconds']:.1f} | "
            f"{r['photos_per_second']:.1f} | {r['photos_per_second_per_worker']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--decisions", type=int, default=120)
    p.add_argument("--photos", type=int, default=2)
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    engines = [("local", 1), ("local", 2)]
    try:
        import ray  # noqa: F401

        engines += [("ray", 1), ("ray", 2)]
    except ImportError:
        print("ray is not installed (the scale extra): the ray rows are skipped")
    report = run(args.decisions, args.photos, args.size, engines)
    write_json(args.out / "regrade.json", report)
    (args.out / "regrade.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
