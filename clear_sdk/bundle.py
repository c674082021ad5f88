"""Model bundles: the directory that ``clear-sdk export`` writes and the runtime reads (DESIGN §2).

A bundle is ``manifest.json`` plus the model files it lists. The manifest is the contract between
export and the runtime: attribute names and groups, per-attribute thresholds, preprocessing, sizes,
the description template and text encoder of the retrieval stage, the sha256 and size of every file,
the TensorRT engines built for it, and the versions that produced it. The runtime needs nothing else.

:meth:`Bundle.open` refuses, with a :class:`~clear_sdk.errors.BundleError` that names the file and
the fix, a bundle whose manifest is missing or unreadable, whose ``format_version`` is newer than this
code reads, whose files fail their size or sha256, or whose entries name a path outside the bundle
(absolute, ``..``, or a symlink leading out). ``manifest.json`` itself is not hashed, so thresholds may be
tuned by editing it. No torch: numpy, OpenCV (through preprocessing) and the standard library only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from clear_sdk.errors import BundleError
from clear_sdk.preprocess import Preprocessing

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Bundle",
    "EngineInfo",
    "engine_filename",
    "gpu_slug",
    "sha256_file",
]

logger = logging.getLogger(__name__)

#: Newest manifest format this code reads and the one the exporter writes.
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

#: Model-file roles a manifest's ``models`` table may name.
ROLES = ("recognizer", "recognizer_int8", "query", "text", "tokenizer", "checkpoint", "checkpoint_config")

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so that large graphs never sit in memory twice."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def gpu_slug(gpu_name: str) -> str:
    """A file-name-safe form of a GPU model name: ``"NVIDIA H100 80GB HBM3"`` -> ``"nvidia-h100-80gb-hbm3"``."""
    slug = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-")
    return slug or "unknown-gpu"


def engine_filename(gpu_name: str, trt_version: str, precision: str) -> str:
    """``recognizer.<gpu-slug>.trt<version>.<precision>.plan``: engines only run where they were built."""
    return f"recognizer.{gpu_slug(gpu_name)}.trt{trt_version}.{precision}.plan"


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    """One TensorRT engine of the bundle; it runs only on ``gpu`` with TensorRT ``tensorrt``."""

    file: str
    path: Path
    gpu: str
    tensorrt: str
    precision: str  # fp32 | fp16 | int8
    min_batch: int
    opt_batch: int
    max_batch: int
    calibration_cache: str | None = None

    def matches(self, gpu_name: str, trt_version: str) -> bool:
        return gpu_slug(self.gpu) == gpu_slug(gpu_name) and self.tensorrt == trt_version


def _safe_relative(root: Path, name: Any, manifest: Path) -> Path:
    """The path of a manifest file entry, refusing anything that would leave the bundle directory."""
    if not isinstance(name, str) or not name.strip():
        raise BundleError(f"{manifest}: file entry {name!r} is not a relative path; re-export the bundle")
    reason = None
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        reason = "it is an absolute path"
    elif "\\" in name:
        reason = "it contains a backslash; entries are POSIX paths relative to the bundle"
    elif ".." in posix.parts:
        reason = "it contains '..'"
    if reason is None:
        resolved = (root / name).resolve()
        try:
            resolved.relative_to(root.resolve())
        except ValueError:
            reason = f"it resolves to {resolved} (a symlink leading out of the bundle)"
    if reason is not None:
        raise BundleError(
            f"{manifest}: file entry {name!r} points outside the bundle ({reason}); refusing to open it. "
            "Re-export the bundle with `clear-sdk export`."
        )
    return root / name


class Bundle:
    """An opened, verified model bundle. Use :meth:`open`; the object is read-only after that."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self._manifest_path = path / MANIFEST_NAME
        self._parse()

    # ------------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str] | Bundle, verify: bool = True) -> Bundle:
        """Read ``path/manifest.json`` and check every file it lists (size and, with ``verify``, sha256)."""
        if isinstance(path, Bundle):
            return path
        root = Path(os.fspath(path)).expanduser()
        if root.is_file() and root.name == MANIFEST_NAME:
            root = root.parent
        if not root.exists():
            from clear_sdk.models import list_shipped, shipped_path

            shipped = shipped_path(os.fspath(path))
            if shipped is None:
                names = ", ".join(list_shipped()) or "none in this install"
                raise BundleError(
                    f"bundle not found: {root}; pass the folder written by `clear-sdk export ... --out DIR` "
                    f"or the name of a shipped model ({names})"
                )
            root = shipped
        if not root.is_dir():
            raise BundleError(f"{root} is a file, not a bundle folder; pass the folder that holds {MANIFEST_NAME}")
        mpath = root / MANIFEST_NAME
        if not mpath.is_file():
            raise BundleError(
                f"{mpath} is missing: {root} is not a clear-sdk bundle. "
                "Export one with `clear-sdk export CHECKPOINT --out DIR`."
            )
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BundleError(f"{mpath} is not readable JSON ({e}); the bundle is damaged: re-export it") from e
        if not isinstance(manifest, dict):
            raise BundleError(f"{mpath} does not hold a JSON object; the bundle is damaged: re-export it")
        version = manifest.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError(f"{mpath}: format_version is {version!r}, not a positive integer; re-export the bundle")
        if version > FORMAT_VERSION:
            from clear_sdk import __version__

            raise BundleError(
                f"{mpath}: bundle format_version {version} is newer than this clear-sdk ({__version__}) reads "
                f"(up to {FORMAT_VERSION}); upgrade clear-sdk (pip install -U clear-sdk) or re-export the "
                "bundle with this version"
            )
        bundle = cls(root, manifest)
        bundle.check_files(verify_hashes=verify)
        return bundle

    def check_files(self, verify_hashes: bool = True) -> None:
        """Every listed file exists inside the bundle with its recorded size (and sha256)."""
        for name, entry in self.files.items():
            p = _safe_relative(self.path, name, self._manifest_path)
            if not p.is_file():
                raise BundleError(
                    f"{p}: listed in {MANIFEST_NAME} but missing; copy the whole bundle folder or re-export the bundle"
                )
            size = p.stat().st_size
            if size != entry["size"]:
                raise BundleError(
                    f"{p}: {size} bytes but {MANIFEST_NAME} records {entry['size']}: the file was truncated or "
                    "changed; re-export the bundle"
                )
            if verify_hashes and sha256_file(p) != entry["sha256"]:
                raise BundleError(
                    f"{p}: sha256 differs from the one in {MANIFEST_NAME}: the file was changed or corrupted; "
                    "re-export the bundle"
                )

    # ------------------------------------------------------------------------------------ parsing
    def _need(self, key: str, typ: type | tuple[type, ...]) -> Any:
        value = self.manifest.get(key)
        if not isinstance(value, typ):
            raise BundleError(
                f"{self._manifest_path}: '{key}' is missing or not a {getattr(typ, '__name__', typ)}; "
                "the manifest is damaged or hand-edited: re-export the bundle"
            )
        return value

    def _parse(self) -> None:
        m, mp = self.manifest, self._manifest_path
        files = self._need("files", dict)
        for name, entry in files.items():
            _safe_relative(self.path, name, mp)
            ok = (
                isinstance(entry, dict)
                and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("size"), int)
                and entry["size"] >= 0
            )
            if not ok:
                raise BundleError(f"{mp}: entry for {name!r} needs 'sha256' and 'size'; re-export the bundle")
        self.files: dict[str, dict[str, Any]] = files

        names = self._need("attributes", list)
        if not names or not all(isinstance(n, str) for n in names):
            raise BundleError(f"{mp}: 'attributes' must be a non-empty list of names; re-export the bundle")
        self.attribute_names: list[str] = list(names)
        groups = m.get("groups") or {}
        if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
            raise BundleError(f"{mp}: 'groups' must map a group name to a list of attributes; re-export the bundle")
        unknown = sorted({a for v in groups.values() for a in v} - set(names))
        if unknown:
            raise BundleError(f"{mp}: groups name unknown attributes {unknown}; re-export the bundle")
        self.groups: dict[str, list[str]] = {g: list(v) for g, v in groups.items()}

        thr = m.get("thresholds")
        if thr is None:
            thr = {n: 0.5 for n in names}
        if not isinstance(thr, dict) or set(thr) != set(names):
            raise BundleError(f"{mp}: 'thresholds' must give one value per attribute; re-export the bundle")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in thr.values()):
            raise BundleError(f"{mp}: 'thresholds' must be finite numbers; re-export the bundle")
        self.thresholds: dict[str, float] = {n: float(thr[n]) for n in names}

        try:
            self.preprocessing = Preprocessing.from_dict(self._need("preprocessing", dict))
        except (TypeError, ValueError) as e:
            raise BundleError(f"{mp}: invalid 'preprocessing' ({e}); re-export the bundle") from e

        dims = self._need("dims", dict)
        if dims.get("num_attrs") != len(names):
            raise BundleError(
                f"{mp}: dims.num_attrs={dims.get('num_attrs')} but {len(names)} attributes are named; re-export"
            )
        self.num_attrs: int = len(names)
        self.embed_dim: int | None = dims.get("embed_dim")
        self.soft_dim: int | None = dims.get("soft_dim")

        models = self._need("models", dict)
        unknown_roles = sorted(set(models) - set(ROLES))
        if unknown_roles:
            raise BundleError(f"{mp}: unknown model roles {unknown_roles}; this clear-sdk knows {', '.join(ROLES)}")
        for role, name in models.items():
            if name not in files:
                raise BundleError(
                    f"{mp}: models.{role} names {name!r}, which has no sha256/size entry in 'files'; re-export"
                )
        if "recognizer" not in models:
            raise BundleError(f"{mp}: no 'recognizer' model listed; re-export the bundle")
        self._models: dict[str, str] = dict(models)
        if self.embed_dim is not None and "query" not in models:
            raise BundleError(f"{mp}: dims.embed_dim is set but no 'query' model is listed; re-export the bundle")

        model = m.get("model") or {}
        self.model_name: str = str(model.get("name", "unknown"))
        self.variant: str | None = model.get("variant")
        retrieval = m.get("retrieval") or {}
        self.description_template: dict[str, Any] | None = retrieval.get("description_template")
        self.text_encoder: dict[str, Any] | None = retrieval.get("text_encoder")
        self.outputs: list[str] = list(m.get("outputs", {}).get("recognizer", ["probs", "embedding"]))

        engines = []
        for e in m.get("engines", []) or []:
            try:
                if e["file"] not in files:
                    raise BundleError(f"{mp}: engine {e['file']!r} has no sha256/size entry in 'files'; re-export")
                engines.append(
                    EngineInfo(
                        file=e["file"],
                        path=self.path / e["file"],
                        gpu=str(e["gpu"]),
                        tensorrt=str(e["tensorrt"]),
                        precision=str(e["precision"]),
                        min_batch=int(e["min_batch"]),
                        opt_batch=int(e["opt_batch"]),
                        max_batch=int(e["max_batch"]),
                        calibration_cache=e.get("calibration_cache"),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise BundleError(f"{mp}: malformed engine entry {e!r} ({exc}); re-export the bundle") from exc
        self.engines: list[EngineInfo] = engines

    # ------------------------------------------------------------------------------------ access
    @property
    def has_retrieval(self) -> bool:
        """True when the bundle carries the retrieval stage (image embeddings and query.onnx)."""
        return self.embed_dim is not None

    def model_path(self, role: str) -> Path | None:
        """Path of a model file by role (``recognizer``, ``query``, ``text``, ``tokenizer``, ``checkpoint``)."""
        if role not in ROLES:
            raise KeyError(f"unknown model role {role!r}; valid: {', '.join(ROLES)}")
        name = self._models.get(role)
        return None if name is None else self.path / name

    @property
    def recognizer_path(self) -> Path:
        return self.path / self._models["recognizer"]

    @property
    def recognizer_int8_path(self) -> Path | None:
        """The dynamic-int8 CPU graph (``export --cpu-int8``), or None."""
        return self.model_path("recognizer_int8")

    @property
    def query_path(self) -> Path | None:
        return self.model_path("query")

    @property
    def text_model_path(self) -> Path | None:
        return self.model_path("text")

    @property
    def tokenizer_path(self) -> Path | None:
        return self.model_path("tokenizer")

    @property
    def checkpoint_path(self) -> Path | None:
        return self.model_path("checkpoint")

    def threshold_vector(self) -> list[float]:
        """Thresholds in attribute order (a prediction is positive when ``prob > threshold``)."""
        return [self.thresholds[n] for n in self.attribute_names]

    def summary(self) -> dict[str, Any]:
        """A short JSON-ready description (for ``clear-sdk info BUNDLE``)."""
        return {
            "path": str(self.path),
            "format_version": self.manifest["format_version"],
            "model": self.model_name,
            "variant": self.variant,
            "dataset": self.manifest.get("dataset"),
            "num_attrs": self.num_attrs,
            "embed_dim": self.embed_dim,
            "input_size": list(self.preprocessing.input_size),
            "models": dict(self._models),
            "engines": [dataclasses.asdict(e) | {"path": str(e.path)} for e in self.engines],
            "producer": self.manifest.get("producer", {}),
        }

    def __repr__(self) -> str:
        return (
            f"Bundle({str(self.path)!r}, model={self.model_name!r}, attributes={self.num_attrs}, "
            f"embed_dim={self.embed_dim})"
        )
