"""Item2Vec: skip-gram with negative sampling over sessions (gensim Word2Vec underneath).

:class:`Item2Vec` is the estimator: its constructor stores hyperparameters and
:meth:`Item2Vec.fit` trains gensim's Word2Vec on sessions, treating each session
as a sentence and each item id as a word. The result is an
:class:`~item2vec.vectors.ItemEmbeddings` (module :mod:`item2vec.vectors`, imported
here too): only the vectors and the id ↔ row map, small and independent of the
trainer, which answers :meth:`~item2vec.vectors.ItemEmbeddings.similar_items`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from item2vec._config import DictConfig
from item2vec._progress import tqdm
from item2vec.exceptions import (
    DataError,
    EmptyDataError,
    NotFittedError,
    OptionError,
)
from item2vec.vectors import ItemEmbeddings

__all__ = ["Item2Vec", "Item2VecConfig", "ItemEmbeddings"]


# ---------------------------------------------------------------------------
# the estimator

# ---------------------------------------------------------------------------
@dataclass
class Item2VecConfig(DictConfig):
    """Item2Vec hyperparameters; round-trips to a flat dict (MLflow params, config files).

    ``window=None`` means the whole session is the context (item2vec, Barkan &
    Koenigstein 2016): the window is set to the longest session and, with
    ``shrink_windows=False``, every pair of items in a session is a training pair.

    The defaults were chosen on the validation splits of four real logs
    (``python -m pipelines.tune``, see the README): against gensim-like settings
    (whole session, 64-d, 5 negatives, ``ns_exponent=0.75``, 10 epochs) they lift
    validation MRR@20 from 0.035 to 0.156 on Diginetica and from 0.066 to 0.099 on
    Gowalla, tie on Online Retail (0.158 vs 0.157) and lose on MovieLens (0.024 to
    0.016). With ``shrink_windows=False`` a window of 5 is the whole session for
    sessions of up to 6 items; the whole-session window scored the same on Online
    Retail at twice the training time.

    ``vector_size`` is 32 since ``python -m pipelines.defaults`` (issue #14): at 128
    dimensions MovieLens kept only half of its tuned HR@20; at 32 every shared log,
    including Amazon Video Games, which played no part in the choice, keeps at least
    0.85 of it, and no other single knob did that without costing Diginetica
    (see the README, "Defaults without tuning").
    """

    _label = "Item2Vec option"

    vector_size: int = 32
    window: int | None = 5
    negative: int = 10
    ns_exponent: float = 1.0
    sample: float = 1e-3
    epochs: int = 40
    alpha: float = 0.025
    min_alpha: float = 0.0001
    min_count: int = 1
    shrink_windows: bool = False
    workers: int = 1
    random_state: int = 0

    def __post_init__(self) -> None:
        """Refuse values that cannot train (they used to save the random initial vectors)."""
        ints = {"vector_size": 1, "negative": 1, "epochs": 1, "min_count": 1, "workers": 1, "random_state": 0}
        for name, low in ints.items():
            _check_option(name, getattr(self, name), int, low)
        if self.window is not None:
            _check_option("window", self.window, int, 1, hint="; None (CLI: --window 0) means the whole session")
        _check_option("alpha", self.alpha, float, 0.0, low_open=True)
        _check_option("min_alpha", self.min_alpha, float, 0.0)
        if self.min_alpha > self.alpha:
            raise OptionError(
                f"Item2Vec: min_alpha must be <= alpha (the learning rate decays from alpha to min_alpha), "
                f"got min_alpha={self.min_alpha} and alpha={self.alpha}", options=("min_alpha", "alpha"),
            )
        _check_option("sample", self.sample, float, 0.0)
        _check_option("ns_exponent", self.ns_exponent, float, None)
        if not isinstance(self.shrink_windows, (bool, np.bool_)):
            raise OptionError(f"Item2Vec: shrink_windows must be True or False, got {self.shrink_windows!r}",
                              options=("shrink_windows",))


def _check_option(
    name: str, v: Any, kind: type, low: float | None, low_open: bool = False, hint: str = ""
) -> None:
    """Type and lower bound of one hyperparameter; :class:`OptionError` naming it otherwise."""
    types: tuple[type, ...] = (int, np.integer) if kind is int else (int, float, np.integer, np.floating)
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, types):
        what = "an integer" if kind is int else "a number"
        raise OptionError(f"Item2Vec: {name} must be {what}, got {v!r} ({type(v).__name__}){hint}", options=(name,))
    if not np.isfinite(v) or (low is not None and (v < low or (low_open and v == low))):
        bound = "" if low is None else (f" > {low:g}" if low_open else f" >= {low:g}")
        what = "an integer" if kind is int else "a finite number"
        raise OptionError(f"Item2Vec: {name} must be {what}{bound}, got {v!r}{hint}", options=(name,))



class _Tokens:
    """A re-iterable view of sessions as lists of string tokens (gensim's words)."""

    def __init__(self, sessions: Iterable[Sequence[Any]], token: dict[Any, str]) -> None:
        self.sessions, self.token = sessions, token

    def __iter__(self) -> Iterator[list[str]]:
        tok = self.token
        for s in self.sessions:
            yield [tok[x] if x in tok else _add(tok, x) for x in _as_list(s)]


def _as_list(s: Any) -> list[Any]:
    if isinstance(s, np.ndarray):
        return s.tolist()
    if _is_frame(s) and type(s).__name__ == "Series":  # pandas and polars both have to_list
        return s.to_list()
    if isinstance(s, (str, bytes)) or not hasattr(s, "__iter__") or _is_frame(s):
        tail = "; a string is not a session of its characters" if isinstance(s, (str, bytes)) else ""
        raise TypeError(
            f"each session must be a list or array of item ids, got a {type(s).__name__} ({s!r:.60}){tail}"
        )
    return list(s)


def _is_frame(x: Any) -> bool:
    """A pandas or polars DataFrame / Series (checked by module, without importing pandas)."""
    mod = type(x).__module__
    return (mod.startswith("pandas") or mod.startswith("polars")) and type(x).__name__ in (
        "DataFrame", "Series", "LazyFrame"
    )


def _check_sessions_type(sessions: Any) -> None:
    if _is_frame(sessions) and type(sessions).__name__ != "Series":  # a Series of lists is fine
        kind = f"a {type(sessions).__module__.split('.')[0]} {type(sessions).__name__}"
        raise TypeError(
            f"Item2Vec.fit expects sessions as a list of lists of item ids, got {kind}. For an event "
            "frame (one row per event) run item2vec.prepare(frame, item_col=..., session_col=..., "
            "time_col=...) and fit on data.decode(data.train); or group it yourself, e.g. "
            "df.groupby('session_id')['item_id'].agg(list).tolist() in pandas"
        )
    if isinstance(sessions, (str, bytes, dict)) or not hasattr(sessions, "__iter__"):
        raise TypeError(
            f"Item2Vec.fit expects sessions as a list of lists of item ids, got {type(sessions).__name__}"
        )


def _add(tok: dict[Any, str], x: Any) -> str:
    if x is None or (isinstance(x, float)):
        raise DataError(f"item ids must be str or int, got {x!r} ({type(x).__name__})")
    t = str(x)
    tok[x] = t
    return t


class Item2Vec:
    """Skip-gram item embeddings from sessions (gensim Word2Vec underneath).

    The constructor only stores hyperparameters (see :class:`Item2VecConfig`),
    ``show_progress`` (a tqdm bar over epochs) and ``compute_loss`` (gensim's loss
    tracking, shown in the bar and kept in ``loss_history_``; about 9% of the
    training time, so batch jobs that do not read it can turn it off);
    :meth:`fit` does the work and sets ``embeddings_``, ``model_`` (the gensim
    model, kept for warm starts) and ``loss_history_``.

    Examples
    --------
    >>> model = Item2Vec(vector_size=32, epochs=5).fit([["a", "b", "c"], ["b", "c", "d"]] * 50)
    >>> ids, scores = model.embeddings_.similar_items("b", k=2)
    """

    def __init__(
        self,
        config: Item2VecConfig | None = None,
        show_progress: bool = True,
        compute_loss: bool = True,
        **params: Any,
    ) -> None:
        base = (config or Item2VecConfig()).to_dict()
        base.update(params)
        self.config = Item2VecConfig.from_dict(base)
        self.show_progress = show_progress
        self.compute_loss = compute_loss

    def get_params(self) -> dict[str, Any]:
        return self.config.to_dict()

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.get_params().items() if getattr(Item2VecConfig(), k) != v}
        return f"Item2Vec({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    @property
    def embeddings_(self) -> ItemEmbeddings:
        if not hasattr(self, "_embeddings"):
            raise NotFittedError("this Item2Vec is not fitted yet; call fit(sessions) first")
        return self._embeddings

    def fit(
        self, sessions: Iterable[Sequence[Any]], init: ItemEmbeddings | None = None,
        callbacks: Sequence[CallbackAny2Vec] = (),
    ) -> Item2Vec:
        """Train on sessions.

        Parameters
        ----------
        sessions : list or re-iterable of sequences of item ids
            Each session is a sequence of external ids (str or int). A one-shot
            iterator or generator is refused: training reads the data
            ``epochs + 1`` times.
        init : ItemEmbeddings, optional
            Warm start: items present in ``init`` start from its vectors (same
            dimension required), so the new vector space stays comparable.
        callbacks : sequence of gensim ``CallbackAny2Vec``
            More epoch callbacks (after the progress bar's), e.g. to score each epoch;
            one may stop the fit by raising.

        Returns
        -------
        self

        Raises
        ------
        TypeError
            For a one-shot iterator/generator, a DataFrame or Series (pass lists of
            ids: ``prepare(frame)`` then ``data.decode(data.train)``), a string, or
            a session that is a string or not a sequence.
        EmptyDataError
            If no session has two or more items.
        """
        _check_sessions_type(sessions)
        if iter(sessions) is sessions:
            raise TypeError(
                "sessions is a one-shot iterator or generator, but Item2Vec reads the sessions "
                f"{self.config.epochs + 1} times (vocabulary + each epoch). Pass a list "
                "(list(sessions)) or an object whose __iter__ starts over on every call."
            )
        cfg = self.config
        token: dict[Any, str] = {}
        if isinstance(sessions, Sequence):
            corpus: Any = list(_Tokens(sessions, token))  # convert once, reuse every epoch
        else:
            corpus = _Tokens(sessions, token)
        n_pairs_sessions, max_len, n_words = 0, 0, 0
        for s in corpus:
            n_words += len(s)
            if len(s) >= 2:
                n_pairs_sessions += 1
            max_len = max(max_len, len(s))
        if n_pairs_sessions == 0:
            raise EmptyDataError(
                "Item2Vec.fit: expected at least one session with 2 or more items, found none"
            )
        back = {t: x for x, t in token.items()}
        if len(back) != len(token):
            raise DataError("item ids collide once written as strings (e.g. 1 and '1'); use one id type")
        window = cfg.window if cfg.window is not None else max(max_len - 1, 1)
        w2v = Word2Vec(
            vector_size=cfg.vector_size,
            window=window,
            min_count=cfg.min_count,
            sg=1,
            hs=0,
            negative=cfg.negative,
            ns_exponent=cfg.ns_exponent,
            sample=cfg.sample,
            alpha=cfg.alpha,
            min_alpha=cfg.min_alpha,
            seed=cfg.random_state,
            workers=cfg.workers,
            shrink_windows=cfg.shrink_windows,
            compute_loss=self.compute_loss,
        )
        t0 = time.perf_counter()
        w2v.build_vocab(corpus)
        if init is not None:
            self._warm_start(w2v, init, back)
        callbacks = [_Progress(cfg.epochs, self.show_progress), *callbacks]
        w2v.train(
            corpus,
            total_examples=w2v.corpus_count,
            total_words=w2v.corpus_total_words,
            epochs=cfg.epochs,
            callbacks=callbacks,
            compute_loss=self.compute_loss,
        )
        self.fit_seconds_ = time.perf_counter() - t0
        self.loss_history_ = callbacks[0].losses
        self.words_per_second_ = n_words * cfg.epochs / max(self.fit_seconds_, 1e-9)
        self.model_ = w2v
        keys = [back[t] for t in w2v.wv.index_to_key]
        self._embeddings = ItemEmbeddings(
            keys, w2v.wv.vectors.copy(), metadata={"item2vec": cfg.to_dict(), "window_used": window}
        )
        return self

    @staticmethod
    def _warm_start(w2v: Any, init: ItemEmbeddings, back: dict[str, Any]) -> None:
        if init.dim != w2v.wv.vector_size:
            raise DataError(f"warm start needs vectors of size {w2v.wv.vector_size}, got {init.dim}")
        for i, t in enumerate(w2v.wv.index_to_key):
            item = back[t]
            if item in init:
                w2v.wv.vectors[i] = init[item]


class _Progress(CallbackAny2Vec):
    """gensim callback: a tqdm bar over epochs with the epoch's loss in the postfix."""

    def __init__(self, epochs: int, show: bool) -> None:
        self.bar = tqdm(total=epochs, desc="item2vec", unit="epoch", disable=not show, leave=False)
        self.losses: list[float] = []
        self._last = 0.0

    def on_epoch_end(self, model: Any) -> None:
        total = float(model.get_latest_training_loss())
        self.losses.append(total - self._last)  # gensim accumulates the loss over epochs
        self._last = total
        self.bar.set_postfix(loss=f"{self.losses[-1]:.4g}")
        self.bar.update(1)

    def on_train_end(self, model: Any) -> None:
        self.bar.close()
