"""Per-dataset views of a unified-schema model: labels into the unified schema, answers out of it.

The mapping is data (``clear_sdk/data/attributes.json``, read by :func:`clear_sdk.schema.load_view`);
this module applies it to arrays, the same code for the training loaders, the evaluation and the
runtime (``Recognizer.predict(..., schema="market1501")``):

* into the unified schema: a dataset's 0/1 labels give each unified attribute its label where the view
  determines it (exact: the same; complement: the negation; ``derived``: the union of several native
  labels); every other unified attribute is :data:`~clear_sdk.metrics.UNKNOWN` for that dataset;
* out of it: a view's probability is the unified one, one minus it, or the largest of several (union);
  its decision is the unified decision, its negation, or any of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from .errors import QueryError
from .metrics import UNKNOWN
from .schema import UNIFIED, View, load_schema, load_view


def _columns(names: list[str] | tuple[str, ...], wanted: tuple[str, ...], what: str) -> list[int]:
    index = {n: i for i, n in enumerate(names)}
    missing = [w for w in wanted if w not in index]
    if missing:
        raise KeyError(f"{what} has no attributes {missing}")
    return [index[w] for w in wanted]


def to_unified(view: View, native_names: list[str], labels: np.ndarray) -> np.ndarray:
    """uint8 [N, U] unified labels from a dataset's 0/1 ``labels`` [N, len(native_names)]; UNKNOWN: not annotated."""
    labels = np.asarray(labels)
    out = np.full((labels.shape[0], len(view.unified)), UNKNOWN, np.uint8)
    col = {u: i for i, u in enumerate(view.unified)}
    for e in view.entries:
        if e.how == "union" or e.native not in native_names:
            continue  # a union's native label does not say which of its parts is present
        (src,) = _columns(native_names, (e.native,), view.dataset)
        y = labels[:, src].astype(np.uint8)
        out[:, col[e.of[0]]] = 1 - y if e.how == "complement" else y
    for unified, e in view.derived.items():
        src = _columns(native_names, e.of, view.dataset)
        out[:, col[unified]] = labels[:, src].max(axis=1)
    return out


def from_unified(
    view: View, unified_names: list[str], probs: np.ndarray, decisions: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A view's probabilities [N, V] (and decisions, when given) from a unified model's [N, U] answers.

    ``unified_names`` are the model's outputs; a view entry whose unified attributes the model lacks is an
    error naming them (check :func:`covered` first to answer a partial model's view).
    """
    probs = np.asarray(probs)
    p_out = np.empty((probs.shape[0], len(view.entries)), probs.dtype if probs.dtype.kind == "f" else np.float64)
    d_out = None if decisions is None else np.empty(p_out.shape, bool)
    for j, e in enumerate(view.entries):
        cols = _columns(unified_names, e.of, "the model")
        p = probs[:, cols]
        p_out[:, j] = 1.0 - p[:, 0] if e.how == "complement" else p.max(axis=1)
        if d_out is not None:
            d = np.asarray(decisions)[:, cols]
            d_out[:, j] = ~d[:, 0] if e.how == "complement" else d.any(axis=1)
    return p_out, d_out


def covered(view: View, unified_names: list[str], native_names: list[str] | None = None) -> View:
    """The part of ``view`` a model with outputs ``unified_names`` can answer (entries whose parts it has),
    and, with ``native_names``, only the native attributes a loaded dataset has (PETA without its colours)."""
    have = set(unified_names)
    natives = None if native_names is None else set(native_names)
    entries = tuple(e for e in view.entries if set(e.of) <= have and (natives is None or e.native in natives))
    return View(view.dataset, view.unified, entries, view.derived, view.not_covered)


@dataclasses.dataclass(frozen=True)
class OutputView:
    """How a model's answers are shown in one dataset's names: names, groups, and the mapping (None: as they are)."""

    dataset: str | None
    names: tuple[str, ...]
    groups: dict[str, list[str]]
    view: View | None = None

    def apply(self, model_names: list[str], probs: np.ndarray, decisions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [N, V], decisions [N, V]) in this view's names from the model's [N, A] answers."""
        if self.view is None:
            return probs, decisions
        p, d = from_unified(self.view, model_names, probs, decisions)
        return p, d


def output_view(
    model_dataset: str | None, model_names: list[str], model_groups: dict, schema: str | None
) -> OutputView:
    """The view ``schema`` of a model whose outputs are ``model_names`` in ``model_dataset``'s schema.

    ``schema=None`` (or the model's own dataset) answers in the model's names. Another dataset's view needs
    a unified-schema model (``dataset: unified`` in its manifest): its answers cover every attribute of the
    view whose unified parts the model has; an unknown view or a model of another schema is an error.
    """
    if schema is None or (model_dataset is not None and schema.lower() == model_dataset.lower()):
        return OutputView(model_dataset, tuple(model_names), {g: list(v) for g, v in model_groups.items()})
    if model_dataset != UNIFIED:
        raise QueryError(
            f"schema={schema!r}: this model answers in {model_dataset or 'its own'} attribute names, and only a "
            f"unified-schema model (e.g. the default model) has other datasets' views; drop schema= or use such a model"
        )
    try:
        view = covered(load_view(schema), model_names)
    except KeyError as e:
        raise QueryError(f"schema={schema!r}: {e.args[0]}") from None
    names = view.names
    native = load_schema(view.dataset)
    groups_src = {**native.groups, **native.meta.get("colour_groups", {})}
    groups = {g: [a for a in members if a in names] for g, members in groups_src.items()}
    return OutputView(view.dataset, tuple(names), {g: m for g, m in groups.items() if m}, view)


def query_to_unified(view: View, parsed: Mapping[str, bool]) -> dict[str, bool]:
    """A query in a view's names ({native: wanted}) as a query in the unified names.

    exact: the same constraint; complement: its negation; union: "none of them" when the native attribute is
    asked absent. A union asked present ("any of them") is not one conjunctive query: a QueryError names its
    parts so the caller can ask for one of them. Two native constraints that disagree on one unified attribute
    are a QueryError too.
    """
    entries = {e.native: e for e in view.entries}
    out: dict[str, bool] = {}
    for native, wanted in parsed.items():
        e = entries.get(native)
        if e is None:
            raise QueryError(f"{native!r} is not an attribute of the {view.dataset} view")
        if e.how == "union" and wanted:
            raise QueryError(
                f"{native!r} means any of {', '.join(e.of)} in the unified schema; ask for one of them "
                "(without schema=) instead"
            )
        for u in e.of:
            value = (not wanted) if e.how == "complement" else bool(wanted)
            if out.get(u, value) != value:
                raise QueryError(f"the query asks {u!r} both present and absent (through {native!r})")
            out[u] = value
    return out
