"""One gallery, two processes (issue 25 #1, #9, #10): reopening a Milvus Lite file made by another process,
a reader searching beside another process that removes items, a read-only index. Real processes, no mocks."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from clear_sdk.index import open_index

REPO = Path(__file__).resolve().parents[1]
HAS_MILVUS = importlib.util.find_spec("pymilvus") is not None and importlib.util.find_spec("milvus_lite") is not None
D = 8


def _run(code: str) -> str:
    """Run ``code`` in a fresh Python process; its stdout, or the test fails with its stderr."""
    prelude = "import numpy as np\nfrom clear_sdk.index import open_index\n"
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _data(n=50):
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, D)).astype(np.float32)


@pytest.mark.skipif(not HAS_MILVUS, reason="pip install clear-sdk[milvus]")
def test_a_milvus_lite_file_made_by_another_process_reopens(tmp_path):
    db = tmp_path / "g.db"
    _run(f"""
        x = np.random.default_rng(1).standard_normal((50, {D})).astype(np.float32)
        index = open_index({str(db)!r}, {D})
        index.add(x, [f"i{{i}}" for i in range(50)], [{{"camera": "c" + str(i % 2)}} for i in range(50)])
        index.set_meta_default("model_identity", "m")
        index.close()
    """)
    x = _data()
    again = open_index(str(db), None)  # this process never saw the collections loaded
    try:
        assert len(again) == 50 and again.get_meta("model_identity") == "m"
        assert [h[0] for h in again.search(x[3], k=1)[0]] == ["i3"]
        assert len(again.select({"camera": "c1"})) == 25
        again.add(x[:1], ["new"])
    finally:
        again.close()
    out = _run(f"""
        index = open_index({str(db)!r}, None)
        print(len(index), index.search(np.ones({D}, np.float32), k=2)[0][0][0] in index.ids)
        index.close()
    """)
    assert out.split() == ["51", "True"]


def test_a_reader_searches_after_another_process_removed_items(tmp_path):
    path = tmp_path / "g"
    x = _data(40)
    writer = open_index(path, D)
    writer.add(x, [f"i{i}" for i in range(40)], [{"camera": f"c{i % 2}"} for i in range(40)])
    writer.close()
    reader = open_index(path, None)
    assert "i5" in [h[0] for h in reader.search(x[5], k=40)[0]]
    _run(f"""
        index = open_index({str(path)!r}, None)
        assert index.remove(["i5", "i6"]) == 2 and index.remove(where={{"camera": "c1"}}) == 19
        index.close()
    """)
    try:
        hits = reader.search(x[5], k=40)[0]  # no refresh(): the removed items simply are not found
        assert {h[0] for h in hits} == {f"i{i}" for i in range(0, 40, 2) if i != 6}
        with open_index(path, None) as fresh:
            assert reader.search(x[:2], k=3, where={"camera": "c0"}) == fresh.search(x[:2], k=3, where={"camera": "c0"})
        assert "i5" not in reader.ids and len(reader.select({"camera": "c1"})) == 0
    finally:
        reader.close()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_read_only_index_is_searchable(tmp_path):
    """Another user's index (or a read-only mount / snapshot): search works, writes say the index is read-only."""
    root = Path(tempfile.mkdtemp(prefix="clear-ro-"))
    locked: list[Path] = []
    try:
        path = root / "g"
        x = _data(30)
        index = open_index(path, D)
        index.add(x, [f"i{i}" for i in range(30)], [{"camera": f"c{i % 3}"} for i in range(30)])
        index.close()
        for p in (*path.iterdir(), path):
            p.chmod(0o555 if p.is_dir() else 0o444)
            if os.geteuid() == 0:  # root ignores permissions: make the files immutable instead
                if subprocess.run(["chattr", "+i", str(p)], capture_output=True).returncode:
                    pytest.skip("running as root without chattr +i: cannot make a read-only index")
                locked.append(p)
        out = _run(f"""
            from clear_sdk.errors import ClearSDKError
            index = open_index({str(path)!r}, None)
            q = np.random.default_rng(1).standard_normal((30, {D})).astype(np.float32)[7]
            print(index.search(q, k=1)[0][0][0], len(index), len(index.select({{"camera": "c1"}})))
            try:
                index.add(q, ["new"])
            except ClearSDKError as e:
                print("refused:", e)
        """)
        first, refused = out.strip().split("\n")
        assert first.split() == ["i7", "30", "10"]
        assert refused.startswith("refused:") and "read-only" in refused
        assert sorted(os.listdir(path)) == ["index.sqlite", "vectors.f32"]  # nothing written beside it
    finally:
        for p in locked:
            subprocess.run(["chattr", "-i", str(p)], check=True)
        for p in (root, *root.rglob("*")):
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(root)
