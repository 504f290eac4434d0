"""Perceptual hash: re-uploads stay close, different photos stay far apart.

Run with ``pytest -s`` to see both distance distributions.
"""

from __future__ import annotations

import itertools
from collections import Counter

import cv2
import numpy as np
import pytest

from tests.photo_factory import encode
from vision import phash as phash_module
from vision.decode import decode_image
from vision.phash import area_average, hamming, phash, phash_from_hex, phash_hex

SAME_MAX = 8  # re-encoded + resized copies must stay within this many bits
DIFFERENT_MIN = 20  # unrelated photos must be at least this far apart

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "grass",
    "gravel",
    "brick",
    "retina",
    "colorwheel",
)
CROPPED = ("astronaut", "coffee", "chelsea", "rocket")


def _photos() -> dict[str, np.ndarray]:
    from skimage import data

    out: dict[str, np.ndarray] = {}
    for name in PHOTOS:
        img = getattr(data, name)()
        img = np.dstack([img] * 3) if img.ndim == 2 else img[..., :3]
        out[name] = np.ascontiguousarray(img)
    for name in CROPPED:  # crops are different framings, i.e. different photos
        img = out[name]
        h, w = img.shape[:2]
        out[f"{name}[top-left]"] = np.ascontiguousarray(img[: h // 2, : w // 2])
        out[f"{name}[centre]"] = np.ascontiguousarray(img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4])
    return out


def _reupload(rgb: np.ndarray) -> np.ndarray:
    """What a reused photo looks like: JPEG q60, resized to 50%, JPEG q60 again, decoded."""
    first = decode_image(encode(rgb, "JPEG", quality=60), target_long_side=None).rgb
    half = cv2.resize(
        first,
        (max(1, first.shape[1] // 2), max(1, first.shape[0] // 2)),
        interpolation=cv2.INTER_AREA,
    )
    return decode_image(encode(half, "JPEG", quality=60), target_long_side=None).rgb


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return _photos()


def _histogram(values: list[int]) -> str:
    counts = Counter(values)
    return "  ".join(f"{d}:{counts[d]}" for d in sorted(counts))


def test_distributions_separate(photos: dict[str, np.ndarray]) -> None:
    hashes = {name: phash(img) for name, img in photos.items()}
    same = {name: hamming(hashes[name], phash(_reupload(img))) for name, img in photos.items()}
    different = {
        (a, b): hamming(hashes[a], hashes[b]) for a, b in itertools.combinations(sorted(photos), 2)
    }
    closest = min(different, key=lambda k: different[k])
    print(f"\nphash over {len(photos)} photos ({len(PHOTOS)} originals + crops)")
    print(
        f"same photo (JPEG q60 + 50% resize), n={len(same)}: "
        f"{_histogram(list(same.values()))}  max={max(same.values())}"
    )
    print(
        f"different photos, n={len(different)} pairs: min={different[closest]} "
        f"({closest[0]} vs {closest[1]}), median={int(np.median(list(different.values())))}, "
        f"max={max(different.values())}"
    )
    assert len(PHOTOS) >= 10
    assert max(same.values()) <= SAME_MAX, same
    assert min(different.values()) >= DIFFERENT_MIN, (closest, different[closest])
    assert max(same.values()) < min(different.values())


def test_hash_is_64_bit_and_stable(photos: dict[str, np.ndarray]) -> None:
    img = photos["chelsea"]
    h = phash(img)
    assert 0 <= h < 1 << 64
    assert phash(img.copy()) == h
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert phash(grey) == h  # grey input hashes like its RGB source
    # Structure, not a constant: roughly half of the bits are set.
    assert 20 <= h.bit_count() <= 44


def test_hex_round_trip() -> None:
    for h in (0, 1, (1 << 64) - 1, 0x8000_0000_0000_0000, 0x0123_4567_89AB_CDEF):
        text = phash_hex(h)
        assert len(text) == 16
        assert phash_from_hex(text) == h
    assert phash_hex(0xABC) == "0000000000000abc"


@pytest.mark.parametrize(
    "bad", ["", "abc", "0x0123456789abcd", "g" * 16, " 123456789abcdef", "1_23456789abcdef"]
)
def test_hex_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        phash_from_hex(bad)


def test_hex_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        phash_hex(1 << 64)
    with pytest.raises(ValueError):
        phash_hex(-1)


def test_hamming() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0, (1 << 64) - 1) == 64
    assert hamming(0b1011, 0b0001) == 2


def test_rejects_empty_image() -> None:
    with pytest.raises(ValueError):
        phash(np.zeros((0, 0, 3), np.uint8))


@pytest.mark.parametrize(
    "shape", [(600, 800), (756, 1008), (288, 384), (97, 33), (32, 40), (20, 50)]
)
def test_area_average_is_opencvs_area_shrink(shape: tuple[int, int]) -> None:
    """The hash's 32 px grey copy is OpenCV's ``INTER_AREA`` of a float copy, to float32
    rounding, at integer and fractional scales (and OpenCV's own where it enlarges)."""
    rng = np.random.default_rng(sum(shape))
    # smooth structure plus noise: cells differ, as in a photo
    base = cv2.resize(rng.integers(0, 256, (8, 8), dtype=np.uint8), shape[::-1])
    grey = np.clip(base + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
    expected = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    got = area_average(grey, 32)
    assert got.shape == (32, 32) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3)


def test_hash_of_photos_matches_the_opencv_resize(
    photos: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashes are stored: the integral average must give every photo the hash the
    ``INTER_AREA`` resize gave it, so earlier rows keep matching their re-uploads."""
    hashes = {name: phash(img) for name, img in photos.items()}

    def opencv_average(grey: np.ndarray, n: int) -> np.ndarray:
        return cv2.resize(grey.astype(np.float32), (n, n), interpolation=cv2.INTER_AREA)

    monkeypatch.setattr(phash_module, "area_average", opencv_average)
    assert {name: phash(img) for name, img in photos.items()} == hashes
