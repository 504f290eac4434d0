"""Training: heads, losses, augmentations, sampler, checkpoints, resume, determinism,
config round-trip, bad input and the ``returnlens train`` command, on a tiny dataset."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from returnlens.cli import main
from tests.train_data import DAMAGE, GRADES, make_tiny_dataset, tiny_config
from training.augment import Augmenter
from training.config import TrainConfig, TrainingError
from training.data import PhotoDataset, SkuBatchSampler, encode_records, grade_class_weights
from training.losses import LossWeights, grader_loss, ordinal_grade_loss, sord_targets, supcon_loss
from training.model import (
    CheckpointMeta,
    GraderNet,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from training.train import train
from vision.errors import ConfigError, DataError, ModelError
from vision.manifest import load_manifest
from vision.preprocess import PreprocessSpec


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> object:
    """The CI CPU is shared: one intra-op thread is faster than two fighting threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- heads
def test_heads_shapes_ranges_and_cam_consistency() -> None:
    torch.manual_seed(0)
    model = GraderNet("efficientnet_lite0", 5, 3, embedding_dim=16).eval()
    image = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        out = model(image)
        same = model(image.float())  # float 0..255 input is accepted too
    assert out.grade_logits.shape == (2, 5) and out.damage_logits.shape == (2, 3)
    assert out.embedding.shape == (2, 16) and out.damage_cam.shape == (2, 3, 2, 2)
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(2), atol=1e-5)
    assert float(out.damage_cam.min()) >= 0 and float(out.damage_cam.max()) <= 1
    # the logit is the log-sum-exp pool of the very maps the CAM shows
    scores = torch.logit(out.damage_cam.double())
    pooled = (torch.logsumexp(5 * scores, dim=(2, 3)) - np.log(4)) / 5
    assert torch.allclose(pooled.float(), out.damage_logits, atol=1e-3)
    assert torch.allclose(same.grade_logits, out.grade_logits)


@pytest.mark.parametrize(
    ("backbone", "num_damage"), [("efficientnet_lite0", 7), ("mobilenet_v3_small", 0)]
)
def test_gradernet_exports_to_onnx_with_dynamic_batch(backbone: str, num_damage: int) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = GraderNet(backbone, 5, num_damage, embedding_dim=16, pretrained=None).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(2, 64, 64, 3, dtype=torch.uint8),),
            buf,  # type: ignore[arg-type]
            input_names=["image"],
            opset_version=17,
            dynamo=False,
            output_names=["grade", "damage", "embedding", "cam"],
            dynamic_axes={"image": {0: "batch"}},
        )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    got = session.run(None, {"image": image})
    with torch.no_grad():
        want = model(torch.from_numpy(image))
    for g, w in zip(got, want, strict=True):
        assert g.shape == tuple(w.shape) and g.shape[0] == 3
        assert np.abs(g - w.numpy()).max(initial=0.0) < 1e-4


# --------------------------------------------------------------------------- losses
def test_sord_targets_peak_at_the_true_grade() -> None:
    q = sord_targets(torch.tensor([0, 2, 4]), 5, alpha=2.0)
    assert torch.allclose(q.sum(1), torch.ones(3))
    assert q.argmax(1).tolist() == [0, 2, 4]
    assert float(q[1, 1]) == pytest.approx(float(q[1, 3]))  # symmetric around the label


def test_ordinal_loss_punishes_far_errors_more() -> None:
    y = torch.tensor([1])
    near = torch.tensor([[0.0, 0.0, 6.0, 0.0, 0.0]])  # confident in grade 2 (one off)
    far = torch.tensor([[0.0, 0.0, 0.0, 0.0, 6.0]])  # confident in grade 4 (three off)
    ce_near, mae_near = ordinal_grade_loss(near, y)
    ce_far, mae_far = ordinal_grade_loss(far, y)
    assert float(ce_far) > float(ce_near) and float(mae_far) > 2 * float(mae_near)
    ce, mae = ordinal_grade_loss(far, torch.tensor([-1]))  # unlabelled: no loss
    assert float(ce) == 0.0 and float(mae) == 0.0


def test_supcon_prefers_same_sku_together() -> None:
    skus = torch.tensor([0, 0, 1, 1])
    good = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=1
    )
    bad = good[[0, 2, 1, 3]]
    assert float(supcon_loss(good, skus)) < float(supcon_loss(bad, skus))
    assert float(supcon_loss(good, torch.tensor([0, 1, 2, 3]))) == 0.0  # no positives


def test_class_weights_upweight_rare_grades() -> None:
    w = grade_class_weights(np.array([0, 0, 0, 0, 0, 0, 1, 2, -1]), 3)
    assert float(w[1]) > float(w[0]) and float(w[2]) > float(w[0])


# --------------------------------------------------------------------------- data
def test_augmenter_is_deterministic_and_off_at_zero() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    assert Augmenter(0.0)(rgb, np.random.default_rng(1)) is rgb
    a = Augmenter(1.0)(rgb, np.random.default_rng([3, 1, 7]))
    b = Augmenter(1.0)(rgb, np.random.default_rng([3, 1, 7]))
    c = Augmenter(1.0)(rgb, np.random.default_rng([3, 2, 7]))
    assert a.shape == rgb.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, rgb)


def test_sku_batches_group_photos_and_shard_disjointly() -> None:
    skus = np.repeat(np.arange(10), 6)
    grades = np.arange(60) % 5
    samplers = [SkuBatchSampler(skus, grades, 8, 4, seed=5, rank=r, world_size=2) for r in range(2)]
    batches = [list(s) for s in samplers]
    assert len(batches[0]) == len(batches[1]) == len(samplers[0]) == 3
    flat = [[i for b in bs for _, i in b] for bs in batches]
    assert not set(flat[0]) & set(flat[1])
    for batch in batches[0]:
        counts = np.bincount(skus[[i for _, i in batch]])
        assert counts.max() >= 2  # positives for the contrastive loss
    samplers[0].set_epoch(1)
    assert list(samplers[0]) != batches[0] and next(iter(samplers[0]))[0][0] == 1
    balanced = SkuBatchSampler(skus, np.where(np.arange(60) < 54, 0, 1), 8, 4, seed=5, balance=True)
    drawn = [i for b in balanced for _, i in b]
    assert np.mean(np.arange(60)[drawn] >= 54) > 0.25  # rare grade drawn far above 10%


def test_eval_transform_is_decode_plus_preprocess(tiny: Path) -> None:
    from vision.decode import decode_image
    from vision.preprocess import preprocess

    manifest = load_manifest(tiny)
    recs = manifest.split("val")
    enc = encode_records(recs, GRADES, DAMAGE, {})
    spec = PreprocessSpec(48, "letterbox")
    item = PhotoDataset(enc, spec, None, seed=0)[0]
    want = preprocess(decode_image(recs[0].image.read_bytes()).rgb, spec)
    assert np.array_equal(item["image"].numpy(), want)
    assert int(item["grade"]) == GRADES.index(str(recs[0].grade))


# --------------------------------------------------------------------------- training
def test_overfits_a_fixed_batch(tiny: Path) -> None:
    manifest = load_manifest(tiny)
    enc = encode_records(manifest.split("train")[:8], GRADES, DAMAGE, {})
    ds = PhotoDataset(enc, PreprocessSpec(64), None, seed=0)
    batch = {
        k: torch.stack([ds[i][k] for i in range(8)]) for k in ("image", "grade", "damage", "sku")
    }
    torch.manual_seed(0)
    model = GraderNet("efficientnet_lite0", 5, 2, embedding_dim=16).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(12):
        parts = grader_loss(
            model(batch["image"]),
            batch["grade"],
            batch["damage"],
            batch["sku"],
            weights=LossWeights(),
        )
        opt.zero_grad()
        parts.total.backward()
        opt.step()
        losses.append(float(parts.total.detach()))
    print("fixed-batch loss:", [round(x, 3) for x in losses])
    assert losses[-1] < 0.5 * losses[0]


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = GraderNet("mobilenet_v3_small", 5, 2, embedding_dim=16, pretrained=None)
    model.train()
    with torch.no_grad():  # move BN statistics away from their defaults
        model(torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8))
    model.eval()
    meta = CheckpointMeta(
        "mobilenet_v3_small",
        tuple(GRADES),
        tuple(DAMAGE),
        16,
        PreprocessSpec(64, "center_crop"),
        {"seed": 3},
        4,
        0.75,
        {"records": 40},
        {"val_grade_acc": 0.75},
    )
    save_checkpoint(tmp_path / "m.pt", model, meta)
    loaded, meta2 = load_checkpoint(tmp_path / "m.pt")
    assert meta2 == meta
    image = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        for a, b in zip(model(image), loaded(image), strict=True):
            assert torch.equal(a, b)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable ReturnLens checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="is not a ReturnLens checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_continues_exactly_and_seed_is_deterministic(tiny: Path, tmp_path: Path) -> None:
    full = train(tiny_config(tiny, tmp_path / "full"), progress=False)
    assert full.global_step == 8 and full.epochs_completed == 2  # 32 train photos / 8
    again = train(tiny_config(tiny, tmp_path / "again", max_steps=4), progress=False)
    first = _jsonl(tmp_path / "full" / "metrics.jsonl")
    assert (
        _jsonl(tmp_path / "again" / "metrics.jsonl")[0]["train_loss"] == first[0]["train_loss"]
    )  # same seed, same losses
    assert again.global_step == 4 and again.epochs_completed == 1
    resumed = train(tiny_config(tiny, tmp_path / "again"), resume=True, progress=False)
    rows = _jsonl(tmp_path / "again" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [0, 1] and [r["step"] for r in rows] == [4, 8]
    assert resumed.global_step == 8
    # an interrupted-and-resumed run ends bit-identical to the uninterrupted one
    assert _state_equal(resumed.model.state_dict(), full.model.state_dict())
    assert rows[1]["train_loss"] == first[1]["train_loss"]
    other = train(tiny_config(tiny, tmp_path / "seed1", seed=1, max_steps=4), progress=False)
    assert not _state_equal(other.model.state_dict(), again.model.state_dict())
    # a finished run, resumed, does nothing more
    done = train(tiny_config(tiny, tmp_path / "full"), resume=True, progress=False)
    assert done.global_step == 8
    # resuming with another label set is refused with one sentence
    relabelled = make_tiny_dataset(tmp_path / "relabelled", grade_labels=[*GRADES[:4], "E_broken"])
    with pytest.raises(DataError, match=r"cannot resume from .*grade labels") as err:
        train(tiny_config(relabelled, tmp_path / "full"), resume=True, progress=False)
    assert err.value.code == "label_mismatch"


def test_init_from_starts_a_fresh_run_from_another_runs_weights(tiny: Path, tmp_path: Path) -> None:
    base = train(tiny_config(tiny, tmp_path / "base", max_steps=3), progress=False)
    start = read_checkpoint(base.best_checkpoint)["model"]
    # nothing may move (frozen backbone, a vanishing head rate): the run ends where it began
    still = dict(backbone_trainable=0.0, lr_backbone=0.0, lr_head=1e-12, max_steps=1)
    tuned = train(
        tiny_config(tiny, tmp_path / "tuned", init_from=str(base.best_checkpoint), **still),
        progress=False,
    )
    after = tuned.model.state_dict()
    assert all(torch.allclose(start[k].float(), after[k].float(), atol=1e-6) for k in start)
    assert [r["step"] for r in _jsonl(tmp_path / "tuned" / "metrics.jsonl")] == [1]  # afresh
    fresh = train(tiny_config(tiny, tmp_path / "fresh", **still), progress=False)
    assert not _state_equal(fresh.model.state_dict(), after)  # without it: a new network
    relabelled = make_tiny_dataset(tmp_path / "relabelled", grade_labels=[*GRADES[:4], "E_broken"])
    with pytest.raises(DataError, match=r"cannot start from .*grade labels") as err:
        train(
            tiny_config(relabelled, tmp_path / "x", init_from=str(base.best_checkpoint)),
            progress=False,
        )
    assert err.value.code == "label_mismatch"
    with pytest.raises(ConfigError, match=r"init_from checkpoint .* does not exist"):
        train(tiny_config(tiny, tmp_path / "y", init_from=str(tmp_path / "no.pt")), progress=False)


def test_non_finite_loss_stops_with_a_sentence(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.train as train_mod

    real = train_mod.grader_loss

    def poisoned(*args: object, **kwargs: object) -> object:
        parts = real(*args, **kwargs)  # type: ignore[arg-type]
        return parts._replace(total=parts.total * float("nan"))

    monkeypatch.setattr(train_mod, "grader_loss", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite .* at step 1 \(epoch 1\)"):
        train(tiny_config(tiny, tmp_path / "nan"), progress=False)


def test_unreadable_image_names_the_record(tiny: Path, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    manifest = make_tiny_dataset(root)
    (root / "images" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(DataError, match="photo-000"):
        train(tiny_config(manifest, tmp_path / "out"), progress=False)


# --------------------------------------------------------------------------- config
def test_config_yaml_round_trip_and_unknown_keys(tmp_path: Path) -> None:
    config = TrainConfig(
        manifest=("a.jsonl", "b.jsonl"),
        epochs=3,
        pretrained="none",
        max_steps=10,
        extra={"note": "x"},
    )
    config.save(tmp_path / "c.yaml")
    assert TrainConfig.load(tmp_path / "c.yaml") == config
    assert config.pretrained is None
    with pytest.raises(ConfigError, match=r"unknown training config key.*lr_hed"):
        TrainConfig.from_yaml("lr_hed: 0.1\n")
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1, got 'ten'"):
        TrainConfig.from_yaml("epochs: ten\n")
    with pytest.raises(ConfigError, match="aug_strength"):
        TrainConfig(aug_strength=2.0)
    with pytest.raises(ConfigError, match="cannot read training config"):
        TrainConfig.load(tmp_path / "missing.yaml")


def test_bn_momentum_is_applied_and_validated(tiny: Path, tmp_path: Path) -> None:
    result = train(tiny_config(tiny, tmp_path / "bn", bn_momentum=0.3, max_steps=1), progress=False)
    norms = [
        m for m in result.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    assert norms and all(m.momentum == 0.3 for m in norms)
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="bn_momentum"):
            TrainConfig(bn_momentum=bad)


def test_weight_average_math_and_best_checkpoint(tiny: Path, tmp_path: Path) -> None:
    from training.engine import WeightAverage

    a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    avg = WeightAverage(a, decay=0.9)
    expected = 0.9 * a.weight.detach() + 0.1 * b.weight.detach()
    avg.update(b, step=10_000)  # far past the ramp: decay is the configured 0.9
    assert torch.allclose(avg.model.state_dict()["weight"], expected)
    result = train(tiny_config(tiny, tmp_path / "ema", ema_decay=0.9, max_steps=4), progress=False)
    best = read_checkpoint(result.best_checkpoint)["model"]
    last = read_checkpoint(result.last_checkpoint)
    assert _state_equal(best, result.model.state_dict())  # best.pt holds the average
    assert not _state_equal(best, last["model"])  # ... not the live weights
    assert _state_equal(last["extra"]["ema"], best)  # and last.pt carries it for --resume


def test_partial_fine_tuning_keeps_the_early_backbone(tiny: Path, tmp_path: Path) -> None:
    from torchvision import models

    net = models.mobilenet_v3_small(weights=None)  # a local "pretrained" weights file
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    before = net.features.state_dict()
    result = train(
        tiny_config(
            tiny,
            tmp_path / "partial",
            backbone_trainable=0.5,
            max_steps=3,
            pretrained=str(tmp_path / "weights.pt"),
        ),
        progress=False,
    )
    after = result.model.features.state_dict()
    names = [n for n, _ in result.model.features.named_parameters()]
    early, late = names[: len(names) // 3], names[-len(names) // 3 :]
    assert all(torch.equal(before[n], after[n]) for n in early)
    assert not all(torch.equal(before[n], after[n]) for n in late)
    stats = [n for n in before if n.endswith("running_mean")]
    assert torch.equal(before[stats[0]], after[stats[0]])  # frozen BN keeps ImageNet stats
    assert not torch.equal(before[stats[-1]], after[stats[-1]])
    with pytest.raises(ConfigError, match="backbone_trainable"):
        TrainConfig(backbone_trainable=1.5)


@pytest.mark.parametrize("recipe", ["default.yaml", "real-photos.yaml"])
def test_shipped_recipes_load(recipe: str) -> None:
    config = TrainConfig.load(Path(__file__).parents[1] / "training/configs" / recipe)
    assert config.backbone == "efficientnet_lite0" and config.pretrained == "imagenet"


def test_the_dock_fine_tune_recipe_starts_from_the_default_recipes_run() -> None:
    configs = Path(__file__).parents[1] / "training/configs"
    first = TrainConfig.load(configs / "default.yaml")
    second = TrainConfig.load(configs / "dock-finetune.yaml")
    assert second.init_from == f"{first.out}/best.pt" and second.pretrained is None
    assert set(first.manifest) < set(second.manifest)  # replays what stage 1 learned
    assert (second.backbone, second.image_size) == (first.backbone, first.image_size)


def test_the_polish_recipe_continues_the_fine_tune_and_exports_flip_averaged() -> None:
    configs = Path(__file__).parents[1] / "training/configs"
    second = TrainConfig.load(configs / "dock-finetune.yaml")
    third = TrainConfig.load(configs / "dock-polish.yaml")
    assert third.init_from == f"{second.out}/best.pt" and third.pretrained is None
    assert third.manifest == second.manifest and third.out != second.out
    assert third.lr_backbone < second.lr_backbone and third.lr_head < second.lr_head
    assert third.tta_flip and not second.tta_flip  # only the shipped export averages
    assert (third.backbone, third.image_size) == (second.backbone, second.image_size)


def _resolve(*argv: str) -> TrainConfig:
    from returnlens.cli import build_parser
    from training.cli import resolve_config

    return resolve_config(build_parser().parse_args(["train", *argv]))


def test_every_config_key_is_a_flag_typed_by_the_schema() -> None:
    """The flags come from TrainConfig: a new field is a flag, coerced like YAML."""
    from returnlens.cli import build_parser

    train_cmd = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    flags = {o for a in train_cmd._actions for o in a.option_strings}
    keys = set(TrainConfig.field_names()) - {"extra"}
    assert {"--" + k.replace("_", "-") for k in keys} <= flags
    config = _resolve(
        "--epochs", "3", "--lr-head", "2e-3", "--pretrained", "none", "--tta-flip",
        "--resize-mode", "center_crop", "--set", "max_steps=5", "--set", "extra={note: x}",
    )  # fmt: skip
    assert (config.epochs, config.lr_head, config.max_steps) == (3, 0.002, 5)
    assert type(config.epochs) is int and type(config.lr_head) is float
    assert config.pretrained is None and config.tta_flip and config.extra == {"note": "x"}
    assert config.resize_mode == "center_crop"
    assert _resolve("--epochs", "3", "--set", "epochs=4").epochs == 4  # --set wins


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "2.5"], "epochs must be an integer >= 1, got '2.5'"),
        (["--batch-size", "1"], "batch_size must be >= 2, got '1'"),  # as typed
        (["--lr-head", "fast"], "lr_head must be a number > 0, got 'fast'"),
        (["--set", "epochs=true"], "epochs must be an integer >= 1, got True"),
        (["--set", "ema_decay=1"], "ema_decay must be in (0, 1), got 1"),
        (["--set", "amp=fp8"], "amp must be one of auto, bf16, fp16, off, got 'fp8'"),
        (["--set", "max_minutes=.inf"], "max_minutes must be a number > 0 (or null)"),
        (["--photos-per-sku", "9", "--batch-size", "8"], "photos_per_sku must be 1..batch_size"),
    ],
)
def test_bad_flag_or_set_value_is_one_sentence_naming_the_key(
    argv: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _resolve(*argv)
    text = info.value.message
    assert text.startswith(f"invalid training config: {message}"), text
    assert "\n" not in text and "pydantic" not in text


def test_saved_config_round_trips_through_resume(tmp_path: Path) -> None:
    """OUT/config.yaml is the resolved schema: --resume reads back the same recipe."""
    config = _resolve(
        "--out", str(tmp_path), "--manifest", "a.jsonl", "--manifest", "b.jsonl",
        "--max-minutes", "2.5", "--set", "bn_momentum=0.1", "--set", "extra={run: 1}",
    )  # fmt: skip
    config.save(tmp_path / "config.yaml")
    assert TrainConfig.load(tmp_path / "config.yaml") == config
    resumed = _resolve("--out", str(tmp_path), "--resume", "--epochs", "7")
    assert resumed == config.replace(epochs=7)
    assert resumed.manifest == ("a.jsonl", "b.jsonl") and resumed.max_minutes == 2.5


# --------------------------------------------------------------------------- CLI
def _cli_args(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--manifest",
        str(manifest),
        "--backbone",
        "mobilenet_v3_small",
        "--pretrained",
        "none",
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "2",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--embedding-dim",
        "16",
        "--freeze-epochs",
        "0",
        "--no-progress",
        *extra,
    ]


def test_cli_train_with_config_and_flags(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "recipe.yaml").write_text("epochs: 5\nlr_head: 0.002\nseed: 4\n")
    out = tmp_path / "run"
    code = main(
        [
            *_cli_args(tiny, out, "--no-export"),
            "--config",
            str(tmp_path / "recipe.yaml"),
            "--seed",
            "9",
            "--set",
            "ema_decay=0.95",
            "--set",
            "backbone_trainable=0.5",
        ]
    )
    assert code == 0, capsys.readouterr().err
    saved = TrainConfig.load(out / "config.yaml")
    assert (saved.epochs, saved.lr_head, saved.seed) == (1, 0.002, 9)  # flags win
    assert (saved.ema_decay, saved.backbone_trainable) == (0.95, 0.5)
    assert saved.manifest == (str(tiny),)
    assert {"best.pt", "last.pt", "metrics.jsonl", "config.yaml"} <= {p.name for p in out.iterdir()}
    assert "trained 1 epoch(s), 2 steps" in capsys.readouterr().out
    # running into the same folder again without --resume is refused
    assert main(_cli_args(tiny, out, "--no-export")) == 2
    assert "already holds a training run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--backbone", "vgg16"], "unknown backbone 'vgg16'"),
        (["--aug-strength", "3"], "aug_strength must be 0..1"),
        (["--resume"], "nothing to resume"),
        (["--set", "ema_decay"], "--set takes KEY=VALUE"),
        (["--set", "lr_hed=0.1"], "unknown training config key(s): lr_hed"),
        (["--set", "ema_decay=2"], "ema_decay must be in (0, 1)"),
    ],
)
def test_cli_bad_input_is_one_sentence(
    tiny: Path, tmp_path: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _cli_args(tiny, tmp_path / "bad", "--no-export")
    assert main([*args, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_missing_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = make_tiny_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "images" / "005.png").unlink()
    assert main(_cli_args(manifest, tmp_path / "run", "--no-export")) == 2
    err = capsys.readouterr().err
    assert "005.png" in err and "Traceback" not in err


def test_cli_train_then_export(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`returnlens train` without --no-export leaves a servable, calibrated model."""
    from vision.model import OnnxModel

    out = tmp_path / "run"
    code = main([*_cli_args(tiny, out), "--model-version", "tiny-v1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"exported {out / 'model.onnx'}" in captured.out
    model = OnnxModel(out / "model.onnx", intra_op_threads=1)  # the serving contract check
    card = model.card
    assert card.model_version == "tiny-v1" and card.backbone == "mobilenet_v3_small"
    assert card.grade_labels == tuple(GRADES) and card.damage_labels == tuple(DAMAGE)
    assert card.preprocess.input_size == 64 and card.temperature > 0
    assert card.recipe.get("image_size") == 64  # the resolved recipe travels with it
    photos = model.predict(np.zeros((2, 64, 64, 3), np.uint8))
    assert photos.grade_probs.shape == (2, len(GRADES))
    assert np.allclose(photos.grade_probs.sum(axis=1), 1.0, atol=1e-5)
