"""clear-sdk: pedestrian attribute recognition and attribute-based person retrieval.

The runtime (this package) needs numpy, onnxruntime, OpenCV and tokenizers only; it never
imports torch. Training and export live in ``clear_sdk.training`` / ``clear_sdk.export``
and are imported only by the commands that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
