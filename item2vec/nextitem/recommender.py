"""The BiLSTM next-item model on the :class:`~item2vec.base.Recommender` interface.

:class:`NextItemRecommender` builds a :class:`~item2vec.nextitem.model.NextItemModel`,
initialises its item table from item2vec vectors (or randomly), trains it with the
:class:`~item2vec.nextitem.train.Trainer`, answers batched top-k queries under
``torch.inference_mode()``, and saves a self-describing checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from item2vec._io import atomic_dir
from item2vec.base import Recommender, align_rows, check_k, clean_prefixes, popularity
from item2vec.data.vocab import ItemVocab
from item2vec.embeddings import Item2Vec, ItemEmbeddings
from item2vec.exceptions import DataError, FormatVersionError, NotFittedError
from item2vec.index import topk
from item2vec.nextitem.model import NextItemConfig, NextItemModel, pretrained_table
from item2vec.nextitem.train import (
    EpochCallback,
    TrainConfig,
    Trainer,
    TrainResult,
    ranked_topk,
    resolve_device,
)

__all__ = ["NextItemRecommender", "load_next_model"]

FORMAT_VERSION = 2  # 2: checkpoint.json + weights.npz + checksums.json, nothing pickled
KIND = "item2vec.NextItemRecommender"
CHECKPOINT = "checkpoint.json"
WEIGHTS = "weights.npz"
LEGACY_CHECKPOINT = "checkpoint.pt"  # format 1: read with torch's weights-only loader, never written

_MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(NextItemConfig) if f.name != "n_items")
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


class NextItemRecommender(Recommender):
    """Embedding (item2vec-initialised or random) → BiLSTM → scores over the catalogue.

    Parameters
    ----------
    embeddings : ItemEmbeddings, optional
        Pre-trained item vectors for ``init="item2vec"``. Their ids are mapped to
        item indices with ``vocab`` (without ``vocab``, the ids are taken to be the
        indices themselves). Without ``embeddings``, ``init="item2vec"`` fits
        :class:`~item2vec.embeddings.Item2Vec` (``item2vec_params``) on the
        training sessions first.
    vocab : ItemVocab, optional
        The vocabulary of the sessions this model sees (``SessionData.vocab``); it
        is stored in the checkpoint so ids can be mapped at serving time.
    init : {"item2vec", "random"}
        How to initialise the item table.
    freeze : bool
        Keep the item2vec vectors fixed during training (only with ``init="item2vec"``).
    valid_fraction : float
        When :meth:`fit` gets no ``valid`` sessions, the last fraction of the
        training sessions is held out for early stopping (0 disables early stopping).
    item2vec_params : dict, optional
        :class:`~item2vec.embeddings.Item2VecConfig` options for the internal fit.
    callback : callable, optional
        ``callback(epoch, {"loss": ..., "val_mrr@20": ..., ...})`` after each epoch.
    config : NextItemConfig, optional
        The architecture (its ``n_items`` is set by :meth:`fit` from the data).
    train_config : TrainConfig, optional
        The optimisation settings.
    **params
        Shorthand for single fields of either, overriding them:
        :class:`~item2vec.nextitem.model.NextItemConfig` fields (``hidden_size``,
        ``num_layers``, ``pooling``, ``tied``, ``dropout``, ``max_prefix``, ``loss``,
        ...) and :class:`~item2vec.nextitem.train.TrainConfig` fields (``epochs``,
        ``batch_size``, ``lr``, ``patience``, ``random_state``, ``device``,
        ``processes`` for data-parallel training, ...).
        With ``init="item2vec"`` the table width is the vectors' size; an
        ``embedding_dim`` given (here or in ``config``) that differs becomes a
        projection to that width.

    Attributes
    ----------
    config : NextItemConfig
        The architecture asked for (``n_items`` unset).
    train_config : TrainConfig
        The optimisation settings.
    repeats_dropped_ : bool
        Whether the training data had consecutive repeats dropped (see :meth:`fit`):
        then a prefix's last item is never recommended nor counted in validation ranks.
        The checkpoint keeps it.
    model_ : NextItemModel
    train_result_ : TrainResult
    config_ : NextItemConfig
        The architecture built (``n_items`` and, with ``init="item2vec"``, the vectors' width).
    """

    name = "bilstm"
    #: :meth:`score_batch` returns logits (a softmax makes them probabilities), read by :class:`~item2vec.blend.Blend`.
    scores_are_logits = True

    def __init__(
        self,
        embeddings: ItemEmbeddings | None = None,
        vocab: ItemVocab | None = None,
        init: Literal["item2vec", "random"] = "item2vec",
        freeze: bool = False,
        valid_fraction: float = 0.1,
        item2vec_params: dict[str, Any] | None = None,
        callback: EpochCallback | None = None,
        *,
        config: NextItemConfig | None = None,
        train_config: TrainConfig | None = None,
        **params: Any,
    ) -> None:
        if init not in ("item2vec", "random"):
            raise ValueError(f"init must be 'item2vec' or 'random', got {init!r}")
        if freeze and init != "item2vec":
            raise ValueError("freeze=True needs init='item2vec': there is nothing to keep fixed in a random table")
        if not 0.0 <= valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
        unknown = set(params) - set(_MODEL_FIELDS) - set(_TRAIN_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown NextItemRecommender option(s) {sorted(unknown)}; expected some of "
                f"{sorted(_MODEL_FIELDS + _TRAIN_FIELDS)}"
            )
        if embeddings is not None and not isinstance(embeddings, ItemEmbeddings):
            raise TypeError(f"embeddings must be an ItemEmbeddings, got {type(embeddings).__name__}")
        for name, value, cls in (("config", config, NextItemConfig), ("train_config", train_config, TrainConfig)):
            if value is not None and not isinstance(value, cls):
                raise TypeError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
        self.embeddings = embeddings
        self.vocab = vocab
        self.init = init
        self.freeze = freeze
        self.valid_fraction = valid_fraction
        self.item2vec_params = dict(item2vec_params or {})
        self._callback = callback
        # both built (and so checked) now rather than after minutes of item2vec
        model_opts = {k: v for k, v in params.items() if k in _MODEL_FIELDS}
        self.config = NextItemConfig.from_dict({**(config.to_dict() if config else {}), **model_opts, "n_items": None})
        self.train_config = TrainConfig.from_dict(
            {**(train_config.to_dict() if train_config else {}), **{k: v for k, v in params.items() if k in _TRAIN_FIELDS}}
        )
        # with init="item2vec", only a width asked for (not the default) becomes a projection
        self._asked_dim: int | None = model_opts.get("embedding_dim", config.embedding_dim if config else None)

    # -- parameters ------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Flat, loggable parameters (init + architecture + training), no objects.

        Once fitted, the architecture is the one built (e.g. ``embedding_dim`` is
        the item2vec vector size).
        """
        built = getattr(self, "config_", self.config)  # fitted: the architecture actually built
        return {
            "init": self.init,
            "freeze": self.freeze,
            "valid_fraction": self.valid_fraction,
            **{k: v for k, v in built.to_dict().items() if k != "n_items"},
            **self.train_config.to_dict(),
        }

    # -- fitting -------------------------------------------------------------------------
    def fit(
        self,
        sessions: Sequence[np.ndarray],
        n_items: int | None = None,
        valid: Sequence[np.ndarray] | None = None,
        *,
        repeats_dropped: bool | None = None,
    ) -> NextItemRecommender:
        """Train on sessions of item indices.

        Parameters
        ----------
        sessions : sequence of int arrays
            Training sessions, item indices in ``1..n_items``, in time order.
        n_items : int, optional
            Catalogue size (default: the largest index seen).
        valid : sequence of int arrays, optional
            Validation sessions for early stopping on MRR@20. Indices outside
            ``1..n_items`` are dropped. Without them, see ``valid_fraction``.
        repeats_dropped : bool, optional
            Whether the data had consecutive repeats dropped (pass
            ``SessionData.repeats_dropped``); default: True unless a training
            session has an item twice in a row. See :class:`~item2vec.base.Recommender`.

        Returns
        -------
        self
        """
        self._valid = valid
        try:
            super().fit(sessions, n_items, repeats_dropped=repeats_dropped)
        finally:
            del self._valid
        return self

    def _fit(self, sessions: list[np.ndarray]) -> None:
        n = self.n_items_
        valid = self._valid
        train = sessions
        if valid is None and self.valid_fraction > 0:
            n_hold = int(len(sessions) * self.valid_fraction)
            if n_hold >= 1 and any(len(s) >= 2 for s in sessions[:-n_hold]):
                train, valid = sessions[:-n_hold], sessions[-n_hold:]
        if valid is not None:
            valid = [v[(v > 0) & (v <= n)] for v in (np.asarray(s, dtype=np.int64) for s in valid)]
        model_params = {k: v for k, v in self.config.to_dict().items() if k != "n_items"}
        tcfg = self.train_config
        torch.manual_seed(tcfg.random_state)
        table = None
        if self.init == "item2vec":
            emb = self.embeddings
            if emb is None:  # fitted on indices: its ids are the indices themselves
                i2v = Item2Vec(show_progress=tcfg.show_progress,
                               **{"random_state": tcfg.random_state, **self.item2vec_params})
                emb = i2v.fit(sessions).embeddings_
                self.item2vec_ = i2v
                rows = self._rows(emb, n, by_index=True)
            else:
                rows = self._rows(emb, n, by_index=self.vocab is None)
            table, known = pretrained_table(emb.vectors, rows, n, tcfg.random_state)
            self.n_known_ = int(known.sum())
            if self.n_known_ == 0:
                raise DataError(
                    "init='item2vec': none of the embeddings' ids is in this vocabulary; pass the "
                    "vocab the sessions were encoded with (SessionData.vocab)"
                )
            wanted = self._asked_dim
            if wanted is not None and wanted != emb.dim and model_params["projection_dim"] is None:
                model_params["projection_dim"] = wanted
            model_params["embedding_dim"] = emb.dim
        self.config_ = NextItemConfig(n_items=n, **model_params)
        model = NextItemModel(self.config_)
        model.init_bias(popularity(train, n))
        if table is not None:
            model.load_item_table(table, freeze=self.freeze)
        self.train_result_ = Trainer(tcfg).fit(
            model, train, valid, max_prefix=self.config_.max_prefix, callback=self._callback,
            exclude_last=self.repeats_dropped_,
        )
        self.model_ = model
        self.device_ = next(model.parameters()).device

    def _rows(self, emb: ItemEmbeddings, n: int, by_index: bool) -> np.ndarray:
        """``rows[i - 1]``: the row of ``emb`` for item index ``i``, or -1 (:func:`~item2vec.base.align_rows`)."""
        if not by_index:
            assert self.vocab is not None
            if len(self.vocab) != n:
                raise DataError(f"vocab has {len(self.vocab)} items but the sessions have n_items={n}")
        return align_rows(emb.vocab, n, None if by_index else self.vocab)[1:]

    # -- inference -------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("bilstm is not fitted yet; call fit(sessions) or load a checkpoint first")

    def _scored_batches(
        self, prefixes: Sequence[np.ndarray], batch_size: int
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """``(rows, scores)`` per batch of the prefixes that have a known item.

        ``scores`` is a ``(len(rows), n_items + 1)`` tensor on the model's device,
        made under ``torch.inference_mode``, with column 0 and (``repeats_dropped_``)
        each prefix's last item at ``-inf``. Indices outside ``1..n_items`` are
        skipped and the last ``max_prefix`` known items are read.
        """
        n, cap = self.n_items_, self.config_.max_prefix
        clean = [p[-cap:] for p in clean_prefixes(prefixes, n, self.name)]
        lengths = np.array([len(p) for p in clean], dtype=np.int64)
        rows = np.flatnonzero(lengths > 0)
        model, device = self.model_, self.device_
        exclude_last = self.repeats_dropped_
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                r = rows[start : start + batch_size]
                items = np.zeros((len(r), int(lengths[r].max())), dtype=np.int64)
                for j, i in enumerate(r):
                    items[j, : lengths[i]] = clean[i]
                items_t = torch.from_numpy(items).to(device)
                lengths_t = torch.from_numpy(lengths[r])
                scores, _ = model(items_t, lengths_t)  # (b, n + 1), column 0 already -inf
                if exclude_last:
                    # the data had consecutive repeats dropped: the last item is never next
                    last = items_t.gather(1, (lengths_t.to(device) - 1).unsqueeze(1))
                    scores = scores.scatter(1, last, float("-inf"))
                yield r, scores

    def score_batch(self, prefixes: Sequence[np.ndarray], batch_size: int = 1024) -> np.ndarray:
        """Scores over the catalogue, shape ``(len(prefixes), n_items + 1)``; column 0 is ``-inf``.

        Indices outside ``1..n_items`` (0, unknown items) are skipped; the last
        ``max_prefix`` known items are read. A prefix with no known item gets
        log-popularity scores. Where the training data had consecutive repeats
        dropped (``repeats_dropped_``) the prefix's last item scores ``-inf``.
        """
        self._check_fitted()
        out = np.empty((len(prefixes), self.n_items_ + 1), dtype=np.float32)
        out[:] = np.log1p(self.popularity_).astype(np.float32)  # rows without a known item
        for rows, scores in self._scored_batches(prefixes, batch_size):
            out[rows] = scores.float().cpu().numpy()
        out[:, 0] = -np.inf
        return out

    def recommend_batch(
        self, prefixes: Sequence[np.ndarray], k: int = 20, batch_size: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` item indices and scores for each prefix, shapes ``(B, k)``.

        The top ``k`` are taken on the model's device per batch, so no dense
        ``(B, n_items + 1)`` array is ever built: at 10k items, a request of 2,048
        prefixes runs several times faster than through :meth:`score_batch`
        (``benchmarks/README.md``). Equal scores inside the top ``k`` are ordered
        by the lower index, as in :func:`~item2vec.index.topk`. A prefix with no
        known item gets the most popular items.
        """
        self._check_fitted()
        k = check_k(k)
        kk = min(k, self.n_items_ + 1)
        pop = np.log1p(self.popularity_).astype(np.float32)
        pop[0] = -np.inf
        fallback_ids, fallback_scores = topk(pop[None, :], kk)
        ids = np.repeat(fallback_ids, len(prefixes), axis=0)
        vals = np.repeat(fallback_scores, len(prefixes), axis=0)
        for rows, scores in self._scored_batches(prefixes, batch_size):
            ids[rows], vals[rows] = ranked_topk(scores, kk)
        return ids, vals

    def recommend_ids(self, items: Sequence[Any], k: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` external ids and scores after a session of external ids (unknown ids skipped).

        Needs the ``vocab`` the model was trained with.
        """
        self._check_fitted()
        if self.vocab is None:
            raise NotFittedError("recommend_ids needs the vocab; construct the model with vocab=SessionData.vocab")
        idx, scores = self.recommend(self.vocab.indices(list(items), missing="drop"), k)
        return self.vocab.lookup(idx), scores

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a self-describing model directory atomically; nothing in it is pickled.

        ``checkpoint.json`` holds the config, vocabulary, kept epoch, validation
        metrics and training facts; ``weights.npz`` the state_dict and the
        popularity as plain arrays; ``meta.json`` repeats the plain facts for
        people and tools; ``checksums.json`` the sha256 of every file.
        """
        from item2vec._io import write_checksums, write_meta

        self._check_fitted()
        res: TrainResult = self.train_result_
        meta = {
            "n_items": self.n_items_,
            "repeats_dropped": self.repeats_dropped_,
            "config": self.config_.to_dict(),
            "params": self.get_params(),
            "epoch": res.best_epoch,
            "epochs_run": res.epochs_run,
            "metrics": res.best_metrics,
            "history": res.history,
            "train_seconds": res.seconds,
            "examples_per_second": res.examples_per_second,
        }
        ckpt = {**meta, "vocab": None if self.vocab is None else self.vocab.to_list()}
        arrays = {f"state_dict/{k}": v.detach().cpu().numpy() for k, v in self.model_.state_dict().items()}
        arrays["popularity"] = np.asarray(self.popularity_, dtype=np.float64)
        with atomic_dir(path, marker=CHECKPOINT) as tmp:
            with open(tmp / WEIGHTS, "wb") as fh:
                np.savez(fh, allow_pickle=False, **arrays)
            write_meta(tmp / CHECKPOINT, KIND, FORMAT_VERSION, indent=None, **ckpt)
            write_meta(tmp / "meta.json", KIND, FORMAT_VERSION, **meta)
            write_checksums(tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | None = None) -> NextItemRecommender:
        """Read a directory written by :meth:`save` (checksums verified, nothing unpickled).

        A format-1 directory (``checkpoint.pt``, written before checksums) is
        read with ``torch.load(weights_only=True)``; saving it again writes format 2.

        Raises
        ------
        FileNotFoundError
            If ``path`` holds no checkpoint.
        FormatVersionError
            If the checkpoint's format version or kind is not this one.
        CorruptModelError
            Naming the file that fails its checksum or does not fit the model.
        """
        from item2vec._io import read_meta, verify_checksums
        from item2vec.exceptions import CorruptModelError

        p = Path(path)
        if not (p / CHECKPOINT).exists() and (p / LEGACY_CHECKPOINT).exists():
            ckpt, arrays = _read_legacy(p)
        elif not (p / CHECKPOINT).exists():
            raise FileNotFoundError(
                f"{str(p)!r} is not a next-item model directory (no {CHECKPOINT}); "
                "create one with `item2vec train-next`"
            )
        else:
            ckpt = read_meta(p / CHECKPOINT, KIND, (FORMAT_VERSION,), what="checkpoint")
            verify_checksums(p)
            try:
                with np.load(p / WEIGHTS, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError, EOFError) as e:
                raise CorruptModelError(f"{p / WEIGHTS}: not arrays saved by numpy ({e})") from None
        params = dict(ckpt["params"])
        init, freeze, vf = params.pop("init"), params.pop("freeze"), params.pop("valid_fraction")
        old_setting = params.pop("exclude_last", True)  # how checkpoints before the fact was recorded kept it
        repeats_dropped = ckpt.get("repeats_dropped", old_setting)
        if device is not None:
            params["device"] = device
        vocab = None if ckpt["vocab"] is None else ItemVocab.from_list(ckpt["vocab"])
        n_items = int(ckpt["n_items"])
        if vocab is not None and len(vocab) != n_items:
            raise CorruptModelError(f"{p / CHECKPOINT}: {len(vocab)} vocabulary ids for n_items={n_items}")
        self = cls(vocab=vocab, init=init, freeze=freeze, valid_fraction=vf, **params)
        self.config_ = NextItemConfig.from_dict(ckpt["config"])
        model = NextItemModel(self.config_)
        state = {k.removeprefix("state_dict/"): torch.from_numpy(v) for k, v in arrays.items()
                 if k.startswith("state_dict/")}
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise CorruptModelError(f"{p / WEIGHTS}: the weights do not fit the model in {CHECKPOINT} ({e})") from None
        model.embedding.weight.requires_grad_(not freeze)
        dev = resolve_device(params.get("device"))
        self.model_ = model.to(dev).eval()
        self.device_ = dev
        self.n_items_ = n_items
        self.repeats_dropped_ = bool(repeats_dropped)
        self.popularity_ = arrays["popularity"]
        self.train_result_ = TrainResult(
            history=list(ckpt["history"]),
            best_epoch=int(ckpt["epoch"]),
            best_metrics=dict(ckpt["metrics"]),
            epochs_run=int(ckpt["epochs_run"]),
            seconds=float(ckpt["train_seconds"]),
            examples_per_second=float(ckpt["examples_per_second"]),
        )
        return self


def _read_legacy(p: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A format-1 directory (``checkpoint.pt``, before checksums), read with torch's weights-only loader."""
    ckpt = torch.load(p / LEGACY_CHECKPOINT, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != 1 or ckpt.get("kind") != KIND:
        ckpt = ckpt if isinstance(ckpt, dict) else {}
        raise FormatVersionError(
            f"{p}: checkpoint {ckpt.get('kind')!r} version {ckpt.get('format_version')!r}; "
            f"this item2vec reads {KIND!r} versions 1 and {FORMAT_VERSION}"
        )
    arrays = {f"state_dict/{k}": v.numpy() for k, v in ckpt.pop("state_dict").items()}
    arrays["popularity"] = ckpt.pop("popularity").numpy()
    return ckpt, arrays


def load_next_model(path: str | os.PathLike[str], device: str | None = None) -> NextItemRecommender:
    """Load a BiLSTM checkpoint directory (``item2vec train-next --out DIR``)."""
    return NextItemRecommender.load(path, device=device)
