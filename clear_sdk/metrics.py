"""Recognition and retrieval metrics, computed exactly as the PAR literature computes them.

Pure numpy, no torch, so the runtime, the trainer and the benchmarks report identical numbers.

Recognition (:func:`attribute_metrics`) follows the conventions of Rethinking_of_PAR's
``get_pedestrian_metrics`` (the evaluation code most PAR papers reuse):

- an attribute is predicted present when ``prob > threshold`` (strictly greater);
- every ratio has ``EPS = 1e-20`` added to its denominator, so an empty denominator yields 0
  instead of NaN (an attribute with no positives contributes TP/P = 0 to its mA, a sample with
  no positive labels and no predictions scores 0 on every instance metric);
- label-based mA = mean over attributes of (TP/P + TN/N) / 2;
- instance-based accuracy |Y∩Ŷ|/|Y∪Ŷ|, precision |Y∩Ŷ|/|Ŷ| and recall |Y∩Ŷ|/|Y| are averaged
  over samples, and F1 = 2·P·R/(P+R) of those averages (``f1_mean`` is the mean of per-sample F1,
  which some papers report instead).

Retrieval (:func:`retrieval_metrics`) follows the attribute-based person retrieval protocol of
CLEAR: a gallery item is a positive for a query when its whole attribute vector equals the query;
R-k is the fraction of queries with a positive in the top k; mAP is non-interpolated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "EPS",
    "UNKNOWN",
    "attribute_metrics",
    "partial_queries",
    "partial_query_hits",
    "ranking_metrics",
    "retrieval_metrics",
    "retrieval_queries",
]

logger = logging.getLogger(__name__)

UNKNOWN = 255
"""A label value meaning "not annotated" (a unified-schema attribute the sample's dataset does not label):
masked out of the loss and of every metric, never counted as a negative."""

EPS = 1e-20
"""Added to every denominator, as in Rethinking_of_PAR, so empty counts give 0 rather than NaN."""

# Score-matrix elements argsorted at once by retrieval_metrics: bounds its working memory
# (a few arrays of this many int64/float64 values, ~32 MiB each) whatever Q and G are.
_BLOCK_ELEMENTS = 1 << 22


def _binary_labels(labels: np.ndarray, name: str, allow_unknown: bool = False) -> np.ndarray:
    """Check a 2-D, non-empty 0/1 matrix and return it as bool (with ``allow_unknown``, also :data:`UNKNOWN`)."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [samples, attributes], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample and one attribute")
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.number)):
            raise ValueError(f"{name} must be numeric 0/1 (or bool), got dtype {arr.dtype}")
        valid = (arr == 0) | (arr == 1) | ((arr == UNKNOWN) if allow_unknown else False)
        if not valid.all():
            bad = np.unique(arr[~valid])[:5]
            raise ValueError(
                f"{name} must contain only 0 and 1{f' (or {UNKNOWN}: not annotated)' if allow_unknown else ''}, "
                f"found {bad.tolist()}; binarise multi-class fields (e.g. one-hot age) before evaluating"
            )
        arr = arr == 1
    return arr


def known_mask(labels: np.ndarray) -> np.ndarray:
    """bool [N, A]: True where a label is annotated (not :data:`UNKNOWN`)."""
    arr = np.asarray(labels)
    return np.ones(arr.shape, bool) if arr.dtype == np.bool_ else arr != UNKNOWN


def _threshold_array(threshold: float | Sequence[float] | np.ndarray, n_attrs: int) -> np.ndarray:
    """One float, or one threshold per attribute ([A]), as float64; anything else is a ValueError that says so."""
    thr = np.asarray(threshold, dtype=np.float64)
    if thr.ndim == 1:
        if thr.shape[0] != n_attrs:
            raise ValueError(
                f"threshold has {thr.shape[0]} values but there are {n_attrs} attributes; "
                "pass one float or one threshold per attribute"
            )
    elif thr.ndim != 0:
        raise ValueError(f"threshold must be a float or a 1-D array [attributes], got shape {thr.shape}")
    if np.isnan(thr).any():
        raise ValueError("threshold contains NaN; pass finite thresholds")
    return thr


def attribute_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    threshold: float | Sequence[float] | np.ndarray = 0.5,
) -> dict[str, float | np.ndarray]:
    """Label-based and instance-based PAR metrics of ``probs`` [N, A] against 0/1 ``labels`` [N, A].

    ``threshold`` is one float or one value per attribute ([A], e.g. calibrated thresholds from a
    bundle manifest); a prediction is positive when ``probs > threshold``. Any real-valued scores
    work (logits with ``threshold=0`` give the same decisions as probabilities with 0.5).

    Labels equal to :data:`UNKNOWN` (255: not annotated, e.g. a unified attribute the sample's dataset does
    not label) are left out of every count: an attribute is scored over the samples that annotate it, a
    sample over the attributes it has; an attribute no sample annotates gets NaN per-attribute values and is
    left out of ``mA``.

    Returns Python floats ``mA``, ``accuracy``, ``precision``, ``recall``, ``f1`` (of the averaged
    precision and recall), ``f1_mean`` (mean of per-sample F1), and float64 arrays [A]
    ``per_attribute_mA``, ``per_attribute_tpr`` (TP/P), ``per_attribute_tnr`` (TN/N) and
    ``per_attribute_accuracy`` ((TP+TN)/N_samples, the fraction of samples classified correctly).
    """
    scores = np.asarray(probs)
    gt = _binary_labels(labels, "labels", allow_unknown=True)
    known = known_mask(labels)
    if scores.shape != gt.shape:
        raise ValueError(
            f"probs shape {scores.shape} does not match labels shape {gt.shape}; both must be [samples, attributes]"
        )
    if not np.issubdtype(scores.dtype, np.number) or np.issubdtype(scores.dtype, np.complexfloating):
        raise ValueError(f"probs must be real numbers, got dtype {scores.dtype}")
    if np.isnan(scores).any():
        raise ValueError(f"probs contains {int(np.isnan(scores).sum())} NaN value(s); check the model output")

    pred = (scores > _threshold_array(threshold, gt.shape[1])) & known
    gt = gt & known

    # Label-based (per attribute, over the samples that annotate it).
    n_known = known.sum(axis=0, dtype=np.float64)
    pos = gt.sum(axis=0, dtype=np.float64)
    neg = n_known - pos
    tp = (gt & pred).sum(axis=0, dtype=np.float64)
    tn = (known & ~gt & ~pred).sum(axis=0, dtype=np.float64)
    tpr = tp / (pos + EPS)
    tnr = tn / (neg + EPS)
    label_ma = (tpr + tnr) / 2.0
    label_acc = (tp + tn) / (n_known + EPS)
    if not known.all():
        empty = n_known == 0
        for arr in (tpr, tnr, label_ma, label_acc):
            arr[empty] = np.nan

    # Instance-based (per sample, over the attributes it annotates), then averaged over samples.
    inter = (gt & pred).sum(axis=1, dtype=np.float64)
    union = (gt | pred).sum(axis=1, dtype=np.float64)
    n_pred = pred.sum(axis=1, dtype=np.float64)
    n_gt = gt.sum(axis=1, dtype=np.float64)
    inst_acc = inter / (union + EPS)
    inst_prec = inter / (n_pred + EPS)
    inst_rec = inter / (n_gt + EPS)
    inst_f1 = 2.0 * inst_prec * inst_rec / (inst_prec + inst_rec + EPS)

    precision = float(inst_prec.mean())
    recall = float(inst_rec.mean())
    return {
        "mA": float(np.nanmean(label_ma)) if np.isfinite(label_ma).any() else float("nan"),
        "accuracy": float(inst_acc.mean()),
        "precision": precision,
        "recall": recall,
        "f1": 2.0 * precision * recall / (precision + recall + EPS),
        "f1_mean": float(inst_f1.mean()),
        "per_attribute_mA": label_ma,
        "per_attribute_tpr": tpr,
        "per_attribute_tnr": tnr,
        "per_attribute_accuracy": label_acc,
    }


def retrieval_queries(labels: np.ndarray) -> np.ndarray:
    """The retrieval queries of a split: its unique attribute vectors, sorted (``np.unique(axis=0)``), as uint8.

    CLEAR's protocol queries every distinct attribute combination once (484 on the Market-1501
    test identities), so frequent combinations do not dominate the averages.
    """
    return np.unique(_label_codes(labels, "labels"), axis=0)


def _label_codes(labels: np.ndarray, name: str) -> np.ndarray:
    """Checked labels as uint8 codes 0, 1 and UNKNOWN (an unannotated entry is part of a whole-vector class)."""
    gt = _binary_labels(labels, name, allow_unknown=True)
    return np.where(known_mask(labels), gt.astype(np.uint8), np.uint8(UNKNOWN))


def _similarities(scores: np.ndarray, n_q: int, n_g: int) -> np.ndarray:
    """``scores`` as a real [Q, G] matrix that can be negated and ranked, or a ValueError that says why not."""
    sim = np.asarray(scores)
    if sim.shape != (n_q, n_g):
        raise ValueError(f"scores shape {sim.shape} does not match (num queries, num gallery) = ({n_q}, {n_g})")
    if not np.issubdtype(sim.dtype, np.number) or np.issubdtype(sim.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers, got dtype {sim.dtype}")
    if not np.issubdtype(sim.dtype, np.floating):
        sim = sim.astype(np.float64)  # negating unsigned/extreme ints would wrap
    if np.isnan(sim).any():
        raise ValueError(f"scores contains {int(np.isnan(sim).sum())} NaN value(s); NaN has no rank")
    return sim


def retrieval_metrics(
    scores: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float | int]:
    """Rank-k and mAP of attribute queries against a gallery, from a similarity matrix ``scores`` [Q, G].

    Higher score = better match. A gallery item is a positive for a query when its whole 0/1
    attribute vector equals the query's (``query_labels`` [Q, A], ``gallery_labels`` [G, A]); an UNKNOWN
    entry (not annotated) must be UNKNOWN in both.

    - Ranking: scores sorted descending with a *stable* sort, so tied scores keep gallery order
      (the earlier gallery item ranks first). Results are therefore deterministic but depend on
      gallery order when a model produces ties.
    - ``"R-k"``: the fraction (in [0, 1], not percent) of evaluated queries with at least one
      positive among the top k; k larger than G means the whole gallery.
    - ``"mAP"``: mean over queries of non-interpolated average precision, i.e. the mean over a
      query's positives of the precision at each positive's rank; a fraction in [0, 1].
    - Queries with no positive in the gallery are skipped (they have no defined AP) and counted in
      ``"num_skipped"``; ``"num_queries"`` is the number evaluated. If every query is skipped, a
      ValueError is raised, since no metric is defined.

    Queries are processed in blocks so memory stays bounded (tens of MiB) for Q≈3000, G≈20000.
    """
    ks_list = [int(k) for k in ks]
    if not ks_list or any(k < 1 for k in ks_list) or any(k != kk for k, kk in zip(ks_list, ks, strict=True)):
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {tuple(ks)}")
    q_lab = _label_codes(query_labels, "query_labels")
    g_lab = _label_codes(gallery_labels, "gallery_labels")
    if q_lab.shape[1] != g_lab.shape[1]:
        raise ValueError(
            f"query_labels has {q_lab.shape[1]} attributes but gallery_labels has {g_lab.shape[1]}; "
            "both must use the same attribute schema"
        )
    n_q, n_g = q_lab.shape[0], g_lab.shape[0]
    sim = _similarities(scores, n_q, n_g)

    # One integer id per distinct attribute vector, shared by queries and gallery: equality of
    # whole vectors becomes equality of ids.
    _, ids = np.unique(np.concatenate([q_lab, g_lab]), axis=0, return_inverse=True)
    ids = ids.reshape(-1)
    q_ids, g_ids = ids[:n_q], ids[n_q:]
    n_pos_all = np.bincount(g_ids, minlength=int(ids.max()) + 1)[q_ids]
    evaluated = np.flatnonzero(n_pos_all > 0)
    num_skipped = n_q - evaluated.size
    if evaluated.size == 0:
        raise ValueError(
            f"none of the {n_q} queries has a positive (an identical attribute vector) in the gallery; "
            "check that queries and gallery come from the same split and schema"
        )
    if num_skipped:
        logger.info("retrieval_metrics: skipped %d of %d queries with no positive in the gallery", num_skipped, n_q)

    k_cols = [min(k, n_g) for k in ks_list]
    hits = np.zeros(len(ks_list), dtype=np.int64)
    ap_sum = 0.0
    ranks = np.arange(1, n_g + 1, dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // n_g)
    for start in range(0, evaluated.size, block):
        rows = evaluated[start : start + block]
        order = np.argsort(-sim[rows], axis=1, kind="stable")
        match = g_ids[order] == q_ids[rows, None]
        for j, kc in enumerate(k_cols):
            hits[j] += int(match[:, :kc].any(axis=1).sum())
        cum = np.cumsum(match, axis=1, dtype=np.float64)
        prec_at_pos = np.where(match, cum / ranks, 0.0)
        ap_sum += float((prec_at_pos.sum(axis=1) / n_pos_all[rows]).sum())

    n_eval = int(evaluated.size)
    result: dict[str, float | int] = {f"R-{k}": float(h) / n_eval for k, h in zip(ks_list, hits, strict=True)}
    result["mAP"] = ap_sum / n_eval
    result["num_queries"] = n_eval
    result["num_skipped"] = int(num_skipped)
    return result


def partial_queries(
    labels: np.ndarray, num: int, sizes: Sequence[int] = (1, 2, 3, 4), seed: int = 0
) -> list[dict[int, bool]]:
    """Partial attribute queries drawn from a split's own people (ours, beside CLEAR's whole-vector protocol).

    Each query takes a random image of ``labels`` [N, A], a size k from ``sizes`` and k of that image's
    annotated attributes with their values ({attribute index: present?}), so every query has at least one
    positive. Drawn with ``numpy.random.default_rng(seed)``; duplicates are dropped (fewer than ``num`` then).
    """
    codes = _label_codes(labels, "labels")
    rng = np.random.default_rng(seed)
    seen: set[tuple[tuple[int, bool], ...]] = set()
    out: list[dict[int, bool]] = []
    for _ in range(num):
        row = codes[rng.integers(len(codes))]
        known = np.flatnonzero(row != UNKNOWN)
        k = min(int(rng.choice(list(sizes))), len(known))
        if k == 0:
            continue
        attrs = sorted(rng.choice(known, size=k, replace=False).tolist())
        key = tuple((a, bool(row[a] == 1)) for a in attrs)
        if key not in seen:
            seen.add(key)
            out.append(dict(key))
    return out


def partial_query_hits(queries: Sequence[Mapping[int, bool]], gallery_labels: np.ndarray) -> np.ndarray:
    """bool [Q, G]: image g satisfies query q (every asked attribute annotated with the asked value)."""
    codes = _label_codes(gallery_labels, "gallery_labels")
    hits = np.ones((len(queries), len(codes)), bool)
    for i, q in enumerate(queries):
        for a, v in q.items():
            hits[i] &= codes[:, a] == (1 if v else 0)
    return hits


def ranking_metrics(scores: np.ndarray, hits: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float | int]:
    """R-k and non-interpolated mAP from a score matrix [Q, G] and its positives [Q, G] (stable descending sort).

    The ranking half of :func:`retrieval_metrics` for any definition of a hit (the partial-query protocol's);
    queries without a positive are skipped and counted.
    """
    sim, hits = np.asarray(scores, np.float64), np.asarray(hits, bool)
    if sim.shape != hits.shape:
        raise ValueError(f"scores shape {sim.shape} does not match hits shape {hits.shape}")
    rows = np.flatnonzero(hits.any(axis=1))
    if rows.size == 0:
        raise ValueError("no query has a positive in the gallery")
    order = np.argsort(-sim[rows], axis=1, kind="stable")
    match = np.take_along_axis(hits[rows], order, axis=1)
    ranks = np.arange(1, sim.shape[1] + 1, dtype=np.float64)
    ap = (np.where(match, np.cumsum(match, axis=1) / ranks, 0.0).sum(axis=1) / match.sum(axis=1)).mean()
    out: dict[str, float | int] = {f"R-{k}": float(match[:, : min(k, sim.shape[1])].any(axis=1).mean()) for k in ks}
    out["mAP"] = float(ap)
    out["num_queries"] = int(rows.size)
    out["num_skipped"] = int(len(sim) - rows.size)
    return out
