"""Model bundles: the directory that ``clear-sdk export`` writes and the runtime reads (DESIGN §2).

A bundle is ``manifest.json`` plus the model files it lists. The manifest is the contract between
export and the runtime: attribute names and groups, per-attribute thresholds, preprocessing, sizes,
the description template and text encoder of the retrieval stage, the sha256 and size of every file,
the TensorRT engines built for it, and the versions that produced it. The runtime needs nothing else.
:class:`Manifest` is its one typed form, a pydantic model (strict types, unknown keys refused): export
builds one and writes :meth:`Manifest.to_dict`, the runtime reads it back with :meth:`Manifest.from_dict`
and :class:`Bundle` exposes it as ``bundle.manifest`` (its other attributes read it). A file is named once
(``models`` by role, ``engines``), and every name, under any key, must also be a ``files`` entry.

:meth:`Bundle.open` refuses, with a :class:`~clear_sdk.errors.BundleError` that names the file and
the fix, a bundle whose manifest is missing or unreadable, whose ``format_version`` is newer than this
code reads, whose files fail their size or sha256, whose entries name a path outside the bundle
(absolute, ``..``, or a symlink leading out), or whose attributes or input size differ from those of
the hashed checkpoint config. ``manifest.json`` itself is not hashed, so thresholds may be tuned by
editing it; the backends also compare it with the graphs (names in the ONNX metadata, shapes).
No torch: numpy, OpenCV (through preprocessing), pydantic and the standard library only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from clear_sdk.errors import BundleError
from clear_sdk.preprocess import Preprocessing
from clear_sdk.query import DEFAULT_QUERY_FORM, QUERY_ENCODINGS, QUERY_FORMS

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "Bundle",
    "Dims",
    "EngineInfo",
    "EngineSpec",
    "FileEntry",
    "Manifest",
    "Retrieval",
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


class _Model(BaseModel):
    """A manifest section: every key typed (no int where a str belongs, no bool for an int), none unknown."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)  # built on first use


PositiveInt = Annotated[int, Field(ge=1)]


class FileEntry(_Model):
    """A file of the bundle with the size and sha256 it must have."""

    sha256: str
    size: Annotated[int, Field(ge=0)]


class Dims(_Model):
    num_attrs: int
    feature_dim: PositiveInt | None = None
    embed_dim: PositiveInt | None = None
    soft_dim: PositiveInt | None = None


class TextEncoderSpec(_Model):
    """How to run the bundle's text encoder; its two files are ``models.text`` and ``models.tokenizer``.

    The rest of the export's record (model id, fingerprint, parity, ...) is kept as extra keys (:attr:`info`)
    for reports. Bundles before format 1.1 also named the two files here (``onnx``, ``tokenizer``): read,
    checked against ``models``, never written.
    """

    model_config = ConfigDict(extra="allow")

    n_w: Annotated[int, Field(ge=2)]
    pad_id: int | None = None
    pad_token: str | None = None
    onnx: str | None = Field(default=None, exclude=True)
    tokenizer: str | None = Field(default=None, exclude=True)

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Retrieval(_Model):
    """The retrieval stage: how a query is described and encoded (absent keys: what every earlier bundle did)."""

    description_template: dict[str, Any] | None = None
    text_encoder: TextEncoderSpec | None = None
    # older readers know only HA+SP and binary queries, so the keys are written only when they differ
    query_form: Literal[QUERY_FORMS] | None = Field(default=None, exclude_if=lambda v: v is None)
    query_encoding: Literal[QUERY_ENCODINGS] | None = Field(default=None, exclude_if=lambda v: v is None)


class EngineSpec(_Model):
    """A TensorRT engine as the manifest records it (``file`` and ``calibration_cache`` are bundle paths)."""

    file: str
    gpu: str
    tensorrt: str
    precision: Literal["fp32", "fp16", "int8"]
    min_batch: PositiveInt
    opt_batch: PositiveInt
    max_batch: PositiveInt
    calibration_cache: str | None = None
    calibration_images: int | None = None

    def matches(self, gpu_name: str, trt_version: str) -> bool:
        """Engines run only on the GPU model and TensorRT version that built them."""
        return gpu_slug(self.gpu) == gpu_slug(gpu_name) and self.tensorrt == trt_version


class EngineInfo(EngineSpec):
    """An engine of an opened bundle: the manifest's entry and where its file is."""

    path: Path = Field(exclude=True)


def _preprocessing(value: Any) -> Preprocessing:
    if isinstance(value, Preprocessing):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"'preprocessing' is {type(value).__name__}, not an object; re-export the bundle")
    try:
        return Preprocessing.from_dict(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"invalid 'preprocessing' ({e}); re-export the bundle") from e


_Preprocessing = Annotated[
    Preprocessing, PlainValidator(_preprocessing), PlainSerializer(lambda p: p.to_dict(), return_type=dict)
]
_Info = Annotated[Any, Field(default=None)]
#: Informational manifest keys: carried as they are, never used to find or run a file.
_INFO_KEYS = ("model", "dataset", "threshold_calibration", "onnx", "source_checkpoint", "producer")


class Manifest(_Model):
    """``manifest.json``, typed: what export writes (:meth:`to_dict`) and the runtime reads (:meth:`from_dict`).

    Every file the bundle uses is named once, in ``models`` (by role) or ``engines``, and every
    name there must also be a key of ``files`` (size + sha256). :meth:`paths` lists them all, so
    :class:`Bundle` checks each one the same way: inside the bundle, present, right size and hash.
    The keys of ``_INFO_KEYS`` are informational: carried as they are, never used to find or run a file.
    """

    format_version: PositiveInt = FORMAT_VERSION
    model: _Info
    dataset: _Info
    threshold_calibration: _Info
    onnx: _Info
    source_checkpoint: _Info
    producer: _Info
    attributes: Annotated[list[str], Field(min_length=1)]
    groups: dict[str, list[str]] = {}
    thresholds: dict[str, float] = {}
    preprocessing: _Preprocessing
    dims: Dims
    outputs: dict[str, list[str]] = {}
    retrieval: Retrieval | None = None
    models: dict[Literal[ROLES], str]
    engines: list[EngineSpec] = []
    files: dict[str, FileEntry]

    @model_validator(mode="before")
    @classmethod
    def _absent_as_default(cls, data: Any) -> Any:
        """``null`` groups, outputs or engines read as none; no thresholds, as 0.5 for every attribute."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if not (v is None and k in ("groups", "outputs", "engines"))}
        if data.get("thresholds") is None and isinstance(data.get("attributes"), list):
            data["thresholds"] = {n: 0.5 for n in data["attributes"] if isinstance(n, str)}
        return data

    @field_validator("attributes")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"'attributes' names {dup} more than once; re-export the bundle")
        return names

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, thresholds: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in thresholds.items() if not 0 <= v <= 1}  # NaN and inf fail too
        if bad:
            raise ValueError(f"'thresholds' are probabilities in [0, 1], got {bad}; re-export the bundle")
        return thresholds

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        names = self.attributes
        unknown = sorted({a for v in self.groups.values() for a in v} - set(names))
        if unknown:
            raise ValueError(f"groups name unknown attributes {unknown}; re-export the bundle")
        if set(self.thresholds) != set(names):
            raise ValueError("'thresholds' must give one value per attribute; re-export the bundle")
        if self.dims.num_attrs != len(names):
            raise ValueError(f"dims.num_attrs={self.dims.num_attrs} but {len(names)} attributes are named; re-export")
        for role, name in self.models.items():
            if name not in self.files:
                raise ValueError(f"models.{role} names {name!r}, which has no sha256/size entry in 'files'; re-export")
        if "recognizer" not in self.models:
            raise ValueError("no 'recognizer' model listed; re-export the bundle")
        if self.dims.embed_dim is not None and "query" not in self.models:
            raise ValueError("dims.embed_dim is set but no 'query' model is listed; re-export the bundle")
        self._check_text_encoder()
        for e in self.engines:
            for path in (e.file, e.calibration_cache):
                if path is not None and path not in self.files:
                    raise ValueError(f"engine {path!r} has no sha256/size entry in 'files'; re-export")
        return self

    def _check_text_encoder(self) -> None:
        """The text encoder's files are models.text and models.tokenizer, so that Bundle checks them."""
        text = self.retrieval.text_encoder if self.retrieval is not None else None
        if text is None:
            return
        for key, role in (("onnx", "text"), ("tokenizer", "tokenizer")):
            if role not in self.models:
                raise ValueError(
                    f"retrieval.text_encoder is set but models.{role} is not listed, so its file would skip "
                    "the bundle checks; re-export the bundle with `clear-sdk export`"
                )
            named = getattr(text, key)
            if named is not None and named != self.models[role]:
                raise ValueError(
                    f"retrieval.text_encoder.{key} names {named!r} but models.{role} names {self.models[role]!r}; "
                    "refusing a file that skips the bundle checks. Re-export the bundle"
                )

    def paths(self) -> list[tuple[str, str]]:
        """(manifest key, bundle-relative path) of every file the manifest names, under any key."""
        out = [(f"files[{n!r}]", n) for n in self.files]
        out += [(f"models.{role}", n) for role, n in self.models.items()]
        for i, e in enumerate(self.engines):
            out.append((f"engines[{i}].file", e.file))
            if e.calibration_cache is not None:
                out.append((f"engines[{i}].calibration_cache", e.calibration_cache))
        return out

    @property
    def info(self) -> dict[str, Any]:
        """The informational keys the manifest has."""
        return {k: getattr(self, k) for k in _INFO_KEYS if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready manifest (thresholds in attribute order, files sorted)."""
        out = self.model_dump(mode="json")
        out["thresholds"] = {n: float(self.thresholds[n]) for n in self.attributes}
        out["files"] = dict(sorted(out["files"].items()))
        return out

    @classmethod
    def from_dict(cls, m: Mapping[str, Any], manifest: Path) -> Manifest:
        """Validate a parsed manifest; anything malformed is one BundleError that names the key and the fix."""
        try:
            return cls.model_validate(m)
        except ValidationError as e:
            raise _manifest_error(e, manifest) from None


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The manifest section a field holds (through ``list[...]``, ``dict[..., ...]``, ``... | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _manifest_error(error: ValidationError, manifest: Path) -> BundleError:
    """The first problem pydantic found, as one line naming the key (``dims.embed_dim``) and the fix."""
    e = error.errors()[0]
    loc, section, key = e["loc"], Manifest, ""
    for i, part in enumerate(loc):
        if part == "[key]":  # pydantic's marker for a dict key (the key itself comes before it)
            continue
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if part.isidentifier() else f"[{part!r}]")
        field = section.model_fields.get(part) if isinstance(part, str) else None
        if field is not None and i < len(loc) - 1:
            section = _submodel(field.annotation) or section
    key = key.lstrip(".")
    if e["type"] == "extra_forbidden":
        return BundleError(
            f"{manifest}: unknown key {key} (format {FORMAT_VERSION} defines {', '.join(section.model_fields)}); "
            "it was hand-edited or written by a newer clear-sdk: fix the key, upgrade clear-sdk, or re-export"
        )
    if e["type"] == "value_error":
        return BundleError(f"{manifest}: {e['ctx']['error']}")
    if e["type"] == "literal_error":
        return BundleError(
            f"{manifest}: {key} {e['input']!r} is not one of {e['ctx']['expected']}; "
            "upgrade clear-sdk or re-export the bundle"
        )
    what = "is missing" if e["type"] == "missing" else f"is {e['input']!r}: {e['msg'].lower()}"
    return BundleError(f"{manifest}: {key} {what}; the manifest is damaged or hand-edited: re-export the bundle")


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


def _bundle_folder(path: str | os.PathLike[str]) -> Path:
    """The folder ``path`` names: itself, the folder of a ``manifest.json``, or a shipped model's (by name)."""
    root = Path(os.fspath(path)).expanduser()
    if root.is_file() and root.name == MANIFEST_NAME:
        root = root.parent
    if root.exists():
        return root
    from clear_sdk.models import list_shipped, shipped_path

    shipped = shipped_path(os.fspath(path))
    if shipped is None:
        names = ", ".join(["default", *list_shipped()]) if list_shipped() else "none in this install"
        raise BundleError(
            f"bundle not found: {root}; pass the folder written by `clear-sdk export ... --out DIR` "
            f"or the name of a shipped model ({names})"
        )
    return shipped


class Bundle:
    """An opened, verified model bundle. Use :meth:`open`; the object is read-only after that."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        #: the typed manifest; every other attribute of a Bundle reads it
        self.manifest = manifest
        self._manifest_path = path / MANIFEST_NAME
        for _key, name in manifest.paths():
            _safe_relative(self.path, name, self._manifest_path)

    # ------------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike[str] | Bundle, verify: bool = True) -> Bundle:
        """Read ``path/manifest.json`` and check every file it names (size and, with ``verify``, sha256)."""
        if isinstance(path, Bundle):
            return path
        root = _bundle_folder(path)
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
        bundle = cls(root, Manifest.from_dict(manifest, mpath))
        bundle.check_files(verify_hashes=verify)
        bundle._check_checkpoint_config()
        return bundle

    def check_files(self, verify_hashes: bool = True) -> None:
        """Every file the manifest names exists inside the bundle with its recorded size (and sha256)."""
        for _key, name in self.manifest.paths():
            p = _safe_relative(self.path, name, self._manifest_path)
            entry = self.manifest.files[name]
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
            for name, entry in self.manifest.files.items():
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

    # ------------------------------------------------------------------------------------ access
    @property
    def files(self) -> dict[str, FileEntry]:
        return self.manifest.files

    @property
    def attribute_names(self) -> list[str]:
        return self.manifest.attributes

    @property
    def num_attrs(self) -> int:
        return len(self.manifest.attributes)

    @property
    def groups(self) -> dict[str, list[str]]:
        return self.manifest.groups

    @property
    def thresholds(self) -> dict[str, float]:
        return self.manifest.thresholds

    @property
    def preprocessing(self) -> Preprocessing:
        return self.manifest.preprocessing

    @property
    def embed_dim(self) -> int | None:
        return self.manifest.dims.embed_dim

    @property
    def soft_dim(self) -> int | None:
        return self.manifest.dims.soft_dim

    @property
    def model_name(self) -> str:
        model = self.manifest.model
        return str(model.get("name", "unknown")) if isinstance(model, dict) else "unknown"

    @property
    def variant(self) -> str | None:
        model = self.manifest.model
        return model.get("variant") if isinstance(model, dict) else None

    @property
    def family(self) -> str:
        """The recognition network in words, from the manifest's model config (for ``clear-sdk info``)."""
        model = self.manifest.model
        cfg = model.get("config") if isinstance(model, dict) else None
        return model_family(cfg if isinstance(cfg, dict) else {}, self.embed_dim)

    @property
    def dataset(self) -> str | None:
        """The attribute schema of the outputs ("peta", "unified", ...; None when the manifest does not say)."""
        return self.manifest.dataset if isinstance(self.manifest.dataset, str) else None

    @property
    def _retrieval(self) -> Retrieval:
        return self.manifest.retrieval or Retrieval()

    @property
    def description_template(self) -> dict[str, Any] | None:
        return self._retrieval.description_template

    @property
    def text_encoder(self) -> TextEncoderSpec | None:
        return self._retrieval.text_encoder

    @property
    def query_form(self) -> str:
        return self._retrieval.query_form or DEFAULT_QUERY_FORM

    @property
    def query_encoding(self) -> str:
        return self._retrieval.query_encoding or "binary"

    @property
    def outputs(self) -> list[str]:
        """The recognizer graph's outputs (every bundle before ``outputs`` was recorded: probs, embedding)."""
        return list(self.manifest.outputs.get("recognizer", ["probs", "embedding"]))

    @property
    def engines(self) -> list[EngineInfo]:
        return [EngineInfo(**e.model_dump(), path=self.path / e.file) for e in self.manifest.engines]

    @property
    def has_retrieval(self) -> bool:
        """True when the bundle carries the retrieval stage (image embeddings and query.onnx)."""
        return self.embed_dim is not None

    def model_path(self, role: str) -> Path | None:
        """Path of a model file by role (``recognizer``, ``query``, ``text``, ``tokenizer``, ``checkpoint``)."""
        if role not in ROLES:
            raise KeyError(f"unknown model role {role!r}; valid: {', '.join(ROLES)}")
        name = self.manifest.models.get(role)
        return None if name is None else self.path / name

    @property
    def recognizer_path(self) -> Path:
        return self.path / self.manifest.models["recognizer"]

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
            "format_version": self.manifest.format_version,
            "model": self.model_name,
            "variant": self.variant,
            "family": self.family,
            "dataset": self.manifest.dataset,
            "num_attrs": self.num_attrs,
            "embed_dim": self.embed_dim,
            "input_size": list(self.preprocessing.input_size),
            "models": dict(self.manifest.models),
            "engines": [e.model_dump(mode="json") | {"path": str(e.path)} for e in self.engines],
            "producer": self.manifest.producer or {},
        }

    def __repr__(self) -> str:
        return (
            f"Bundle({str(self.path)!r}, model={self.model_name!r}, attributes={self.num_attrs}, "
            f"embed_dim={self.embed_dim})"
        )


def model_family(cfg: dict[str, Any], embed_dim: int | None = None) -> str:
    """One line saying which network a model config describes: CLEAR's cross-transformers (and which of our
    options it carries), the CNN baseline, ResNet-50 or PromptPAR; and whether it has the retrieval adapters."""
    arch, trunk = cfg.get("arch"), cfg.get("trunk")
    on = f" on {trunk}" if trunk else ""
    if arch == "clear":
        options = (("BatchNorm head", cfg.get("head") == "bn"), ("pooled trunk", cfg.get("pooled_trunk")))
        extras = [e for e, used in options if used]
        text = f"CLEAR cross-transformers ({cfg.get('variant', 'cross')}){on}" + (
            f", {' + '.join(extras)}" if extras else ""
        )
    elif arch == "lite":
        text = f"CNN baseline{on} (pooled, Linear + BatchNorm head)"
    elif arch == "resnet50":
        text = "ResNet-50 baseline (pooled, Linear head)"
    elif arch == "promptpar":
        text = "PromptPAR (CLIP towers, prompts, multi-modal Transformer)"
    else:
        text = "unknown network (the manifest records no model config)"
    return text + (f"; CLEAR retrieval adapters (E^v {embed_dim}-d)" if embed_dim else "; recognition only")
