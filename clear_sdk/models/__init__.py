"""Model bundles shipped inside the package, opened by name: ``Recognizer("peta-lite0")``.

Each sub-folder holding a ``manifest.json`` is a bundle (as ``clear-sdk export`` writes it) plus its
``MODEL_CARD.md``. A name resolves here only when no file or folder of that name exists, so a bundle
path always wins. Nothing is written here at run time: a read-only install works.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

MANIFEST = "manifest.json"
#: what ``Recognizer()``, ``Recognizer("default")`` and ``clear-sdk predict default x.jpg`` open: the shipped
#: unified-schema model (PETA + Market-1501; every dataset's view, see its MODEL_CARD.md)
DEFAULT = "default"
DEFAULT_MODEL = "unified-lite0"


def _root() -> Path:
    return Path(str(resources.files(__name__)))


def list_shipped() -> list[str]:
    """Names of the bundles that ship with this install (``clear-sdk info`` lists them)."""
    root = _root()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())


def shipped_path(name: str) -> Path | None:
    """The folder of the shipped bundle ``name`` (``"default"``: :data:`DEFAULT_MODEL`), or None when there is none."""
    if name == DEFAULT:
        name = DEFAULT_MODEL
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = _root() / name
    return path if (path / MANIFEST).is_file() else None


def model_card(name: str) -> str | None:
    """The model card (markdown) of a shipped bundle (``"default"`` included)."""
    path = shipped_path(name)
    card = path / "MODEL_CARD.md" if path else None
    return card.read_text(encoding="utf-8") if card and card.is_file() else None
