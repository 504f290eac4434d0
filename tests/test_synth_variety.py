"""The generator's opt-in "wide" variety (vision/synth/variety.py) and the promise that
"classic" output is unchanged. Small sizes and counts: the file runs in seconds."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from returnlens.cli import main
from vision.synth import SynthConfig, catalog_skus, generate_dataset, render_item, sample_state
from vision.synth.codes import qr_patch
from vision.synth.dataset import render_record
from vision.synth.dockmarks import STICKER_MAKERS, parcel_label, rotate, stick
from vision.synth.packing import tape
from vision.synth.variety import is_dock

# Golden hashes of classic records (manifest record JSON + JPEG bytes + mask PNG bytes),
# recorded from the generator before the wide variety was added. They pin the data the
# shipped model was trained and its thresholds fitted on: a classic render that changes
# silently would make every "same seed, same data" retraining and benchmark a lie. If an
# OpenCV/libjpeg upgrade changes the encoder, re-record them only after checking that
# the pixels before encoding did not change.
GOLDEN_128 = {
    0: "bc42a9e057b0479bca2fab3fff53be3d584707cefbfccbf24d940ba332b6ca1b",
    1: "8d39302a3eb29aa464a412ee72aef3a6dee228adf32c010e23627b4241aac908",
    2: "eb267915513008ce0e67e00726349cb99ae4c13c2fd0e13fc92887c4a0d8743e",
    3: "15b9b57ff75b9f3f1cbff19c153a67aa83ac72980ed2bada05cae29b53e08ba4",  # cut_off
    4: "efa7f4151aec1f88deac61cf60b33d94d25a0e28e53a770c5bd93eb14aae8222",
    7: "d5d0621255f5f290d1854ab2c0c321b22b8c97fe1376e8b109a57369a7bf80c9",  # small
    9: "7e4eebe14b4703658d74c57c81801828169e005651c98326558a2453ff09a237",
    11: "ed3367081963bc0da63f59fe984b35f4fc2101876d817d53a1d380d2384c64de",  # small
}
GOLDEN_256 = {
    0: "a30eba04f0080b7654108ebf592a86f38dc7845589ef1fe97eb175d8835380bc",
    5: "e528723aa36b7ce30b39ce11cb028b5cb5266eafc7b26f928c0faf8ec9029511",
}
CLASSIC_128 = SynthConfig(
    count=12, seed=7, image_size=128, bad_photo_fraction=0.25, photos_per_item=2
)
WIDE_128 = SynthConfig(
    count=40, seed=7, image_size=128, bad_photo_fraction=0.25, photos_per_item=2, variety="wide"
)
LABEL_KEYS = ("grade", "damage", "category", "sku", "split")


def _digest(config: SynthConfig, index: int) -> str:
    record, jpg, png = render_record(config, index)
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode() + jpg + png).hexdigest()


def test_classic_renders_are_byte_identical_to_the_shipped_training_data() -> None:
    for index, want in GOLDEN_128.items():
        assert _digest(CLASSIC_128, index) == want, index
    plain = SynthConfig(count=10, seed=0, image_size=256)
    for index, want in GOLDEN_256.items():
        assert _digest(plain, index) == want, index


def test_classic_config_file_has_no_new_keys(tmp_path: Path) -> None:
    cfg = SynthConfig(count=2, seed=1, image_size=64)
    manifest = generate_dataset(tmp_path / "c", cfg, workers=1, progress=False)
    written = json.loads((manifest.parent / "synth_config.json").read_text())
    assert "variety" not in written and "dock_share" not in written


def test_wide_is_deterministic_and_differs_from_classic() -> None:
    for index in (0, 1, 5):
        assert _digest(WIDE_128, index) == _digest(WIDE_128, index)
        assert render_record(WIDE_128, index)[1] != render_record(CLASSIC_128, index)[1]


def test_wide_keeps_every_label_of_classic() -> None:
    classic = SynthConfig(**{**WIDE_128.__dict__, "variety": "classic"})
    for index in range(WIDE_128.count):
        wide_rec, _, _ = render_record(WIDE_128, index)
        classic_rec, _, _ = render_record(classic, index)
        for key in LABEL_KEYS:
            assert wide_rec[key] == classic_rec[key], (index, key)
        # The same item, under ids of its own: both sets merge into one manifest.
        assert wide_rec["item_id"] == f"wide-{classic_rec['item_id']}"
        assert wide_rec["id"] != classic_rec["id"]
        assert wide_rec["meta"]["severity"] == classic_rec["meta"]["severity"]
        assert wide_rec["meta"]["bad"] == classic_rec["meta"]["bad"]
        assert "variety" not in classic_rec["meta"] and wide_rec["meta"]["variety"] == "wide"


def test_wide_adds_dock_scenes_labels_tape_stickers_and_hands() -> None:
    metas = [render_record(WIDE_128, i)[0]["meta"] for i in range(WIDE_128.count)]
    dock = [m for m in metas if m["scene"] == "dock"]
    assert abs(len(dock) / len(metas) - WIDE_128.dock_share) <= 0.05
    assert all(any(d.startswith("parcel_label") for d in m["decor"]) for m in dock)
    decor = {d for m in metas for d in m["decor"]}
    assert any(d.startswith("tape_") for d in decor)
    assert decor & set(STICKER_MAKERS)
    assert decor & {"hand", "glove"}
    assert decor & {"bubble_wrap", "paper_fill"}
    assert {m["background"] for m in dock} <= {"dock_table", "conveyor", "concrete"}


def test_qr_codes_on_dock_labels_decode() -> None:
    detector = cv2.QRCodeDetector()
    text, _, _ = detector.detectAndDecode(
        cv2.cvtColor(qr_patch("RMA-123456", 120), cv2.COLOR_GRAY2BGR)
    )
    assert text == "RMA-123456"
    config = SynthConfig(count=40, seed=3, image_size=768, variety="wide")
    decoded = []
    for index in (i for i in range(config.count) if is_dock(i, config.dock_share)):
        _, jpg, _ = render_record(config, index)
        img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        found, _, _ = detector.detectAndDecode(img)
        if found:
            decoded.append(found)
    assert decoded, "no QR code decoded in any dock scene"
    assert all(re.fullmatch(r"(RMA|RET|TRK|SHP)-\d{6}", t) for t in decoded)


def _damaged_item(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sku = catalog_skus(0, 1)[seed % 6]
    state = sample_state(sku, "E_damaged", rng)
    item = render_item(sku, state, rng, 160)
    return item.rgba.copy(), item.mask.copy()


@pytest.mark.parametrize("seed", range(6))
def test_stickers_and_opaque_tape_never_cover_damage(seed: int) -> None:
    rgba, mask = _damaged_item(seed)
    damaged = mask > 0
    assert damaged.any()
    before = rgba.copy()
    rng = np.random.default_rng(seed)
    placed = 0
    for k in range(6):
        maker = list(STICKER_MAKERS.values())[k % 3] if k else parcel_label
        placed += stick(rgba, mask, rotate(maker(rng, 40), rng.uniform(-30, 30)), rng)
    changed = (rgba != before).any(axis=2)
    assert placed and changed.any()
    assert not (changed & damaged).any()
    before = rgba.copy()
    kind = tape(rgba, mask, rng)
    if kind != "clear":
        assert not ((rgba != before).any(axis=2) & damaged).any()


def test_cli_variety_flag(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--count", "4", "--size", "64", "--variety", "wide"]
    assert main([*args, "--dock-share", "0.5", "--quiet", "--workers", "1"]) == 0
    lines = (out / "manifest.jsonl").read_text().splitlines()[1:]
    scenes = {json.loads(x)["meta"]["scene"] for x in lines}
    assert scenes == {"dock", "shopper"}
    assert json.loads((out / "synth_config.json").read_text())["variety"] == "wide"
