"""A weighted blend of next-item models, its weights chosen on the validation split.

Session kNN and the BiLSTM are right on different predictions: SKNN where the
session's items co-occur often in training sessions, the BiLSTM where order and the
item2vec geometry carry the signal. :class:`Blend` adds their scores, each row of
each model first put on one scale, with weights picked from a grid by validation
MRR@k (ties: HR@k, then the grid's order, which starts at the first model alone).
The pure first model is on the grid, so the blend is never worse than it on the
validation split; whether it is better on the test split is what
``benchmarks/nextitem_tables.py`` measures.

The one scale: a model whose scores are logits (``scores_are_logits``, the BiLSTM)
is turned into probabilities by a softmax; then every row is shifted to start at 0
and divided by its maximum, so each model's best item scores 1 and its worst 0.

Where consecutive repeats were kept (``repeats_dropped_`` False), how often a session
repeats its last item is a fact of the log (23 % of Diginetica's next items, 0.3 % of
Online Retail's) that most models do not learn: item2vec's neighbours rank the last
item first, Markov and SKNN by co-occurrence. The blend then also multiplies each
prefix's last item's score by a factor chosen on validation with the weights, by
coordinate ascent (from :data:`LAST_ITEM_FACTORS`; 0 never recommends it, 1 leaves the
mix alone).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from item2vec._io import atomic_dir, read_meta, write_meta
from item2vec.base import Recommender, Sessions, check_k, mask_last
from item2vec.data.vocab import ItemVocab
from item2vec.evaluation import make_prefixes, metrics_from_ranks, topk_ranks
from item2vec.exceptions import CorruptModelError, DataError, NotFittedError
from item2vec.index import topk

__all__ = ["KIND", "LAST_ITEM_FACTORS", "Blend", "load_blend", "weight_grid"]

#: ``kind`` in a saved blend's ``meta.json``.
KIND = "item2vec.Blend"
FORMAT_VERSION = 1
#: Factors on the last item's blended score tried on validation when repeats were kept.
LAST_ITEM_FACTORS = (1.0, 0.0, 0.25, 0.5, 2.0, 4.0)


def weight_grid(n_models: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector on the simplex with coordinates in multiples of ``step``, the first model's largest first.

    ``weight_grid(2, 0.5)`` is ``[(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]``.
    """
    if not 0 < step <= 1:
        raise ValueError(f"step must lie in (0, 1], got {step!r}")
    m = round(1 / step)
    if abs(m * step - 1) > 1e-9:
        raise ValueError(f"step must divide 1 (0.5, 0.25, 0.1, ...), got {step!r}")
    out = [c for c in itertools.product(range(m, -1, -1), repeat=n_models) if sum(c) == m]
    return [tuple(x / m for x in c) for c in out]


def _unit_rows(scores: np.ndarray, logits: bool) -> np.ndarray:
    """Each row on [0, 1]: softmax first for logits; -inf and NaN become 0 (the row's worst)."""
    s = np.array(scores, dtype=np.float64)
    bad = ~np.isfinite(s)
    if logits:
        s[bad] = -np.inf
        s -= np.max(s, axis=1, keepdims=True)
        np.exp(s, out=s)
    else:
        s[bad] = np.inf
        s -= np.min(s, axis=1, keepdims=True)
        s[bad] = 0.0
    top = np.max(s, axis=1, keepdims=True)
    np.divide(s, top, out=s, where=top > 0)
    return s


def _scale_last(scores: np.ndarray, prefixes: list[np.ndarray], factor: float) -> None:
    """Multiply each row's score of its prefix's last item by ``factor``, in place (rows of cleaned prefixes)."""
    if factor == 1.0:
        return
    rows = [i for i, p in enumerate(prefixes) if len(p)]
    scores[rows, [int(prefixes[i][-1]) for i in rows]] *= factor


class Blend(Recommender):
    """Scores of several next-item models added with weights chosen on validation.

    Parameters
    ----------
    models : sequence of Recommender
        Two or more; fitted already (on the same catalogue) or fitted by :meth:`fit`.
        Put the model to fall back on first: the grid starts with it alone.
    weights : sequence of float, optional
        Fixed weights (one per model, >= 0, not all 0). Default: chosen by :meth:`fit`
        on ``valid``.
    step : float
        The weight grid's spacing (``0.1``: 11 blends of 2 models, 66 of 3).
    k : int
        Cut-off of the validation MRR@k / HR@k that choose the weights.
    max_valid : int, optional
        Validation predictions used to choose (a seeded sample; None: all).
    random_state : int
        Seed of that sample.
    vocab : ItemVocab, optional
        The external ids of indices ``1..n_items`` (serving: a blend behind
        :class:`~item2vec.serving.ServedModel`); fitting and scoring never read it.
    last_item_factor : float, optional
        Where repeats were kept: a fixed factor (>= 0) on each prefix's last item's
        blended score. Default: chosen on ``valid`` from :data:`LAST_ITEM_FACTORS`
        (1.0 with fixed ``weights`` and no ``valid``). Unused where repeats were dropped.

    A blend whose models all save (the baselines, the BiLSTM) saves too
    (:meth:`save`; :func:`item2vec.recommenders.load_recommender` reads it back).

    Attributes
    ----------
    weights_ : tuple of float
        The weights in use.
    last_item_factor_ : float
        The factor on the last item's score in use (1.0 where repeats were dropped).
    valid_table_ : list of dict
        Every (weights, factor) tried on validation, in the order tried: ``weights``,
        ``mrr@k``, ``hr@k`` and, where repeats were kept, ``last_item_factor``. There the
        choice is a coordinate ascent: the weights at factor 1, the factor for them and,
        when it moved, the weights at that factor and the factor once more.
    """

    name = "blend"

    def __init__(
        self,
        models: Sequence[Recommender],
        weights: Sequence[float] | None = None,
        step: float = 0.1,
        k: int = 20,
        max_valid: int | None = 20_000,
        random_state: int = 0,
        vocab: ItemVocab | None = None,
        last_item_factor: float | None = None,
    ) -> None:
        models = list(models)
        if len(models) < 2 or not all(isinstance(m, Recommender) for m in models):
            raise TypeError(f"Blend: expected two or more Recommender models, got {[type(m).__name__ for m in models]}")
        if weights is not None:
            weights = tuple(float(w) for w in weights)
            if len(weights) != len(models) or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"Blend: expected {len(models)} weights >= 0, not all 0, got {weights}")
        weight_grid(len(models), step)  # refuses a bad step now, not after training
        if last_item_factor is not None and not (isinstance(last_item_factor, (int, float))
                                                 and np.isfinite(last_item_factor) and last_item_factor >= 0):
            raise ValueError(f"Blend: last_item_factor must be a number >= 0 or None, got {last_item_factor!r}")
        self.models = models
        self.weights = weights
        self.step = step
        self.k = check_k(k)
        self.max_valid = max_valid
        self.random_state = random_state
        if vocab is not None and not isinstance(vocab, ItemVocab):
            raise TypeError(f"Blend: vocab must be an ItemVocab, got {type(vocab).__name__}")
        self.vocab = vocab
        self.last_item_factor = None if last_item_factor is None else float(last_item_factor)

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params["models"] = [m.name for m in self.models]
        params.pop("vocab")
        return params

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fitted blend to directory ``path`` atomically.

        ``meta.json`` (the weights in use, the constructor's parameters, the validation
        table), ``model-0/``, ``model-1/`` ... (each model's own ``save``) and, when
        :attr:`vocab` is set, ``vocab.json``.

        Raises
        ------
        NotFittedError
            When the blend is not fitted.
        TypeError
            When one of its models cannot be saved (it has no ``save``); nothing is written.
        """
        if not hasattr(self, "weights_"):
            raise NotFittedError("blend is not fitted yet; call fit(sessions, valid=...) before save")
        unsaved = [m.name for m in self.models if not callable(getattr(m, "save", None))]
        if unsaved:
            raise TypeError(f"Blend.save: {unsaved} cannot be saved (no save()); "
                            "a blend saves when every model in it does (the baselines, the BiLSTM)")
        params = {k: v for k, v in self.get_params().items() if k != "models"}
        with atomic_dir(path, marker="meta.json") as tmp:
            for i, m in enumerate(self.models):
                m.save(tmp / f"model-{i}")  # type: ignore[attr-defined]
            if self.vocab is not None:
                (tmp / "vocab.json").write_text(json.dumps(self.vocab.to_list()))
            write_meta(tmp / "meta.json", KIND, FORMAT_VERSION, models=[m.name for m in self.models],
                       params=params, weights_=list(self.weights_), last_item_factor_=self.last_item_factor_,
                       n_items=int(self.n_items_),
                       repeats_dropped=bool(self.repeats_dropped_),
                       valid_table=[{**row, "weights": list(row["weights"])} for row in self.valid_table_])
        return Path(path)

    def fit(
        self,
        sessions: Sessions,
        n_items: int | None = None,
        *,
        repeats_dropped: bool | None = None,
        valid: Sessions | None = None,
    ) -> Blend:
        """Fit the models not fitted yet on ``sessions``, then choose the weights on ``valid``.

        Raises
        ------
        ValueError
            Without ``weights`` and without ``valid`` sessions to choose them on.
        DataError
            When a model fitted beforehand has another catalogue size.
        """
        if self.weights is None and (valid is None or len(valid) == 0):
            raise ValueError("Blend.fit: no weights given; pass valid= (validation sessions) to choose them on")
        self._valid = valid
        return super().fit(sessions, n_items, repeats_dropped=repeats_dropped)  # type: ignore[return-value]

    def _fit(self, sessions: list[np.ndarray]) -> None:
        for m in self.models:
            if not hasattr(m, "n_items_"):
                m.fit(sessions, self.n_items_, repeats_dropped=self.repeats_dropped_)
            elif m.n_items_ != self.n_items_:
                raise DataError(f"Blend: {m.name} was fitted on {m.n_items_} items, the blend on {self.n_items_}")
        valid, self._valid = self._valid, None
        self.last_item_factor_ = 1.0 if self.repeats_dropped_ or self.last_item_factor is None \
            else self.last_item_factor
        self.valid_table_ = []
        self.weights_ = self.weights
        if self.weights is None:
            self.weights_ = self._choose_weights(valid)
        if not self.repeats_dropped_ and self.last_item_factor is None and valid is not None and len(valid):
            # coordinate ascent: the factor for these weights; when it moved, the weights again at
            # that factor (a model whose row ranks the last item first is weighed fairly) and the factor again
            self.last_item_factor_ = self._choose_factor(valid)
            if self.weights is None and self.last_item_factor_ != 1.0:
                self.weights_ = self._choose_weights(valid)
                self.last_item_factor_ = self._choose_factor(valid)

    def _choose_weights(self, valid: Sessions) -> tuple[float, ...]:
        """The best weight vector of the grid at the current factor; its rows go to ``valid_table_``."""
        best, table = self._choose(valid, weight_grid(len(self.models), self.step), (self.last_item_factor_,))
        self.valid_table_ += table
        return best[0]

    def _choose_factor(self, valid: Sessions) -> float:
        """The best of :data:`LAST_ITEM_FACTORS` with the current weights; its rows go to ``valid_table_``."""
        best, table = self._choose(valid, [self.weights_], LAST_ITEM_FACTORS)
        self.valid_table_ += table
        return best[1]

    def _choose(self, valid: Sessions, grid: list[tuple[float, ...]],
                factors: Sequence[float]) -> tuple[tuple[tuple[float, ...], float], list[dict[str, Any]]]:
        """The best (weights, factor) of ``grid`` x ``factors`` by validation MRR@k (ties: HR@k, then the first).

        Returns ((weights, factor), the validation table of every candidate: ``weights``,
        ``last_item_factor`` where repeats were kept, ``mrr@k``, ``hr@k``).
        """
        valid = [np.asarray(s, dtype=np.int64) for s in valid]
        if not any(len(s) >= 2 for s in valid):
            raise ValueError("Blend.fit: the validation sessions hold no prediction (every session has < 2 items)")
        pre = make_prefixes(valid)
        idx = np.arange(len(pre))
        if self.max_valid is not None and len(pre) > self.max_valid:
            idx = np.sort(np.random.default_rng(self.random_state).choice(len(pre), self.max_valid, replace=False))
        cands = [(w, f) for w in grid for f in factors]
        ranks = np.zeros((len(cands), len(idx)), dtype=np.int64)
        chunk = max(1, min(1024, (1 << 23) // (self.n_items_ + 1)))  # a (chunk, n_items) float64 block <= 64 MiB
        for start in range(0, len(idx), chunk):
            part = idx[start:start + chunk]
            prefixes = self._prefixes([pre.prefixes[i] for i in part])
            units = self._units(prefixes, grid[0] if len(grid) == 1 else None)
            for c, (w, f) in enumerate(cands):
                ranks[c, start:start + len(part)] = topk_ranks(
                    *self._top(self._mix(units, w), prefixes, self.k, f), pre.targets[part])
        table = [{"weights": w, **({} if self.repeats_dropped_ else {"last_item_factor": f}),
                  **metrics_from_ranks(r, self.k)} for (w, f), r in zip(cands, ranks, strict=True)]
        m, h = f"mrr@{self.k}", f"hr@{self.k}"
        best = max(range(len(cands)), key=lambda c: (table[c][m], table[c][h], -c))
        return cands[best], table

    def _units(self, prefixes: list[np.ndarray], weights: Sequence[float] | None = None) -> list[np.ndarray | None]:
        """Each model's rows on one scale; ``None`` for a model whose weight in ``weights`` is 0 (not scored)."""
        return [None if weights is not None and not w else
                _unit_rows(m.score_batch(prefixes), bool(getattr(m, "scores_are_logits", False)))
                for m, w in zip(self.models, weights or [1.0] * len(self.models), strict=True)]

    def _mix(self, units: list[np.ndarray | None], weights: Sequence[float]) -> np.ndarray:
        out = np.zeros((len(next(u for u in units if u is not None)), self.n_items_ + 1))
        for u, w in zip(units, weights, strict=True):
            if w and u is not None:
                out += w * u
        return out

    def _top(self, scores: np.ndarray, prefixes: list[np.ndarray], k: int,
             factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        _scale_last(scores, prefixes, factor)
        scores[:, 0] = -np.inf
        if self.repeats_dropped_:
            mask_last(scores, prefixes)
        return topk(scores, k)

    def score_batch(self, prefixes: Sessions) -> np.ndarray:
        """The weighted sum of the models' rows on one scale, shape ``(len(prefixes), n_items + 1)``."""
        if not hasattr(self, "weights_"):
            raise NotFittedError("blend is not fitted yet; call fit(sessions, valid=...) first")
        prefixes = self._prefixes(prefixes)
        if not prefixes:
            return np.empty((0, self.n_items_ + 1), dtype=np.float32)
        out = self._mix(self._units(prefixes, self.weights_), self.weights_)
        if not self.repeats_dropped_:
            _scale_last(out, prefixes, self.last_item_factor_)
        out[:, 0] = -np.inf
        return out.astype(np.float32)


def load_blend(path: str | os.PathLike[str], device: str | None = "cpu") -> Blend:
    """A fitted blend from a directory written by :meth:`Blend.save` (its models through
    :func:`item2vec.recommenders.load_recommender`).

    Raises
    ------
    FileNotFoundError
        When ``path`` holds no ``meta.json``.
    FormatVersionError
        When the directory holds another kind or format version.
    CorruptModelError
        When a model in it disagrees with the blend on the catalogue size or the weights on the model count.
    """
    from item2vec.recommenders import load_recommender

    p = Path(path)
    if not (p / "meta.json").exists():
        raise FileNotFoundError(f"{str(p)!r} is not a saved blend directory (no meta.json)")
    meta = read_meta(p / "meta.json", KIND, (FORMAT_VERSION,), what="saved blend")
    n = len(meta["models"])
    if len(meta["weights_"]) != n:
        raise CorruptModelError(f"{p / 'meta.json'}: {len(meta['weights_'])} weights for {n} models")
    models = [load_recommender(p / f"model-{i}", device=device) for i in range(n)]
    for i, m in enumerate(models):
        if m.n_items_ != meta["n_items"]:
            raise CorruptModelError(f"{p / f'model-{i}'}: {m.name} has {m.n_items_} items, "
                                    f"the blend {meta['n_items']}")
    vocab = ItemVocab.from_list(json.loads((p / "vocab.json").read_text())) if (p / "vocab.json").exists() else None
    blend = Blend(models, vocab=vocab, **meta["params"])
    blend.n_items_ = int(meta["n_items"])
    blend.repeats_dropped_ = bool(meta["repeats_dropped"])
    blend.popularity_ = models[0].popularity_
    blend.weights_ = tuple(float(w) for w in meta["weights_"])
    blend.last_item_factor_ = float(meta["last_item_factor_"])
    blend.valid_table_ = [{**row, "weights": tuple(row["weights"])} for row in meta["valid_table"]]
    return blend
