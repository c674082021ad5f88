"""The ``clear-sdk`` typer app and its output helpers (every command module registers on :data:`app`).

The CLI room (``clear_sdk.cli``) is the one part of the runtime package allowed to reach the
training and export packages, and only inside a command's body, lazily: ``clear-sdk --help`` and
the runtime commands never import torch.
"""

from __future__ import annotations

import contextvars
import json

import typer
from rich.console import Console
from rich.text import Text

from clear_sdk.errors import ClearSDKError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="clear-sdk: pedestrian attribute recognition and attribute-based person retrieval (CLEAR).",
)
console = Console()
# soft_wrap: a one-line reason stays one line when stderr is a file or a pipe (rich would wrap it at 80)
err_console = Console(stderr=True, soft_wrap=True)
# set by a command run with --json: a failure then also prints {"error": ...} on stdout (reset before every command)
_json_errors: contextvars.ContextVar[bool] = contextvars.ContextVar("clear_sdk_json_errors", default=False)


def json_errors(on: bool) -> None:
    """A command called with ``--json`` says so first: its failures then print a JSON error object on stdout."""
    _json_errors.set(bool(on))


#: What a command reports as its one-line reason (``except REPORTED as e: fail(str(e))``): every error the
#: project raises on purpose (all derive from ClearSDKError), the machine's (a file missing, unreadable or
#: in the way), and a value the SDK refused the Python way (ValueError). Anything else is a bug.
REPORTED = (ClearSDKError, OSError, ValueError)


def plain(text: object) -> str:
    """User-supplied text made printable: file-name bytes that are not UTF-8 shown as \\x escapes."""
    text = str(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def say(text: object, *, err: bool = False, style: str | None = None) -> None:
    """Print untrusted text (paths, messages, queries) literally: no rich markup, no highlighting."""
    (err_console if err else console).print(Text(plain(text), style=style or ""), highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> None:
    """Stop with a one-line reason on stderr and a non-zero exit code (never a traceback).

    The message is printed literally: ``pip install 'clear-sdk[trt]'`` keeps its brackets. After
    :func:`json_errors` (``--json``), ``{"error": message, "exit_code": code}`` is printed on stdout too, so
    that a consumer of the JSON reads why there is no result.
    """
    line = " ".join(plain(message).split())
    if _json_errors.get():
        typer.echo(json.dumps({"error": line, "exit_code": code}))
    err_console.print(Text.assemble(("error: ", "bold red"), line), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def need_training() -> None:
    """Stop with the install line when the [train] extra is missing."""
    try:
        import clear_sdk.training.trainer  # noqa: F401
    except ImportError as e:
        fail(f"this command needs the training extra ({e.name} is missing): pip install 'clear-sdk[train]'")


def dataset_options(items: list[str] | None) -> dict[str, object]:
    """``--set key=value`` dataset options (values read as YAML: true, 3, [a, b])."""
    import yaml

    out: dict[str, object] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set {item!r}: write key=value, e.g. --set colours=true")
        out[key.strip().removeprefix("dataset_kwargs.")] = yaml.safe_load(text)
    return out


@app.callback()
def _root() -> None:
    """Train, export and run CLEAR person-attribute models."""
    json_errors(False)
