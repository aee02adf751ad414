"""Item2vec as a next-item recommender: neighbours of the last item, or of the session mean."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from item2vec.base import Recommender, align_rows, mask_last
from item2vec.data.vocab import ItemVocab
from item2vec.embeddings import Item2Vec, Item2VecConfig, ItemEmbeddings
from item2vec.exceptions import DataError, FormatVersionError
from item2vec.index import normalize

__all__ = [
    "ALL_MODEL_NAMES",
    "Item2VecRecommender",
    "MODEL_NAMES",
    "fitted_models",
    "load_recommender",
    "make_recommender",
]


class Item2VecRecommender(Recommender):
    """Rank the catalogue by cosine similarity to the session's item vectors.

    Parameters
    ----------
    mode : {"last", "mean"}
        ``"last"``: neighbours of the last item of the prefix. ``"mean"``:
        neighbours of the mean of the prefix's unit vectors (the prefix's items
        before the last are excluded). The last item itself is excluded where
        repeats were dropped (``repeats_dropped_``, see :meth:`Recommender.fit
        <item2vec.base.Recommender.fit>`); where they were kept it is its own
        nearest neighbour and ranks first.
    embeddings : ItemEmbeddings, optional
        Pre-trained vectors. Their ids are mapped to indices with ``vocab`` (or,
        without ``vocab``, taken to be the indices themselves). Without
        ``embeddings``, :meth:`fit` trains :class:`Item2Vec` with ``params``.
    vocab : ItemVocab, optional
    show_progress : bool
    **params
        :class:`Item2VecConfig` hyperparameters.
    """

    def __init__(
        self,
        mode: Literal["last", "mean"] = "last",
        embeddings: ItemEmbeddings | None = None,
        vocab: ItemVocab | None = None,
        show_progress: bool = False,
        **params: Any,
    ) -> None:
        if mode not in ("last", "mean"):
            raise ValueError(f"mode must be 'last' or 'mean', got {mode!r}")
        self.mode = mode
        self.embeddings = embeddings
        self.vocab = vocab
        self.show_progress = show_progress
        self.params = Item2VecConfig.from_dict(params).to_dict()

    @property
    def name(self) -> str:  # type: ignore[override]
        return "item2vec" if self.mode == "last" else "item2vec-mean"

    def _fit(self, sessions: list[np.ndarray]) -> None:
        emb = self.embeddings
        if emb is None:
            model = Item2Vec(show_progress=self.show_progress, **self.params).fit(sessions)
            emb = model.embeddings_
            self.item2vec_ = model
        self.unit_ = self._aligned(emb)

    def _aligned(self, emb: ItemEmbeddings) -> np.ndarray:
        """Unit vectors in index order: row ``i`` is item ``i`` (zeros where unknown)."""
        rows = align_rows(emb.vocab, self.n_items_, self.vocab)
        table = np.zeros((self.n_items_ + 1, emb.dim), dtype=np.float32)
        ok = rows >= 0
        table[ok] = emb.vectors[rows[ok]]
        return normalize(table)

    def score_batch(self, prefixes: Sequence[np.ndarray]) -> np.ndarray:
        clean = self._prefixes(prefixes)
        query = [p[-1:] if self.mode == "last" else p for p in clean]
        q = np.zeros((len(clean), self.unit_.shape[1]), dtype=np.float32)
        for i, p in enumerate(query):
            if len(p):
                q[i] = self.unit_[p].mean(axis=0)
        scores = q @ self.unit_.T + self._fallback()[None, :].astype(np.float32)
        if self.mode == "mean":
            for i, p in enumerate(clean):
                scores[i, p[:-1][p[:-1] != p[-1]] if len(p) else p] = -np.inf  # the query, bar the last item
        if self.repeats_dropped_:
            mask_last(scores, clean)
        return scores


#: Models fit from training sessions by :func:`make_recommender`.
MODEL_NAMES = ("pop", "markov", "sknn", "implicit", "implicit-als", "item2vec", "item2vec-mean")
#: Everything :func:`fitted_models` knows: the above and ``bilstm`` (loaded from a checkpoint).
ALL_MODEL_NAMES = (*MODEL_NAMES, "bilstm")


def make_recommender(name: str, **params: Any) -> Recommender:
    """The model registry: an unfitted recommender by name, a baseline, ``item2vec`` or ``item2vec-mean``.

    Baselines come from :func:`item2vec.baselines.make_baseline`.

    Raises
    ------
    ValueError
        For a name not in :data:`MODEL_NAMES`.
    """
    if name in ("item2vec", "item2vec-mean"):
        return Item2VecRecommender(mode="last" if name == "item2vec" else "mean", **params)
    from item2vec.baselines import BASELINES, make_baseline

    if name in BASELINES:
        return make_baseline(name, **params)
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(ALL_MODEL_NAMES)}")


def fitted_models(
    data: Any,
    names: Sequence[str],
    embeddings: ItemEmbeddings | None = None,
    next_model: str | os.PathLike[str] | None = None,
    item2vec_params: dict[str, Any] | None = None,
    show_progress: bool = False,
) -> Iterator[tuple[str, Recommender, float]]:
    """Each named model fitted on ``data.train`` (or loaded), one at a time: ``(name, model, seconds)``.

    ``item2vec`` and ``item2vec-mean`` share one set of vectors: ``embeddings`` (ids in
    ``data.vocab``), or one :class:`~item2vec.embeddings.Item2Vec` fit whose seconds both
    count. ``bilstm`` is loaded from the checkpoint directory ``next_model``. Every model is
    told whether the data had consecutive repeats dropped (``data.repeats_dropped``).

    Raises
    ------
    ValueError
        For an unknown name, or ``bilstm`` without ``next_model``.
    DataError
        If the ``bilstm`` checkpoint and ``data`` disagree on whether repeats were dropped.
    """
    unknown = [n for n in names if n not in ALL_MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; expected some of {list(ALL_MODEL_NAMES)}")
    if "bilstm" in names and not next_model:
        raise ValueError("model 'bilstm' needs next_model, a checkpoint directory from item2vec train-next")
    fit_kw = {"n_items": data.n_items, "repeats_dropped": data.repeats_dropped}
    # (vectors, the vocab their ids are in: None when they are indices already, seconds it took to fit them)
    shared = (embeddings, data.vocab, 0.0) if embeddings is not None else None
    for name in names:
        t0 = time.perf_counter()
        if name in ("item2vec", "item2vec-mean"):
            emb, vocab, shared_s = shared or (None, None, 0.0)
            model = make_recommender(name, embeddings=emb, vocab=vocab, show_progress=show_progress,
                                     **(item2vec_params or {}))
            model.fit(data.train, **fit_kw)
            t0 -= shared_s
            if shared is None:
                shared = (model.item2vec_.embeddings_, None, time.perf_counter() - t0)
        elif name == "bilstm":
            from item2vec.nextitem import load_next_model

            model = load_next_model(next_model)
            if model.repeats_dropped_ != data.repeats_dropped:
                how = {True: "dropped", False: "kept"}
                raise DataError(
                    f"the bilstm at {next_model} was trained on data with consecutive repeats "
                    f"{how[model.repeats_dropped_]}, but this data has them {how[data.repeats_dropped]}; "
                    "prepare both the same way (item2vec prepare [--keep-repeats])"
                )
        else:
            model = make_recommender(name).fit(data.train, **fit_kw)
        yield name, model, time.perf_counter() - t0


def load_recommender(path: str | os.PathLike[str], device: str | None = "cpu") -> Recommender:
    """A saved servable recommender, whatever its kind: the BiLSTM, a baseline (pop, markov, sknn, implicit) or a blend.

    Dispatches on the ``kind`` in the directory's ``meta.json``:
    :func:`item2vec.nextitem.load_next_model` for a BiLSTM checkpoint,
    :func:`item2vec.baselines.load_baseline` for a baseline,
    :func:`item2vec.blend.load_blend` for a :class:`~item2vec.blend.Blend`.

    Parameters
    ----------
    path : path-like
        A directory written by the model's ``save``.
    device : str, optional
        Where a BiLSTM is loaded (default CPU).

    Raises
    ------
    FileNotFoundError
        When ``path`` holds no saved model.
    FormatVersionError
        When the saved kind is none of these.
    """
    from item2vec import baselines

    p = Path(path)
    meta_file = p / "meta.json"
    if not meta_file.exists() and any((p / f).exists() for f in ("checkpoint.json", "checkpoint.pt")):
        from item2vec.nextitem import load_next_model

        return load_next_model(p, device=device)  # a BiLSTM directory saved without meta.json (format 1)
    if not meta_file.exists():
        raise FileNotFoundError(f"{str(p)!r} is not a saved model directory (no meta.json)")
    kind = json.loads(meta_file.read_text()).get("kind")
    if kind == baselines.KIND:
        return baselines.load_baseline(p)
    if kind == "item2vec.NextItemRecommender":
        from item2vec.nextitem import load_next_model

        return load_next_model(p, device=device)
    from item2vec import blend

    if kind == blend.KIND:
        return blend.load_blend(p, device=device)
    raise FormatVersionError(
        f"{p}: saved model kind {kind!r}; expected 'item2vec.NextItemRecommender', {baselines.KIND!r} or {blend.KIND!r}"
    )
