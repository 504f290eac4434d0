"""Drift: the statistics on known answers, the card field, and a shifted stream through
the service moving the drift report, ``/metrics`` and ``GET /v1/admin/drift``.

The reference is fitted on in-distribution photos (rendered item scenes, a quarter of
them red: the tiny model grades those damaged) through the serving path; an unshifted
stream (the same scenes, other seeds) flags nothing, a darker stream flags brightness.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.shop import ADMIN_KEY, Shop, jpeg, load_shop, make_settings, red, scene
from vision.card import ModelCard
from vision.drift import (
    Observation,
    chi2_sf,
    compare,
    fit_reference,
    observation_of,
    psi,
)
from vision.drift_fit import write_drift_reference
from vision.pipeline import Grader
from vision.registry import card_of

ADMIN = {"X-API-Key": ADMIN_KEY}
STREAM = 40  # photos per stream (the window)


# ----------------------------------------------------------------------- statistics
def test_chi2_survival_matches_known_quantiles() -> None:
    # The 95% quantiles of chi-square (tables): sf = 0.05 there.
    for stat, dof in ((3.841459, 1), (5.991465, 2), (18.307038, 10), (124.342113, 100)):
        assert chi2_sf(stat, dof) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(2.0, 2) == pytest.approx(np.exp(-1.0))  # dof 2: exp(-x/2)


def test_psi_is_zero_for_equal_histograms_and_grows_with_shift() -> None:
    assert psi([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0)
    assert psi([30, 20, 10], [10, 20, 30]) > psi([15, 20, 25], [10, 20, 30]) > 0


def _obs(rng: np.random.Generator, n: int, brightness: float) -> list[Observation]:
    out = []
    for _ in range(n):
        p = rng.dirichlet([8, 2, 1])
        out.append(
            Observation(
                grade_probs=p.tolist(),
                damage_probs=[float(rng.uniform(0, 0.4))],
                unfamiliarity=float(rng.normal(1.0, 0.2)),
                familiar=True,
                brightness=float(rng.normal(brightness, 10)),
                sharpness=float(rng.normal(0.4, 0.03)),
                long_side=1200.0,
            )
        )
    return out


def test_compare_flags_only_the_shifted_signal() -> None:
    rng = np.random.default_rng(0)
    grades, damage = ("A", "B", "C"), ("scratch",)
    ref = fit_reference(_obs(rng, 2000, 180.0), grades, damage, labels=[0] * 2000)
    assert ref["accuracy"] is not None and json.loads(json.dumps(ref)) == ref
    same = compare(ref, _obs(rng, 500, 180.0), grades, damage)
    assert same.drifted == [] and same.photos == 500
    dark = compare(ref, _obs(rng, 500, 120.0), grades, damage)
    assert dark.drifted == ["brightness"]
    by = {s.signal: s for s in dark.signals}
    assert by["brightness"].p_value is not None and by["brightness"].p_value < 1e-6
    assert by["grade"].count == 500 and not by["grade"].drifted
    few = compare(ref, _obs(rng, 5, 120.0), grades, damage)
    assert few.drifted == [] and all(s.statistic is None for s in few.signals)
    assert "too few values" in "\n".join(few.lines())


def test_card_without_drift_reference_loads_and_round_trips(tiny_model: Path) -> None:
    card = card_of(tiny_model)
    assert card.drift_reference is None and "drift_reference" not in card.to_dict()
    assert ModelCard.from_dict(card.to_dict()) == card
    with_ref = ModelCard.from_dict({**card.to_dict(), "drift_reference": {"version": 1}})
    assert ModelCard.from_json(with_ref.to_json()).drift_reference == {"version": 1}


# ----------------------------------------------------------------------- service
def _photo(seed: int, dark: bool = False) -> np.ndarray:
    rgb = scene(seed, ("box", "mug")[seed % 2])
    if seed % 4 == 3:
        rgb = red(rgb)
    return (rgb.astype(np.float32) * 0.3).astype(np.uint8) if dark else rgb


@pytest.fixture(scope="module")
def drift_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The tiny model with a drift reference fitted on 60 in-distribution photos."""
    grader = Grader.load(tiny_model)
    card = grader.card
    observations = []
    for seed in range(100, 160):
        g = grader.grade([jpeg(_photo(seed))]).photos[0]
        observations.append(
            observation_of(
                [{"name": c.name, "value": c.value} for c in g.quality.checks],
                max(g.photo.original_width, g.photo.original_height),
                g.scores.grade_probs.tolist(),
                g.scores.damage_probs.tolist(),
                g.scores.unfamiliarity,
                g.scores.familiar,
            )
        )
    ref = fit_reference(observations, card.grade_labels, card.damage_labels, source="test")
    out = tmp_path_factory.mktemp("drift") / "tiny-drift.onnx"
    return write_drift_reference(tiny_model, ref, out)


@pytest.fixture
def drift_shop(tmp_path: Path, drift_model: Path) -> Iterator[Shop]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'drift.db'}", tmp_path, drift_model, drift_window=STREAM
    )
    app = create_app(settings)
    app.state.metrics.drift.ttl_s = 0.0  # every scrape reads the window afresh
    with TestClient(app) as client:
        yield load_shop(client, settings)


def _feed(shop: Shop, seeds: range, *, dark: bool, tag: str) -> None:
    """The stream as dock inspections of 5 photos each (unmatched: no return label)."""
    seeds_list = list(seeds)
    for i in range(0, len(seeds_list), 5):
        files = [
            ("photos", (f"{s}.jpg", jpeg(_photo(s, dark)), "image/jpeg"))
            for s in seeds_list[i : i + 5]
        ]
        r = shop.client.post(
            "/v1/dock/inspections",
            files=files,
            data={"station_id": "dock-1"},
            headers={**shop.headers("dock"), "Idempotency-Key": f"{tag}-{i}"},
        )
        assert r.status_code == 201, r.text


def _drift_gauges(shop: Shop) -> dict[str, float]:
    text = shop.client.get("/metrics").text
    return {
        m[1]: float(m[2])
        for m in re.finditer(r'^returnlens_drift_detected\{signal="([^"]+)"\} (\S+)$', text, re.M)
    }


def test_shifted_stream_moves_drift_report_and_metrics(drift_shop: Shop) -> None:
    shop = drift_shop
    assert _drift_gauges(shop)  # no photos yet: every signal reported, none drifted
    assert not any(_drift_gauges(shop).values())

    _feed(shop, range(200, 200 + STREAM), dark=False, tag="same")
    r = shop.client.get("/v1/admin/drift", headers=ADMIN)
    assert r.status_code == 200, r.text
    same = r.json()
    assert same["photos"] == STREAM and same["drifted"] == [], same
    assert not any(_drift_gauges(shop).values())

    _feed(shop, range(300, 300 + STREAM), dark=True, tag="dark")
    dark = shop.client.get("/v1/admin/drift", headers=ADMIN).json()
    assert "brightness" in dark["drifted"], dark
    gauges = _drift_gauges(shop)
    assert gauges["brightness"] == 1.0
    assert set(gauges) == {s["signal"] for s in dark["signals"]}
    metrics = shop.client.get("/metrics").text
    assert re.search(r'^returnlens_estimated_accuracy\{source="window"\} ', metrics, re.M)
    assert re.search(r"^returnlens_drift_window_photos 40\.0$", metrics, re.M)
    # admin only
    assert shop.client.get("/v1/admin/drift", headers=shop.headers("reviewer")).status_code == 403


# ----------------------------------------------------------------------- workers
def test_every_worker_scrape_shows_the_same_totals(tmp_path: Path, drift_model: Path) -> None:
    """``returnlens serve --workers 2``: each request and each scrape on a new connection
    (so the kernel spreads them over both workers); every scrape shows all the requests,
    and the same drift gauges (read from the shared database)."""
    import httpx

    from tests.live import serve_demo

    requests = 40
    healthz = re.compile(
        r'^returnlens_http_request_duration_seconds_count\{method="GET",route="/healthz",'
        r'status="200"\} (\S+)$',
        re.M,
    )
    tmp = tmp_path / "tmp"  # where `serve` makes its multiprocess folder
    tmp.mkdir()
    env = {"RETURNLENS_WORKERS": "2", "RETURNLENS_ORT_THREADS": "1", "TMPDIR": str(tmp)}
    with serve_demo(
        tmp_path, drift_model, admin_key=ADMIN_KEY, timeout_s=180, extra_env=env
    ) as base:
        for _ in range(requests):
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        scrapes = [httpx.get(f"{base}/metrics", timeout=10).text for _ in range(10)]
        drift = httpx.get(f"{base}/v1/admin/drift", headers=ADMIN, timeout=10)
        # one histogram file per worker that timed a request: both workers answered
        assert len(list(tmp.glob("returnlens-metrics-*/histogram_*.db"))) == 2
    assert not list(tmp.glob("returnlens-metrics-*"))  # removed when the server stops
    counts = [healthz.search(text) for text in scrapes]
    assert all(counts), scrapes[0]
    assert {float(m[1]) for m in counts if m} == {float(requests)}
    drift_lines = [
        sorted(line for line in text.splitlines() if line.startswith("returnlens_drift_"))
        for text in scrapes
    ]
    assert drift_lines[0] and all(lines == drift_lines[0] for lines in drift_lines)
    assert all(re.search(r"^returnlens_ready 1\.0$", text, re.M) for text in scrapes)
    assert drift.status_code == 200 and drift.json()["photos"] == 0


# ----------------------------------------------------------------------- commands
def test_fit_drift_reference_and_drift_commands(
    tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from returnlens.cli import main
    from serving.storage.db import open_database
    from vision.manifest import ManifestHeader, ManifestRecord, write_manifest

    card = card_of(tiny_model)
    records = []
    for seed in range(14):  # 12 val photos, 2 train (a manifest needs both)
        image = tmp_path / f"{seed}.jpg"
        image.write_bytes(jpeg(_photo(seed)))
        grade = card.grade_labels[-1] if seed % 4 == 3 else card.grade_labels[0]
        records.append(
            ManifestRecord(
                id=f"r{seed}",
                image=image,
                grade=grade,
                damage=(),
                category="box",
                sku=f"sku-{seed}",
                split="val" if seed < 12 else "train",
            )
        )
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, ManifestHeader(card.grade_labels, card.damage_labels), records)
    out = tmp_path / "with-ref.onnx"
    argv = ["model", "fit-drift-reference", "--model", str(tiny_model)]
    assert main([*argv, "--data", str(manifest), "--out", str(out)]) == 0
    assert "drift reference on 12 val photo(s)" in capsys.readouterr().out
    ref = card_of(out).drift_reference
    assert ref is not None and ref["photos"] == 12 and ref["accuracy"] is not None
    assert {"grade", "abstain", "brightness", "sharpness", "long_side"} <= set(ref["signals"])

    url = f"sqlite:///{tmp_path / 'd.db'}"
    open_database(url).dispose()
    assert main(["drift", "--database-url", url, "--model", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["photos"] == 0 and report["drifted"] == []
    assert main(["drift", "--database-url", url, "--model", str(tiny_model)]) == 2
    assert "no drift reference" in capsys.readouterr().out
