"""The runtime and CLI under hostile use (issue 13): nothing lost, nothing unchecked runs, no traceback.

One test (or a small group) per item of the issue, numbered as there. The bundle is a tiny real
export (clear-tiny 64x32 with the retrieval stage and the MiniLM text encoder); galleries are
synthetic crops. Nothing here measures time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import struct
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from clear_sdk.bundle import Bundle
from clear_sdk.errors import BundleError, ClearSDKError, IndexBusyError, InputError, QueryError
from clear_sdk.index import DB_FILE, VECTORS_FILE, VectorIndex
from clear_sdk.preprocess import load_image

# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_bundle):
    """The shared tiny bundle (conftest: retrieval stage and text encoder), and 8 synthetic crops."""
    pytest.importorskip("torch")
    from clear_sdk.synthetic import SYNTHETIC_ATTRIBUTES, SyntheticConfig, generate_synthetic

    names = list(SYNTHETIC_ATTRIBUTES)
    root = tmp_path_factory.mktemp("reliability")
    bundle = tiny_bundle
    gallery = generate_synthetic(
        root / "gallery", SyntheticConfig(num_identities=4, images_per_identity=2, image_size=(64, 32), seed=5)
    )
    return {"root": root, "bundle": bundle, "images": sorted((gallery / "images").glob("*.jpg")), "names": names}


def _copy_bundle(env, dst: Path) -> Path:
    shutil.copytree(env["bundle"], dst)
    return dst


def _edit(bundle: Path, fn) -> None:
    m = json.loads((bundle / "manifest.json").read_text())
    fn(m)
    (bundle / "manifest.json").write_text(json.dumps(m))


def _rehash(bundle: Path, name: str) -> None:
    data = (bundle / name).read_bytes()
    _edit(
        bundle, lambda m: m["files"].__setitem__(name, {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    )


def _runner():
    from typer.testing import CliRunner

    return CliRunner()


def _cli(*args: str):
    from clear_sdk.cli import app

    res = _runner().invoke(app, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception  # never a traceback
    assert "Traceback" not in res.output
    return res


def _gallery(env, folder: Path, names: list[str], images: list[Path]) -> Path:
    folder.mkdir(parents=True)
    for n, src in zip(names, images):
        shutil.copy(src, folder / n)
    return folder


# ------------------------------------------------------------------------ 1. ids unique per source


def test_01_same_file_names_from_two_cameras_are_both_indexed(env, tmp_path):
    imgs = env["images"]
    names = ["frame_0001.jpg", "frame_0002.jpg", "frame_0003.jpg"]
    cam1 = _gallery(env, tmp_path / "cam1", names, imgs[:3])
    cam2 = _gallery(env, tmp_path / "cam2", names, imgs[3:6])
    idx = tmp_path / "idx"
    res = _cli("index", env["bundle"], cam1, "--index", idx, "--camera", "cam1")
    assert res.exit_code == 0 and "indexed 3 new crops" in res.output
    res = _cli("index", env["bundle"], cam2, "--index", idx, "--camera", "cam2")
    assert res.exit_code == 0, res.output
    assert "indexed 3 new crops (0 unreadable, 0 already there" in res.output
    res = _cli("search", "female", "--index", idx, "--camera", "cam2", "--json", "-k", "10")
    hits = json.loads(res.output)["hits"]
    assert sorted(h["id"] for h in hits) == [f"cam2/{n}" for n in names]
    # a real duplicate (the same files again) is counted as such, and only those
    res = _cli("index", env["bundle"], cam2, "--index", idx, "--camera", "cam2")
    assert res.exit_code == 0 and "indexed 0 new crops (0 unreadable, 3 already there" in res.output


def test_01_an_id_taken_by_another_file_is_shown_not_mistaken_for_a_duplicate(env, tmp_path):
    names = ["a.jpg", "b.jpg"]
    one = _gallery(env, tmp_path / "one", names, env["images"][:2])
    two = _gallery(env, tmp_path / "two", names, env["images"][2:4])
    idx = tmp_path / "idx"
    assert _cli("index", env["bundle"], one, "--index", idx).exit_code == 0
    res = _cli("index", env["bundle"], two, "--index", idx)
    assert res.exit_code == 1
    assert "2 with an id another file has" in res.output and "already used by" in res.output
    assert "--id-scheme absolute" in res.output
    res = _cli("index", env["bundle"], two, "--index", idx, "--id-scheme", "absolute")
    assert res.exit_code == 0 and "indexed 2 new crops" in res.output


# --------------------------------------------------------------- 2. text encoder files are checked


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("onnx", "../outside/text.onnx"),
        ("onnx", "/tmp/text.onnx"),
        ("tokenizer", "/etc/passwd"),
        ("tokenizer", "../outside/tokenizer.json"),
    ],
)
def test_02_text_encoder_paths_cannot_skip_the_bundle_checks(env, tmp_path, key, value):
    from clear_sdk.searcher import AttributeSearcher

    bundle = _copy_bundle(env, tmp_path / "b")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(bundle / "text.onnx", outside / "text.onnx")
    shutil.copy(bundle / "tokenizer.json", outside / "tokenizer.json")
    _edit(bundle, lambda m: m["retrieval"]["text_encoder"].__setitem__(key, value))
    with pytest.raises(BundleError, match="skips the bundle checks"):
        AttributeSearcher(bundle)


def test_02_the_text_encoder_is_named_once_and_its_files_are_hashed(env, tmp_path):
    from clear_sdk.searcher import AttributeSearcher

    m = json.loads((env["bundle"] / "manifest.json").read_text())
    info = m["retrieval"]["text_encoder"]
    assert "onnx" not in info and "tokenizer" not in info  # one place: models.text / models.tokenizer
    assert m["models"]["text"] in m["files"] and m["models"]["tokenizer"] in m["files"]
    # a bundle written before (file names in both places, the same) still opens and searches
    old = _copy_bundle(env, tmp_path / "old")
    _edit(old, lambda m: m["retrieval"]["text_encoder"].update(onnx="text.onnx", tokenizer="tokenizer.json"))
    with AttributeSearcher(old) as s:
        assert s.encode_query(["female"]).shape == (1, 16)
    # models.text pointing out of the bundle, or a changed text graph, is refused
    out = _copy_bundle(env, tmp_path / "out")
    _edit(out, lambda m: m["models"].__setitem__("text", "../text.onnx"))
    with pytest.raises(BundleError):
        Bundle.open(out)
    changed = _copy_bundle(env, tmp_path / "changed")
    data = bytearray((changed / "text.onnx").read_bytes())
    data[-1] ^= 1
    (changed / "text.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        AttributeSearcher(changed)


def test_02_a_hashed_but_broken_tokenizer_is_a_bundle_error(env, tmp_path):
    from clear_sdk.searcher import AttributeSearcher

    bundle = _copy_bundle(env, tmp_path / "b")
    (bundle / "tokenizer.json").write_text("not a tokenizer")
    _rehash(bundle, "tokenizer.json")
    with pytest.raises(BundleError, match="not a tokenizers JSON file"):
        AttributeSearcher(bundle)


# ---------------------------------------------------------------------- 3. file names not UTF-8


def _non_utf8_folder(env, tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "crops"
    folder.mkdir()
    good = folder / "good.jpg"
    shutil.copy(env["images"][0], good)
    bad = os.path.join(os.fsencode(folder), b"bad\xff\xfename.jpg")
    try:
        with open(bad, "wb") as f:
            f.write(env["images"][1].read_bytes())
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    return folder, Path(os.fsdecode(bad))


def test_03_a_non_utf8_file_name_fails_alone_in_the_cli(env, tmp_path):
    folder, _ = _non_utf8_folder(env, tmp_path)
    idx = tmp_path / "idx"
    res = _cli("index", env["bundle"], folder, "--index", idx)
    assert res.exit_code == 0, res.output
    assert "indexed 1 new crops (1 unreadable" in res.output
    assert "not valid UTF-8" in res.output and "bad\\xff\\xfename.jpg" in res.output
    res = _cli("search", "female", "--index", idx, "--json")
    assert [h["id"] for h in json.loads(res.output)["hits"]] == ["good.jpg"]


def test_03_a_non_utf8_file_name_fails_alone_in_add(env, tmp_path):
    from clear_sdk.searcher import AttributeSearcher

    folder, bad = _non_utf8_folder(env, tmp_path)
    with AttributeSearcher(env["bundle"], index_dir=tmp_path / "idx") as s:
        assert s.add([str(folder / "good.jpg"), str(bad)], errors="skip")[1] is None
        assert len(s) == 1
        with pytest.raises(InputError, match="not valid UTF-8"):
            s.add([str(bad)])
    with pytest.raises(ValueError, match="not valid UTF-8"):  # the index itself refuses such an id
        VectorIndex(2).add(np.ones((1, 2), np.float32), [os.fsdecode(b"x\xff")])


# ------------------------------------------------------------------ 4. readers never wait on writers


def _held_write_lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path / DB_FILE, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # what another process's long add holds
    other.execute("UPDATE meta SET value=value WHERE key='count'")
    return other


def test_04_open_and_search_while_another_connection_writes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "idx"
    with VectorIndex(8, path) as index:
        index.add(rng.standard_normal((20, 8)).astype(np.float32), [f"i{i}" for i in range(20)])
    with sqlite3.connect(path / DB_FILE) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    earlier = VectorIndex(None, path, busy_timeout=0.2)
    writer = _held_write_lock(path)
    try:
        reader = VectorIndex(8, path, busy_timeout=0.2)  # opening to search takes no write lock
        assert len(reader.search(rng.standard_normal(8), k=3)[0]) == 3
        assert len(earlier.search(rng.standard_normal(8), k=3)[0]) == 3
        with pytest.raises(IndexBusyError, match=r"is busy: another process held its write lock for more than 0.2 s"):
            reader.add(np.ones((1, 8), np.float32), ["new"])
        assert "new" not in reader
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    reader.add(np.ones((1, 8), np.float32), ["new"])  # the lock is free again
    earlier.refresh()
    assert "new" in earlier and len(earlier) == 21


# ------------------------------------------------------------- 5. untrusted text printed literally


def test_05_cli_messages_and_paths_are_not_markup(env, tmp_path):
    import typer

    from clear_sdk.cli import fail

    res = _cli("predict", env["bundle"], env["images"][0], "--backend", "tensorrt")
    assert res.exit_code == 1 and "pip install 'clear-sdk[trt]'" in res.output
    weird = tmp_path / "cam[" / "]x.jpg"
    weird.parent.mkdir()
    shutil.copy(env["images"][0], weird)
    odd = tmp_path / "[bold]y[/].jpg"
    res = _cli("predict", env["bundle"], weird, odd, env["images"][1])
    assert res.exit_code == 1  # one bad image, the others answered
    assert f"{weird}:" in res.output and f"{odd}: file not found" in res.output
    assert f"{env['images'][1]}:" in res.output
    with pytest.raises(typer.Exit):
        fail("install with pip install 'clear-sdk[export]'")


# ------------------------------------------------------------------- 6. corrupted rows on disk


def _index_with_rows(path: Path) -> np.ndarray:
    rng = np.random.default_rng(1)
    vecs = -np.abs(rng.standard_normal((30, 4))).astype(np.float32) - 0.1  # every score against +1 is < 0
    with VectorIndex(4, path) as index:
        for b in range(3):
            index.add(vecs[10 * b : 10 * b + 10], [f"r{i}" for i in range(10 * b, 10 * b + 10)])
    return vecs


def _overwrite_row(path: Path, row: int, values: np.ndarray) -> None:
    with open(path / VECTORS_FILE, "r+b") as f:
        f.seek(row * 4 * 4)
        f.write(np.asarray(values, "<f4").tobytes())


@pytest.mark.parametrize("damage", ["nan", "zeros"])
def test_06_corrupted_rows_are_found_and_left_out(tmp_path, caplog, damage):
    path = tmp_path / "idx"
    vecs = _index_with_rows(path)
    _overwrite_row(path, 13, [np.nan] * 4 if damage == "nan" else [0.0] * 4)
    with caplog.at_level(logging.WARNING, logger="clear_sdk.index"):
        index = VectorIndex(None, path)
    assert "fail their checksum" in caplog.text
    assert index.corrupt_ids == [f"r{i}" for i in range(10, 20)]  # the whole add batch is suspect
    hits = index.search(np.ones(4, np.float32), k=30)[0]
    ok = [i for i in range(30) if not 10 <= i < 20]
    expect = sorted(ok, key=lambda i: (-float(vecs[i].sum()), i))
    assert [h[0] for h in hits] == [f"r{i}" for i in expect]  # intact rows still answer, in order
    index.close()


def test_06_nan_rows_do_not_break_search_even_unverified(tmp_path):
    path = tmp_path / "idx"
    _index_with_rows(path)
    _overwrite_row(path, 0, [np.nan] * 4)
    index = VectorIndex(None, path, verify=False)
    hits = index.search(np.ones((2, 4), np.float32), k=5)
    assert all(len(h) == 5 and all(np.isfinite(s) for _, s, _ in h) for h in hits)
    assert all(i != "r0" for i, _, _ in hits[0])
    assert index.verify()[:1] == ["r0"]


def test_06_cli_search_warns_and_answers_from_the_intact_rows(env, tmp_path):
    folder = _gallery(env, tmp_path / "crops", ["a.jpg", "b.jpg", "c.jpg"], env["images"][:3])
    idx = tmp_path / "idx"
    assert _cli("index", env["bundle"], folder, "--index", idx, "--batch", "1").exit_code == 0
    with VectorIndex(None, idx) as index:
        row = index.ids.index("b.jpg")
        dim = index.dim
    with open(idx / VECTORS_FILE, "r+b") as f:
        f.seek(row * dim * 4)
        f.write(np.zeros(dim, "<f4").tobytes())
    for flags in ([], ["--verify"]):
        res = _cli("search", "female", "--index", idx, "--json", *flags)
        assert res.exit_code == 0, res.output
        assert "failed their checksum" in res.output
        assert sorted(h["id"] for h in json.loads(res.stdout)["hits"]) == ["a.jpg", "c.jpg"]


# --------------------------------------------------------------- 7. manifest checked against graphs


def _drop_checkpoint(m: dict) -> None:
    for role in ("checkpoint", "checkpoint_config"):
        m["files"].pop(m["models"].pop(role))


def _drop_last_attribute(m: dict) -> None:
    last = m["attributes"].pop()
    m["thresholds"].pop(last)
    m["dims"]["num_attrs"] -= 1
    m["groups"] = {g: [a for a in v if a != last] for g, v in m["groups"].items()}
    m["groups"] = {g: v for g, v in m["groups"].items() if v}


def _swap_two(m: dict) -> None:
    a = m["attributes"]
    a[0], a[1] = a[1], a[0]


def _input_size(m: dict) -> None:
    m["preprocessing"]["input_size"] = [128, 64]


@pytest.mark.parametrize("edit", [_drop_last_attribute, _swap_two, _input_size])
@pytest.mark.parametrize("with_checkpoint", [True, False])
def test_07_a_manifest_that_disagrees_with_its_graphs_is_refused(env, tmp_path, edit, with_checkpoint):
    from clear_sdk.recognizer import Recognizer

    bundle = _copy_bundle(env, tmp_path / "b")
    _edit(bundle, lambda m: (edit(m), None if with_checkpoint else _drop_checkpoint(m)))
    with pytest.raises(BundleError, match="re-export"):
        Recognizer(bundle, backend="onnxruntime")


# -------------------------------------------------------------- 8. raw errors that reached a user


def test_08_a_refused_torch_checkpoint_is_one_line(env, tmp_path):
    bundle = _copy_bundle(env, tmp_path / "b")
    (bundle / "checkpoint" / "model.safetensors").write_bytes(b"\0" * 64)
    _rehash(bundle, "checkpoint/model.safetensors")
    res = _cli("predict", bundle, env["images"][0], "--backend", "torch")
    assert res.exit_code == 1 and "error: the torch backend cannot load" in res.output
    res = _cli("bench", bundle, "--backends", "torch", "--batch-sizes", "1", "--json")
    assert res.exit_code == 2 and "torch: the torch backend cannot load" in res.output


def test_08_a_deeply_nested_manifest_is_a_bundle_error(tmp_path):
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BundleError, match="nested too deeply"):
        Bundle.open(tmp_path)


def test_08_dict_values_in_a_filter_are_a_query_error():
    index = VectorIndex(2)
    index.add(np.ones((1, 2), np.float32), ["a"], [{"zone": "A"}])
    with pytest.raises(QueryError, match=r"filter 'extra.zone': expected a str, number or bool, got dict"):
        index.search(np.ones(2), where={"extra.zone": {"$ne": 1}})
    with pytest.raises(QueryError, match="got list"):
        index.search(np.ones(2), where={"extra.zone": [["A"]]})


def test_08_a_garbage_searcher_json_names_the_file(env, tmp_path):
    from clear_sdk.searcher import AttributeSearcher

    idx = tmp_path / "idx"
    (idx).mkdir()
    (idx / "searcher.json").write_text("{not json")
    res = _cli("search", "female", "--index", idx)
    assert res.exit_code == 1 and f"{idx / 'searcher.json'} is not readable JSON" in res.output
    VectorIndex(16 + 2 * len(env["names"]), idx).close()  # an index from before the identity moved
    with pytest.raises(BundleError, match="searcher.json is not readable JSON"):
        AttributeSearcher(env["bundle"], index_dir=idx)


def test_08_a_second_index_run_adding_the_same_crops_first_is_counted(env, tmp_path, monkeypatch):
    from clear_sdk.searcher import AttributeSearcher

    folder = _gallery(env, tmp_path / "crops", ["a.jpg", "b.jpg"], env["images"][:2])
    idx = tmp_path / "idx"
    real_add = AttributeSearcher.add
    raced = []

    def add_after_the_other_run(self, images, ids=None, metadata=None, **kw):
        if not raced:  # the other run commits the same crops between our check and our add
            raced.append(True)
            with AttributeSearcher(env["bundle"], index_dir=idx) as other:
                real_add(other, images, ids=ids, metadata=metadata, **kw)
        return real_add(self, images, ids=ids, metadata=metadata, **kw)

    monkeypatch.setattr(AttributeSearcher, "add", add_after_the_other_run)
    res = _cli("index", env["bundle"], folder, "--index", idx)
    assert res.exit_code == 0, res.output
    assert "indexed 0 new crops (0 unreadable, 2 already there" in res.output


# --------------------------------------------------------------------- 9. empty gallery validates


def test_09_an_empty_gallery_checks_queries_k_and_filters(env):
    from clear_sdk.searcher import AttributeSearcher

    with AttributeSearcher(env["bundle"]) as s:
        assert len(s) == 0
        with pytest.raises(QueryError, match="empty query"):
            s.search("", k=3)
        with pytest.raises(ValueError, match="k must be a positive int"):
            s.search("female", k=-1)
        with pytest.raises(QueryError, match="cannot filter on 'bogus'"):
            s.search("female", where={"bogus": 1})
        assert s.search("female", k=3) == []


# ------------------------------------------------------------------ 10. no silent no-ops, exit 0


@pytest.mark.parametrize("batch", ["0", "-1"])
def test_10_index_batch_must_be_positive(env, tmp_path, batch):
    folder = _gallery(env, tmp_path / "crops", ["a.jpg"], env["images"][:1])
    res = _cli("index", env["bundle"], folder, "--index", tmp_path / "idx", "--batch", batch)
    assert res.exit_code == 1 and f"--batch {batch}: pass a positive number" in res.output
    assert not (tmp_path / "idx").exists()


def test_10_bench_refuses_nothing_to_measure(env):
    res = _cli("bench", env["bundle"], "--batch-sizes", "0", "--backends", "onnxruntime")
    assert res.exit_code == 1 and "must be a positive integer" in res.output
    res = _cli("bench", env["bundle"], "--backends", "tensorrt", "--batch-sizes", "1", "--json")
    assert res.exit_code == 2 and "no backend could run" in res.output and "tensorrt:" in res.output


# ------------------------------------------------------------------------------ 11. input limits


def _png_header(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + 3 * w) * 4)  # a few rows; the decoder would allocate all of them
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_11_huge_declared_images_are_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(20000, 20000))
    with pytest.raises(InputError, match=r"20000x20000 pixels \(400 MP\) is more than the 50 MP limit"):
        load_image(str(path))
    for ext in (".jpg", ".png", ".bmp", ".webp", ".tiff"):  # the header reader knows each format's size
        from clear_sdk.preprocess import image_size

        ok, buf = cv2.imencode(ext, np.zeros((30, 20, 3), np.uint8))
        assert ok and image_size(buf.tobytes()) == (20, 30), ext
    assert load_image(cv2.imencode(".png", np.zeros((3000, 2000, 3), np.uint8))[1].tobytes()).shape == (3000, 2000, 3)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_11_a_fifo_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "f.jpg"
    os.mkfifo(fifo)
    box: list[BaseException] = []
    t = threading.Thread(target=lambda: _catch(box, load_image, str(fifo)), daemon=True)
    t.start()
    t.join(60)  # a hang guard, not a timing assertion: the old code never returned
    assert not t.is_alive(), "load_image blocked on a FIFO"
    assert isinstance(box[0], InputError) and "is a FIFO (named pipe), not an image file" in str(box[0])


def _catch(box: list, fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001 - handed to the test thread
        box.append(e)


# ---------------------------------------------------------------- 12. model identity in the index


def test_12_identity_survives_a_deleted_searcher_json(env, tmp_path):
    from clear_sdk.bundle import ONNX_META_ATTRIBUTES
    from clear_sdk.searcher import AttributeSearcher

    other = _copy_bundle(env, tmp_path / "other")  # another model with the same sizes
    import onnx

    graph = onnx.load(str(other / "recognizer.onnx"))
    graph.doc_string = "retrained"
    assert any(p.key == ONNX_META_ATTRIBUTES for p in graph.metadata_props)
    onnx.save(graph, str(other / "recognizer.onnx"))
    _rehash(other, "recognizer.onnx")

    idx = tmp_path / "idx"
    with AttributeSearcher(env["bundle"], index_dir=idx) as s:
        s.add([str(env["images"][0])], ids=["a"])
    (idx / "searcher.json").unlink()
    with pytest.raises(BundleError, match="was indexed with another model"):
        AttributeSearcher(other, index_dir=idx)
    with AttributeSearcher(env["bundle"], index_dir=idx) as s:  # its own model still opens it
        assert s.index.ids == ["a"]


def test_12_a_dimension_mismatch_gives_advice_a_user_can_follow(env, tmp_path):
    from clear_sdk.searcher import AttributeSearcher

    VectorIndex(5, tmp_path / "idx").close()
    with pytest.raises(BundleError, match="built with another model") as e:
        AttributeSearcher(env["bundle"], index_dir=tmp_path / "idx")
    assert "dim=" not in str(e.value)


# ------------------------------------------------------------------------------------ 13. cosmetic


def test_13_one_line_reasons_and_paths_once(env, tmp_path):
    long_name = tmp_path / ("a-rather-long-folder-name-" * 4) / "missing-bundle"
    res = _cli("predict", long_name, env["images"][0])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 cut short")
    res = _cli("predict", env["bundle"], bad)
    lines = [ln for ln in res.output.splitlines() if "broken.jpg" in ln]
    assert len(lines) == 1 and lines[0].count(str(bad)) == 1


def test_13_long_queries_and_missing_attributes_say_what_is_wrong(env):
    from clear_sdk.query import parse_query

    names = env["names"]
    with pytest.raises(QueryError) as e:
        parse_query("x" * 10_000, names)
    assert len(str(e.value)) < 300
    with pytest.raises(QueryError) as e:
        parse_query("female " + "y" * 900, names)
    assert len(str(e.value)) < 600
    with pytest.raises(QueryError, match="no attribute matches 'red' together with 'lower'") as e:
        parse_query("upper red, lower red", names)
    assert "ambiguous" not in str(e.value)


def test_13_a_file_name_as_bytes_and_a_link_to_a_device(tmp_path):
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="these bytes are a file name"):
        load_image(os.fsencode(img))
    if os.path.exists("/dev/zero"):
        link = tmp_path / "zero.jpg"
        link.symlink_to("/dev/zero")
        with pytest.raises(InputError, match="is a character device"):
            load_image(str(link))


# ------------------------------------------------------------------------------------------- more


def test_unexpected_errors_reach_the_user_as_one_line(monkeypatch, capsys):
    from clear_sdk import cli

    def boom(*a, **k):
        raise RuntimeError("kaput [red]x[/]")

    monkeypatch.setattr(cli, "app", boom)
    monkeypatch.delenv("CLEAR_SDK_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "error: unexpected RuntimeError: kaput [red]x[/]" in err and "Traceback" not in err


def test_runtime_modules_import_no_torch_training_or_export():
    import subprocess
    import sys

    code = (
        "import sys, clear_sdk.searcher, clear_sdk.recognizer, clear_sdk.bundle, clear_sdk.index, clear_sdk.cli;"
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('clear_sdk.training', 'clear_sdk.export'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_errors_are_clear_sdk_errors():
    assert issubclass(IndexBusyError, ClearSDKError) and issubclass(IndexBusyError, TimeoutError)


@pytest.mark.parametrize(("form", "match"), [("words", "query_form='words', which feeds"), ("hard2", "not one of")])
def test_a_query_form_that_disagrees_with_the_query_graph_is_refused(env, tmp_path, form, match):
    from clear_sdk.searcher import AttributeSearcher

    bundle = _copy_bundle(env, tmp_path / "b")
    _edit(bundle, lambda m: m["retrieval"].__setitem__("query_form", form))
    with pytest.raises(BundleError, match=match):
        AttributeSearcher(bundle)
