"""vision.decode on real encoder output: formats, orientation, modes, limits, bad bytes."""

from __future__ import annotations

import gc
import hashlib
import io
import os
import subprocess
import sys
import textwrap
import tracemalloc
import types
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from tests.photo_factory import (
    asymmetric_pattern,
    encode,
    item_scene,
    png_bomb,
    png_chunk,
    webp_bomb,
)
from vision.decode import DecodeLimits, decode_image, sniff_format
from vision.errors import DecodeError, ReturnLensError
from vision.types import DecodedPhoto

ROOT = Path(__file__).resolve().parents[1]


def _code(data: bytes, **kwargs: object) -> str:
    with pytest.raises(DecodeError) as info:
        decode_image(data, **kwargs)  # type: ignore[arg-type]
    assert info.value.message  # a human sentence, always
    return info.value.code


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return item_scene(7, kind="box", background="wood", size=(640, 480)).rgb


# ------------------------------------------------------------------ formats and values
@pytest.mark.parametrize("fmt,name", [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp")])
def test_decodes_each_format(scene: np.ndarray, fmt: str, name: str) -> None:
    data = encode(scene, fmt, quality=92)
    photo = decode_image(data)
    assert isinstance(photo, DecodedPhoto)
    assert photo.format == name == sniff_format(data)
    assert photo.rgb.dtype == np.uint8 and photo.rgb.shape == (480, 640, 3)
    assert photo.rgb.flags["C_CONTIGUOUS"]
    assert (photo.original_width, photo.original_height) == (640, 480)
    assert photo.sha256 == hashlib.sha256(data).hexdigest()
    assert photo.byte_size == len(data)
    tolerance = 0 if fmt == "PNG" else 12
    assert np.abs(photo.rgb.astype(int) - scene).mean() <= tolerance


def test_a_digest_the_caller_has_is_not_computed_again(scene: np.ndarray) -> None:
    """The service hashes each upload before decoding it and passes the digest on."""
    data = encode(scene, "JPEG", quality=90)
    given = hashlib.sha256(data).hexdigest()
    assert decode_image(data, sha256=given).sha256 == given
    marker = "0" * 64  # taken as given: proof that nothing was hashed
    assert decode_image(data, sha256=marker).sha256 == marker


def test_type_comes_from_bytes_not_names(tmp_path: Path, scene: np.ndarray) -> None:
    # A PNG saved as "photo.jpg" is still a PNG; only bytes are ever looked at.
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(scene, "PNG"))
    assert decode_image(path.read_bytes()).format == "png"


def test_accepts_bytearray_and_memoryview(scene: np.ndarray) -> None:
    data = encode(scene, "JPEG")
    assert decode_image(bytearray(data)).sha256 == decode_image(memoryview(data)).sha256


def _reachable(root: object) -> list[object]:
    """Every object reachable from ``root`` (array bases included), types and modules aside."""
    seen: set[int] = set()
    stack, found = [root], []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type | types.ModuleType):
            continue
        seen.add(id(obj))
        found.append(obj)
        stack.extend(gc.get_referents(obj))
        if isinstance(obj, np.ndarray) and obj.base is not None:
            stack.append(obj.base)
    return found


def test_decoded_photo_carries_pixels_only(scene: np.ndarray) -> None:
    """EXIF (with GPS), ICC and comments in the upload never reach the decoded value:
    nothing reachable from it is a Pillow image or holds a byte of that metadata."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS IFD
    buf = io.BytesIO()
    Image.fromarray(scene).save(
        buf, "JPEG", exif=exif.tobytes(), comment=b"secret", icc_profile=b"ICC-marker" * 16
    )
    upload = buf.getvalue()
    assert all(m in upload for m in (b"PhoneMaker", b"secret", b"ICC-marker"))
    photo = decode_image(upload)
    assert {f.name for f in fields(photo)} == {
        "rgb",
        "original_width",
        "original_height",
        "format",
        "sha256",
        "byte_size",
        "orientation",  # the EXIF orientation code applied (an int), for vision.jpegclean
    }
    assert type(photo.rgb) is np.ndarray and photo.rgb.shape == scene.shape
    reachable = _reachable(photo)
    assert any(obj is photo.rgb for obj in reachable)  # the walk does see the pixels
    for obj in reachable:
        assert not isinstance(obj, Image.Image | Image.Exif), type(obj)
        if isinstance(obj, dict):
            assert not {"exif", "icc_profile", "comment"} & set(obj), sorted(obj)
        raw = obj.encode() if isinstance(obj, str) else obj
        if isinstance(raw, bytes | bytearray | memoryview | np.ndarray):
            data = bytes(raw) if not isinstance(raw, np.ndarray) else raw.tobytes()
            for marker in (b"PhoneMaker", b"secret", b"ICC-marker", b"Exif\x00\x00"):
                assert marker not in data, marker


# --------------------------------------------------------------------------- EXIF
def _stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that EXIF ``orientation`` displays ``upright``.

    Written from the EXIF definitions with numpy, independently of the decoder's table.
    """
    u = upright
    stored = {
        1: u,
        2: u[:, ::-1],  # mirrored horizontally
        3: u[::-1, ::-1],  # rotated 180
        4: u[::-1, :],  # mirrored vertically
        5: np.transpose(u, (1, 0, 2)),  # mirrored along the main diagonal
        6: np.rot90(u, 1),  # display needs 90 deg clockwise
        7: np.transpose(u[::-1, ::-1], (1, 0, 2)),  # mirrored along the anti-diagonal
        8: np.rot90(u, -1),  # display needs 90 deg counter-clockwise
    }[orientation]
    return np.ascontiguousarray(stored)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_comes_out_upright(orientation: int) -> None:
    upright = asymmetric_pattern(160, 96)
    data = encode(
        _stored_for(upright, orientation), "JPEG", quality=95, exif_orientation=orientation
    )
    photo = decode_image(data)
    assert photo.rgb.shape == upright.shape
    assert (photo.original_width, photo.original_height) == (160, 96)
    assert np.abs(photo.rgb.astype(int) - upright).mean() < 6


def test_exif_orientation_in_png() -> None:
    upright = asymmetric_pattern(160, 96)
    photo = decode_image(encode(_stored_for(upright, 6), "PNG", exif_orientation=6))
    assert np.array_equal(photo.rgb, upright)


def test_exif_rotation_with_dct_downscale() -> None:
    """draft() works on the stored size; the output is still upright, sizes are upright."""
    upright = cv2.resize(asymmetric_pattern(160, 96), (2400, 1440), interpolation=cv2.INTER_NEAREST)
    data = encode(_stored_for(upright, 6), "JPEG", quality=90, exif_orientation=6)
    photo = decode_image(data, target_long_side=512)
    assert (photo.original_width, photo.original_height) == (2400, 1440)
    assert photo.width > photo.height and 512 <= photo.width < 1024
    small = cv2.resize(upright, (photo.width, photo.height), interpolation=cv2.INTER_AREA)
    assert np.abs(photo.rgb.astype(int) - small).mean() < 8


def test_malformed_exif_is_ignored(scene: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x0112] = 42  # not an orientation
    data = encode(scene, "JPEG", exif=exif.tobytes())
    assert decode_image(data).rgb.shape == scene.shape


def test_jpeg_header_parse_skips_segments_and_handles_progressive(scene: np.ndarray) -> None:
    # A comment segment that contains SOF-like bytes must be skipped by its length.
    fake_sof = b"\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03"
    data = encode(scene, "JPEG", comment=fake_sof * 50)
    assert fake_sof in data
    assert decode_image(data).rgb.shape == scene.shape
    progressive = encode(scene, "JPEG", progressive=True)
    assert b"\xff\xc2" in progressive
    photo = decode_image(progressive, target_long_side=160)
    assert (photo.width, photo.original_width) == (160, 640)


# ------------------------------------------------------------------------ DCT draft
def test_jpeg_dct_downscale_keeps_at_least_the_target() -> None:
    big = cv2.resize(item_scene(3, kind="book").rgb, (2400, 1800), interpolation=cv2.INTER_LINEAR)
    data = encode(big, "JPEG", quality=90)
    full = decode_image(data, target_long_side=None)
    assert full.rgb.shape == (1800, 2400, 3)
    for target, expected_long in ((1600, 2400), (1200, 1200), (700, 1200), (512, 600), (200, 300)):
        photo = decode_image(data, target_long_side=target)
        assert photo.width == expected_long, target
        assert photo.width >= target
        assert (photo.original_width, photo.original_height) == (2400, 1800)
        assert photo.scale == pytest.approx(expected_long / 2400)
        assert photo.sha256 == full.sha256


def test_png_and_webp_are_box_reduced_to_at_least_the_target() -> None:
    """No DCT to draft from: an integer box reduction keeps the long side in
    [target, 2 x target), the same band a JPEG draft lands in."""
    img = item_scene(4, kind="mug", size=(800, 600)).rgb
    for fmt in ("PNG", "WEBP"):
        data = encode(img, fmt, quality=95)
        full = decode_image(data, target_long_side=None)
        assert full.rgb.shape == (600, 800, 3)
        photo = decode_image(data, target_long_side=128)
        assert photo.rgb.shape == (100, 134, 3)  # 800 // 128 = 6: 134 x 100
        assert (photo.original_width, photo.original_height) == (800, 600)
        box = full.rgb[:600, :798].reshape(100, 6, 133, 6, 3).mean(axis=(1, 3))
        assert np.abs(photo.rgb[:, :133].astype(float) - box).max() <= 1
        assert decode_image(data, target_long_side=401).rgb.shape == (600, 800, 3)  # < 2x401


# ---------------------------------------------------------------------------- modes
def test_grayscale_jpeg_becomes_rgb() -> None:
    grey = cv2.cvtColor(asymmetric_pattern(), cv2.COLOR_RGB2GRAY)
    photo = decode_image(encode(grey, "JPEG", quality=95))
    assert photo.rgb.shape == (*grey.shape, 3)
    assert np.array_equal(photo.rgb[..., 0], photo.rgb[..., 1])
    assert np.abs(photo.rgb[..., 0].astype(int) - grey).mean() < 4


def _rgba() -> np.ndarray:
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., 0] = 200  # red everywhere, alpha varies
    rgba[:, :16, 3] = 0  # transparent
    rgba[:, 16:32, 3] = 128  # half
    rgba[:, 32:, 3] = 255  # opaque
    return rgba


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_alpha_is_composited_on_white(fmt: str) -> None:
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    photo = decode_image(encode(_rgba(), fmt, **kwargs))
    px = photo.rgb.astype(int)
    assert np.all(np.abs(px[:, :16] - 255) <= 1)
    assert np.all(np.abs(px[:, 16:32] - [227, 127, 127]) <= 2)
    assert np.all(np.abs(px[:, 32:] - [200, 0, 0]) <= 1)


def test_la_and_palette_transparency() -> None:
    la = np.dstack([np.full((8, 8), 0, np.uint8), np.full((8, 8), 0, np.uint8)])
    assert decode_image(encode(la, "PNG")).rgb.min() == 255  # fully transparent -> white
    pal = Image.fromarray(_rgba()).convert("P")  # palette + tRNS
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    px = decode_image(buf.getvalue()).rgb.astype(int)
    assert np.all(px[:, :16] == 255)


def test_16_bit_greyscale_png_is_scaled_not_clipped() -> None:
    ramp = (np.arange(256, dtype=np.uint32).repeat(4) * 257).astype(np.uint16)
    grey16 = np.tile(ramp, (8, 1))
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, "PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode.startswith("I")
    photo = decode_image(buf.getvalue())
    assert np.array_equal(photo.rgb[..., 0], (grey16 >> 8).astype(np.uint8))


def test_16_bit_rgb_png() -> None:
    rgb16 = asymmetric_pattern().astype(np.uint16) * 257
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    photo = decode_image(png.tobytes())
    assert np.array_equal(photo.rgb, asymmetric_pattern())


def test_cmyk_jpeg_and_1_bit_png() -> None:
    cmyk = Image.fromarray(asymmetric_pattern()).convert("CMYK")
    buf = io.BytesIO()
    cmyk.save(buf, "JPEG", quality=95)
    photo = decode_image(buf.getvalue())
    assert np.abs(photo.rgb.astype(int) - asymmetric_pattern()).mean() < 10
    bits = Image.fromarray(asymmetric_pattern()).convert("1")
    buf = io.BytesIO()
    bits.save(buf, "PNG")
    assert set(np.unique(decode_image(buf.getvalue()).rgb)) <= {0, 255}


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01",
        b"BM" + b"\x00" * 60,
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        bytes(range(256)) * 4,
    ],
)
def test_unsupported_types(data: bytes) -> None:
    assert _code(data) == "unsupported_media_type"


def test_real_gif_and_bmp_are_unsupported(scene: np.ndarray) -> None:
    assert _code(encode(scene, "GIF")) == "unsupported_media_type"
    assert _code(encode(scene, "BMP")) == "unsupported_media_type"


def test_random_bytes() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 7, 100, 5000):
        assert _code(rng.integers(0, 256, n, dtype=np.uint8).tobytes()) in (
            "unsupported_media_type",
            "unreadable_image",
        )
    assert (
        _code(b"\xff\xd8\xff" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
        == "unreadable_image"
    )


def test_empty_upload() -> None:
    with pytest.raises(DecodeError) as info:
        decode_image(b"")
    assert info.value.code == "unreadable_image"
    assert "empty" in info.value.message


def test_not_bytes() -> None:
    assert _code("a string") == "unreadable_image"  # type: ignore[arg-type]


def test_byte_limit(scene: np.ndarray) -> None:
    data = encode(scene, "PNG")
    assert _code(data, limits=DecodeLimits(max_bytes=len(data) - 1)) == "too_large"
    assert decode_image(data, limits=DecodeLimits(max_bytes=len(data))).byte_size == len(data)


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.9, 0.98])
def test_truncated_jpeg(scene: np.ndarray, fraction: float) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = encode(scene, "JPEG", quality=90)
    assert _code(data[: int(len(data) * fraction)]) == "unreadable_image"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_truncated_png_and_webp(scene: np.ndarray, fmt: str) -> None:
    data = encode(scene, fmt)
    for fraction in (0.1, 0.5, 0.95):
        assert _code(data[: int(len(data) * fraction)]) == "unreadable_image"


def test_corrupt_png_crc(scene: np.ndarray) -> None:
    data = bytearray(encode(scene[:64, :64], "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF  # payload changed, CRC now wrong
    assert _code(bytes(data)) == "unreadable_image"


def test_mutated_files_only_raise_decode_errors(scene: np.ndarray) -> None:
    """Fuzz: flipped bytes in real files either decode or raise DecodeError, nothing else."""
    rng = np.random.default_rng(1)
    small = scene[:96, :128]
    for fmt in ("JPEG", "PNG", "WEBP"):
        base = encode(small, fmt)
        for _ in range(60):
            data = bytearray(base)
            for pos in rng.integers(2, len(data), int(rng.integers(1, 12))):
                data[pos] = int(rng.integers(0, 256))
            try:
                photo = decode_image(bytes(data))
            except DecodeError:
                continue
            assert photo.rgb.dtype == np.uint8 and photo.rgb.ndim == 3


# ---------------------------------------------------------------- decompression bombs
def test_png_bomb_header_is_real() -> None:
    bomb = png_bomb()
    # The IHDR is well-formed with a valid CRC: a strict reader sees 50,000 x 50,000.
    assert bomb[12:16] == b"IHDR"
    assert int.from_bytes(bomb[16:20], "big") == 50_000
    assert png_chunk(b"IHDR", bomb[16:29]) == bomb[8:33]


def test_png_bomb_rejected_without_allocating() -> None:
    bomb = png_bomb(50_000, 50_000)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as info:
            decode_image(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "too_many_pixels"
    assert peak < 2_000_000 < 50_000 * 50_000 * 3 // 1000  # far below w*h*3 (7.5 GB)


def test_bomb_under_pillows_limit_but_over_ours() -> None:
    # 9,000 x 9,000 = 81 MP: Pillow alone would decode it (its limit is ~89 MP).
    bomb = png_bomb(9_000, 9_000)
    tracemalloc.start()
    try:
        code = _code(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == "too_many_pixels"
    assert peak < 2_000_000
    # Between Pillow's warning and error limits (~90-179 MP): a refusal, not a warning.
    assert _code(png_bomb(10_000, 10_000)) == "too_many_pixels"
    # Configured limits apply to ordinary photos too.
    assert (
        _code(encode(asymmetric_pattern(), "PNG"), limits=DecodeLimits(max_pixels=1000))
        == "too_many_pixels"
    )


@pytest.mark.parametrize("size", [(9_000, 9_000), (16_383, 16_383)])
def test_webp_declaring_huge_size(size: tuple[int, int]) -> None:
    """Pillow's WebP reader allocates the canvas on open: the header is checked first."""
    bomb = webp_bomb(*size)
    assert Image.open(io.BytesIO(webp_bomb(40, 30))).size == (40, 30)  # the patch is real
    tracemalloc.start()
    try:
        code = _code(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == "too_many_pixels"
    assert peak < 1_000_000


def test_webp_extended_header(scene: np.ndarray) -> None:
    """VP8X (extended) WebP: lossy with alpha, or with EXIF."""
    rgba = np.dstack([scene, np.full(scene.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0  # some transparency, or the encoder drops the alpha channel
    for data in (encode(rgba, "WEBP"), encode(scene, "WEBP", exif_orientation=1)):
        assert data[12:16] == b"VP8X"
        photo = decode_image(data)
        assert photo.rgb.shape == scene.shape
        assert (photo.original_width, photo.original_height) == (640, 480)


def test_jpeg_declaring_huge_size(scene: np.ndarray) -> None:
    data = bytearray(encode(scene[:64, :64], "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60_000).to_bytes(2, "big") + (60_000).to_bytes(2, "big")
    assert _code(bytes(data)) == "too_many_pixels"


@pytest.mark.skipif(sys.platform != "linux", reason="uses RLIMIT_AS")
def test_png_bomb_under_address_space_limit() -> None:
    """Pillow allocates image memory with C malloc, which tracemalloc cannot see. Here the
    child process may only grow its address space by 512 MB: allocating the PNG bomb's
    7.5 GB, or the 648 MB that Pillow's WebP reader reserves for a 9,000 x 9,000 canvas,
    would fail (-> unreadable_image), so too_many_pixels proves the refusal happened from
    the header."""
    script = textwrap.dedent("""
        import resource, sys
        from vision.decode import decode_image
        from vision.errors import DecodeError
        from tests.photo_factory import png_bomb, webp_bomb
        vm = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status')
                  if l.startswith('VmSize'))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 2**20, resource.RLIM_INFINITY))
        for bomb in (png_bomb(50_000, 50_000), webp_bomb(9_000, 9_000)):
            try:
                decode_image(bomb)
            except DecodeError as e:
                print(e.code)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["too_many_pixels", "too_many_pixels"]


def test_decode_error_is_a_returnlens_error() -> None:
    with pytest.raises(ReturnLensError) as info:
        decode_image(b"nope")
    assert info.value.to_dict()["code"] == "unsupported_media_type"
