"""Calibration, ONNX export, the parity check and int8 quantisation, end to end.

A tiny real GraderNet (mobilenet_v3_small, random init, 64 px, 16-d embedding) is
trained for a few steps on 48 generated PNG/JPEG photos (vision.synth) so its outputs
depend on the input, saved as a checkpoint, and exported with the real torch exporter, onnx.checker
and ONNX Runtime. One module-scoped export is shared by the read-only tests.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from returnlens.cli import main
from training import export as export_mod
from training.export import (
    MIN_PARITY_IMAGES,
    SYNTHETIC_NOTE,
    ExportError,
    ExportReport,
    ExportWrapper,
    calibrate_and_export,
    preprocessed,
    torch_outputs,
)
from training.model import CheckpointMeta, GraderNet, load_checkpoint, save_checkpoint
from vision.errors import DataError
from vision.manifest import Manifest, load_manifest, write_manifest
from vision.model import OnnxModel
from vision.preprocess import PreprocessSpec
from vision.registry import ModelRegistry
from vision.synth import SynthConfig, generate_dataset

SIZE = 64


def make_manifest(root: Path) -> Path:
    """48 photos from the synthetic generator (real PNG/JPEG files), 24/12/12 split."""
    return generate_dataset(
        root / "synth",
        SynthConfig(count=48, seed=0, image_size=96, split_fractions=(0.5, 0.25, 0.25)),
        workers=1,
        progress=False,
    )


def relabelled(manifest: Manifest, root: Path, grade_labels: tuple[str, ...]) -> Manifest:
    """The same photos under other grade names (a label set the checkpoint lacks)."""
    names = dict(zip(manifest.header.grade_labels, grade_labels, strict=True))
    records = [replace(r, grade=names[r.grade] if r.grade else None) for r in manifest.records]
    path = root / "relabelled.jsonl"
    write_manifest(path, replace(manifest.header, grade_labels=grade_labels), records)
    return load_manifest(path)


def make_checkpoint(root: Path, manifest: Manifest) -> Path:
    """A few optimiser steps so the heads respond to the photos, then a checkpoint."""
    torch.manual_seed(0)
    spec = PreprocessSpec(input_size=SIZE)
    grades, damage = manifest.header.grade_labels, manifest.header.damage_labels
    net = GraderNet("mobilenet_v3_small", len(grades), len(damage), 16, pretrained=None)
    train = manifest.split("train")
    x = torch.from_numpy(preprocessed(train, spec))
    y = torch.tensor([grades.index(str(r.grade)) for r in train])
    d = torch.tensor([[float(k in r.damage) for k in damage] for r in train])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(8):
        out = net(x)
        loss = F.cross_entropy(out.grade_logits, y)
        if d.numel():
            loss = loss + F.binary_cross_entropy_with_logits(out.damage_logits, d)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # A few steps leave BatchNorm's running statistics near their init values, which
    # collapses eval-mode activations; re-estimate them exactly from the training batch.
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        net(x)
    meta = CheckpointMeta(
        backbone="mobilenet_v3_small",
        grade_labels=grades,
        damage_labels=damage,
        embedding_dim=16,
        preprocess=spec,
        config={"epochs": 1, "lr": 3e-3},
        epoch=1,
    )
    path = root / "best.pt"
    save_checkpoint(path, net.eval(), meta)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("export")
    manifest = load_manifest(make_manifest(root))
    ckpt = make_checkpoint(root, manifest)
    report = calibrate_and_export(
        ckpt, manifest, root / "out" / "model.onnx", model_version="tiny-1", progress=False
    )
    return {"root": root, "manifest": manifest, "ckpt": ckpt, "report": report}


def test_export_follows_the_onnx_contract(exported: dict[str, Any]) -> None:
    report: ExportReport = exported["report"]
    assert report.path.is_file()
    onnx.checker.check_model(str(report.path), full_check=True)
    model = onnx.load(str(report.path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    assert inp.name == "image"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [SIZE, SIZE, 3]
    outs = {o.name: o.type.tensor_type for o in model.graph.output}
    assert set(outs) == {"grade_probs", "damage_probs", "embedding", "damage_cam"}
    assert all(t.elem_type == onnx.TensorProto.FLOAT for t in outs.values())
    assert all(t.shape.dim[0].dim_param for t in outs.values())
    runtime = OnnxModel(report.path)
    rng = np.random.default_rng(1)
    for n in (1, 3, 32):
        out = runtime.predict(rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8))
        assert out.grade_probs.shape == (n, 5) and out.damage_probs.shape == (n, 7)
        assert out.embedding.shape == (n, 16) and out.damage_cam.shape[:2] == (n, 7)
        np.testing.assert_allclose(out.grade_probs.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(out.embedding, axis=1), 1.0, atol=1e-5)
        assert out.damage_cam.min() >= 0.0 and out.damage_cam.max() <= 1.0


def test_card_round_trips_through_the_runtime(exported: dict[str, Any]) -> None:
    report: ExportReport = exported["report"]
    manifest: Manifest = exported["manifest"]
    card = OnnxModel(report.path).card
    assert card == report.card
    assert card.model_version == "tiny-1" and card.backbone == "mobilenet_v3_small"
    assert card.grade_labels == manifest.header.grade_labels
    assert card.damage_labels == manifest.header.damage_labels
    assert card.preprocess == PreprocessSpec(input_size=SIZE) and card.embedding_dim == 16
    assert 0.05 <= card.temperature <= 20 and card.temperature == report.temperature
    assert set(card.thresholds) == {
        "auto_approve_confidence",
        "wrong_item_similarity",
        "damage_present",
    }
    assert 0.0 < card.thresholds["auto_approve_confidence"] <= 1.0
    assert card.training_data == manifest.summary()
    assert card.metrics["split"] == "test" and card.metrics["count"] == 12
    assert {
        "accuracy",
        "mean_abs_grade_error",
        "ece",
        "damage_macro_auroc",
        "embedding_sku_auroc",
    } <= set(card.metrics)
    assert card.recipe["lr"] == 3e-3 and card.recipe["export"]["opset"] == 17
    assert card.recipe["export"]["parity"]["images"] == report.parity.images
    assert datetime.fromisoformat(card.created_at).tzinfo is not None
    assert card.notes == SYNTHETIC_NOTE  # the manifest's source is the synthetic generator
    # the drift reference: the val split through the final file (vision/drift_fit.py)
    assert card.drift_reference is not None
    assert card.drift_reference["photos"] == len(manifest.split("val"))


def test_small_val_split_keeps_t_1_and_the_card_says_why(exported: dict[str, Any]) -> None:
    """12 graded validation photos are below the calibration minimum: the export goes
    ahead unscaled, with the ECE, the sentence and the thresholds' targets in the card."""
    from training.calibrate import MIN_CALIBRATION_PHOTOS

    report: ExportReport = exported["report"]
    card = OnnxModel(report.path).card
    cal = card.metrics["calibration"]
    assert card.temperature == report.temperature == cal["temperature"] == 1.0
    assert cal["kept"] == "unscaled" and cal["val_photos"] == 12 < MIN_CALIBRATION_PHOTOS
    assert cal["fitted_temperature"] is None and 0.0 <= cal["ece_before"] <= 1.0
    assert cal["note"].startswith("Temperature scaling skipped: the validation split has 12")
    assert report.notes == [cal["note"]]
    target = card.metrics["thresholds"]["auto_approve_confidence"]
    assert target["target_precision"] == 0.98 and target["val_photos"] == 12


def test_export_keeps_the_fitted_temperature_when_it_helps(
    exported: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept choice is what the graph computes: a stubbed validation fit that keeps
    T = 2.5 must reach the card, the graph (parity-checked) and the log."""
    from training.calibrate import CalibrationChoice

    def kept(z: np.ndarray, y: np.ndarray) -> CalibrationChoice:
        return CalibrationChoice(2.5, 2.5, 0.2, 0.05, 0.04, "scaled", len(y), "kept T = 2.5.")

    monkeypatch.setattr(export_mod, "choose_temperature", kept)
    report = calibrate_and_export(
        exported["ckpt"], exported["manifest"], tmp_path / "t.onnx", progress=False
    )
    card = OnnxModel(report.path).card
    assert card.temperature == 2.5 and card.metrics["calibration"]["kept"] == "scaled"
    assert report.notes == ["kept T = 2.5."]


def test_parity_within_tolerance_on_32_photos(exported: dict[str, Any]) -> None:
    report: ExportReport = exported["report"]
    assert report.parity.images >= MIN_PARITY_IMAGES
    assert report.parity_max_diff <= 1e-4
    assert set(report.parity.max_abs_diff) == {
        "grade_probs",
        "damage_probs",
        "embedding",
        "damage_cam",
    }
    # Independently: rebuild torch from the checkpoint + card temperature and compare
    # with ONNX Runtime on the same decoded, preprocessed photos.
    net, meta = load_checkpoint(exported["ckpt"])
    wrapper = ExportWrapper(net, report.card.temperature)
    records = exported["manifest"].records[:MIN_PARITY_IMAGES]
    batch = preprocessed(records, meta.preprocess)
    ref = torch_outputs(wrapper, batch)
    got = OnnxModel(report.path).predict(batch)
    assert np.abs(got.grade_probs - ref[0]).max() <= 1e-4
    assert np.abs(got.damage_probs - ref[1]).max() <= 1e-4
    assert ref[0].std(axis=0).max() > 1e-3  # the outputs really depend on the photo


def test_metrics_in_card_match_a_separate_evaluation(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    from training.evaluate import evaluate_model

    report: ExportReport = exported["report"]
    m = evaluate_model(report.path, exported["manifest"], tmp_path, progress=False)
    assert m["grade"]["accuracy"] == report.card.metrics["accuracy"]
    assert m["calibration"]["ece_after"] == report.card.metrics["ece"]


def test_sabotaged_export_is_refused_and_nothing_written(
    exported: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph is exported from a wrapper with another temperature than the one the
    parity check runs in torch: the check must catch it and leave no file behind."""
    real_export = export_mod.export_graph

    def corrupted(wrapper: ExportWrapper, path: Path, input_size: int, **kw: Any) -> None:
        wrong = float(wrapper.get_buffer("temperature")) * 3.0
        real_export(ExportWrapper(wrapper.net, wrong), path, input_size, **kw)

    monkeypatch.setattr(export_mod, "export_graph", corrupted)
    out = tmp_path / "bad" / "model.onnx"
    with pytest.raises(ExportError, match="parity check failed") as err:
        calibrate_and_export(exported["ckpt"], exported["manifest"], out, progress=False)
    assert err.value.code == "parity_failed"
    assert err.value.details["max_abs_diff"]["grade_probs"] > 1e-4
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_checkpoint_and_manifest_labels_must_match(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    other = relabelled(exported["manifest"], tmp_path, ("a", "b", "c", "d", "e"))
    with pytest.raises(DataError, match="do not match the checkpoint's") as err:
        calibrate_and_export(exported["ckpt"], other, tmp_path / "m.onnx", progress=False)
    assert err.value.code == "label_mismatch"
    assert not (tmp_path / "m.onnx").exists()


def test_int8_quantisation_keeps_the_card(exported: dict[str, Any]) -> None:
    """Kept small: 16 calibration photos, 2 latency repeats."""
    from training.quantize import quantize_model

    report: ExportReport = exported["report"]
    q = quantize_model(
        report.path, exported["manifest"], calibration_images=16, progress=False, latency_repeats=2
    )
    assert q.path.name == "model.int8.onnx"
    int8 = OnnxModel(q.path)
    card, fp32 = int8.card, report.card
    assert card.model_version == "tiny-1-int8" and card.recipe["quantized"] is True
    assert (
        card.grade_labels,
        card.damage_labels,
        card.preprocess,
        card.temperature,
        card.thresholds,
    ) == (fp32.grade_labels, fp32.damage_labels, fp32.preprocess, fp32.temperature, fp32.thresholds)
    ops = {n.op_type for n in onnx.load(str(q.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert q.accuracy_change is not None and set(q.latency_ms) == {"fp32", "int8"}
    assert set(q.latency_ms["int8"]) == {"1", "8"} and q.speedup(1) > 0
    out = int8.predict(preprocessed(exported["manifest"].split("test"), card.preprocess))
    np.testing.assert_allclose(out.grade_probs.sum(axis=1), 1.0, atol=1e-5)


def test_cli_export_registers(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    code = main(
        [
            "export",
            "--checkpoint",
            str(exported["ckpt"]),
            "--data",
            str(exported["manifest"].path),
            "--out",
            str(tmp_path / "cli.onnx"),
            "--version",
            "cli-1",
            "--register",
            "--models-dir",
            str(models),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "parity on 32 photos" in out and "registered cli-1" in out
    assert ModelRegistry(models).get("cli-1").card.model_version == "cli-1"


def test_cli_export_bad_inputs(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "export",
            "--checkpoint",
            str(tmp_path / "none.pt"),
            "--data",
            str(exported["manifest"].path),
            "--out",
            str(tmp_path / "x.onnx"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    code = main(
        [
            "export",
            "--checkpoint",
            str(exported["ckpt"]),
            "--data",
            str(tmp_path / "none.jsonl"),
            "--out",
            str(tmp_path / "x.onnx"),
        ]
    )
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_label_set_without_damage_labels_exports_and_evaluates(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    """Severity-only datasets (car-damage) have no damage labels: D = 0 outputs are
    [N, 0]. Training, calibration, the parity check, the card and evaluation must all
    accept that (this crashed in the parity check's max over an empty array)."""
    from training.evaluate import evaluate_model

    base: Manifest = exported["manifest"]
    records = [replace(r, damage=()) for r in base.records]
    path = tmp_path / "no-damage.jsonl"
    write_manifest(path, replace(base.header, damage_labels=()), records)
    manifest = load_manifest(path)
    ckpt = make_checkpoint(tmp_path, manifest)
    report = calibrate_and_export(ckpt, manifest, tmp_path / "nd.onnx", progress=False)
    assert report.parity.max_abs_diff["damage_probs"] == 0.0
    assert report.parity.max_abs_diff["grade_probs"] <= 1e-4
    model = OnnxModel(report.path)
    assert model.card.damage_labels == ()
    out = model.predict(preprocessed(manifest.split("test"), model.card.preprocess))
    assert out.damage_probs.shape == (len(manifest.split("test")), 0)
    metrics = evaluate_model(report.path, manifest, tmp_path / "eval", progress=False)
    assert 0.0 <= metrics["grade"]["accuracy"] <= 1.0
    assert (tmp_path / "eval" / "report.md").exists()


def test_flip_averaged_export_is_mirror_invariant_and_parity_checked(
    exported: dict[str, Any], tmp_path: Path
) -> None:
    """``tta_flip``: the graph averages each photo with its mirror image; through ONNX
    Runtime a photo and its mirror then get the same scores, and the damage maps of the
    mirror are the mirrored maps."""
    manifest: Manifest = exported["manifest"]
    report = calibrate_and_export(
        exported["ckpt"], manifest, tmp_path / "tta.onnx", progress=False, tta_flip=True
    )
    assert report.card.recipe["tta_flip"] is True
    assert report.parity.prob_max_diff <= 1e-4
    model = OnnxModel(report.path)
    batch = preprocessed(manifest.split("test")[:4], model.card.preprocess)
    out, mirrored = model.predict(batch), model.predict(np.ascontiguousarray(batch[:, :, ::-1]))
    np.testing.assert_allclose(out.grade_probs, mirrored.grade_probs, atol=1e-5)
    np.testing.assert_allclose(out.embedding, mirrored.embedding, atol=1e-5)
    np.testing.assert_allclose(out.damage_cam, mirrored.damage_cam[..., ::-1], atol=1e-5)
    plain = OnnxModel(exported["report"].path)  # the same checkpoint without the average
    assert not np.allclose(
        plain.predict(batch).grade_probs,
        plain.predict(np.ascontiguousarray(batch[:, :, ::-1])).grade_probs,
        atol=1e-5,
    )  # so the invariance above is the graph's doing
