"""``python -m clear_sdk.cli ...`` (e.g. under torchrun for multi-GPU training)."""

from clear_sdk.cli import main

main()
