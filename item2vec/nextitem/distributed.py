"""Data-parallel training of the next-item model over several local processes.

``TrainConfig(processes=N)`` (``item2vec train-next --processes N``) runs the
:class:`~item2vec.nextitem.train.Trainer`'s epochs in ``N`` processes joined by
``torch.distributed`` (gloo on CPU, NCCL when training on CUDA), the model wrapped
in ``DistributedDataParallel``:

- every rank draws the same permutation of the training prefixes each epoch and
  takes every ``N``-th of them (padded by wrapping round, as ``DistributedSampler``
  does), in batches of ``ceil(batch_size / N)``: one step of the group is one
  batch of ``batch_size`` prefixes, so the optimisation is that of one process;
- each rank ranks its share of the validation prefixes; the counts are summed
  over the ranks and rank 0's sums broadcast, so early stopping and the learning
  rate schedule are decided on the same numbers everywhere;
- rank 0 writes the kept weights and the history to a private temporary folder
  (a temporary name, then ``os.replace``); the calling process reads them back
  only after every rank exited cleanly, so a rank that fails leaves nothing behind
  and the caller's checkpoint is never written (:class:`DistributedTrainingError`);
- each process gets ``num_threads // N`` torch threads (``num_threads``: default
  the CPU count), so ``N`` processes do not oversubscribe the cores.

Processes are started by ``torch.multiprocessing`` (``launcher="spawn"``: rendezvous
on 127.0.0.1 at a free port) or by ``pyspark.ml.torch.distributor.TorchDistributor``
(``launcher="spark"``, ``local_mode=True`` on the driver; it needs an active
SparkSession).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from item2vec.exceptions import Item2VecError
from item2vec.nextitem.train import (
    EpochCallback,
    Examples,
    TrainConfig,
    Trainer,
    TrainResult,
    rank_metrics,
)

__all__ = ["Comm", "DistComm", "DistributedTrainingError", "fit_distributed"]

RESULT = "result.pt"


class DistributedTrainingError(Item2VecError, RuntimeError):
    """A training process failed; nothing was written (the message names the rank and its error)."""


class Comm:
    """One process alone: the trainer's hooks as no-ops (``world`` 1, rank 0)."""

    rank, world = 0, 1

    @property
    def is_main(self) -> bool:
        """Whether this rank reports (progress bar, callback) and writes."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the training steps call."""
        return model

    def batch_size(self, batch_size: int) -> int:
        """This rank's share of a batch of ``batch_size`` prefixes."""
        return math.ceil(batch_size / self.world)

    def n_local(self, n: int) -> int:
        """How many of ``n`` training prefixes this rank sees per epoch."""
        return math.ceil(n / self.world)

    def shard(self, order: np.ndarray) -> np.ndarray:
        """This rank's share of an epoch's permutation."""
        return order

    def sum(self, *values: float) -> list[float]:
        """``values`` summed over the ranks (the same numbers on every rank)."""
        return list(values)

    def rank_metrics(self, model: nn.Module, examples: Examples, k: int, **kw: Any) -> dict[str, float]:
        """HR@k and MRR@k over all ``examples`` (see :func:`~item2vec.nextitem.train.rank_metrics`)."""
        return rank_metrics(model, examples, k, **kw)


class DistComm(Comm):
    """A rank of an initialised ``torch.distributed`` group."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.rank, self.world, self.device = dist.get_rank(), dist.get_world_size(), device

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, order: np.ndarray) -> np.ndarray:
        pad = -len(order) % self.world
        order = np.concatenate([order, order[:pad]]) if pad else order
        return order[self.rank :: self.world]

    def sum(self, *values: float) -> list[float]:
        import torch.distributed as dist

        dev = self.device if self.device.type == "cuda" else torch.device("cpu")
        t = torch.tensor(values, dtype=torch.float64, device=dev)
        dist.all_reduce(t)
        dist.broadcast(t, 0)  # bit-identical on every rank, whatever order the reduction summed in
        return t.cpu().tolist()

    def rank_metrics(self, model: nn.Module, examples: Examples, k: int, **kw: Any) -> dict[str, float]:
        mine = examples.subset(np.arange(self.rank, len(examples), self.world))
        m = rank_metrics(model, mine, k, **kw) if len(mine) else {f"hr@{k}": 0.0, f"mrr@{k}": 0.0}
        hits, rr, n = self.sum(m[f"hr@{k}"] * len(mine), m[f"mrr@{k}"] * len(mine), len(mine))
        return {f"hr@{k}": hits / n, f"mrr@{k}": rr / n}


@dataclasses.dataclass
class _Job:
    """What every rank needs: picklable (``spawn``) and cloudpicklable (TorchDistributor)."""

    config: dict[str, Any]
    model: nn.Module
    train: Examples
    valid: Examples | None
    rng: np.random.Generator
    exclude_last: bool
    threads: int
    workdir: str


def fit_distributed(
    config: TrainConfig,
    model: nn.Module,
    train: Examples,
    valid: Examples | None,
    rng: np.random.Generator,
    callback: EpochCallback | None = None,
    exclude_last: bool = False,
) -> TrainResult:
    """Train ``model`` in ``config.processes`` data-parallel processes; load the kept weights into it.

    Called by :meth:`~item2vec.nextitem.train.Trainer.fit` when ``processes > 1``.

    Parameters
    ----------
    config : TrainConfig
    model : nn.Module
        Trained in the child processes; on return it holds the kept weights, on
        the device ``config.device`` resolves to, in eval mode.
    train, valid : Examples
    rng : numpy Generator
        The epochs' permutations (every rank draws the same).
    callback : callable, optional
        Called in this process with rank 0's metrics after each epoch (with
        ``launcher="spark"``: once training ended, for every epoch in turn).
    exclude_last : bool

    Returns
    -------
    TrainResult
        Rank 0's history; ``seconds`` is this call's wall time, start-up included.

    Raises
    ------
    DistributedTrainingError
        If a process fails or dies; the message names the rank and its error.
    """
    import time

    from item2vec.nextitem.train import resolve_device

    t0 = time.perf_counter()
    device = resolve_device(config.device)
    n = config.processes
    threads = max(1, (config.num_threads or os.cpu_count() or 1) // n)
    workdir = tempfile.mkdtemp(prefix="item2vec-ddp-")
    cfg = {**config.to_dict(), "device": device.type}
    job = _Job(cfg, model.cpu(), train, valid, rng, exclude_last, threads, workdir)
    try:
        if config.launcher == "spark":
            _run_spark(job, n)
            epochs_reported = 0
        else:
            epochs_reported = _run_spawn(job, n, callback)
        out = Path(workdir) / RESULT
        if not out.exists():
            raise DistributedTrainingError(f"distributed training: rank 0 of {n} ended without writing its result")
        saved = torch.load(out, map_location="cpu", weights_only=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    model.load_state_dict(saved["state"])
    model.to(device).eval()
    result = TrainResult(**saved["result"])
    if callback is not None:
        for row in result.history[epochs_reported:]:
            callback(int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch"})
    result.seconds = time.perf_counter() - t0
    return result


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_spawn(job: _Job, n: int, callback: EpochCallback | None) -> int:
    """``n`` processes by ``torch.multiprocessing``; rank 0's epochs go to ``callback`` as they end."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    epochs: Any = ctx.SimpleQueue() if callback is not None else None
    port = _free_port()
    reported = 0
    try:
        pc = mp.start_processes(_spawned, args=(n, port, job, epochs), nprocs=n, join=False,
                                start_method="spawn")
    except Exception as e:  # noqa: BLE001 - nothing trained yet; say what failed to start
        raise DistributedTrainingError(f"distributed training: could not start {n} processes ({e})") from e
    try:
        while True:
            try:
                done = pc.join(timeout=0.5)
            finally:
                while epochs is not None and not epochs.empty():
                    epoch, metrics = epochs.get()
                    reported = epoch
                    callback(epoch, metrics)  # type: ignore[misc]
            if done:
                return reported
    except mp.ProcessRaisedException as e:
        rank, err = e.error_index, str(e).strip().splitlines()[-1]
        raise DistributedTrainingError(
            f"distributed training: rank {rank} of {n} failed: {err}; nothing was written") from e
    except mp.ProcessExitedException as e:
        how = f"signal {e.signal_name}" if e.signal_name else f"exit status {e.exit_code}"
        raise DistributedTrainingError(
            f"distributed training: rank {e.error_index} of {n} died ({how}); nothing was written") from e
    finally:
        for p in pc.processes:  # the callback raised, or Ctrl-C: stop the ranks still running
            if p.is_alive():
                p.terminate()
        for p in pc.processes:
            p.join(5)
        for f in pc.error_files:  # torch leaves one per rank in the temporary folder
            Path(f).unlink(missing_ok=True)


def _spawned(rank: int, world: int, port: int, job: _Job, epochs: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    run_rank(job, epochs)


def _run_spark(job: _Job, n: int) -> None:
    """``n`` processes by Spark's ``TorchDistributor`` on the driver (an active SparkSession)."""
    try:
        from pyspark.ml.torch.distributor import TorchDistributor
    except ImportError as e:
        raise DistributedTrainingError("launcher='spark' needs pyspark: pip install 'item2vec[spark]'") from e
    from pyspark.sql import SparkSession

    if SparkSession.getActiveSession() is None:
        raise DistributedTrainingError("launcher='spark' needs an active SparkSession (item2vec.spark.get_spark)")
    use_gpu = job.config["device"] == "cuda"
    try:
        TorchDistributor(num_processes=n, local_mode=True, use_gpu=use_gpu).run(run_rank, job, None)
    except RuntimeError as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise DistributedTrainingError(
            f"distributed training (TorchDistributor, {n} processes) failed: "
            f"{lines[-1] if lines else e}; nothing was written") from e


def run_rank(job: _Job, epochs: Any = None) -> None:
    """One rank: join the group named by ``$MASTER_ADDR``/``$RANK``/..., train, rank 0 writes the result.

    Returns nothing: TorchDistributor has every rank write its return value to the
    same file, so the result travels only through rank 0's own atomic write.
    """
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(job.threads)
    cuda = job.config["device"] == "cuda"
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://", rank=rank, world_size=world)
    try:
        cfg = TrainConfig.from_dict({**job.config, "device": str(device), "processes": 1})
        torch.manual_seed(cfg.random_state + rank)  # dropout and sampled negatives differ between ranks
        comm = DistComm(device)

        def report(epoch: int, metrics: dict[str, float]) -> None:
            if epochs is not None and rank == 0:
                epochs.put((epoch, metrics))

        model = copy.deepcopy(job.model)  # spawn hands every rank the parent's tensors in shared memory
        result = Trainer(cfg)._loop(model, job.train, job.valid, job.rng, report, job.exclude_last, device, comm)
        if rank == 0:
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            tmp = Path(job.workdir) / f".{RESULT}.tmp"
            torch.save({"state": state, "result": dataclasses.asdict(result)}, tmp)
            os.replace(tmp, Path(job.workdir) / RESULT)
        dist.barrier()
    finally:
        dist.destroy_process_group()

