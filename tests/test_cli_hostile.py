"""Issue 25, the CLI and manifest defects outside `watch`: user text is never markup (#12), a failing --json command
prints a JSON error object (#21), manifest thresholds are probabilities (#24), and a query is quoted whole (#25)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from clear_sdk import AttributeSearcher
from clear_sdk.bundle import Bundle
from clear_sdk.cli import app
from clear_sdk.errors import BundleError

pytest.importorskip("torch")  # the tiny_bundle fixture exports a model


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_12_info_prints_the_bundle_path_literally(tiny_bundle, tmp_path):
    """`info --bundle` printed its path as markup: "[red]b[/red]" came out as "b"."""
    odd = tmp_path / "[red]b[/red]"
    shutil.copytree(tiny_bundle, odd)
    r = _run("info", "--bundle", str(odd))
    assert r.exit_code == 0, r.output
    assert f"bundle {odd}" in r.output


@pytest.mark.parametrize(
    "command",
    [
        ["predict", "{missing}", "{image}", "--json"],
        ["info", "--bundle", "{missing}", "--json"],
        ["search", "female", "--index", "{missing}", "--json"],
        ["search", "female", "--index", "{index}", "-k", "0", "--json"],
        ["watch", "{missing}.mp4", "--bundle", "{bundle}", "--index", "{index}", "--json"],
        ["watch", "{image}", "--bundle", "{bundle}", "--index", "{index}", "--conf", "2", "--json"],
    ],
)
def test_21_a_failing_json_command_prints_a_json_error_object(tiny_bundle, tmp_path, command):
    """stdout stayed empty when a --json command failed outright: a consumer of the JSON could not read why."""
    image = tmp_path / "p.png"
    import cv2

    cv2.imwrite(str(image), np.full((64, 32, 3), 90, np.uint8))
    index = tmp_path / "index"
    with AttributeSearcher(tiny_bundle, index_dir=index) as s:
        s.add([np.full((64, 32, 3), 90, np.uint8)], ids=["a"])
    values = {"missing": str(tmp_path / "nope"), "image": str(image), "bundle": str(tiny_bundle), "index": str(index)}
    r = _run(*(part.format(**values) for part in command))
    assert r.exit_code == 1, r.output
    out = json.loads(r.stdout)
    assert set(out) == {"error", "exit_code"} and out["exit_code"] == 1 and out["error"]
    assert "\n" not in out["error"] and "Traceback" not in r.output
    assert f"error: {out['error']}" in r.output  # the same reason on stderr


def test_21_json_errors_do_not_leak_into_the_next_command(tiny_bundle, tmp_path):
    """The --json switch of one command is not kept for the next one in the same process."""
    _run("info", "--bundle", str(tmp_path / "nope"), "--json")
    r = _run("info", "--bundle", str(tmp_path / "nope"))
    assert r.exit_code == 1 and not r.stdout.lstrip().startswith("{")


@pytest.mark.parametrize("bad", [1.5, -0.1, 2, float("inf")])
def test_24_manifest_thresholds_outside_0_1_are_refused(tiny_bundle, tmp_path, bad):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    first = next(iter(manifest["thresholds"]))
    manifest["thresholds"][first] = bad
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"'thresholds' are probabilities in \[0, 1\]"):
        Bundle.open(bundle)
    manifest["thresholds"][first] = 1.0  # the ends are fine: 1.0 means never positive
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert Bundle.open(bundle).thresholds[first] == 1.0


def test_25_search_quotes_the_whole_query(tiny_bundle, tmp_path):
    """`search "[/x]"` said "in query 'x]'": the phrase after the '/' separator, not what the user typed."""
    index = tmp_path / "index"
    with AttributeSearcher(tiny_bundle, index_dir=index) as s:
        s.add([np.full((64, 32, 3), 90, np.uint8)], ids=["a"])
    r = _run("search", "[/x]", "--index", str(index))
    assert r.exit_code == 1 and "in query '[/x]'" in r.output, r.output
    r = _run("search", "female, [bold]zebra[/bold]", "--index", str(index))
    assert r.exit_code == 1 and "in query 'female, [bold]zebra[/bold]'" in r.output, r.output


def test_21_an_unexpected_error_of_a_json_command_is_a_json_object_too(monkeypatch, capsys):
    """The last resort (a bug): still one line on stderr, and the JSON error object on stdout with --json."""
    from clear_sdk import cli

    def boom(*a, **k):
        raise RuntimeError("kaput [red]x[/]")

    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.setattr("sys.argv", ["clear-sdk", "search", "female", "--index", "i", "--json"])
    monkeypatch.delenv("CLEAR_SDK_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 1
    out = capsys.readouterr()
    assert json.loads(out.out) == {"error": "unexpected RuntimeError: kaput [red]x[/]", "exit_code": 1}
    assert "error: unexpected RuntimeError: kaput [red]x[/]" in out.err


def test_17_an_index_folder_that_cannot_be_created_is_one_line_in_index_and_search(tiny_bundle, tmp_path):
    """A folder under a file (or on a read-only disk): the machine's error, not "unexpected ... please report it"."""
    import cv2

    crops = tmp_path / "crops"
    crops.mkdir()
    cv2.imwrite(str(crops / "p.png"), np.full((64, 32, 3), 90, np.uint8))
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    for args in (["index", str(tiny_bundle), str(crops), "--index", str(blocker / "idx")],
                 ["predict", str(blocker / "bundle"), str(crops / "p.png")]):  # fmt: skip
        r = _run(*args)
        assert r.exit_code == 1 and (r.exception is None or isinstance(r.exception, SystemExit)), r.output
        lines = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "please report" not in r.output and "Traceback" not in r.output, r.output
