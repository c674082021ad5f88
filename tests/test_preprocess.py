"""Image decoding and preprocessing: every input kind, the conversions, every bad input, the tensor."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest

from clear_sdk.errors import InputError
from clear_sdk.preprocess import Preprocessing, load_image, preprocess, preprocess_batch


def _picture(h: int = 24, w: int = 16, seed: int = 0) -> np.ndarray:
    """A random RGB uint8 picture (random so that a channel swap or flip cannot go unnoticed)."""
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _png_bytes(bgr_or_gray: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", bgr_or_gray)
    assert ok
    return buf.tobytes()


def _jpeg_bytes(bgr: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


# ------------------------------------------------------------------------------------------ input kinds


def test_every_input_kind_gives_the_same_array(tmp_path):
    rgb = _picture()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    data = _png_bytes(bgr)
    path = tmp_path / "person.png"
    path.write_bytes(data)
    unicode_path = tmp_path / "пешеход 行人.png"  # np.fromfile + imdecode handles non-ASCII paths
    unicode_path.write_bytes(data)

    inputs = {
        "str path": (str(path), "bgr"),
        "Path": (path, "bgr"),
        "unicode path": (unicode_path, "bgr"),
        "bytes": (data, "bgr"),
        "bytearray": (bytearray(data), "bgr"),
        "memoryview": (memoryview(data), "bgr"),
        "BGR array": (bgr, "bgr"),
        "RGB array": (rgb, "rgb"),
        "non-contiguous BGR": (np.asfortranarray(bgr), "bgr"),
    }
    for name, (image, color) in inputs.items():
        out = load_image(image, color=color)
        assert out.dtype == np.uint8 and out.shape == rgb.shape, name
        assert out.flags["C_CONTIGUOUS"], name
        np.testing.assert_array_equal(out, rgb, err_msg=name)


def test_pil_images_are_rgb_whatever_color_says():
    pil_image = pytest.importorskip("PIL.Image")
    rgb = _picture()
    im = pil_image.fromarray(rgb)
    np.testing.assert_array_equal(load_image(im), rgb)
    np.testing.assert_array_equal(load_image(im, color="rgb"), rgb)
    # RGBA, P and L modes go through PIL's own conversion
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(load_image(pil_image.fromarray(rgba, mode="RGBA")), rgb)
    gray = rgb[:, :, 0]
    np.testing.assert_array_equal(load_image(pil_image.fromarray(gray, mode="L")), np.dstack([gray] * 3))
    pal = pil_image.fromarray(rgb).convert("P", palette=pil_image.Palette.ADAPTIVE, colors=16)
    np.testing.assert_array_equal(load_image(pal), np.asarray(pal.convert("RGB")))
    i16 = pil_image.fromarray(np.full((4, 5), 0x1234, np.uint16))
    assert i16.mode.startswith("I")
    np.testing.assert_array_equal(load_image(i16), np.full((4, 5, 3), 0x12, np.uint8))


def test_result_never_aliases_the_input():
    rgb = _picture()
    out = load_image(rgb, color="rgb")
    out[:] = 0
    assert rgb.any()


def test_jpeg_file_matches_opencv_imread(tmp_path):
    bgr = _picture(64, 32)[:, :, ::-1]
    path = tmp_path / "p.jpg"
    path.write_bytes(_jpeg_bytes(np.ascontiguousarray(bgr)))
    expected = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]
    np.testing.assert_array_equal(load_image(path), expected)


def test_exif_orientation_is_applied_like_imread():
    pil_image = pytest.importorskip("PIL.Image")
    arr = np.zeros((40, 20, 3), np.uint8)
    arr[:10] = 255  # white band at the top
    im = pil_image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    out = load_image(buf.getvalue())
    assert out.shape == (20, 40, 3)
    assert out[:, -5:].mean() > 200 and out[:, :20].mean() < 50  # the band is now on the right


# ------------------------------------------------------------------------------------------ conversions


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = np.arange(6 * 5, dtype=np.uint8).reshape(6, 5) * 8
    expected = np.dstack([gray, gray, gray])
    np.testing.assert_array_equal(load_image(gray), expected)
    np.testing.assert_array_equal(load_image(gray[:, :, None]), expected)
    path = tmp_path / "g.png"
    path.write_bytes(_png_bytes(gray))
    np.testing.assert_array_equal(load_image(path), expected)


def test_alpha_is_dropped(tmp_path):
    rgb = _picture()
    alpha = np.zeros(rgb.shape[:2], np.uint8)  # fully transparent: colours are still kept, not composited
    bgra = np.dstack([rgb[:, :, ::-1], alpha])
    rgba = np.dstack([rgb, alpha])
    np.testing.assert_array_equal(load_image(bgra), rgb)
    np.testing.assert_array_equal(load_image(rgba, color="rgb"), rgb)
    path = tmp_path / "a.png"
    path.write_bytes(_png_bytes(bgra))
    np.testing.assert_array_equal(load_image(path), rgb)


def test_16_bit_becomes_8_bit_by_shift(tmp_path):
    values = np.array([[0, 255, 256, 0x1234], [0x80FF, 0xFF00, 65534, 65535]], np.uint16)
    expected = np.array([[0, 0, 1, 0x12], [0x80, 0xFF, 0xFF, 0xFF]], np.uint8)
    np.testing.assert_array_equal(load_image(values), np.dstack([expected] * 3))
    bgr16 = np.dstack([values, values // 2, values // 4])  # B, G, R
    out = load_image(bgr16)
    np.testing.assert_array_equal(out[:, :, 2], expected)
    np.testing.assert_array_equal(out[:, :, 0], (values // 4 >> 8).astype(np.uint8))
    path = tmp_path / "deep.png"
    path.write_bytes(_png_bytes(bgr16))
    np.testing.assert_array_equal(load_image(path), out)
    np.testing.assert_array_equal(load_image(values.astype(">u2")), np.dstack([expected] * 3))


def test_float_in_unit_range_is_scaled():
    arr = np.array([[0.0, 1.0], [0.2, 0.6]], np.float32)
    expected = np.array([[0, 255], [51, 153]], np.uint8)
    np.testing.assert_array_equal(load_image(arr), np.dstack([expected] * 3))
    np.testing.assert_array_equal(load_image(arr.astype(np.float64)), np.dstack([expected] * 3))


# ------------------------------------------------------------------------------------------- bad inputs


def _assert_input_error(image, *, names: str, match: str, **kw) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        load_image(image, **kw)
    assert names in str(info.value)
    assert info.value.source == names
    assert isinstance(info.value, ValueError)
    return info.value


def test_missing_empty_directory_and_text_files(tmp_path):
    missing = tmp_path / "nope.jpg"
    _assert_input_error(missing, names=str(missing), match="not found")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    _assert_input_error(str(empty), names=str(empty), match="empty")
    _assert_input_error(tmp_path, names=str(tmp_path), match="directory")
    text = tmp_path / "notes.jpg"
    text.write_text("person_id,camera\n12,3\n", encoding="utf-8")
    _assert_input_error(text, names=str(text), match="text file")
    _assert_input_error("https://example.com/a.jpg", names="https://example.com/a.jpg", match="URL")


def test_undecodable_and_truncated_bytes(tmp_path):
    _assert_input_error(b"\x00\x01\x02garbage" * 10, names="bytes (100 bytes)", match="cannot decode")
    big = _picture(256, 128, seed=1)
    jpeg = _jpeg_bytes(big)
    # some OpenCV/libjpeg versions decode a JPEG cut in its scan data into a partly grey image; the explicit
    # end-of-image check rejects it whatever the version (OpenCV's own error would say 'cannot decode')
    cut = jpeg[: len(jpeg) * 2 // 3]
    _assert_input_error(cut, names=f"bytes ({len(cut)} bytes)", match="truncated JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut)
    _assert_input_error(path, names=str(path), match="truncated JPEG")
    # trailing bytes after the end-of-image marker are harmless (some cameras append data)
    assert load_image(jpeg + b"\x00" * 16).shape == (256, 128, 3)
    png = _png_bytes(big)
    cut_png = png[: len(png) // 2]
    _assert_input_error(cut_png, names=f"bytes ({len(cut_png)} bytes)", match="truncated PNG")
    cut_png_end = png[:-12]  # only the IEND chunk missing
    _assert_input_error(cut_png_end, names=f"bytes ({len(cut_png_end)} bytes)", match="truncated PNG")


def test_jpeg_with_exif_thumbnail_cut_after_the_thumbnail_is_truncated():
    pil_image = pytest.importorskip("PIL.Image")
    # an APP1 segment holding an FF D9 (like an EXIF thumbnail's end marker) must not count as the EOI
    jpeg = _jpeg_bytes(_picture(128, 64, seed=2))
    app1 = b"Exif\x00\x00" + b"\xff\xd8\xff\xd9" * 4
    with_thumb = jpeg[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + jpeg[2:]
    assert pil_image.open(io.BytesIO(with_thumb)).size == (64, 128)
    assert load_image(with_thumb).shape == (128, 64, 3)
    cut = with_thumb[: len(with_thumb) - 200]
    _assert_input_error(cut, names=f"bytes ({len(cut)} bytes)", match="truncated JPEG")


def test_bad_arrays_name_the_problem():
    good = _picture()
    _assert_input_error(good[:1], names="numpy array", match="1x16 pixels")
    _assert_input_error(good[:, :1], names="numpy array", match="24x1 pixels")
    _assert_input_error(good.astype(np.int64), names="numpy array", match="unsupported dtype int64")
    _assert_input_error(good > 10, names="numpy array", match="mask")
    _assert_input_error(good.astype(np.complex64), names="numpy array", match="unsupported dtype complex64")
    _assert_input_error(np.zeros((5, 6, 2), np.uint8), names="numpy array", match="not an image")
    _assert_input_error(np.zeros((5,), np.uint8), names="numpy array", match="not an image")
    _assert_input_error(np.zeros((3, 24, 16), np.uint8), names="numpy array", match="channel-first")
    _assert_input_error(np.zeros((2, 24, 16, 3), np.uint8), names="numpy array", match="batch")
    nan = np.full((4, 4, 3), 0.5, np.float32)
    nan[1, 2, 0] = np.nan
    _assert_input_error(nan, names="numpy array", match="NaN")
    _assert_input_error(good.astype(np.float32), names="numpy array", match=r"divide 0-255 data by 255")


def test_non_image_types_and_custom_source():
    _assert_input_error(42, names="int", match="unsupported image input")
    _assert_input_error(None, names="NoneType", match="unsupported image input")
    _assert_input_error([[1, 2], [3, 4]], names="list", match="unsupported image input")
    _assert_input_error(
        np.zeros((1, 1), np.uint8), names="camera 7, frame 12", match="1x1", source="camera 7, frame 12"
    )
    with pytest.raises(ValueError, match="'bgr'"):
        load_image(_picture(), color="BGR")


def test_truncated_file_through_pil_is_an_input_error():
    pil_image = pytest.importorskip("PIL.Image")
    png = _png_bytes(_picture(64, 64, seed=3))
    im = pil_image.open(io.BytesIO(png[: len(png) // 2]))  # PIL opens lazily; loading fails
    _assert_input_error(im, names="PIL image", match="PIL could not load")


# ----------------------------------------------------------------------------------------- preprocessing


def test_preprocess_hand_computed_pixels():
    rgb = np.zeros((4, 2, 3), np.uint8)
    rgb[1, 0] = (10, 20, 30)
    rgb[3, 1] = (255, 255, 255)
    pp = Preprocessing(input_size=(4, 2), interpolation="nearest")  # same size: no resampling
    x = preprocess(rgb, pp)
    assert x.dtype == np.float32 and x.shape == (3, 4, 2) and x.flags["C_CONTIGUOUS"]
    # (v / 255 - mean) / std, by hand
    np.testing.assert_allclose(x[:, 1, 0], [-1.9466564, -1.6855742, -1.2815686], rtol=0, atol=1e-6)
    np.testing.assert_allclose(x[0, 3, 1], 2.2489083, rtol=0, atol=1e-6)
    np.testing.assert_allclose(x[:, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225], atol=1e-6)


def test_preprocess_resizes_to_input_size():
    pp = Preprocessing()
    flat = np.full((100, 37, 3), (200, 100, 50), np.uint8)
    x = preprocess(flat, pp)
    assert x.shape == (3, 256, 128)
    expected = (np.array([200, 100, 50]) / 255 - np.array(pp.mean)) / np.array(pp.std)
    np.testing.assert_allclose(x.reshape(3, -1).mean(axis=1), expected, atol=1e-5)
    np.testing.assert_allclose(x.reshape(3, -1).std(axis=1), 0, atol=1e-5)
    for interp in ("bilinear", "bicubic", "area", "nearest"):
        assert preprocess(_picture(), Preprocessing(interpolation=interp)).shape == (3, 256, 128)
    with pytest.raises(InputError, match="RGB uint8"):
        preprocess(np.zeros((4, 4), np.uint8), pp)


def test_preprocessing_dict_round_trip_and_validation():
    pp = Preprocessing(input_size=(224, 112), mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), interpolation="bicubic")
    d = json.loads(json.dumps(pp.to_dict()))
    assert d == {"input_size": [224, 112], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.5, 1.0], "interpolation": "bicubic"}
    assert Preprocessing.from_dict(d) == pp
    assert Preprocessing.from_dict({}) == Preprocessing()
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        Preprocessing.from_dict({"size": [1, 2]})
    with pytest.raises(ValueError, match="valid: area, bicubic, bilinear, nearest"):
        Preprocessing(interpolation="lanczos")
    with pytest.raises(ValueError, match="std"):
        Preprocessing(std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="input_size"):
        Preprocessing(input_size=(256,))


def test_preprocess_batch_raise_and_skip(tmp_path):
    pp = Preprocessing(input_size=(8, 4))
    a, b = _picture(seed=4), _picture(seed=5)
    path = tmp_path / "b.png"
    path.write_bytes(_png_bytes(b[:, :, ::-1]))
    missing = tmp_path / "missing.png"
    images = [a[:, :, ::-1], missing, path, np.zeros((1, 1), np.uint8)]

    with pytest.raises(InputError, match=r"images\[1\]") as info:
        preprocess_batch(images, pp)
    assert info.value.source == f"images[1] ({missing})"

    batch, ok, failures = preprocess_batch(images, pp, errors="skip")
    assert batch.shape == (2, 3, 8, 4) and batch.dtype == np.float32
    assert ok == [0, 2]
    assert [i for i, _ in failures] == [1, 3]
    assert all(isinstance(e, InputError) for _, e in failures)
    assert failures[1][1].source == "images[3] (numpy array)"
    np.testing.assert_array_equal(batch[0], preprocess(a, pp))
    np.testing.assert_array_equal(batch[1], preprocess(b, pp))

    stacked = np.stack([a, b])  # a 4-D array is a batch of RGB images here
    batch, ok, failures = preprocess_batch(stacked, pp, color="rgb")
    assert ok == [0, 1] and failures == []
    np.testing.assert_array_equal(batch[1], preprocess(b, pp))

    empty, ok, failures = preprocess_batch([], pp)
    assert empty.shape == (0, 3, 8, 4) and ok == [] and failures == []
    with pytest.raises(TypeError, match="wrap a single image in a list"):
        preprocess_batch(str(path), pp)
    with pytest.raises(TypeError, match="wrap a single image in a list"):
        preprocess_batch(a, pp)
    with pytest.raises(ValueError, match="errors"):
        preprocess_batch([a], pp, errors="ignore")
