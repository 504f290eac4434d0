"""Lossless metadata removal (``vision.jpegclean``) and the photo store's use of it.

Every "exact" claim is checked the strict way: the stripped bytes, decoded by the
project's own ``vision.decode``, give the same array as the upload did.
"""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from serving.storage.photostore import PhotoStore, clean_jpeg, encode_clean_jpeg
from tests.service_data import gps_exif
from tests.shop import Shop, scene
from vision.decode import decode_image
from vision.jpegclean import LOSSLESS_MAX_LONG_SIDE, clean_upload, strip_metadata
from vision.types import DecodedPhoto

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
    b'22-rdf-syntax-ns#"><rdf:Description xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
    b' photoshop:City="Secretville"/></rdf:RDF></x:xmpmeta>'
)
COMMENT = b"shot by Jane Doe, 12 Hidden Lane"
# Markers a clean file may hold: SOI, DQT, SOF0/1/2, DHT, DRI, SOS, EOI.
ALLOWED = {0xD8, 0xDB, 0xC0, 0xC1, 0xC2, 0xC4, 0xDD, 0xDA, 0xD9}


def _photo(width: int = 640, height: int = 480, seed: int = 1) -> np.ndarray:
    """A textured scene (real JPEG statistics: many stuffed 0xFF bytes in the scan)."""
    base = cv2.resize(scene(seed, "box"), (width, height), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(seed).integers(-12, 13, base.shape)
    return np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)


def _pillow_jpeg(rgb: np.ndarray, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", **{"quality": 90, **kwargs})  # type: ignore[arg-type]
    return buf.getvalue()


def _with_everything(rgb: np.ndarray, **kwargs: object) -> bytes:
    """A JPEG carrying EXIF with GPS, XMP, a real sRGB ICC profile and a comment."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _pillow_jpeg(rgb, exif=gps_exif(), xmp=XMP, icc_profile=icc, comment=COMMENT, **kwargs)


def _markers(data: bytes) -> list[int]:
    """The marker of every segment up to the first SOS, then the ones between scans."""
    out, pos = [], 2
    while data[pos] == 0xFF and data[pos + 1] != 0xDA:
        out.append(data[pos + 1])
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return out


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _insert_after_soi(data: bytes, *segments: bytes) -> bytes:
    return data[:2] + b"".join(segments) + data[2:]


def _assert_clean(data: bytes) -> None:
    """No metadata segment; a re-encode may open with OpenCV's bare JFIF APP0 (version
    and pixel density, no thumbnail), which the stripped files do not keep either."""
    for needle in (b"Exif", b"http://ns.adobe.com/xap", b"ICC_PROFILE", COMMENT):
        assert needle not in data, needle
    markers = _markers(data)
    if markers[:1] == [0xE0]:
        assert data[4:6] == b"\x00\x10" and data[6:11] == b"JFIF\0"  # no thumbnail
        markers = markers[1:]
    assert set(markers) <= ALLOWED
    assert data.endswith(b"\xff\xd9")


def _same_pixels(a: bytes, b: bytes, target: int | None = None) -> bool:
    first = decode_image(a, target_long_side=target).rgb
    return bool(np.array_equal(first, decode_image(b, target_long_side=target).rgb))


# --------------------------------------------------------------------------- exactness
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"quality": 75, "subsampling": 0},  # 4:4:4
        {"subsampling": 1},  # 4:2:2
        {"optimize": True},
        {"progressive": True},
        {"progressive": True, "subsampling": 0},
    ],
    ids=["baseline", "444", "422", "optimized", "progressive", "progressive-444"],
)
def test_stripping_keeps_the_decoded_pixels_and_drops_every_metadata_segment(
    kwargs: dict[str, object],
) -> None:
    upload = _with_everything(_photo(), **kwargs)
    assert b"Exif" in upload and b"ICC_PROFILE" in upload and COMMENT in upload
    assert b"http://ns.adobe.com/xap" in upload
    clean = strip_metadata(upload)
    assert clean is not None
    _assert_clean(clean)
    assert 0xE0 not in _markers(clean)  # not even the JFIF header
    assert _same_pixels(upload, clean)
    assert _same_pixels(upload, clean, target=256)  # the DCT-scaled decode too
    assert strip_metadata(clean) == clean  # nothing left to strip


def test_opencv_jpegs_with_restart_markers_strip_exactly() -> None:
    ok, buf = cv2.imencode(
        ".jpg", _photo(800, 600), [cv2.IMWRITE_JPEG_QUALITY, 92, cv2.IMWRITE_JPEG_RST_INTERVAL, 4]
    )
    assert ok
    upload = _insert_after_soi(buf.tobytes(), _segment(0xFE, COMMENT))
    clean = strip_metadata(upload)
    assert clean is not None and b"\xff\xdd" in clean  # DRI kept
    assert any(bytes([0xFF, m]) in clean for m in range(0xD0, 0xD8))  # restarts kept
    _assert_clean(clean)
    assert _same_pixels(upload, clean)


def test_metadata_between_progressive_scans_is_dropped() -> None:
    upload = _pillow_jpeg(_photo(), progressive=True)
    second_scan = upload.index(b"\xff\xda", upload.index(b"\xff\xda") + 2)
    injected = _segment(0xFE, COMMENT) + _segment(0xE1, b"Exif\0\0" + gps_exif())
    upload = upload[:second_scan] + injected + upload[second_scan:]
    assert _same_pixels(upload, _pillow_jpeg(_photo(), progressive=True))  # decodes the same
    clean = strip_metadata(upload)
    assert clean is not None and COMMENT not in clean and b"Exif" not in clean
    assert _same_pixels(upload, clean)


def test_bytes_after_the_end_of_image_are_dropped() -> None:
    upload = _pillow_jpeg(_photo()) + b"PK\x03\x04 a zip appended to the photo"
    clean = strip_metadata(upload)
    assert clean is not None and clean.endswith(b"\xff\xd9") and b"PK\x03\x04" not in clean
    assert _same_pixels(upload, clean)


def test_a_multi_picture_file_keeps_only_its_first_picture() -> None:
    """Phones write MPO files (a second image after the first EOI, indexed by APP2 MPF):
    the decoder shows the first, and the rest is dropped."""
    first, second = Image.fromarray(_photo(seed=4)), Image.fromarray(_photo(seed=5))
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second], quality=90)
    upload = buf.getvalue()
    assert upload.count(b"\xff\xd8\xff") == 2 and b"MPF" in upload
    clean = strip_metadata(upload)
    assert clean is not None and b"MPF" not in clean and clean.count(b"\xff\xd8") == 1
    assert _same_pixels(upload, clean)


def test_fill_bytes_before_markers_are_accepted() -> None:
    upload = _pillow_jpeg(_photo())
    upload = upload[:2] + b"\xff\xff" + upload[2:]
    clean = strip_metadata(upload)
    assert clean is not None and _same_pixels(upload, clean)


# --------------------------------------------------------------------------- fallbacks
def _frame_at(data: bytes) -> int:
    return next(
        data.index(bytes([0xFF, m])) for m in (0xC0, 0xC1, 0xC2) if bytes([0xFF, m]) in data
    )


def test_files_whose_colours_depend_on_a_dropped_marker_are_not_stripped() -> None:
    rgb = _photo()
    adobe = _segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00")  # transform 0: RGB
    assert strip_metadata(_insert_after_soi(_pillow_jpeg(rgb), adobe)) is None
    assert strip_metadata(_pillow_jpeg(rgb[..., 0])) is None  # greyscale: one component
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, "JPEG", quality=90)
    assert strip_metadata(cmyk.getvalue()) is None
    # Component ids 'R','G','B': JFIF says YCbCr, without it libjpeg would read RGB.
    upload = bytearray(_pillow_jpeg(rgb))
    frame = _frame_at(bytes(upload))
    upload[frame + 10 : frame + 19 : 3] = b"RGB"
    assert strip_metadata(bytes(upload)) is None


@pytest.mark.parametrize("marker", [0xC3, 0xC5, 0xC9, 0xCA, 0xF7], ids=hex)
def test_unusual_codings_are_not_stripped(marker: int) -> None:
    """Lossless, hierarchical, arithmetic-coded and JPEG-LS frames take the re-encode."""
    upload = bytearray(_pillow_jpeg(_photo()))
    upload[_frame_at(bytes(upload)) + 1] = marker
    assert strip_metadata(bytes(upload)) is None


def test_twelve_bit_precision_is_not_stripped() -> None:
    upload = bytearray(_pillow_jpeg(_photo()))
    upload[_frame_at(bytes(upload)) + 4] = 12
    assert strip_metadata(bytes(upload)) is None


def test_truncated_and_malformed_files_answer_none_without_raising() -> None:
    upload = _with_everything(_photo(160, 120))
    scan = upload.index(b"\xff\xda")
    for cut in [0, 1, 2, 3, 4, 5, 20, 100, scan, scan + 3, scan + 40, len(upload) - 2]:
        assert strip_metadata(upload[:cut]) is None, cut
    assert strip_metadata(upload[:-1]) is None  # half of EOI
    assert strip_metadata(b"not a jpeg") is None
    for length in (0, 1, 0xFFFF):  # the first segment's length field
        bad = upload[:4] + struct.pack(">H", length) + upload[6:]
        assert strip_metadata(bad) is None, length
    no_eoi = upload[:-2] + b"\xff\xc4"  # a DHT whose length runs past the end
    assert strip_metadata(no_eoi) is None
    assert strip_metadata(upload.replace(b"\xff\xda", b"\xff\xd8", 1)) is None  # 2nd SOI
    garbage = upload[:2] + b"\x00" + upload[2:]  # a byte where a marker belongs
    assert strip_metadata(garbage) is None
    stuffed = upload.index(b"\xff\x00", scan)  # fill bytes before a stuffed 0xFF
    garbage = upload[:stuffed] + b"\xff" + upload[stuffed:]
    assert strip_metadata(garbage) is None
    rng = np.random.default_rng(0)
    for _ in range(300):  # random damage anywhere: None or a file, never an exception
        data = bytearray(upload)
        for pos in rng.integers(0, len(data), 3):
            data[pos] = int(rng.integers(0, 256))
        strip_metadata(bytes(data[: int(rng.integers(0, len(data) + 1))]))


def test_a_rotated_upload_is_re_encoded_upright() -> None:
    stored_sideways = np.ascontiguousarray(np.rot90(_photo(), k=1))  # 640 tall, 480 wide
    upload = _pillow_jpeg(stored_sideways, exif=_orientation_exif(6))
    photo = decode_image(upload)
    assert photo.orientation == 6 and photo.rgb.shape == (480, 640, 3)  # turned upright
    assert clean_upload(photo, upload) is None
    stored = clean_jpeg(photo, upload)
    assert decode_image(stored).rgb.shape == (480, 640, 3)  # upright, as graded
    _assert_clean(stored)


def _orientation_exif(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def test_a_camera_original_is_re_encoded_at_its_graded_size() -> None:
    big = cv2.resize(_photo(), (4000, 3000), interpolation=cv2.INTER_NEAREST)  # 12 MP
    upload = _pillow_jpeg(big, exif=gps_exif())
    photo = decode_image(upload, target_long_side=1600)
    assert photo.scale < 1 and photo.rgb.shape == (1500, 2000, 3)
    assert LOSSLESS_MAX_LONG_SIDE < 4000 and clean_upload(photo, upload) is None
    stored = clean_jpeg(photo, upload)
    assert np.array_equal(decode_image(stored, target_long_side=None).rgb.shape, (1500, 2000, 3))
    _assert_clean(stored)


def test_a_page_sized_upload_graded_downscaled_is_kept_whole() -> None:
    """The shopper page's 1600 px photo is graded DCT-halved; stored stripped at full
    size, it decodes the way it was graded to exactly the graded pixels."""
    upload = _with_everything(cv2.resize(_photo(), (1600, 1200), interpolation=cv2.INTER_CUBIC))
    photo = decode_image(upload, target_long_side=512)
    assert photo.scale == 0.5
    stored = clean_upload(photo, upload)
    assert stored is not None and stored == strip_metadata(upload)
    _assert_clean(stored)
    assert np.array_equal(decode_image(stored, target_long_side=512).rgb, photo.rgb)
    assert decode_image(stored, target_long_side=None).rgb.shape == (1200, 1600, 3)


def test_only_the_bytes_the_photo_came_from_are_used() -> None:
    upload = _pillow_jpeg(_photo())
    photo = decode_image(upload)
    assert clean_upload(photo, upload) == strip_metadata(upload)
    assert clean_upload(photo, None) is None
    assert clean_upload(photo, upload + b"x") is None
    png = io.BytesIO()
    Image.fromarray(_photo()).save(png, "PNG")
    assert clean_upload(decode_image(png.getvalue()), png.getvalue()) is None


# --------------------------------------------------------------------------- the store
def test_put_all_stores_the_stripped_upload_when_exact(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "photos")
    exact = _with_everything(_photo(seed=2))
    rotated = _pillow_jpeg(_photo(seed=3), exif=_orientation_exif(3))
    photos = [decode_image(exact), decode_image(rotated)]
    digests = store.put_all(photos, [exact, rotated])
    first, second = (store.get(d) for d in digests)
    assert first == strip_metadata(exact)  # the upload's own scan data, metadata gone
    assert second == encode_clean_jpeg(photos[1].rgb)  # turned upright, re-encoded
    _assert_clean(first)
    _assert_clean(second)
    assert np.array_equal(decode_image(first).rgb, photos[0].rgb)  # exactly the pixels
    assert store.put_all(photos, [exact, rotated]) == digests  # same uploads, same names
    assert store.put_all([p.rgb for p in photos])[1] == digests[1]  # bare pixels still work


def test_put_all_refuses_a_mismatched_upload_list_before_writing(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "photos")
    upload = _pillow_jpeg(_photo())
    with pytest.raises(ValueError, match="uploads"):
        store.put_all([decode_image(upload), decode_image(upload)], [upload])
    assert not any(p.is_file() for p in (tmp_path / "photos").rglob("*"))


def test_the_shopper_upload_is_stored_stripped_with_the_graded_pixels(sqlite_shop: Shop) -> None:
    """Through the HTTP API: the stored file is the upload minus its metadata, and decodes
    to exactly the pixels the service graded."""
    svc = sqlite_shop.client.app.state.service  # type: ignore[attr-defined]
    # Grading decodes to a 512 px long side at least (``vision.pipeline``): the page's
    # 1600 px photo is DCT-halved while grading and kept whole.
    upload = _with_everything(cv2.resize(scene(1, "box"), (1600, 1200)))
    rid, token = sqlite_shop.open_return()
    r = sqlite_shop.upload(rid, token, upload)
    assert r.status_code == 200, r.text
    got = sqlite_shop.client.get(
        r.json()["photos"][0]["url"], headers={"Authorization": f"Bearer {token}"}
    )
    assert got.status_code == 200
    stored = got.content
    _assert_clean(stored)
    graded: DecodedPhoto = svc.grader.decode(upload)
    assert graded.scale == 0.5
    assert stored == strip_metadata(upload)  # the lossless path, not a re-encode
    assert np.array_equal(svc.grader.decode(stored).rgb, graded.rgb)
    assert hashlib.sha256(stored).hexdigest() in {p.digest for p in svc.photos.list_photos()}
