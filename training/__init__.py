"""Training side of clear-sdk (PyTorch): models, datasets, losses, trainers.

Installed as ``clear_sdk.training``; needs the ``[train]`` extra.
"""
