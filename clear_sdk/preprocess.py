"""Image decoding and model preprocessing, shared by the runtime and by training.

The trainer imports :func:`load_image` and :func:`preprocess` from here, so training and the deployed
runtime turn a picture into the same tensor by construction (resize with OpenCV, scale to [0, 1],
normalise with the model's mean/std, HWC -> CHW). The settings travel with the model bundle as a
:class:`Preprocessing` (like timm's ``PretrainedCfg``), so nothing downstream guesses them.

Decoding rules (:func:`load_image`), chosen to match what ``cv2.imread`` does by default:

- files and encoded bytes are decoded by OpenCV with EXIF orientation applied;
- alpha is dropped (no compositing): a person crop's colours are kept as they are in the file;
- 16-bit images become 8-bit by ``>> 8`` (as OpenCV's ``IMREAD_COLOR`` converts them);
- grayscale becomes 3 equal channels;
- float arrays must hold values in [0, 1] and are mapped with ``round(x * 255)``;
- numpy arrays are BGR (OpenCV order) unless ``color="rgb"``; PIL images are always RGB, and are
  taken as they are (no EXIF transpose: apply ``PIL.ImageOps.exif_transpose`` first if needed).

Every unusable input raises :class:`~clear_sdk.errors.InputError` naming the input and the fix.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from clear_sdk.errors import InputError
from clear_sdk.paths import IMAGE_SUFFIXES

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "Preprocessing",
    "load_image",
    "preprocess",
    "preprocess_batch",
]

logger = logging.getLogger(__name__)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Interpolation names accepted by :class:`Preprocessing` and the OpenCV flag each maps to.
INTERPOLATIONS: dict[str, int] = {
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
}

# ANYCOLOR|ANYDEPTH keeps grayscale as 1 channel and 16-bit as uint16 (so the conversions below are
# ours and tested), drops alpha, and, unlike IMREAD_UNCHANGED, applies EXIF orientation as imread does.
_DECODE_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH
_MIN_SIDE = 2
#: Largest image decoded from a file or bytes: a 7680x4320 (8K) frame with room to spare. A header that
#: declares more is refused before decoding (a small PNG can declare 20000x20000 and take 2.5 GB).
MAX_IMAGE_PIXELS = 50_000_000
#: Largest image file read.
MAX_FILE_BYTES = 256 << 20
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Preprocessing:
    """How a model expects its input: size (H, W), normalisation and resize interpolation."""

    input_size: tuple[int, int] = (256, 128)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.input_size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"input_size must be two positive ints (H, W), got {self.input_size!r}")
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (R, G, B), got mean={self.mean!r} std={self.std!r}")
        if any(not np.isfinite(v) for v in mean) or any(not (np.isfinite(v) and v > 0) for v in std):
            raise ValueError(f"mean must be finite and std finite and > 0, got mean={mean} std={std}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"unknown interpolation {self.interpolation!r}; valid: {', '.join(sorted(INTERPOLATIONS))}"
            )
        # frozen dataclass: normalise lists (e.g. from JSON) to tuples of the right types
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in a bundle's manifest."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are an error."""
        known = {"input_size", "mean", "std", "interpolation"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing keys {unknown}; valid: {', '.join(sorted(known))}")
        return cls(**data)


# --------------------------------------------------------------------------------------------- decoding


def _describe(image: Any) -> str:
    """A short name for an input, used in error messages and InputError.source."""
    if isinstance(image, (str, os.PathLike)):
        return os.fsdecode(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"{type(image).__name__} ({memoryview(image).nbytes} bytes)"
    if isinstance(image, np.ndarray):
        return "numpy array"
    if _is_pil_image(image):
        return "PIL image"
    return type(image).__name__


def _is_pil_image(obj: Any) -> bool:
    # PIL is optional: an object can only be a PIL image if PIL.Image is already imported.
    pil_image = sys.modules.get("PIL.Image")
    return pil_image is not None and isinstance(obj, pil_image.Image)


def load_image(image: Any, color: Literal["bgr", "rgb"] = "bgr", source: str | None = None) -> np.ndarray:
    """Decode or convert one image to an RGB ``uint8`` array of shape (H, W, 3), C-contiguous.

    ``image`` is a path (str / PathLike), encoded bytes (bytes / bytearray / memoryview), a numpy
    array (H×W gray, H×W×1, H×W×3, H×W×4; uint8, uint16 or float in [0, 1]) in ``color`` channel
    order, or a PIL image (any mode; ``color`` is ignored). ``source`` overrides the name used in
    error messages. The result never shares memory with the input.
    """
    if color not in ("bgr", "rgb"):
        raise ValueError(f"color must be 'bgr' (OpenCV order) or 'rgb', got {color!r}")
    src = source if source is not None else _describe(image)
    if isinstance(image, (str, os.PathLike)):
        return _load_path(image, src)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode(bytes(image), src)
    if isinstance(image, np.ndarray):
        return _from_array(image, color, src)
    if _is_pil_image(image):
        return _from_pil(image, src)
    hint = ""
    if type(image).__module__.split(".")[0] == "torch":
        hint = " For a torch tensor [3, H, W], pass tensor.permute(1, 2, 0).cpu().numpy() with color='rgb'."
    raise InputError(
        f"{src}: unsupported image input of type {type(image).__name__}; pass a file path, encoded image bytes, "
        f"a numpy array (HxWx3 BGR, or RGB with color='rgb'; HxW grayscale) or a PIL image.{hint}",
        source=src,
    )


_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _not_regular(mode: int) -> str:
    return next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")


def _load_path(path: str | os.PathLike, src: str) -> np.ndarray:
    p = Path(os.fsdecode(path))
    if str(path).startswith(("http://", "https://")):
        raise InputError(f"{src}: URLs are not fetched; download the image and pass the local path", source=src)
    if not p.exists():
        raise InputError(f"{src}: file not found (relative paths resolve against {os.getcwd()})", source=src)
    if p.is_dir():
        raise InputError(f"{src}: is a directory, not an image file; pass the image files inside it", source=src)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses anything but a regular
        # file (a FIFO never ends, /dev/zero is endless zeros). Read with os.read, not cv2.imread, which
        # cannot open non-ASCII paths on Windows.
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise InputError(f"{src}: cannot open the file ({exc.strerror or exc})", source=src) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            target = f" (the link leads to {os.path.realpath(p)})" if p.is_symlink() else ""
            raise InputError(
                f"{src}: is {_not_regular(st.st_mode)}{target}, not an image file; pass a regular image file",
                source=src,
            )
        if st.st_size > MAX_FILE_BYTES:
            raise InputError(
                f"{src}: {st.st_size / 2**20:.0f} MiB is larger than any person crop or frame this reads "
                f"(limit {MAX_FILE_BYTES >> 20} MiB); resize or re-encode it",
                source=src,
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{src}: cannot read the file ({exc.strerror or exc})", source=src) from exc
    finally:
        os.close(fd)
    return _decode(data, src)


def _decode(data: bytes, src: str) -> np.ndarray:
    if len(data) == 0:
        raise InputError(f"{src}: empty file or buffer (0 bytes); it holds no image", source=src)
    _check_complete(data, src)
    _check_pixels(data, src)
    try:
        img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _DECODE_FLAGS)
    except cv2.error as exc:
        raise InputError(f"{src}: OpenCV could not decode the image ({str(exc).strip()})", source=src) from exc
    if img is None:
        if _looks_like_file_name(data):
            name = data.decode("utf-8", "backslashreplace")
            raise InputError(
                f"{src}: these bytes are a file name ({name!r}), not encoded image data; pass the path as a str "
                "(os.fsdecode(name)) or a pathlib.Path",
                source=src,
            )
        if _looks_like_text(data):
            raise InputError(f"{src}: is a text file, not an image; pass the image file itself", source=src)
        raise InputError(
            f"{src}: cannot decode the data as an image: not a format OpenCV reads (JPEG, PNG, BMP, TIFF, WebP, ...) "
            "or the file is corrupted",
            source=src,
        )
    if img.dtype not in (np.uint8, np.uint16):
        raise InputError(
            f"{src}: decoded to a {img.dtype} image (HDR/EXR?); only 8- and 16-bit images are supported, "
            "convert it to 8-bit PNG or JPEG first",
            source=src,
        )
    return _from_array(img, "bgr", src)


def _looks_like_file_name(data: bytes) -> bool:
    if len(data) > 4096 or b"\0" in data or b"\n" in data:
        return False
    name = os.fsdecode(data)
    return Path(name).suffix.lower() in IMAGE_SUFFIXES | {".gif"} or os.path.isfile(name)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of PNG, JPEG, BMP, GIF, WebP or TIFF data, without decoding; else None."""
    try:
        if data.startswith(_PNG_MAGIC) and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data.startswith(_JPEG_MAGIC):
            return _jpeg_size(data)
        if data.startswith(b"BM") and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            kind = data[12:16]
            if kind == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
            if kind == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            if kind == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _tiff_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 9 <= n and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            i += 2
            continue
        seg_len = (data[i + 2] << 8) | data[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + seg_len
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    e = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", data[4:8])
    (count,) = struct.unpack(e + "H", data[ifd : ifd + 2])
    found: dict[int, int] = {}
    for k in range(min(count, 512)):
        tag, typ, _, value = struct.unpack(e + "HHI4s", data[ifd + 2 + 12 * k : ifd + 14 + 12 * k])
        if tag in (256, 257):
            found[tag] = struct.unpack(e + ("H" if typ == 3 else "I"), value[: 2 if typ == 3 else 4])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _check_pixels(data: bytes, src: str) -> None:
    """Refuse, before decoding, an image whose header declares more than MAX_IMAGE_PIXELS pixels."""
    size = image_size(data)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        w, h = size
        raise InputError(
            f"{src}: {w}x{h} pixels ({w * h / 1e6:.0f} MP) is more than the {MAX_IMAGE_PIXELS / 1e6:.0f} MP limit "
            "for person crops and camera frames; crop or downscale it first "
            "(or raise clear_sdk.preprocess.MAX_IMAGE_PIXELS)",
            source=src,
        )


def _check_complete(data: bytes, src: str) -> None:
    """Reject truncated JPEG/PNG data, which OpenCV may otherwise decode into a partly grey image."""
    if data.startswith(_JPEG_MAGIC):
        if not _jpeg_has_eoi(data):
            raise InputError(
                f"{src}: truncated JPEG (no end-of-image marker after the image data); the file was cut short, "
                "re-copy or re-encode it",
                source=src,
            )
    elif data.startswith(_PNG_MAGIC):
        if data.rfind(b"IEND") == -1:
            raise InputError(
                f"{src}: truncated PNG (no IEND chunk); the file was cut short, re-copy or re-encode it", source=src
            )


def _jpeg_has_eoi(data: bytes) -> bool:
    """True when an EOI marker (FF D9) follows the first start-of-scan segment.

    The header segments are walked by their lengths so that the EOI of an embedded EXIF thumbnail
    does not count; inside entropy-coded data a literal FF is always stuffed as FF 00, so the first
    FF D9 after the scan header is a real marker. Trailing bytes after EOI are allowed.
    """
    n = len(data)
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return True  # malformed header: leave the verdict to the decoder
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            i += 2
            continue
        seg_len = (data[i + 2] << 8) | data[i + 3]
        if marker == 0xDA:  # start of scan: the compressed data follows
            return data.find(b"\xff\xd9", i + 2 + seg_len) != -1
        i += 2 + seg_len
    return False


def _looks_like_text(data: bytes) -> bool:
    head = data[:1024]
    if b"\x00" in head:
        return False
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        # a cut in the middle of a multi-byte character at the 1024-byte boundary
        try:
            decoded = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\r\n\t\f\v" for ch in decoded)


def _from_array(arr: np.ndarray, color: str, src: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        raise InputError(
            f"{src}: shape {arr.shape} looks channel-first (C, H, W); pass H x W x C, e.g. arr.transpose(1, 2, 0)",
            source=src,
        )
    if arr.ndim == 4:
        raise InputError(
            f"{src}: 4-D array {arr.shape} is a batch; pass one image per list item (or use preprocess_batch)",
            source=src,
        )
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise InputError(
            f"{src}: shape {arr.shape} is not an image; expected H x W (gray), H x W x 1, H x W x 3 or H x W x 4",
            source=src,
        )
    h, w = arr.shape[:2]
    if h < _MIN_SIDE or w < _MIN_SIDE:
        raise InputError(f"{src}: image is {h}x{w} pixels; at least {_MIN_SIDE}x{_MIN_SIDE} is needed", source=src)
    u8 = _to_uint8(arr, src)
    if u8.ndim == 2 or u8.shape[2] == 1:
        gray = u8.reshape(h, w)
        out = np.repeat(gray[:, :, None], 3, axis=2)
    elif color == "bgr":
        out = u8[:, :, 2::-1]  # BGR or BGRA -> RGB, alpha dropped
    else:
        out = u8[:, :, :3]
    out = np.ascontiguousarray(out)
    if np.may_share_memory(out, arr):
        out = out.copy()
    return out


def _to_uint8(arr: np.ndarray, src: str) -> np.ndarray:
    dt = arr.dtype
    if dt == np.uint8:
        return arr
    if dt == np.uint16 or (dt.kind == "u" and dt.itemsize == 2):
        return (arr.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    if dt.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{src}: float image contains NaN or infinity; clean or re-render it", source=src)
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise InputError(
                f"{src}: float image values span [{lo:g}, {hi:g}] but must lie in [0, 1]; "
                "divide 0-255 data by 255 or pass it as uint8",
                source=src,
            )
        return np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
    raise InputError(
        f"{src}: unsupported dtype {dt}; pass uint8 (0-255), uint16 (0-65535) or float in [0, 1]"
        + (" (a bool array is a mask, not an image)" if dt == np.bool_ else ""),
        source=src,
    )


def _from_pil(image: Any, src: str) -> np.ndarray:
    try:
        mode = image.mode
        if mode.startswith("I;16"):
            arr = np.asarray(image).astype(np.uint16)
        elif mode == "I":
            arr = np.asarray(image)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                raise InputError(f"{src}: 32-bit integer PIL image with values outside 0-65535", source=src)
            arr = arr.astype(np.uint16)
        elif mode in ("RGB", "L", "F"):
            arr = np.asarray(image)
        else:  # P, PA, RGBA, LA, 1, CMYK, YCbCr, ...: PIL's own conversion (drops alpha)
            arr = np.asarray(image.convert("RGB"))
    except InputError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # PIL loads lazily: truncated files fail here
        raise InputError(f"{src}: PIL could not load the image ({exc})", source=src) from exc
    return _from_array(arr, "rgb", src)


# ----------------------------------------------------------------------------------------- preprocessing


def preprocess(rgb: np.ndarray, pp: Preprocessing) -> np.ndarray:
    """Resize an RGB uint8 image to ``pp.input_size`` and normalise it: float32 [3, H, W].

    ``x = (resize(rgb) / 255 - mean) / std`` with OpenCV's resize (no antialiasing), exactly what
    training feeds the model.
    """
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
        desc = f"{type(rgb).__name__} {getattr(rgb, 'shape', '')} {getattr(rgb, 'dtype', '')}".strip()
        raise InputError(f"preprocess expects an RGB uint8 H x W x 3 array (see load_image), got {desc}")
    h, w = pp.input_size
    resized = cv2.resize(rgb, (w, h), interpolation=INTERPOLATIONS[pp.interpolation])
    x = resized.astype(np.float32)
    x /= np.float32(255.0)
    x -= np.asarray(pp.mean, dtype=np.float32)
    x /= np.asarray(pp.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess_batch(
    images: Sequence[Any] | np.ndarray | Iterable[Any],
    pp: Preprocessing,
    color: Literal["bgr", "rgb"] = "bgr",
    errors: Literal["raise", "skip"] = "raise",
) -> tuple[np.ndarray, list[int], list[tuple[int, InputError]]]:
    """Load and preprocess many images: (batch float32 [N, 3, H, W], ok_indices, failures).

    With ``errors="raise"`` the first bad input raises its InputError (source ``images[i] (...)``);
    with ``errors="skip"`` bad inputs are logged and reported in ``failures`` as (index, error), and
    the batch holds the good ones in input order, their positions in ``ok_indices``.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)) or _is_pil_image(images):
        raise TypeError("preprocess_batch takes a list of images; wrap a single image in a list")
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise TypeError(
                f"preprocess_batch takes a list of images or a 4-D array [N, H, W, C]; got an array of shape "
                f"{images.shape} (wrap a single image in a list)"
            )
        items: Sequence[Any] = images
    else:
        items = images if isinstance(images, Sequence) else list(images)
    h, w = pp.input_size
    out = np.empty((len(items), 3, h, w), dtype=np.float32)
    ok: list[int] = []
    failures: list[tuple[int, InputError]] = []
    for i in range(len(items)):
        item = items[i]
        src = f"images[{i}] ({_describe(item)})"
        try:
            out[len(ok)] = preprocess(load_image(item, color=color, source=src), pp)
        except InputError as exc:
            if errors == "raise":
                raise
            logger.warning("skipping %s", exc)
            failures.append((i, exc))
            continue
        ok.append(i)
    return out[: len(ok)], ok, failures
