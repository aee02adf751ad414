"""Training loop for next-item models: every prefix is an example, early stopping on MRR@20.

The :class:`Trainer` knows nothing of the model beyond
``model(items, lengths, targets=None) -> (scores, loss)``: it builds (prefix,
target) examples, runs Adam with gradient clipping, evaluates MRR@K on validation
prefixes after each epoch, keeps the best weights, and calls a per-epoch callback
(MLflow logging plugs in there).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from item2vec._config import DictConfig
from item2vec._progress import tqdm
from item2vec.exceptions import EmptyDataError

if TYPE_CHECKING:
    from item2vec.nextitem.distributed import Comm

__all__ = ["Examples", "TrainConfig", "TrainResult", "Trainer", "make_examples", "resolve_device", "rank_metrics", "ranked_topk"]

DEVICE_ENV = "ITEM2VEC_DEVICE"

EpochCallback = Callable[[int, dict[str, float]], None]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train and predict on.

    Order: the explicit ``device``, then the ``ITEM2VEC_DEVICE`` environment
    variable, then CUDA when available, then CPU.

    Raises
    ------
    ValueError
        If the requested device is not a torch device name, or asks for CUDA on a
        machine without it.
    """
    chosen = device if device is not None else os.environ.get(DEVICE_ENV) or None
    if chosen is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(chosen)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be a torch device name such as 'cpu' or 'cuda:0', got {chosen!r}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        src = "device" if device is not None else f"${DEVICE_ENV}"
        raise ValueError(f"{src} asks for {chosen!r} but CUDA is not available on this machine")
    return dev


@dataclass
class Examples:
    """(prefix, target) pairs as a right-padded matrix.

    Attributes
    ----------
    items : ndarray, shape (N, L), int64
        Prefixes, right-padded with 0 (``L`` = the longest kept prefix).
    lengths : ndarray, shape (N,), int64
    targets : ndarray, shape (N,), int64
    """

    items: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, idx: np.ndarray) -> Examples:
        return Examples(self.items[idx], self.lengths[idx], self.targets[idx])

    def batch(self, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Tensors for the rows ``idx``, trimmed to the batch's longest prefix."""
        lengths = self.lengths[idx]
        items = self.items[idx, : int(lengths.max())]
        return (
            torch.from_numpy(items).to(device),
            torch.from_numpy(lengths),  # pack_padded_sequence wants lengths on the CPU
            torch.from_numpy(self.targets[idx]).to(device),
        )


def make_examples(sessions: Sequence[np.ndarray], max_prefix: int) -> Examples:
    """Every prefix ``s[:t]`` (t >= 1) of every session with target ``s[t]``; the last ``max_prefix`` items kept.

    Raises
    ------
    EmptyDataError
        If no session has two or more items.
    """
    sessions = [np.asarray(s, dtype=np.int64) for s in sessions]
    n = sum(max(len(s) - 1, 0) for s in sessions)
    if n == 0:
        raise EmptyDataError("next-item training: expected sessions with 2 or more items, found none")
    width = min(max_prefix, max(len(s) for s in sessions) - 1)
    items = np.zeros((n, width), dtype=np.int64)
    lengths = np.empty(n, dtype=np.int64)
    targets = np.empty(n, dtype=np.int64)
    row = 0
    for s in sessions:
        for t in range(1, len(s)):
            p = s[max(0, t - max_prefix) : t]
            items[row, : len(p)] = p
            lengths[row] = len(p)
            targets[row] = s[t]
            row += 1
    return Examples(items, lengths, targets)


def ranked_topk(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of ``scores``, best first; equal scores by the lower index.

    The one top-``k`` of the next-item model, as :func:`~item2vec.index.topk` orders
    it: :meth:`NextItemRecommender.recommend_batch` answers with it and
    :func:`rank_metrics` ranks validation targets with it, so validation and test
    ranks treat ties alike.

    Parameters
    ----------
    scores : Tensor, shape (B, n)
    k : int
        At most ``n``.

    Returns
    -------
    ids, values : ndarray, shape (B, k)
        Column indices (int64) and their scores (float32), on the CPU.
    """
    v, i = torch.topk(scores.float(), k, dim=1)  # sorted, best first
    v, i = v.cpu().numpy(), i.cpu().numpy().astype(np.int64)
    order = np.lexsort((i, -v), axis=1)  # ties: lower index first
    return np.take_along_axis(i, order, axis=1), np.take_along_axis(v, order, axis=1)


@torch.inference_mode()
def rank_metrics(
    model: nn.Module,
    examples: Examples,
    k: int = 20,
    batch_size: int = 1024,
    device: torch.device | None = None,
    exclude_last: bool = False,
) -> dict[str, float]:
    """HR@k and MRR@k of ``model`` on ``examples``.

    Ranks are those of the test protocol: the target's place in :func:`ranked_topk`
    (equal scores by the lower index), read by
    :func:`~item2vec.evaluation.topk_ranks`. ``exclude_last`` scores each prefix's
    last item ``-inf`` first, as :class:`~item2vec.nextitem.NextItemRecommender`
    does at inference on data whose consecutive repeats were dropped.
    """
    from item2vec.evaluation import metrics_from_ranks, topk_ranks

    if len(examples) == 0:
        return {f"hr@{k}": 0.0, f"mrr@{k}": 0.0}
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    ranks = np.zeros(len(examples), dtype=np.int64)
    for start in range(0, len(examples), batch_size):
        idx = np.arange(start, min(start + batch_size, len(examples)))
        items, lengths, _ = examples.batch(idx, device)
        scores, _ = model(items, lengths)
        if exclude_last:
            last = items.gather(1, (lengths.to(items.device) - 1)[:, None])
            scores = scores.scatter(1, last, float("-inf"))
        ids, vals = ranked_topk(scores, min(k, scores.shape[1]))
        ranks[idx] = topk_ranks(ids, vals, examples.targets[idx])
    model.train(was_training)
    m = metrics_from_ranks(ranks, k)
    return {f"hr@{k}": m[f"hr@{k}"], f"mrr@{k}": m[f"mrr@{k}"]}


@dataclass
class TrainConfig(DictConfig):
    """Optimisation settings; round-trips to a flat dict.

    Attributes
    ----------
    epochs : int
        Upper bound on epochs.
    batch_size : int
    lr : float
        Adam learning rate.
    weight_decay : float
    clip_norm : float
        Gradient norm clipping (0 disables).
    patience : int
        Stop after this many epochs without a better validation MRR@k.
    min_delta : float
        An epoch is better when its MRR@k beats the best so far by more than this.
    lr_decay : float
        After an epoch without a better validation MRR@k, multiply the learning
        rate by this (reduce on plateau; 1.0 keeps it constant). With it, set
        ``patience`` high enough for the smaller steps to be tried.
    k : int
        Cut-off of the validation metric.
    max_valid : int, optional
        Use a fixed random sample of this many validation prefixes (speed).
    max_train : int, optional
        Use a fixed random sample of this many training prefixes (speed).
    random_state : int
    device : str, optional
        See :func:`resolve_device`.
    num_threads : int, optional
        CPU threads torch may use while training (restored afterwards); ``None``
        leaves torch's setting. On a machine shared with other jobs, 1 is often
        as fast as more and far steadier for models of this size.
    show_progress : bool
        A tqdm bar over epochs with the loss.
    processes : int
        Data-parallel training processes (``torch.distributed``, see
        :mod:`item2vec.nextitem.distributed`): each takes its share of every batch
        of ``batch_size`` prefixes (so the optimisation is that of one process) and
        ``num_threads`` (default: the CPU count) is split between them. 1 trains
        in this process.
    launcher : {"spawn", "spark"}
        With ``processes > 1``: local processes started by
        ``torch.multiprocessing``, or by Spark's ``TorchDistributor`` on the
        driver (needs an active SparkSession).

    Whether validation ranks leave out each prefix's last item is not a setting
    but a fact of the data: see ``exclude_last`` of :meth:`Trainer.fit`.
    """

    _label = "TrainConfig option"

    epochs: int = 20
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 0.0
    clip_norm: float = 5.0
    patience: int = 3
    min_delta: float = 0.0
    lr_decay: float = 1.0
    k: int = 20
    max_valid: int | None = 5000
    max_train: int | None = None
    random_state: int = 0
    device: str | None = None
    num_threads: int | None = None
    show_progress: bool = True
    processes: int = 1
    launcher: Literal["spawn", "spark"] = "spawn"

    def __post_init__(self) -> None:
        if (self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.patience < 1 or self.k < 1
                or (self.num_threads is not None and self.num_threads < 1) or not 0 < self.lr_decay <= 1
                or self.processes < 1):
            raise ValueError(
                "TrainConfig: need epochs, batch_size, patience, k, num_threads, processes >= 1, lr > 0 and "
                f"0 < lr_decay <= 1, got epochs={self.epochs}, batch_size={self.batch_size}, "
                f"patience={self.patience}, k={self.k}, num_threads={self.num_threads}, "
                f"processes={self.processes}, lr={self.lr}, lr_decay={self.lr_decay}"
            )
        if self.launcher not in ("spawn", "spark"):
            raise ValueError(f"TrainConfig: launcher must be 'spawn' or 'spark', got {self.launcher!r}")



@dataclass
class TrainResult:
    """What a training run did: per-epoch history, the kept epoch and its metrics."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0
    seconds: float = 0.0
    examples_per_second: float = 0.0
    n_examples: int = 0


class Trainer:
    """Fit any ``model(items, lengths, targets) -> (scores, loss)`` on session prefixes.

    Parameters
    ----------
    config : TrainConfig, optional
    **params
        :class:`TrainConfig` fields, overriding ``config``.
    """

    def __init__(self, config: TrainConfig | None = None, **params: Any) -> None:
        base = (config or TrainConfig()).to_dict()
        base.update(params)
        self.config = TrainConfig.from_dict(base)

    def fit(
        self,
        model: nn.Module,
        train: Sequence[np.ndarray] | Examples,
        valid: Sequence[np.ndarray] | Examples | None = None,
        max_prefix: int = 10,
        callback: EpochCallback | None = None,
        exclude_last: bool = False,
    ) -> TrainResult:
        """Train ``model`` in place; with ``valid``, keep the weights of the best epoch.

        Parameters
        ----------
        model : nn.Module
            Moved to the chosen device.
        train, valid : sessions (int arrays) or :class:`Examples`
            ``valid`` drives early stopping on MRR@k; without it every epoch runs
            and the last weights are kept.
        max_prefix : int
            Prefix cap when building examples from sessions.
        callback : callable, optional
            ``callback(epoch, {"loss": ..., "val_mrr@20": ..., "val_hr@20": ...,
            "examples_per_second": ..., "lr": ...})`` after each epoch (1-based
            epochs; ``lr`` is the rate that epoch trained with).
        exclude_last : bool
            Validation ranks leave out each prefix's last item: for data whose
            consecutive repeats were dropped (``SessionData.repeats_dropped``), where
            a session never continues with its last item.

        Returns
        -------
        TrainResult
        """
        threads = torch.get_num_threads()
        if self.config.num_threads is not None:
            torch.set_num_threads(self.config.num_threads)
        try:
            return self._fit(model, train, valid, max_prefix, callback, exclude_last)
        finally:
            torch.set_num_threads(threads)

    def _fit(
        self,
        model: nn.Module,
        train: Sequence[np.ndarray] | Examples,
        valid: Sequence[np.ndarray] | Examples | None,
        max_prefix: int,
        callback: EpochCallback | None,
        exclude_last: bool,
    ) -> TrainResult:
        cfg = self.config
        device = resolve_device(cfg.device)
        rng = np.random.default_rng(cfg.random_state)
        torch.manual_seed(cfg.random_state)
        ex = train if isinstance(train, Examples) else make_examples(train, max_prefix)
        if cfg.max_train is not None and len(ex) > cfg.max_train:
            ex = ex.subset(np.sort(rng.choice(len(ex), cfg.max_train, replace=False)))
        val: Examples | None = None
        if valid is not None and len(valid):
            val = valid if isinstance(valid, Examples) else _maybe_examples(valid, max_prefix)
            if val is not None and cfg.max_valid is not None and len(val) > cfg.max_valid:
                val = val.subset(np.sort(rng.choice(len(val), cfg.max_valid, replace=False)))
        if cfg.processes > 1:
            from item2vec.nextitem.distributed import fit_distributed

            return fit_distributed(cfg, model, ex, val, rng, callback, exclude_last)
        return self._loop(model, ex, val, rng, callback, exclude_last, device)

    def _loop(
        self,
        model: nn.Module,
        ex: Examples,
        val: Examples | None,
        rng: np.random.Generator,
        callback: EpochCallback | None,
        exclude_last: bool,
        device: torch.device,
        comm: Comm | None = None,
    ) -> TrainResult:
        """The epochs: in this process, or (``comm``) as one rank of a data-parallel group.

        ``comm`` wraps the model (DDP), gives this rank its share of each batch and
        sums the epoch's loss and validation counts over the ranks, so every rank
        takes the same early-stopping decisions.
        """
        from item2vec.nextitem.distributed import Comm

        cfg = self.config
        comm = comm or Comm()
        model.to(device)
        net = comm.wrap(model)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        key = f"val_mrr@{cfg.k}"
        result = TrainResult(n_examples=len(ex))
        # reduce on plateau: after each epoch that does not beat the best validation
        # MRR@k by more than min_delta (patience=0), the rate is multiplied by lr_decay
        plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=cfg.lr_decay, patience=0, threshold=cfg.min_delta, threshold_mode="abs", eps=0.0)
            if cfg.lr_decay < 1.0 and val is not None else None)
        best_score, best_state, stale = -math.inf, None, 0
        batch_size = comm.batch_size(cfg.batch_size)
        n_batches = math.ceil(comm.n_local(len(ex)) / batch_size)
        t_start, train_seconds = time.perf_counter(), 0.0
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            order = comm.shard(rng.permutation(len(ex)))
            total, seen = 0.0, 0
            t0 = time.perf_counter()
            bar = tqdm(total=n_batches, desc=f"bilstm epoch {epoch}", unit="batch",
                       disable=not (cfg.show_progress and comm.is_main), leave=False)
            for b in range(n_batches):
                idx = order[b * batch_size : (b + 1) * batch_size]
                items, lengths, targets = ex.batch(idx, device)
                _, loss = net(items, lengths, targets)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip_norm:
                    nn.utils.clip_grad_norm_(params, cfg.clip_norm)
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                if b % 20 == 0 or b == n_batches - 1:
                    bar.set_postfix(loss=f"{total / seen:.4f}")
                bar.update(1)
            bar.close()
            total, seen = comm.sum(total, seen)
            epoch_s = time.perf_counter() - t0
            train_seconds += epoch_s
            metrics: dict[str, float] = {"loss": total / max(seen, 1), "examples_per_second": seen / max(epoch_s, 1e-9),
                                         "lr": opt.param_groups[0]["lr"]}
            if val is not None:
                metrics.update({f"val_{m}": v for m, v in comm.rank_metrics(
                    model, val, cfg.k, device=device, exclude_last=exclude_last).items()})
            result.history.append({"epoch": epoch, **metrics})
            result.epochs_run = epoch
            if callback is not None:
                callback(epoch, metrics)
            score = metrics.get(key, -epoch)  # without validation: the latest epoch is the best
            if val is None or score > best_score + cfg.min_delta or epoch == 1:
                best_score, stale = score, 0
                result.best_epoch, result.best_metrics = epoch, dict(metrics)
                if val is not None:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= cfg.patience:
                    break
            if plateau is not None:
                plateau.step(score)
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        result.seconds = time.perf_counter() - t_start
        result.examples_per_second = len(ex) * result.epochs_run / max(train_seconds, 1e-9)
        return result


def _maybe_examples(sessions: Sequence[np.ndarray], max_prefix: int) -> Examples | None:
    try:
        return make_examples(sessions, max_prefix)
    except EmptyDataError:
        return None
