"""clear-sdk: pedestrian attribute recognition and attribute-based person retrieval.

    from clear_sdk import Recognizer, AttributeSearcher

The runtime (this package) needs numpy, onnxruntime, OpenCV and tokenizers only; it never
imports torch. Training and export live in ``clear_sdk.training`` / ``clear_sdk.export``
and are imported only by the commands that need them. The public names below load lazily,
so ``import clear_sdk`` itself is instant and pulls in no inference library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Recognizer": "clear_sdk.recognizer",
    "Prediction": "clear_sdk.recognizer",
    "AttributeSearcher": "clear_sdk.searcher",
    "Hit": "clear_sdk.searcher",
    "QueryEncoder": "clear_sdk.query_encoder",
    "Bundle": "clear_sdk.bundle",
    "VectorIndex": "clear_sdk.index",
    "Preprocessing": "clear_sdk.preprocess",
    "load_image": "clear_sdk.preprocess",
    "parse_query": "clear_sdk.query",
    "create_backend": "clear_sdk.backends",
    "BackendUnavailable": "clear_sdk.backends",
    "TensorRTUnavailable": "clear_sdk.backends",
    "ClearSDKError": "clear_sdk.errors",
    "InputError": "clear_sdk.errors",
    "BundleError": "clear_sdk.errors",
    "QueryError": "clear_sdk.errors",
    "DuplicateIdError": "clear_sdk.errors",
    "attribute_metrics": "clear_sdk.metrics",
    "retrieval_metrics": "clear_sdk.metrics",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover
    from clear_sdk.backends import BackendUnavailable, TensorRTUnavailable, create_backend  # noqa: F401
    from clear_sdk.bundle import Bundle  # noqa: F401
    from clear_sdk.errors import BundleError, ClearSDKError, DuplicateIdError, InputError, QueryError  # noqa: F401
    from clear_sdk.index import VectorIndex  # noqa: F401
    from clear_sdk.metrics import attribute_metrics, retrieval_metrics  # noqa: F401
    from clear_sdk.preprocess import Preprocessing, load_image  # noqa: F401
    from clear_sdk.query import parse_query  # noqa: F401
    from clear_sdk.query_encoder import QueryEncoder  # noqa: F401
    from clear_sdk.recognizer import Prediction, Recognizer  # noqa: F401
    from clear_sdk.searcher import AttributeSearcher, Hit  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clear_sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
