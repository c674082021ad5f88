"""Dataset loaders: each module registers one dataset; ``create_dataset(name, root)`` builds it.

Loaders only read annotation files and produce :class:`Record` lists (torch-free); images are
decoded by the trainer. ``list_datasets()`` names what is available.
"""

from __future__ import annotations

from . import csv_folder, market1501, pa100k, peta, pkl, rapv2, synthetic, unified, upar
from .base import DatasetError, PARDataset, Record, create_dataset, list_datasets, register_dataset

__all__ = [
    "DatasetError",
    "PARDataset",
    "Record",
    "create_dataset",
    "list_datasets",
    "register_dataset",
    "csv_folder",
    "market1501",
    "pa100k",
    "peta",
    "pkl",
    "rapv2",
    "synthetic",
    "unified",
    "upar",
]
