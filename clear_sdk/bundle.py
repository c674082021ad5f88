"""Model bundles: the directory that ``clear-sdk export`` writes and the runtime reads (DESIGN §2).

A bundle is ``manifest.json`` plus the model files it lists. The manifest is the contract between
export and the runtime: attribute names and groups, per-attribute thresholds, preprocessing, sizes,
the description template and text encoder of the retrieval stage, the sha256 and size of every file,
the TensorRT engines built for it, and the versions that produced it. The runtime needs nothing else.
:class:`Manifest` is its typed form: export builds one and writes :meth:`Manifest.to_dict`, the
runtime reads it back with :meth:`Manifest.from_dict`. A file is named once (``models`` by role,
``engines``), and every name, under any key, must also be a ``files`` entry.

:meth:`Bundle.open` refuses, with a :class:`~clear_sdk.errors.BundleError` that names the file and
the fix, a bundle whose manifest is missing or unreadable, whose ``format_version`` is newer than this
code reads, whose files fail their size or sha256, whose entries name a path outside the bundle
(absolute, ``..``, or a symlink leading out), or whose attributes or input size differ from those of
the hashed checkpoint config. ``manifest.json`` itself is not hashed, so thresholds may be tuned by
editing it; the backends also compare it with the graphs (names in the ONNX metadata, shapes).
No torch: numpy, OpenCV (through preprocessing) and the standard library only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from clear_sdk.errors import BundleError
from clear_sdk.preprocess import Preprocessing
from clear_sdk.query import QUERY_ENCODINGS

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Bundle",
    "Dims",
    "EngineInfo",
    "EngineSpec",
    "FileEntry",
    "Manifest",
    "TextEncoderSpec",
    "engine_filename",
    "gpu_slug",
    "sha256_file",
]

logger = logging.getLogger(__name__)

#: Newest manifest format this code reads and the one the exporter writes. Migration notes, one per
#: version: a change that an older reader would misread bumps it, and :meth:`Manifest.from_dict` says
#: here how a bundle of each older version is read or why it is refused.
#: - 1: every bundle so far. Optional keys added within 1 (read as absent in older bundles):
#:   ``retrieval.query_form`` (absent: "hard+soft"), ``models.recognizer_int8_static``,
#:   ``onnx.int8_static``; ``model.config`` is left out when the bundle copies the checkpoint config.
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: ONNX metadata keys in which export records the attribute order and input size inside the graph itself.
ONNX_META_ATTRIBUTES = "clear_sdk.attributes"
ONNX_META_INPUT_SIZE = "clear_sdk.input_size"

#: Query forms of the retrieval stage (training's Table 6): the inputs the query graph reads.
QUERY_FORMS = ("hard+soft", "hard", "soft", "words")

#: Model-file roles a manifest's ``models`` table may name.
ROLES = (
    "recognizer", "recognizer_int8", "recognizer_int8_static", "query", "text", "tokenizer", "checkpoint",
    "checkpoint_config",
)  # fmt: skip

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
    calibration_images: int | None = None

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


def _bad(manifest: Path, what: str) -> BundleError:
    return BundleError(f"{manifest}: {what}; the manifest is damaged or hand-edited: re-export the bundle")


def _known_keys(data: Mapping[str, Any], known: tuple[str, ...], where: str, manifest: Path) -> None:
    """A key this format does not define is an error naming its path (a typo would otherwise be ignored)."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        path = ", ".join(f"{where}.{k}" if where else k for k in unknown)
        raise BundleError(
            f"{manifest}: unknown key {path} (format {FORMAT_VERSION} defines {', '.join(known)}); "
            "it was hand-edited or written by a newer clear-sdk: fix the key, upgrade clear-sdk, or re-export"
        )


def _typed(data: Mapping[str, Any], key: str, typ: type | tuple[type, ...], manifest: Path, default: Any = ...) -> Any:
    """``data[key]`` if it has type ``typ`` (bool is never an int here), else a BundleError naming the key."""
    if key not in data or data[key] is None:
        if default is not ...:
            return default
        raise _bad(manifest, f"'{key}' is missing")
    value = data[key]
    types = typ if isinstance(typ, tuple) else (typ,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise _bad(manifest, f"'{key}' is {type(value).__name__}, not {names}")
    return value


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """A file of the bundle with the size and sha256 it must have."""

    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class Dims:
    num_attrs: int
    feature_dim: int | None = None
    embed_dim: int | None = None
    soft_dim: int | None = None


@dataclasses.dataclass(frozen=True)
class TextEncoderSpec:
    """How to run the bundle's text encoder; its two files are ``models.text`` and ``models.tokenizer``.

    ``info`` keeps the rest of the export's record (model id, fingerprint, parity) for reports.
    """

    n_w: int
    pad_id: int | None = None
    pad_token: str | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self.info, "n_w": self.n_w, "pad_id": self.pad_id, "pad_token": self.pad_token}


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """A TensorRT engine as the manifest records it (``file`` and ``calibration_cache`` are bundle paths)."""

    file: str
    gpu: str
    tensorrt: str
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int
    calibration_cache: str | None = None
    calibration_images: int | None = None


#: Informational manifest keys: carried as they are, never used to find or run a file.
_INFO_KEYS = ("model", "dataset", "threshold_calibration", "onnx", "source_checkpoint", "producer")
_MANIFEST_KEYS = (
    "format_version", *_INFO_KEYS, "attributes", "groups", "thresholds", "preprocessing", "dims", "outputs",
    "retrieval", "models", "engines", "files",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Manifest:
    """The typed form of ``manifest.json``: what export writes (:meth:`to_dict`) and the runtime reads.

    Every file the bundle uses is named once, in ``models`` (by role) or ``engines``, and every
    name there must also be a key of ``files`` (size + sha256). :meth:`paths` lists them all, so
    :class:`Bundle` checks each one the same way: inside the bundle, present, right size and hash.
    """

    attributes: list[str]
    preprocessing: Preprocessing
    dims: Dims
    models: dict[str, str]
    files: dict[str, FileEntry]
    groups: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    outputs: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    description_template: dict[str, Any] | None = None
    text_encoder: TextEncoderSpec | None = None
    query_form: str | None = None  # None: "hard+soft", the form every bundle before query forms has
    query_encoding: str | None = None  # None: "binary" (clear_sdk.query.hard_input), as every earlier bundle
    engines: list[EngineSpec] = dataclasses.field(default_factory=list)
    format_version: int = FORMAT_VERSION
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def paths(self) -> list[tuple[str, str]]:
        """(manifest key, bundle-relative path) of every file the manifest names, under any key."""
        out = [(f"files[{n!r}]", n) for n in self.files]
        out += [(f"models.{role}", n) for role, n in self.models.items()]
        for i, e in enumerate(self.engines):
            out.append((f"engines[{i}].file", e.file))
            if e.calibration_cache is not None:
                out.append((f"engines[{i}].calibration_cache", e.calibration_cache))
        return out

    # ------------------------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        retrieval = None
        if self.dims.embed_dim is not None or self.description_template or self.text_encoder:
            retrieval = {
                "description_template": self.description_template,
                "text_encoder": None if self.text_encoder is None else self.text_encoder.to_dict(),
            }
            if self.query_form is not None:
                retrieval["query_form"] = self.query_form
            if self.query_encoding is not None:
                retrieval["query_encoding"] = self.query_encoding
        return {
            "format_version": self.format_version,
            **{k: self.info.get(k) for k in _INFO_KEYS if k in self.info},
            "attributes": list(self.attributes),
            "groups": {g: list(v) for g, v in self.groups.items()},
            "thresholds": {n: float(self.thresholds.get(n, 0.5)) for n in self.attributes},
            "preprocessing": self.preprocessing.to_dict(),
            "dims": dataclasses.asdict(self.dims),
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "retrieval": retrieval,
            "models": dict(self.models),
            "engines": [dataclasses.asdict(e) for e in self.engines],
            "files": {n: dataclasses.asdict(e) for n, e in sorted(self.files.items())},
        }

    # ------------------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, m: Mapping[str, Any], manifest: Path) -> Manifest:
        """Validate a parsed manifest; anything malformed is a BundleError that names the key."""
        mp = manifest
        version = m.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError(f"{mp}: format_version is {version!r}, not a positive integer; re-export the bundle")
        _known_keys(m, _MANIFEST_KEYS, "", mp)

        files: dict[str, FileEntry] = {}
        for name, entry in _typed(m, "files", dict, mp).items():
            ok = (
                isinstance(entry, dict)
                and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("size"), int)
                and not isinstance(entry.get("size"), bool)
                and entry["size"] >= 0
            )
            if not ok:
                raise BundleError(f"{mp}: entry for {name!r} needs 'sha256' and 'size'; re-export the bundle")
            files[name] = FileEntry(entry["sha256"], entry["size"])

        names = _typed(m, "attributes", list, mp)
        if not names or not all(isinstance(n, str) for n in names):
            raise BundleError(f"{mp}: 'attributes' must be a non-empty list of names; re-export the bundle")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise _bad(mp, f"'attributes' names {dup} more than once")
        groups = m.get("groups") or {}
        if not isinstance(groups, dict) or not all(
            isinstance(v, list) and all(isinstance(a, str) for a in v) for v in groups.values()
        ):
            raise BundleError(f"{mp}: 'groups' must map a group name to a list of attributes; re-export the bundle")
        unknown = sorted({a for v in groups.values() for a in v} - set(names))
        if unknown:
            raise BundleError(f"{mp}: groups name unknown attributes {unknown}; re-export the bundle")

        thr = m.get("thresholds")
        if thr is None:
            thr = {n: 0.5 for n in names}
        if not isinstance(thr, dict) or set(thr) != set(names):
            raise BundleError(f"{mp}: 'thresholds' must give one value per attribute; re-export the bundle")
        bad = {k: v for k, v in thr.items()
               if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1}  # fmt: skip
        if bad:  # NaN and inf fail 0 <= v <= 1 too
            raise BundleError(f"{mp}: 'thresholds' are probabilities in [0, 1], got {bad}; re-export the bundle")

        try:
            pp = Preprocessing.from_dict(_typed(m, "preprocessing", dict, mp))
        except (TypeError, ValueError) as e:
            raise BundleError(f"{mp}: invalid 'preprocessing' ({e}); re-export the bundle") from e

        d = _typed(m, "dims", dict, mp)
        _known_keys(d, tuple(f.name for f in dataclasses.fields(Dims)), "dims", mp)
        dims = Dims(
            num_attrs=_typed(d, "num_attrs", int, mp, None),
            feature_dim=_typed(d, "feature_dim", int, mp, None),
            embed_dim=_typed(d, "embed_dim", int, mp, None),
            soft_dim=_typed(d, "soft_dim", int, mp, None),
        )
        if dims.num_attrs != len(names):
            raise BundleError(f"{mp}: dims.num_attrs={dims.num_attrs} but {len(names)} attributes are named; re-export")
        for key in ("feature_dim", "embed_dim", "soft_dim"):
            if getattr(dims, key) is not None and getattr(dims, key) < 1:
                raise _bad(mp, f"dims.{key} is {getattr(dims, key)}")

        models = _typed(m, "models", dict, mp)
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
        if dims.embed_dim is not None and "query" not in models:
            raise BundleError(f"{mp}: dims.embed_dim is set but no 'query' model is listed; re-export the bundle")

        outputs = m.get("outputs") or {}
        if not isinstance(outputs, dict) or not all(
            isinstance(v, list) and all(isinstance(o, str) for o in v) for v in outputs.values()
        ):
            raise _bad(mp, "'outputs' must map a graph to a list of output names")

        retrieval = m.get("retrieval") or {}
        if not isinstance(retrieval, dict):
            raise _bad(mp, "'retrieval' is not an object")
        _known_keys(
            retrieval, ("description_template", "text_encoder", "query_form", "query_encoding"), "retrieval", mp
        )
        template = retrieval.get("description_template")
        if template is not None and not isinstance(template, dict):
            raise _bad(mp, "retrieval.description_template is not an object")
        text = cls._text_encoder(retrieval.get("text_encoder"), models, mp)
        query_form = _typed(retrieval, "query_form", str, mp, None)
        if query_form is not None and query_form not in QUERY_FORMS:
            raise BundleError(
                f"{mp}: retrieval.query_form {query_form!r} is not one of {', '.join(QUERY_FORMS)}; "
                "upgrade clear-sdk or re-export the bundle"
            )
        query_encoding = _typed(retrieval, "query_encoding", str, mp, None)
        if query_encoding is not None and query_encoding not in QUERY_ENCODINGS:
            raise BundleError(
                f"{mp}: retrieval.query_encoding {query_encoding!r} is not one of {', '.join(QUERY_ENCODINGS)}; "
                "upgrade clear-sdk or re-export the bundle"
            )

        engines = []
        raw_engines = m.get("engines") or []
        if not isinstance(raw_engines, list):
            raise _bad(mp, "'engines' is not a list")
        for e in raw_engines:
            try:
                spec = EngineSpec(
                    file=_typed(e, "file", str, mp),
                    gpu=str(e["gpu"]),
                    tensorrt=str(e["tensorrt"]),
                    precision=str(e["precision"]),
                    min_batch=int(e["min_batch"]),
                    opt_batch=int(e["opt_batch"]),
                    max_batch=int(e["max_batch"]),
                    calibration_cache=_typed(e, "calibration_cache", str, mp, None),
                    calibration_images=_typed(e, "calibration_images", int, mp, None),
                )
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise BundleError(f"{mp}: malformed engine entry {e!r} ({exc}); re-export the bundle") from exc
            for path in (spec.file, spec.calibration_cache):
                if path is not None and path not in files:
                    raise BundleError(f"{mp}: engine {path!r} has no sha256/size entry in 'files'; re-export")
            engines.append(spec)

        return cls(
            attributes=list(names),
            preprocessing=pp,
            dims=dims,
            models=dict(models),
            files=files,
            groups={g: list(v) for g, v in groups.items()},
            thresholds={n: float(thr[n]) for n in names},
            outputs={k: list(v) for k, v in outputs.items()},
            description_template=template,
            text_encoder=text,
            query_form=query_form,
            query_encoding=query_encoding,
            engines=engines,
            format_version=version,
            info={k: m[k] for k in _INFO_KEYS if k in m},
        )

    @staticmethod
    def _text_encoder(raw: Any, models: Mapping[str, str], mp: Path) -> TextEncoderSpec | None:
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise _bad(mp, "retrieval.text_encoder is not an object")
        for key, role in (("onnx", "text"), ("tokenizer", "tokenizer")):
            if role not in models:
                raise BundleError(
                    f"{mp}: retrieval.text_encoder is set but models.{role} is not listed, so its file would skip "
                    "the bundle checks; re-export the bundle with `clear-sdk export`"
                )
            # bundles before format 1.1 also named the files here; they must be the checked ones
            if key in raw and raw[key] != models[role]:
                raise BundleError(
                    f"{mp}: retrieval.text_encoder.{key} names {raw[key]!r} but models.{role} names "
                    f"{models[role]!r}; refusing a file that skips the bundle checks. Re-export the bundle"
                )
        n_w = _typed(raw, "n_w", int, mp)
        if n_w < 2:
            raise _bad(mp, f"retrieval.text_encoder.n_w is {n_w}")
        info = {k: v for k, v in raw.items() if k not in ("n_w", "pad_id", "pad_token", "onnx", "tokenizer")}
        return TextEncoderSpec(
            n_w=n_w,
            pad_id=_typed(raw, "pad_id", int, mp, None),
            pad_token=_typed(raw, "pad_token", str, mp, None),
            info=info,
        )


#: Largest manifest.json read: real ones are a few kB, so anything larger is not one.
_MAX_MANIFEST_BYTES = 16 << 20
_MAX_CONFIG_BYTES = 16 << 20


def _read_json(path: Path, what: str, limit: int) -> Any:
    """Parse a small JSON file; damage of any kind (size, encoding, syntax, nesting) is one BundleError."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise BundleError(f"{path} is {size} bytes, too large for a {what}; the bundle is damaged: re-export it")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{path} is not readable JSON ({e}); the bundle is damaged: re-export it") from e
    except RecursionError as e:
        raise BundleError(f"{path} is nested too deeply to be a {what}; the bundle is damaged: re-export it") from e


class Bundle:
    """An opened, verified model bundle. Use :meth:`open`; the object is read-only after that."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self._manifest_path = path / MANIFEST_NAME
        self.spec: Manifest = Manifest.from_dict(manifest, self._manifest_path)
        self._parse()

    # ------------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str] | Bundle, verify: bool = True) -> Bundle:
        """Read ``path/manifest.json`` and check every file it names (size and, with ``verify``, sha256)."""
        if isinstance(path, Bundle):
            return path
        root = Path(os.fspath(path)).expanduser()
        if root.is_file() and root.name == MANIFEST_NAME:
            root = root.parent
        if not root.exists():
            from clear_sdk.models import list_shipped, shipped_path

            shipped = shipped_path(os.fspath(path))
            if shipped is None:
                names = ", ".join(["default", *list_shipped()]) if list_shipped() else "none in this install"
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
        manifest = _read_json(mpath, "manifest", _MAX_MANIFEST_BYTES)
        if not isinstance(manifest, dict):
            raise BundleError(f"{mpath} does not hold a JSON object; the bundle is damaged: re-export it")
        version = manifest.get("format_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
            from clear_sdk import __version__

            raise BundleError(
                f"{mpath}: bundle format_version {version} is newer than this clear-sdk ({__version__}) reads "
                f"(up to {FORMAT_VERSION}); upgrade clear-sdk (pip install -U clear-sdk) or re-export the "
                "bundle with this version"
            )
        bundle = cls(root, manifest)
        bundle.check_files(verify_hashes=verify)
        bundle._check_checkpoint_config()
        return bundle

    def check_files(self, verify_hashes: bool = True) -> None:
        """Every file the manifest names exists inside the bundle with its recorded size (and sha256)."""
        for _key, name in self.spec.paths():
            p = _safe_relative(self.path, name, self._manifest_path)
            entry = self.spec.files[name]
            if not p.is_file():
                raise BundleError(
                    f"{p}: listed in {MANIFEST_NAME} but missing; copy the whole bundle folder or re-export the bundle"
                )
            size = p.stat().st_size
            if size != entry.size:
                raise BundleError(
                    f"{p}: {size} bytes but {MANIFEST_NAME} records {entry.size}: the file was truncated or "
                    "changed; re-export the bundle"
                )
        if verify_hashes:
            for name, entry in self.spec.files.items():
                p = self.path / name
                if sha256_file(p) != entry.sha256:
                    raise BundleError(
                        f"{p}: sha256 differs from the one in {MANIFEST_NAME}: the file was changed or corrupted; "
                        "re-export the bundle"
                    )

    def _check_checkpoint_config(self) -> None:
        """The manifest's attributes and input size agree with the hashed checkpoint config, when there is one.

        ``manifest.json`` is not hashed (thresholds may be tuned by hand), so an edit that renames,
        drops or swaps attributes would otherwise mislabel every prediction.
        """
        path = self.model_path("checkpoint_config")
        if path is None:
            return
        data = _read_json(path, "checkpoint config", _MAX_CONFIG_BYTES)
        cfg = data.get("model") if isinstance(data, dict) else None
        if not isinstance(cfg, dict):
            return  # an older or foreign config: nothing recorded to compare against
        names = cfg.get("attribute_names")
        if isinstance(names, list) and names != self.attribute_names:
            diff = next(
                (
                    f"position {i}: manifest {a!r}, checkpoint {b!r}"
                    for i, (a, b) in enumerate(zip(self.attribute_names, names))
                    if a != b
                ),
                f"manifest names {len(self.attribute_names)}, checkpoint {len(names)}",
            )
            raise BundleError(
                f"{self._manifest_path}: 'attributes' differ from the model's (hashed) checkpoint config ({diff}); "
                "the manifest was edited, and predictions would be mislabelled: re-export the bundle"
            )
        size = cfg.get("img_size")
        if isinstance(size, list) and len(size) == 2 and tuple(size) != tuple(self.preprocessing.input_size):
            raise BundleError(
                f"{self._manifest_path}: preprocessing.input_size {list(self.preprocessing.input_size)} differs from "
                f"the model's input size {size} in its checkpoint config; re-export the bundle"
            )

    # ------------------------------------------------------------------------------------ parsing
    def _parse(self) -> None:
        spec = self.spec
        for _key, name in spec.paths():
            _safe_relative(self.path, name, self._manifest_path)
        self.files: dict[str, dict[str, Any]] = {n: dataclasses.asdict(e) for n, e in spec.files.items()}
        self.attribute_names: list[str] = list(spec.attributes)
        self.groups: dict[str, list[str]] = {g: list(v) for g, v in spec.groups.items()}
        self.thresholds: dict[str, float] = dict(spec.thresholds)
        self.preprocessing = spec.preprocessing
        self.num_attrs: int = len(spec.attributes)
        self.embed_dim: int | None = spec.dims.embed_dim
        self.soft_dim: int | None = spec.dims.soft_dim
        self._models: dict[str, str] = dict(spec.models)
        model = spec.info.get("model") or {}
        model = model if isinstance(model, dict) else {}
        self.model_name: str = str(model.get("name", "unknown"))
        #: the attribute schema of the outputs ("peta", "unified", ...; None when the manifest does not say)
        self.dataset: str | None = spec.info.get("dataset") if isinstance(spec.info.get("dataset"), str) else None
        self.variant: str | None = model.get("variant")
        self.description_template: dict[str, Any] | None = spec.description_template
        self.text_encoder_spec: TextEncoderSpec | None = spec.text_encoder
        self.text_encoder: dict[str, Any] | None = None if spec.text_encoder is None else spec.text_encoder.to_dict()
        self.query_form: str = spec.query_form or "hard+soft"
        self.query_encoding: str = spec.query_encoding or "binary"
        self.outputs: list[str] = list(spec.outputs.get("recognizer", ["probs", "embedding"]))
        self.engines: list[EngineInfo] = [
            EngineInfo(path=self.path / e.file, **dataclasses.asdict(e)) for e in spec.engines
        ]

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
