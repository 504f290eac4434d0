"""Reviewed verdicts -> ``returnlens adapt`` -> promote or refuse -> rollback, on a live service.

``returnlens serve`` runs as an operator starts it (a subprocess on 127.0.0.1, SQLite, a
photo store and a model registry in temporary folders, no ``--model-path``: it serves
the registry's promoted version, else the shipped default model). Shoppers upload
photos rendered by the synthetic generator (high-value orders: every return goes to a
person) and reviewers correct the grades through the review API to this deployment's
own standard: each grade of the generator one step along A_new -> C_good -> E_damaged
-> A_new, so the shipped model is wrong on nearly every photo. Then, as an operator:

1. ``dataset export-reviewed --test-fraction 0.2`` writes the verdicts as a manifest;
2. ``adapt --register`` on it gives the challenger ``adapt-good``; ``model promote``
   compares it with the champion on the held-out reviewed labels (the same test
   fraction) and a held-out set of new photos labelled the same way, and promotes it;
   after a restart the service grades with ``adapt-good``;
3. ``adapt --register`` on deliberately wrong labels gives ``adapt-bad``; ``model
   promote`` refuses it (exit 2, both sides printed) and the champion stays;
4. ``model rollback`` returns to the shipped model; after a restart the service grades
   with it again, a probe photo exactly as before.

The service reads the promoted version when it starts (``Settings.resolve_model_path``;
``model promote`` says "serving loads ... on its next start or reload"), so each switch
is followed by a restart on the same database and photo store.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytest.importorskip("torch")

from returnlens.cli import main
from tests import live
from tests.browser import (
    ADMIN_KEY,
    LiveServer,
    Order,
    jpeg,
    open_return,
    seed_shop,
    upload,
)
from vision.manifest import (
    ManifestHeader,
    ManifestRecord,
    load_manifest,
    write_manifest,
)
from vision.registry import ModelRegistry, card_of
from vision.synth import (
    catalog_skus,
    render_photo,
    render_reference,
    sample_state,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "serving" / "models" / "returnlens-default.onnx"
# The deployment's standard: the generator's grade -> what its reviewers call it.
HONEST = {"A_new": "C_good", "C_good": "E_damaged", "E_damaged": "A_new"}
# Deliberately wrong labels: every honest label moved once more.
WRONG = {"C_good": "E_damaged", "E_damaged": "A_new", "A_new": "C_good"}
RETURNS_PER_GRADE = 12
HELD_OUT_PER_GRADE = 5
PRICE = 2000.0  # above every category's high-value line: every return goes to review
PHOTO_SIZE = 768  # the quality gate asks for at least this resolution
READY_TIMEOUT_S = 90.0


# --------------------------------------------------------------------------- photos
class Photos:
    """Generated photos of four catalog items; each knows the grade it was drawn with."""

    def __init__(self) -> None:
        skus = catalog_skus(7, 2)
        by_category = {s.category: s for s in skus}
        self.skus = [by_category[c] for c in ("mug", "shoe", "book", "box") if c in by_category]

    def catalog(self) -> list[dict[str, Any]]:
        return [
            {
                "sku": s.sku,
                "category": s.category,
                "name": s.name,
                "price": PRICE,
                "reference": jpeg(render_reference(s, 384)),
            }
            for s in self.skus
        ]

    def render(self, i: int, grade: str, seed: int) -> tuple[bytes, list[str]]:
        """A JPEG of item ``i % 4`` in ``grade``, and its damage labels."""
        sku = self.skus[i % len(self.skus)]
        rng = np.random.default_rng(seed)
        state = sample_state(sku, grade, rng)
        assert state.grade == grade
        rgb, _ = render_photo(sku, state, rng, PHOTO_SIZE, background="plain")
        return jpeg(np.asarray(rgb)), list(state.labels)


# --------------------------------------------------------------------------- service
def _env(root: Path) -> dict[str, str]:
    """The deployment's settings, shared by the service and every CLI command."""
    return live.clean_env(
        root,
        database_url=f"sqlite:///{root / 'returnlens.db'}",
        admin_key=ADMIN_KEY,
        ort_threads="1",
        rate_limit_per_ip="100000",
        rate_limit_per_ip_burst="10000",
        rate_limit_per_key="100000",
        rate_limit_per_key_burst="10000",
    )


@contextmanager
def _service(root: Path, env: dict[str, str]) -> Iterator[LiveServer]:
    """``returnlens serve`` without a model flag: the registry decides what it serves."""
    port = live.free_port()
    argv = [sys.executable, "-m", "returnlens.cli", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    with live.running(argv, base=base, env=env, cwd=root, log=log, timeout_s=READY_TIMEOUT_S) as (
        proc,
        url,
    ):
        yield LiveServer(
            base=url,
            root=root,
            database_url=env["RETURNLENS_DATABASE_URL"],
            photo_dir=Path(env["RETURNLENS_PHOTO_DIR"]),
            model=SHIPPED,
            proc=proc,
            keys={},
        )


def _served_version(server: LiveServer) -> str:
    r = httpx.get(f"{server.base}/readyz", timeout=10.0)
    assert r.status_code == 200, r.text
    return str(r.json()["model_version"])


def _review(
    server: LiveServer, reviewer: str, return_id: str, grade: str, damage: list[str]
) -> None:
    with server.http() as c:
        r = c.post(
            "/v1/review/verdicts",
            json={
                "subject_type": "return",
                "subject_id": return_id,
                "verdict": "correct",
                "grade": grade,
                "damage": damage,
                "note": "graded to our standard",
            },
            headers={"Authorization": f"Bearer {reviewer}"},
        )
        assert r.status_code == 201, r.text


def _return_for_review(
    server: LiveServer, order: Order, photos: Photos, i: int, grade: str
) -> tuple[str, list[str]]:
    """A return whose photo went to review (a retake, as a shopper would, when the gate
    asks for one). Returns the return id and the photo's damage labels."""
    rid, token = open_return(server, order, "changed_mind")
    for attempt in range(5):
        data, damage = photos.render(i, grade, seed=1000 * i + attempt)
        decision = upload(server, rid, token, data)["decision"]
        if decision["outcome"] != "retake":
            assert decision["outcome"] == "needs_review", decision
            return rid, damage
    raise AssertionError(f"no photo of return {i} passed the quality gate in 5 tries")


def _probe(server: LiveServer, order: Order, photo: bytes) -> dict[str, Any]:
    """The decision on the probe photo, uploaded to a new return."""
    rid, token = open_return(server, order, "changed_mind")
    decision: dict[str, Any] = upload(server, rid, token, photo)["decision"]
    return decision


# --------------------------------------------------------------------------- CLI
def _operator(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """This process runs the CLI with the service's RETURNLENS_* settings, nothing else."""
    for key in [k for k in os.environ if k.startswith("RETURNLENS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("RETURNLENS_"):
            monkeypatch.setenv(key, value)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _adapt(
    capsys: pytest.CaptureFixture[str], root: Path, data: Path, version: str
) -> dict[str, Any]:
    code, out, err = _cli(
        capsys,
        "adapt",
        "--data",
        str(data),
        "--out",
        str(root / "adapted" / f"{version}.onnx"),
        "--version",
        version,
        "--register",
        "--min-per-grade",
        "2",
        "--cache",
        str(root / "feature-cache"),
        "--no-drift-reference",
        "--json",
    )
    assert code == 0, err
    report: dict[str, Any] = json.loads(out)
    assert report["registered"] == version
    return report


def _held_out(root: Path, photos: Photos) -> Path:
    """New photos (never uploaded) labelled to the deployment's standard, all test."""
    records = []
    (root / "images").mkdir(parents=True)
    for k, (grade, label) in enumerate(HONEST.items()):
        for j in range(HELD_OUT_PER_GRADE):
            i = k * HELD_OUT_PER_GRADE + j
            data, damage = photos.render(i, grade, seed=500_000 + i)
            path = root / "images" / f"held-{i:02d}.jpg"
            path.write_bytes(data)
            records.append(
                ManifestRecord(
                    id=f"held-{i:02d}",
                    image=path,
                    grade=label,
                    damage=tuple(damage),
                    category=photos.skus[i % len(photos.skus)].category,
                    sku=photos.skus[i % len(photos.skus)].sku,
                    split="test",
                )
            )
    card = card_of(SHIPPED)
    path = root / "manifest.jsonl"
    write_manifest(path, ManifestHeader(card.grade_labels, card.damage_labels), records)
    return path


# --------------------------------------------------------------------------- the loop
def test_reviewed_verdicts_adapt_promote_refuse_rollback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "deployment"
    root.mkdir()
    env = _env(root)
    _operator(monkeypatch, env)
    photos = Photos()
    shipped = card_of(SHIPPED).model_version
    registry = ModelRegistry(root / "models")
    grades = list(HONEST)
    n = RETURNS_PER_GRADE * len(grades)
    orders = [
        Order(f"ADAPT-{i}", f"shopper{i}@example.com", photos.skus[i % 4].sku) for i in range(n)
    ]
    probes = [Order(f"PROBE-{i}", f"probe{i}@example.com", photos.skus[0].sku) for i in range(3)]
    probe_photo, _ = photos.render(0, "A_new", seed=424242)

    # ---- the shipped model serves; shoppers upload, reviewers correct.
    with _service(root, env) as server:
        assert _served_version(server) == shipped
        seed_shop(server, photos.catalog(), orders + probes)
        reviewer = server.keys["reviewer"]
        before = _probe(server, probes[0], probe_photo)
        assert before["model_version"] == shipped
        for i, order in enumerate(orders):
            grade = grades[i % len(grades)]
            rid, damage = _return_for_review(server, order, photos, i, grade)
            _review(server, reviewer, rid, HONEST[grade], damage)

    # ---- 1. export the verdicts as labels (test split as `model promote` holds it out).
    reviewed = root / "reviewed"
    code, out, err = _cli(
        capsys, "dataset", "export-reviewed", "--out", str(reviewed), "--test-fraction", "0.2"
    )
    assert code == 0, err
    manifest = load_manifest(reviewed / "manifest.jsonl")
    assert len(manifest.records) == n
    assert {r.grade for r in manifest.records} == set(HONEST.values())
    assert all(r.meta["verdict"] == "correct" for r in manifest.records)
    held_out = _held_out(root / "held-out", photos)

    # ---- 2. the challenger adapted on the honest verdicts is better: promoted.
    good = _adapt(capsys, root, reviewed / "manifest.jsonl", "adapt-good")
    assert good["adapt"]["base_model_version"] == shipped
    assert good["photos"]["train"] == len(manifest.split("train"))
    promote = ("model", "promote", "adapt-good", "--data", str(held_out))
    code, out, err = _cli(capsys, *promote, "--reason", "reviewers' standard", "--by", "ops")
    assert code == 0, f"{out}\n{err}"
    assert f"promoted adapt-good over {shipped}" in out
    rec = registry.promotion_log()[-1]
    cmp = rec["comparison"]
    assert rec["version"] == "adapt-good" and rec["previous"] == shipped
    assert cmp["worse"] == []
    assert cmp["challenger"]["accuracy"] > cmp["champion"]["accuracy"] + 0.3
    sources = {h["source"]: h["photos"] for h in cmp["held_out"]}
    assert sources[str(held_out)] == HELD_OUT_PER_GRADE * len(grades)
    assert sources.get("the deployment's reviewed labels") == len(manifest.split("test"))

    # ---- after a restart the service grades with the challenger.
    with _service(root, env) as server:
        assert _served_version(server) == "adapt-good"
        after = _probe(server, probes[1], probe_photo)
        assert after["model_version"] == "adapt-good"
        p0, p1 = before["grade"]["probs"], after["grade"]["probs"]
        assert max(abs(p0[g] - p1[g]) for g in p0) > 0.1  # other head weights grade it

        # ---- 3. a challenger adapted on wrong labels is refused; the champion stays.
        wrong = root / "wrong" / "manifest.jsonl"
        relabelled = [replace(r, grade=WRONG[str(r.grade)]) for r in manifest.records]
        write_manifest(wrong, manifest.header, relabelled)
        bad = _adapt(capsys, root, wrong, "adapt-bad")
        assert bad["adapt"]["base_model_version"] == "adapt-good"  # the promoted version
        code, out, err = _cli(capsys, *promote[:2], "adapt-bad", *promote[3:], "--reason", "x")
        assert code == 2, f"{out}\n{err}"
        assert "champion adapt-good" in out and "challenger adapt-bad" in out
        (accuracy,) = [line for line in out.splitlines() if line.startswith("accuracy")]
        champion_acc, challenger_acc = map(float, re.findall(r"(\d+(?:\.\d+)?)%", accuracy))
        assert challenger_acc < champion_acc  # both sides printed, the loser's is lower
        assert "refused: challenger adapt-bad is worse than champion adapt-good on accuracy" in err
        assert registry.promoted().version == "adapt-good"  # type: ignore[union-attr]
        assert _served_version(server) == "adapt-good"

    # ---- 4. rollback: the shipped model again, after a restart.
    code, out, err = _cli(capsys, "model", "rollback", "--reason", "back to stock", "--by", "ops")
    assert code == 0, err
    assert f"rolled back from adapt-good to {shipped}" in out
    assert registry.promoted().version == shipped  # type: ignore[union-attr]
    with _service(root, env) as server:
        assert _served_version(server) == shipped
        again = _probe(server, probes[2], probe_photo)
        assert again["model_version"] == shipped
        p2 = again["grade"]["probs"]
        assert max(abs(p0[g] - p2[g]) for g in p0) < 1e-4  # the same model, the same grade
