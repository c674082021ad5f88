"""Index a folder of person crops and search it by attributes; save the results as a picture grid.

    python examples/search_gallery.py --bundle clear-sdk-demo/bundle --gallery /data/crops \\
        --query "female, backpack" --query "man with a hat, red top" --grid hits.png

The gallery is searched recursively for images (jpg, png, bmp, webp, tif). With ``--index DIR`` the
index persists and a second run only adds the images it has not seen; without it the index lives in
memory. A gallery with a ``labels.csv`` (image, then one 0/1 column per attribute) also gets each hit
checked against the query: green / red frames in the grid and precision@k in the summary.
An index written by ``clear-sdk watch`` is searched the same way: ``clear-sdk search ... --index DIR``.

``main(argv)`` returns the summary (also printed) so that other code and tests can call it.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("search_gallery")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LABELS_FILE = "labels.csv"


class GalleryError(RuntimeError):
    """A problem the user can fix: an empty or missing gallery."""


def find_images(root: Path) -> list[Path]:
    """Every image under ``root`` (recursive), in a stable order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_labels(root: Path) -> dict[str, dict[str, bool]] | None:
    """``labels.csv`` of the gallery as {relative image path: {attribute: bool}}, or None when there is none."""
    path = root / LABELS_FILE
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "image" not in rows[0]:
        logger.warning("%s has no 'image' column; hits are not checked", path)
        return None
    truth = {}
    for row in rows:
        values = {k: v.strip() == "1" for k, v in row.items() if k != "image" and v is not None and v.strip() in "01"}
        truth[Path(row["image"]).as_posix()] = values
    return truth


def matches(labels: dict[str, bool] | None, constraints: dict[str, bool]) -> bool | None:
    """Whether an image's labels satisfy every constraint of a query (None if a constraint is not labelled)."""
    if labels is None or any(name not in labels for name in constraints):
        return None
    return all(labels[name] == want for name, want in constraints.items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True, help="clear-sdk model bundle folder")
    p.add_argument("--gallery", required=True, help="folder of person crops (searched recursively)")
    p.add_argument("--query", action="append", required=True, help='e.g. "female, long hair, backpack" (repeatable)')
    p.add_argument("--k", type=int, default=5, help="hits per query")
    p.add_argument("--scorer", default="embedding", choices=("embedding", "recognition", "fused"), help="ranking")
    p.add_argument("--camera", help="only search items of this camera id (metadata filter)")
    p.add_argument("--index", help="persistent index folder (reused: only new images are added); default in memory")
    p.add_argument("--grid", help="save the hits as a PNG grid (one row per query)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Index, search, draw; returns ``{"gallery", "indexed", "gallery_size", "queries": [...], "grid"}``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.k < 1:
        parser.error("--k must be >= 1")
    from clear_sdk import AttributeSearcher, Bundle
    from clear_sdk.visualize import retrieval_grid

    root = Path(args.gallery)
    if not root.is_dir():
        raise GalleryError(f"--gallery {root} is not a folder")
    images = find_images(root)
    if not images:
        raise GalleryError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")

    bundle = Bundle.open(args.bundle)
    scorer = args.scorer if bundle.has_retrieval else "recognition"
    if scorer != args.scorer:
        logger.warning("%s has no retrieval stage: ranking with the recognition scorer", bundle.path)
    searcher = AttributeSearcher(bundle, index_dir=args.index, scorer=scorer)
    try:
        ids = [p.relative_to(root).as_posix() for p in images]
        new = [(i, p) for i, p in zip(ids, images) if i not in searcher.index]  # a reused index keeps its items
        chunk = 256  # commit in chunks: an interrupted run keeps what it indexed
        for start in range(0, len(new), chunk):
            part = new[start : start + chunk]
            camera = {"camera": args.camera} if args.camera else {}
            metadata = [{"source": str(p.resolve()), **camera} for _, p in part]
            searcher.add([p for _, p in part], ids=[i for i, _ in part], metadata=metadata, errors="skip")
            logger.info("indexed %d / %d new images", min(start + chunk, len(new)), len(new))
        truth = read_labels(root)
        where = {"camera": args.camera} if args.camera else None
        summary: dict[str, Any] = {
            "gallery": str(root),
            "indexed": len(new),
            "gallery_size": len(searcher),
            "scorer": scorer,
            "labelled": truth is not None,
            "queries": [],
            "grid": None,
        }
        rows, correct = [], []
        for query in args.query:
            constraints = searcher.parse(query)
            hits = searcher.search(query, k=args.k, where=where)
            checked = [matches(truth.get(h.id) if truth else None, constraints) for h in hits]
            entry = {
                "query": query,
                "constraints": constraints,
                "hits": [
                    {"id": h.id, "score": h.score, "source": h.metadata.get("source"), "match": ok}
                    for h, ok in zip(hits, checked)
                ],
            }
            if hits and all(ok is not None for ok in checked):
                entry["precision"] = sum(checked) / len(hits)
            summary["queries"].append(entry)
            rows.append((query, [(h.metadata.get("source"), h.score) for h in hits]))
            correct.append([bool(ok) for ok in checked])
        if args.grid:
            known = truth is not None and all(all(ok is not None for ok in q["hits"]) for q in summary["queries"])
            grid = retrieval_grid(rows, args.grid, correct=correct if known else None)
            summary["grid"] = str(grid)
    finally:
        searcher.close()
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The hits as a readable table."""
    lines = [f"gallery {summary['gallery']}: {summary['gallery_size']} images ({summary['indexed']} newly indexed)"]
    for q in summary["queries"]:
        head = f"\nquery: {q['query']}"
        if "precision" in q:
            head += f"   (precision@{len(q['hits'])} {q['precision']:.2f})"
        lines.append(head)
        for rank, h in enumerate(q["hits"], 1):
            mark = {True: " ok", False: " --", None: ""}[h["match"]]
            lines.append(f"  {rank:>3}  {h['score']:+.3f}{mark}  {h['id']}")
    if summary["grid"]:
        lines.append(f"\ngrid: {summary['grid']}")
    return "\n".join(lines)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from clear_sdk import ClearSDKError

    try:
        result = main()
    except (GalleryError, ClearSDKError) as err:
        sys.exit(f"error: {err}")
    print(json.dumps(result, indent=2) if "--json" in sys.argv else format_summary(result))
