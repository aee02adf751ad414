"""The evaluation protocol: next-item prediction on every prefix of every test session.

For a test session ``s`` of length ``L`` and every ``t`` in ``1..L-1`` the model
sees ``s[:t]`` and ranks the whole catalogue for ``s[t]``. HR@K is 1 when the
target is in the top K (= Recall@K with one target), MRR@K is ``1/rank`` within
the top K (else 0), NDCG@K is ``1/log2(rank + 1)`` within the top K (else 0).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from item2vec._progress import tqdm
from item2vec.base import Recommender, check_k
from item2vec.exceptions import EmptyDataError

__all__ = [
    "Prefixes",
    "evaluate",
    "format_table",
    "make_prefixes",
    "metrics_from_ranks",
    "paired_bootstrap",
    "prediction_ranks",
    "reciprocal_ranks",
    "run_evaluation",
    "topk_ranks",
]


@dataclass
class Prefixes:
    """All (prefix, target) pairs of a set of sessions."""

    prefixes: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


def make_prefixes(sessions: Sequence[np.ndarray], max_prefix: int | None = None) -> Prefixes:
    """Every prefix ``s[:t]`` (t >= 1) with target ``s[t]``; ``max_prefix`` keeps the last items."""
    prefixes: list[np.ndarray] = []
    targets: list[int] = []
    for s in sessions:
        s = np.asarray(s, dtype=np.int64)
        for t in range(1, len(s)):
            lo = 0 if max_prefix is None else max(0, t - max_prefix)
            prefixes.append(s[lo:t])
            targets.append(int(s[t]))
    if not targets:
        raise EmptyDataError("evaluation: expected sessions with 2 or more items, found none")
    return Prefixes(prefixes, np.asarray(targets, dtype=np.int64))


def metrics_from_ranks(ranks: np.ndarray, k: int) -> dict[str, float]:
    """HR@k, MRR@k, NDCG@k from 1-based ranks (0 = not in the top k)."""
    ranks = np.asarray(ranks)
    hit = (ranks > 0) & (ranks <= k)
    r = np.where(hit, ranks, 1).astype(np.float64)
    return {
        f"hr@{k}": float(hit.mean()),
        f"mrr@{k}": float(np.where(hit, 1.0 / r, 0.0).mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(r + 1.0), 0.0).mean()),
    }


def prediction_ranks(
    model: Recommender,
    sessions: Sequence[np.ndarray] | Prefixes,
    k: int = 20,
    batch_size: int = 512,
    show_progress: bool = False,
) -> np.ndarray:
    """The rank of each prediction's target in the model's top ``k`` (1-based; 0 = not there).

    What :func:`evaluate` aggregates; per prediction, for paired comparisons of two
    models on the same prefixes (:func:`paired_bootstrap`).

    Returns
    -------
    ndarray of int64, shape (n_predictions,)
    """
    k = check_k(k)
    pre = sessions if isinstance(sessions, Prefixes) else make_prefixes(sessions)
    ranks = np.zeros(len(pre), dtype=np.int64)
    bar = tqdm(total=len(pre), desc=f"eval {model.name}", unit="pred", disable=not show_progress, leave=False)
    for start in range(0, len(pre), batch_size):
        stop = min(start + batch_size, len(pre))
        ids, scores = model.recommend_batch(pre.prefixes[start:stop], k)
        ranks[start:stop] = topk_ranks(ids, scores, pre.targets[start:stop])
        bar.update(stop - start)
    bar.close()
    return ranks


def topk_ranks(ids: np.ndarray, scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Each target's 1-based place in its row of a top-k answer; 0 when absent or scored ``-inf``.

    The one rank rule: test ranks (:func:`prediction_ranks`) and the next-item
    model's validation ranks (:func:`~item2vec.nextitem.train.rank_metrics`) both
    read them here from top-k answers ordered best first, equal scores by the lower
    index.

    Parameters
    ----------
    ids, scores : ndarray, shape (B, k)
        A ``recommend_batch`` answer.
    targets : ndarray of int, shape (B,)

    Returns
    -------
    ndarray of int64, shape (B,)
    """
    match = (np.asarray(ids) == np.asarray(targets)[:, None]) & np.isfinite(scores)
    return np.where(match.any(axis=1), match.argmax(axis=1) + 1, 0).astype(np.int64)


def reciprocal_ranks(ranks: np.ndarray) -> np.ndarray:
    """Per-prediction ``1 / rank`` (0 where the target was not in the top k): MRR's summands."""
    ranks = np.asarray(ranks)
    return np.where(ranks > 0, 1.0 / np.maximum(ranks, 1), 0.0)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = 10_000, random_state: int = 0
) -> dict[str, float]:
    """Mean of ``a - b`` over paired predictions, with a 95% percentile-bootstrap interval.

    ``a`` and ``b`` are per-prediction values of two models on the same prefixes
    (e.g. :func:`reciprocal_ranks`, whose mean is MRR). Predictions are resampled
    with replacement ``n_boot`` times.

    Returns
    -------
    dict
        ``diff`` (the observed mean difference), ``lo`` / ``hi`` (2.5th and 97.5th
        percentiles of the resampled differences) and ``p_le_0`` (the share of
        resamples where ``a`` does not beat ``b``).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or len(a) == 0:
        raise ValueError(f"expected two equal-length 1-D arrays of paired values, got shapes {a.shape} and {b.shape}")
    d = a - b
    if len(d) == 1:  # scipy needs two observations; one resamples to itself
        return {"diff": float(d[0]), "lo": float(d[0]), "hi": float(d[0]), "p_le_0": float(d[0] <= 0)}
    # batch=500 bounds the (500, n) index matrix
    res = stats.bootstrap((a, b), _mean_difference, paired=True, vectorized=True, n_resamples=n_boot, batch=500,
                          confidence_level=0.95, method="percentile", rng=np.random.default_rng(random_state))
    means = res.bootstrap_distribution
    return {"diff": float(d.mean()), "lo": float(res.confidence_interval.low),
            "hi": float(res.confidence_interval.high), "p_le_0": float((means <= 0).mean())}


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return (a - b).mean(axis=axis)


def evaluate(
    model: Recommender,
    sessions: Sequence[np.ndarray] | Prefixes,
    k: int = 20,
    batch_size: int = 512,
    show_progress: bool = False,
) -> dict[str, float]:
    """Score one fitted model with the protocol above.

    Returns
    -------
    dict
        ``hr@k``, ``mrr@k``, ``ndcg@k``, ``n_predictions`` and
        ``predict_seconds`` / ``predictions_per_second``.
    """
    k = check_k(k)
    pre = sessions if isinstance(sessions, Prefixes) else make_prefixes(sessions)
    t0 = time.perf_counter()
    ranks = prediction_ranks(model, pre, k, batch_size, show_progress)
    secs = time.perf_counter() - t0
    out: dict[str, float] = metrics_from_ranks(ranks, k)
    out["n_predictions"] = len(pre)
    out["predict_seconds"] = round(secs, 3)
    out["predictions_per_second"] = round(len(pre) / max(secs, 1e-9), 1)
    return out


def format_table(results: dict[str, dict[str, Any]], k: int) -> str:
    """Results as a fixed-width table (model, HR@k, MRR@k, NDCG@k, fit s)."""
    head = f"{'model':16s} {'HR@' + str(k):>8s} {'MRR@' + str(k):>8s} {'NDCG@' + str(k):>8s} {'fit s':>8s}"
    rows = [head, "-" * len(head)]
    for name, r in results.items():
        rows.append(
            f"{name:16s} {r[f'hr@{k}']:8.4f} {r[f'mrr@{k}']:8.4f} {r[f'ndcg@{k}']:8.4f} {r.get('fit_seconds', 0):8.2f}"
        )
    return "\n".join(rows)


def run_evaluation(
    data: Any,
    names: Sequence[str],
    k: int = 20,
    split: str = "test",
    embeddings: Any = None,
    next_model: str | None = None,
    item2vec_params: dict[str, Any] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Fit each named model on ``data.train`` and evaluate on ``data.<split>``; the JSON report.

    The models come from the registry, :func:`item2vec.recommenders.fitted_models`
    (which documents ``embeddings``, ``next_model`` and ``item2vec_params``); this
    function only talks to the :class:`~item2vec.base.Recommender` interface.

    Raises
    ------
    ValueError
        For an unknown model name, or ``bilstm`` without ``next_model``.
    DataError
        If the ``bilstm`` checkpoint and ``data`` disagree on whether repeats were dropped.
    """
    from item2vec.recommenders import fitted_models

    k = check_k(k)
    pre = make_prefixes(getattr(data, split))
    results: dict[str, dict[str, Any]] = {}
    models = fitted_models(data, names, embeddings=embeddings, next_model=next_model,
                           item2vec_params=item2vec_params, show_progress=show_progress)
    for name, model, fit_s in models:
        res = evaluate(model, pre, k=k, show_progress=show_progress)
        res["fit_seconds"] = round(fit_s, 3)
        results[name] = res
    return {"k": k, "split": split, "n_predictions": len(pre), "dataset": data.stats, "models": results}
