"""``returnlens adapt``: the shipped model's heads refitted on labelled photos.

The base model is the shipped default model (``serving/models/returnlens-default.onnx``)
and the photos are rendered by the synthetic generator (``vision.synth``), whose world
the shipped model grades well. The labels are the generator's grades moved one step
along the grade list (A -> B, ..., E -> A): a deployment whose reviewers grade to another
standard. The shipped model gets nearly all of them wrong; the information is in its
backbone features, so refitting the heads must recover it. Accuracy is measured here
with ``vision.model.OnnxModel`` on the written files, never read from the report.

Everything runs for real: ONNX Runtime, JPEG photos on disk, the feature cache on disk.
The only patch is the parity tolerance (``training.adapt.PARITY_TOLERANCE``), set to 0
to make the last check before the rename fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

pytest.importorskip("torch")

from training import adapt as adapt_module
from training.adapt import AdaptOptions, AdaptReport, adapt_model
from training.adapt_data import check_labels
from training.evaluate import predict_records
from training.export import ExportError
from vision.errors import DataError
from vision.manifest import (
    Manifest,
    ManifestHeader,
    ManifestRecord,
    load_manifest,
    write_manifest,
)
from vision.model import INPUT_NAME, OnnxModel
from vision.pipeline import decode_for_grading
from vision.preprocess import preprocess_batch
from vision.registry import card_of
from vision.synth import SynthConfig, generate_dataset
from vision.unfamiliarity_graph import find_pooled, with_extra_output

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "serving" / "models" / "returnlens-default.onnx"
MIN_DAMAGE = 5  # positives and negatives a damage label needs to be refitted


# --------------------------------------------------------------------------- helpers
def _shift(grade: str | None, grades: Sequence[str], step: int = 1) -> str | None:
    return None if grade is None else grades[(grades.index(grade) + step) % len(grades)]


def _relabelled(source: Manifest, path: Path, **header: Any) -> Manifest:
    """``source`` with every grade moved one step (cyclically), written to ``path``."""
    grades = source.header.grade_labels
    records = [replace(r, grade=_shift(r.grade, grades)) for r in source.records]
    write_manifest(path, replace(source.header, **header), records)
    return load_manifest(path)


def _subset(source: Manifest, path: Path, per_grade: dict[str, int], **header: Any) -> Manifest:
    """A small manifest: ``per_grade[split]`` photos of each grade from each split."""
    seen: Counter[tuple[str, str | None]] = Counter()
    keep: list[ManifestRecord] = []
    for r in source.records:
        if seen[(r.split, r.grade)] < per_grade.get(r.split, 0):
            seen[(r.split, r.grade)] += 1
            keep.append(r)
    head = replace(source.header, **header)
    if not head.damage_labels:
        keep = [replace(r, damage=(), mask=None) for r in keep]
    write_manifest(path, head, keep)
    return load_manifest(path)


def _accuracy(model: Path, records: Sequence[ManifestRecord]) -> float:
    out = predict_records(OnnxModel(model, intra_op_threads=1), list(records), progress=False)
    grades = list(card_of(model).grade_labels)
    truth = np.array([grades.index(str(r.grade)) for r in records])
    return float((out.grade_probs.argmax(axis=1) == truth).mean())


def _initializers(path: Path) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in onnx.load(str(path)).graph.initializer}


def _head_names(path: Path) -> dict[str, str]:
    """The grade head (the Gemm on the pooled features that reaches ``grade_probs``) and
    the damage head (the Conv named so by the export), found without adapt's code."""
    model = onnx.load(str(path))
    pooled = find_pooled(model)
    gemms = [n for n in model.graph.node if n.op_type == "Gemm" and n.input[0] == pooled]
    grade = [n for n in gemms if "grade" in n.input[1]]
    damage = [n for n in model.graph.node if n.op_type == "Conv" and "damage" in n.input[1]]
    assert len(grade) == 1 and len(damage) == 1
    return {
        "grade_weight": grade[0].input[1],
        "grade_bias": grade[0].input[2],
        "damage_weight": damage[0].input[1],
        "damage_bias": damage[0].input[2],
    }


def _array(inits: dict[str, onnx.TensorProto], name: str) -> np.ndarray:
    return np.asarray(numpy_helper.to_array(inits[name]))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _probs_and_pooled(path: Path, records: Sequence[ManifestRecord]) -> tuple[np.ndarray, ...]:
    """The file's grade probabilities and its pooled features (views averaged), from one
    ONNX Runtime run on photos decoded and preprocessed as serving does."""
    model = onnx.load(str(path))
    pooled = find_pooled(model)
    session = ort.InferenceSession(
        with_extra_output(model, pooled).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    card = card_of(path)
    batch = preprocess_batch(
        [decode_for_grading(r.image.read_bytes(), card.preprocess.input_size).rgb for r in records],
        card.preprocess,
    )
    probs, feats = session.run(["grade_probs", pooled], {INPUT_NAME: batch})
    views = feats.shape[0] // len(records)
    return probs, feats.reshape(views, len(records), -1).mean(axis=0)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """160 photos of the shipped model's world; a quarter held out as the test split."""
    out = tmp_path_factory.mktemp("adapt-synth")
    config = SynthConfig(count=160, seed=11, image_size=192, split_fractions=(0.6, 0.15, 0.25))
    return load_manifest(generate_dataset(out, config, workers=1, progress=False))


@pytest.fixture(scope="module")
def shifted(synth: Manifest) -> Manifest:
    return _relabelled(synth, synth.path.parent / "shifted.jsonl")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def first(shifted: Manifest, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> AdaptReport:
    out = tmp_path_factory.mktemp("adapted") / "first.onnx"
    options = AdaptOptions(cache_dir=cache, model_version="adapt-test-1", progress=False)
    return adapt_model(SHIPPED, shifted, out, options)


# --------------------------------------------------------------------------- happy path
def test_the_adapted_model_learns_the_new_labels(shifted: Manifest, first: AdaptReport) -> None:
    test = shifted.split("test")
    assert len(test) >= 30
    base, adapted = _accuracy(SHIPPED, test), _accuracy(first.path, test)
    print(f"test split ({len(test)} photos): base {base:.1%}, adapted {adapted:.1%}")
    assert adapted > base + 0.5  # the shift is learnt, not nudged
    assert adapted >= 0.7
    card = card_of(first.path)
    assert card.model_version == "adapt-test-1"
    assert card.recipe["adapt"]["base_model_version"] == card_of(SHIPPED).model_version
    assert card.grade_labels == card_of(SHIPPED).grade_labels  # adapt keeps the label lists


def test_the_backbone_is_byte_identical(first: AdaptReport) -> None:
    base, adapted = _initializers(SHIPPED), _initializers(first.path)
    heads = _head_names(SHIPPED)
    allowed = {*heads.values(), "temperature"}
    assert set(base) == set(adapted)
    changed = {n for n in base if base[n].SerializeToString() != adapted[n].SerializeToString()}
    assert changed - allowed == {n for n in changed if n.startswith("unfamiliarity/")}
    assert {heads["grade_weight"], heads["grade_bias"]} <= changed  # the head was refitted
    for name in set(base) - changed:
        assert numpy_helper.to_array(base[name]).tobytes() == (
            numpy_helper.to_array(adapted[name]).tobytes()
        )
    # Same nodes in the same order: only weights moved.
    before, after = onnx.load(str(SHIPPED)).graph, onnx.load(str(first.path)).graph
    if not any(n.startswith("unfamiliarity/") for n in changed):
        assert [n.SerializeToString() for n in before.node] == [
            n.SerializeToString() for n in after.node
        ]


def test_the_file_grades_with_its_own_head_weights(shifted: Manifest, first: AdaptReport) -> None:
    """softmax((pooled @ W.T + b) / T) from the file's initializers = its grade_probs."""
    inits, heads = _initializers(first.path), _head_names(first.path)
    weight = _array(inits, heads["grade_weight"]).astype(np.float64)
    bias = _array(inits, heads["grade_bias"]).astype(np.float64)
    temperature = float(_array(inits, "temperature"))
    assert temperature == pytest.approx(card_of(first.path).temperature, rel=1e-6)
    photos = [*shifted.split("test")[:6], *shifted.split("train")[:6]]
    probs, pooled = _probs_and_pooled(first.path, photos)
    expected = _softmax((pooled.astype(np.float64) @ weight.T + bias) / temperature)
    np.testing.assert_allclose(probs, expected, atol=1e-4, rtol=0)
    # ... and these are not the base model's weights.
    base_probs, _ = _probs_and_pooled(SHIPPED, photos)
    assert np.abs(base_probs - probs).max() > 0.1


def test_a_second_run_reads_every_feature_from_the_cache(
    shifted: Manifest, cache: Path, first: AdaptReport, tmp_path: Path
) -> None:
    read = len(shifted.split("train")) + len(shifted.split("val"))  # what adapt reads
    assert first.cache_hits == 0  # a fresh cache
    cached = sorted(p.name for p in cache.rglob("*.npz"))
    assert len(cached) == read
    options = AdaptOptions(
        cache_dir=cache, model_version="adapt-test-2", progress=False, drift_reference=False
    )
    second = adapt_model(SHIPPED, shifted, tmp_path / "second.onnx", options)
    assert second.cache_hits == read
    assert sorted(p.name for p in cache.rglob("*.npz")) == cached  # nothing new written
    a, b = _initializers(first.path), _initializers(second.path)
    for name in _head_names(first.path).values():
        np.testing.assert_array_equal(_array(a, name), _array(b, name))


def test_adapting_an_adapted_model_reuses_its_parents_features(
    shifted: Manifest, cache: Path, first: AdaptReport, tmp_path: Path
) -> None:
    """The cache is keyed by the backbone, not the file: the adapted model has the same
    backbone as the shipped one, so adapting it again decodes no photo."""
    read = len(shifted.split("train")) + len(shifted.split("val"))
    before = sorted(p.name for p in cache.rglob("*.npz"))
    options = AdaptOptions(
        cache_dir=cache, model_version="adapt-test-3", progress=False, drift_reference=False
    )
    again = adapt_model(first.path, shifted, tmp_path / "third.onnx", options)
    assert again.cache_hits == read
    assert sorted(p.name for p in cache.rglob("*.npz")) == before
    assert again.card.recipe["adapt"]["base_model_version"] == first.card.model_version


def test_damage_labels_with_enough_photos_are_refitted(
    shifted: Manifest, first: AdaptReport
) -> None:
    train = shifted.split("train")
    labels = card_of(SHIPPED).damage_labels
    pos = Counter(d for r in train for d in r.damage)
    enough = [d for d in labels if min(pos[d], len(train) - pos[d]) >= MIN_DAMAGE]
    assert enough and len(enough) < len(labels), pos  # the set has both kinds
    damage = first.adapt["damage_head"]
    assert damage["refitted"] == enough
    assert set(damage["kept"]) == set(labels) - set(enough)
    heads = _head_names(SHIPPED)
    base_w = _array(_initializers(SHIPPED), heads["damage_weight"])
    new_w = _array(_initializers(first.path), heads["damage_weight"])
    for i, label in enumerate(labels):
        moved = not np.array_equal(base_w[i], new_w[i])
        assert moved == (label in enough), label
    # The refitted rows fit the labels better than the base model's did (train photos).
    idx = [labels.index(d) for d in enough]
    truth = np.array([[d in r.damage for d in enough] for r in train], dtype=np.float64)

    def bce(model: Path) -> float:
        out = predict_records(OnnxModel(model, intra_op_threads=1), list(train), progress=False)
        p = np.clip(out.damage_probs[:, idx].astype(np.float64), 1e-6, 1 - 1e-6)
        return float(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean())

    assert bce(first.path) < bce(SHIPPED)


def test_without_damage_labels_the_damage_head_is_kept(
    shifted: Manifest, cache: Path, tmp_path: Path
) -> None:
    small = _subset(shifted, tmp_path / "no-damage.jsonl", {"train": 8, "val": 2}, damage_labels=())
    options = AdaptOptions(cache_dir=cache, progress=False, drift_reference=False)
    report = adapt_model(SHIPPED, small, tmp_path / "out.onnx", options)
    assert report.adapt["damage_head"]["refitted"] == []
    base, adapted = _initializers(SHIPPED), _initializers(report.path)
    heads = _head_names(SHIPPED)
    for name in (heads["damage_weight"], heads["damage_bias"]):
        assert base[name].SerializeToString() == adapted[name].SerializeToString()
    assert base[heads["grade_weight"]].SerializeToString() != (
        adapted[heads["grade_weight"]].SerializeToString()
    )


# --------------------------------------------------------------------------- refusals
def _refused(manifest: Manifest, out: Path, code: str, **options: Any) -> str:
    with pytest.raises(DataError) as caught:
        adapt_model(SHIPPED, manifest, out, AdaptOptions(progress=False, **options))
    assert caught.value.code == code, caught.value.message
    assert not out.exists()
    print(caught.value.message)
    return caught.value.message


def _in_memory(source: Manifest, records: Sequence[ManifestRecord], **header: Any) -> Manifest:
    return Manifest(source.path, replace(source.header, **header), tuple(records))


def test_a_grade_the_model_does_not_have_is_refused(shifted: Manifest, tmp_path: Path) -> None:
    grades = (*shifted.header.grade_labels, "F_scrap")
    records = [*shifted.records[:20], replace(shifted.records[20], grade="F_scrap")]
    message = _refused(
        _in_memory(shifted, records, grade_labels=grades), tmp_path / "x.onnx", "label_mismatch"
    )
    assert "'F_scrap'" in message and "does not have" in message


def test_a_damage_label_the_model_does_not_have_is_refused(
    shifted: Manifest, tmp_path: Path
) -> None:
    labels = (*shifted.header.damage_labels, "water_damage")
    message = _refused(
        _in_memory(shifted, shifted.records, damage_labels=labels),
        tmp_path / "x.onnx",
        "label_mismatch",
    )
    assert "water_damage" in message


def test_a_grade_with_three_training_photos_is_refused(shifted: Manifest, tmp_path: Path) -> None:
    thin = "C_good"
    train = [r for r in shifted.split("train") if r.grade == thin]
    assert len(train) > 3
    dropped = {r.id for r in train[3:]}
    records = [r for r in shifted.records if r.id not in dropped]
    message = _refused(_in_memory(shifted, records), tmp_path / "x.onnx", "too_few_labels")
    assert "'C_good'" in message and "only 3 " in message and "at least 5" in message
    # The same photos pass when the deployment asks for fewer.
    check_labels(_in_memory(shifted, records), card_of(SHIPPED), min_per_grade=3)


def test_one_grade_alone_is_refused(shifted: Manifest, tmp_path: Path) -> None:
    records = [r for r in shifted.records if r.grade == "D_fair"]
    message = _refused(_in_memory(shifted, records), tmp_path / "x.onnx", "too_few_labels")
    assert "at least 2 grades" in message and "has 1 (D_fair)" in message


def test_a_photo_gone_from_the_store_is_refused(synth: Manifest, tmp_path: Path) -> None:
    small = _subset(synth, tmp_path / "data" / "m.jsonl", {"train": 5, "val": 1, "test": 1})
    copies = []
    for r in small.records:  # a private copy of the photos: one of them is deleted
        dest = tmp_path / "data" / "images" / r.image.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(r.image.read_bytes())
        copies.append(replace(r, image=dest, mask=None))
    manifest = _in_memory(small, copies)
    gone = copies[7]
    gone.image.unlink()
    message = _refused(manifest, tmp_path / "x.onnx", "photos_missing")
    assert gone.id in message and "1 of" in message


def test_a_replay_manifest_with_foreign_grades_is_refused(
    shifted: Manifest, tmp_path: Path
) -> None:
    replay = _in_memory(shifted, shifted.records, grade_labels=("new", "used", "broken"))
    message = _refused(shifted, tmp_path / "x.onnx", "label_mismatch", replay=replay)
    assert "replay" in message and "'new'" in message and "'broken'" in message


def test_nothing_is_written_when_the_parity_check_fails(
    shifted: Manifest, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapt_module, "PARITY_TOLERANCE", 0.0)
    small = _subset(shifted, tmp_path / "m.jsonl", {"train": 6, "val": 2})
    out = tmp_path / "out" / "never.onnx"
    options = AdaptOptions(cache_dir=cache, progress=False, drift_reference=False)
    with pytest.raises(ExportError) as caught:
        adapt_model(SHIPPED, small, out, options)
    assert "parity check failed" in caught.value.message
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary file left behind either


# --------------------------------------------------------------------------- CLI
def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``returnlens adapt`` as a user runs it: a child process, no RETURNLENS_* settings."""
    from tests.live import clean_env

    return subprocess.run(
        [sys.executable, "-m", "returnlens.cli", "adapt", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(cwd),
    )


def test_cli_prints_a_json_report(
    shifted: Manifest, cache: Path, first: AdaptReport, tmp_path: Path
) -> None:
    """The photos' features are in the cache since the first run: all are hits."""
    small = _subset(shifted, tmp_path / "m.jsonl", {"train": 6, "val": 2, "test": 2})
    out = tmp_path / "cli.onnx"
    argv = ["--data", str(small.path), "--out", str(out), "--base", str(SHIPPED)]
    done = _cli(*argv, "--cache", str(cache), "--version", "cli-1", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["model_version"] == "cli-1" == card_of(out).model_version
    assert report["path"] == str(out) and report["registered"] is None
    assert report["photos"]["train"] == len(small.split("train"))
    assert report["cache_hits"] == len(small.split("train")) + len(small.split("val"))
    assert report["adapt"]["base_model_version"] == card_of(SHIPPED).model_version


def test_cli_refuses_a_bad_manifest_in_one_sentence(shifted: Manifest, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    grades = (*shifted.header.grade_labels, "F_scrap")
    write_manifest(bad, ManifestHeader(grades, shifted.header.damage_labels), shifted.records)
    out = tmp_path / "never.onnx"
    argv = ["--data", str(bad), "--out", str(out), "--base", str(SHIPPED), "--no-cache"]
    done = _cli(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "F_scrap" in lines[0] and "[label_mismatch]" in lines[0]
    assert not out.exists()
