"""Item2vec as a next-item recommender: neighbours of the last item, or of the session mean."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from item2vec.base import Recommender, mask_last
from item2vec.data.vocab import ItemVocab
from item2vec.embeddings import Item2Vec, Item2VecConfig, ItemEmbeddings
from item2vec.exceptions import FormatVersionError
from item2vec.index import normalize

__all__ = ["Item2VecRecommender", "load_recommender", "make_recommender", "MODEL_NAMES"]


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
        table = np.zeros((self.n_items_ + 1, emb.dim), dtype=np.float32)
        if self.vocab is not None:
            idx = self.vocab.indices(emb.ids, missing="pad")
        else:
            idx = np.asarray(emb.ids, dtype=np.int64)
        ok = (idx > 0) & (idx <= self.n_items_)
        table[idx[ok]] = emb.vectors[ok]
        return normalize(table)

    def score_batch(self, prefixes: Sequence[np.ndarray]) -> np.ndarray:
        self._check_fitted()
        # known items of each prefix (0 and out-of-range indices are skipped)
        clean = [p[(p > 0) & (p <= self.n_items_)] for p in (np.asarray(p, dtype=np.int64) for p in prefixes)]
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


MODEL_NAMES = ("pop", "markov", "sknn", "implicit", "implicit-als", "item2vec", "item2vec-mean")


def make_recommender(name: str, **params: Any) -> Recommender:
    """A recommender by name: a baseline, ``item2vec`` or ``item2vec-mean``."""
    if name in ("item2vec", "item2vec-mean"):
        return Item2VecRecommender(mode="last" if name == "item2vec" else "mean", **params)
    from item2vec.baselines import BASELINES

    if name in BASELINES:
        return BASELINES[name](**params)
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(set(MODEL_NAMES) | set(BASELINES))}")


def load_recommender(path: str | os.PathLike[str], device: str | None = "cpu") -> Recommender:
    """A saved servable recommender, whatever its kind: the BiLSTM or a baseline (pop, markov, sknn, implicit).

    Dispatches on the ``kind`` in the directory's ``meta.json``:
    :func:`item2vec.nextitem.load_next_model` for a BiLSTM checkpoint,
    :func:`item2vec.baselines.load_baseline` for a baseline.

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
    raise FormatVersionError(
        f"{p}: saved model kind {kind!r}; expected 'item2vec.NextItemRecommender' or {baselines.KIND!r}"
    )
