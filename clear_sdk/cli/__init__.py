"""The ``clear-sdk`` command line (typer): the CLI room.

One module per group of commands, each registering on :data:`clear_sdk.cli.app.app`:
``runtime`` (info, predict, index, search), ``training`` (train, eval), ``export``, ``demo``,
``bench``; ``watch`` comes from :mod:`clear_sdk.video.cli`. This package is the only part of
``clear_sdk`` allowed to import ``clear_sdk.training`` and ``clear_sdk.export``, and only inside a
command's body, so ``clear-sdk --help`` and the runtime commands never import torch (checked by the
import contracts in pyproject.toml and tests/test_architecture.py).
"""

from __future__ import annotations

import importlib
import json
import os
import sys

from rich.text import Text

from clear_sdk.cli.app import app, console, err_console, fail, plain, say
from clear_sdk.video.cli import watch

__all__ = ["app", "console", "err_console", "fail", "main", "plain", "say"]

# each module registers its commands on import; this order is the order of `clear-sdk --help`
for _module in ("runtime", "training", "export", "demo", "bench"):
    importlib.import_module(f"clear_sdk.cli.{_module}")
app.command()(watch)


def main() -> None:
    """The ``clear-sdk`` entry point: any error a command did not foresee is still one line, not a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print(Text("interrupted"), highlight=False)
        sys.exit(130)
    except Exception as e:  # the last resort: set CLEAR_SDK_DEBUG=1 to see the traceback
        if os.environ.get("CLEAR_SDK_DEBUG"):
            raise
        reason = " ".join(plain(e).split())[:300]
        if "--json" in sys.argv[1:]:  # a consumer of the JSON reads why there is none (as fail() does)
            print(json.dumps({"error": f"unexpected {type(e).__name__}: {reason}", "exit_code": 1}))
        err_console.print(
            Text.assemble(
                ("error: ", "bold red"),
                f"unexpected {type(e).__name__}: {reason} (run with CLEAR_SDK_DEBUG=1 for the traceback, "
                "and please report it)",
            ),
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
