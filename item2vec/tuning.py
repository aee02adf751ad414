"""Hyperparameter tuning with Optuna: item2vec and the BiLSTM, chosen on the validation split only.

:func:`tune_item2vec` searches window, ``ns_exponent`` (negative values allowed),
``sample``, epochs, vector size and negatives, after Caselles-Dupré et al.,
"Word2vec applied to Recommendation: Hyperparameters Matter" (RecSys 2018), with a
seeded TPE sampler and a median pruner fed after every gensim epoch. Each trial is
scored by last-item neighbours (:class:`~item2vec.recommenders.Item2VecRecommender`
``mode="last"``) on every validation prefix; the per-epoch signal the pruner reads
is the same metric on a fixed random sample of at most ``probe_size`` validation
prefixes (default 1,000), so pruning costs one small matrix product per epoch.

:func:`tune_bilstm` searches the next-item model's learning rate, hidden size,
dropout, prefix cap, pooling, ``residual_last`` and epochs on top of one item2vec
fit, pruned on the trainer's per-epoch validation MRR@k (its ``max_valid`` sample).

The test split is never read. The result is a section of a JSON params file
(:func:`write_params`) that ``item2vec fit --params``, ``train-next --params`` and the
retraining job (``params = "FILE"``) read back with :func:`read_params`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from item2vec._progress import tqdm
from item2vec.exceptions import EmptySplitError, OptionError

__all__ = [
    "BILSTM_SPACE",
    "ITEM2VEC_SPACE",
    "PARAMS_FORMAT",
    "TuneResult",
    "check_schedule",
    "params_age_days",
    "params_for_retrain",
    "read_params",
    "tune_bilstm",
    "tune_item2vec",
    "write_params",
]

#: The discrete item2vec search space (``pipelines/tune.py``'s values; ``window=None`` is the whole session).
ITEM2VEC_SPACE: dict[str, list[Any]] = {
    "window": [3, 5, 10, None],
    "ns_exponent": [-0.5, 0.0, 0.5, 0.75, 1.0],
    "sample": [0.0, 1e-5, 1e-4, 1e-3],
    "epochs": [5, 10, 20, 40],
    "vector_size": [32, 64, 128],
    "negative": [5, 10, 20],
}

#: The BiLSTM search space: :class:`~item2vec.nextitem.NextItemConfig` and
#: :class:`~item2vec.nextitem.TrainConfig` fields.
BILSTM_SPACE: dict[str, list[Any]] = {
    "lr": [1e-3, 3e-3, 1e-2],
    "hidden_size": [32, 64, 128],
    "dropout": [0.0, 0.1, 0.25, 0.5],
    "max_prefix": [5, 10, 20],
    "pooling": ["last", "mean", "attention"],
    "residual_last": [False, True],
    "epochs": [5, 10, 20],
}

#: The ``format`` field of a params file.
PARAMS_FORMAT = "item2vec-params"
_PARAMS_VERSION = 1
_MODELS = ("item2vec", "bilstm")


@dataclass
class TuneResult:
    """What one tuning run found.

    Attributes
    ----------
    model : {"item2vec", "bilstm"}
    params : dict
        The chosen values (the searched names only).
    valid : dict
        The chosen trial's validation metrics (``mrr@k``, ``hr@k``).
    k : int
    n_trials, n_complete, n_pruned : int
        Trials run, finished and pruned.
    seconds : float
        Wall time of the search.
    tuned_at : str
        When the search ended, ISO 8601 UTC.
    data : dict
        ``name``, ``path`` (when given as a directory) and ``fingerprint`` (sha256 of the
        training and validation sessions) of the data tuned on.
    parent_run_id : str or None
        The MLflow parent run (``None`` without tracking).
    trials : list of dict
        Every trial: ``number``, ``state``, ``params``, ``value``.
    """

    model: str
    params: dict[str, Any]
    valid: dict[str, float]
    k: int
    n_trials: int
    n_complete: int
    n_pruned: int
    seconds: float
    tuned_at: str
    data: dict[str, Any]
    parent_run_id: str | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)

    def section(self) -> dict[str, Any]:
        """The params-file section: ``params`` and how they were found (``tuned``)."""
        return {"params": dict(self.params),
                "tuned": {"valid": self.valid, "k": self.k, "trials": self.n_trials, "complete": self.n_complete,
                          "pruned": self.n_pruned, "seconds": round(self.seconds, 2), "tuned_at": self.tuned_at,
                          "data": self.data, "mlflow_parent_run": self.parent_run_id}}


# ---------------------------------------------------------------------------
# the params file
# ---------------------------------------------------------------------------
def write_params(path: str | os.PathLike[str], result: TuneResult) -> Path:
    """Write ``result`` as its model's section of the JSON params file at ``path``, atomically.

    The other model's section, when the file has one, is kept.

    Raises
    ------
    OptionError
        When ``path`` exists and is not a params file.
    """
    from item2vec._io import atomic_file

    p = Path(path)
    doc = _read_doc(p) if p.exists() else {"format": PARAMS_FORMAT, "version": _PARAMS_VERSION}
    doc[result.model] = result.section()
    with atomic_file(p) as fh:
        json.dump(doc, fh, indent=2, default=_json_default)  # type: ignore[arg-type]
        fh.write("\n")  # type: ignore[attr-defined]
    return p


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {o!r}")


def _read_doc(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise FileNotFoundError(f"params file {str(p)!r} does not exist (write one with `item2vec tune`)")
    try:
        doc = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OptionError(f"params file {p}: expected JSON written by `item2vec tune`, got unreadable text ({e})",
                          options=("params",)) from None
    if not isinstance(doc, dict) or doc.get("format") != PARAMS_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise OptionError(f"params file {p}: expected format {PARAMS_FORMAT!r}, got {got!r}", options=("params",))
    if doc.get("version") != _PARAMS_VERSION:
        raise OptionError(f"params file {p}: expected version {_PARAMS_VERSION}, got {doc.get('version')!r}",
                          options=("params",))
    unknown = set(doc) - {"format", "version", *_MODELS}
    if unknown:
        raise OptionError(f"params file {p}: unknown section(s) {sorted(unknown)}; expected some of {list(_MODELS)}",
                          options=("params",))
    return doc


def read_params(path: str | os.PathLike[str], model: str = "item2vec", required: bool = False) -> dict[str, Any]:
    """The chosen values of one model's section of a params file, checked against its config.

    Parameters
    ----------
    path : path-like
        A file written by :func:`write_params` (``item2vec tune --out``).
    model : {"item2vec", "bilstm"}
    required : bool
        Raise when the file has no section for ``model`` (else an empty dict).

    Returns
    -------
    dict
        ``Item2Vec`` keywords (``model="item2vec"``) or ``NextItemRecommender`` keywords.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    OptionError
        For a file that is not a params file, a missing required section, or an
        unknown parameter or bad value in it (the message names the file).
    """
    if model not in _MODELS:
        raise OptionError(f"params: model must be one of {list(_MODELS)}, got {model!r}", options=("model",))
    p = Path(path)
    doc = _read_doc(p)
    sec = doc.get(model)
    if sec is None:
        if required:
            raise OptionError(f"params file {p}: no {model!r} section (run `item2vec tune --model {model}`)",
                              options=("params",))
        return {}
    params = sec.get("params") if isinstance(sec, dict) else None
    if not isinstance(params, dict):
        raise OptionError(f"params file {p}: section {model!r} needs a 'params' table, got {params!r:.80}",
                          options=("params",))
    try:
        _check_params(model, params)
    except (ValueError, TypeError) as e:
        raise OptionError(f"params file {p}, section {model!r}: {e}", options=("params",)) from None
    return dict(params)


def _check_params(model: str, params: Mapping[str, Any]) -> None:
    if model == "item2vec":
        from item2vec.embeddings import Item2VecConfig

        Item2VecConfig.from_dict(dict(params))
        return
    from item2vec.nextitem import NextItemConfig, TrainConfig

    model_keys = {f for f in NextItemConfig().to_dict() if f != "n_items"}
    train_keys = set(TrainConfig().to_dict())
    unknown = set(params) - model_keys - train_keys
    if unknown:
        raise ValueError(f"unknown BiLSTM option(s) {sorted(unknown)}; expected some of {sorted(model_keys | train_keys)}")
    NextItemConfig.from_dict({k: v for k, v in params.items() if k in model_keys})
    TrainConfig.from_dict({k: v for k, v in params.items() if k in train_keys})


def params_age_days(path: str | os.PathLike[str], model: str = "item2vec", now: dt.datetime | None = None) -> float:
    """Days since the section of ``model`` was tuned (its recorded ``tuned_at``); ``inf`` when absent."""
    p = Path(path)
    if not p.exists():
        return math.inf
    sec = _read_doc(p).get(model)
    when = ((sec or {}).get("tuned") or {}).get("tuned_at")
    if not when:
        return math.inf
    try:
        t = dt.datetime.fromisoformat(str(when))
    except ValueError:
        raise OptionError(f"params file {p}: tuned_at must be an ISO 8601 time, got {when!r}",
                          options=("params",)) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return ((now or dt.datetime.now(dt.UTC)) - t).total_seconds() / 86400.0


# ---------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------
def _load_data(data: Any) -> tuple[Any, dict[str, Any]]:
    from item2vec.data import SessionData

    info: dict[str, Any] = {}
    if isinstance(data, (str, os.PathLike)):
        info["path"] = str(Path(data).resolve())
        data = SessionData.load(data)
    if not hasattr(data, "train") or not hasattr(data, "valid") or not hasattr(data, "vocab"):
        raise TypeError(f"data must be a SessionData or a prepared-data directory, got {type(data).__name__}")
    if not any(len(s) >= 2 for s in data.valid):
        raise EmptySplitError("tuning chooses on the validation split, but it has no session of 2 or more items; "
                              "prepare the data with a validation split (valid_days or valid_fraction > 0)",
                              options=("valid_days", "valid_fraction"))
    info["name"] = (data.stats or {}).get("name")
    info["fingerprint"] = _fingerprint(data.train, data.valid)
    return data, info


def _fingerprint(*splits: Sequence[np.ndarray]) -> str:
    """sha256 of the sessions (lengths and items) of the given splits."""
    h = hashlib.sha256()
    for sessions in splits:
        h.update(np.asarray([len(s) for s in sessions], dtype=np.int64).tobytes())
        if len(sessions):
            h.update(np.concatenate([np.asarray(s, dtype=np.int64) for s in sessions]).tobytes())
        h.update(b"|")
    return "sha256:" + h.hexdigest()


def _check_budget(n_trials: int | None, timeout: float | None) -> None:
    if n_trials is None and timeout is None:
        raise OptionError("tuning needs a budget: give n_trials (CLI --trials) and/or timeout (CLI --minutes); "
                          "got neither", options=("n_trials", "timeout"))
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer))
                                 or n_trials < 1):
        raise OptionError(f"n_trials must be an integer >= 1, got {n_trials!r}", options=("n_trials",))
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout <= 0):
        raise OptionError(f"timeout must be a number of seconds > 0, got {timeout!r}", options=("timeout",))


def _check_space(space: Mapping[str, Any] | None, default: dict[str, list[Any]], model: str) -> dict[str, list[Any]]:
    if space is None:
        return {k: list(v) for k, v in default.items()}
    if not isinstance(space, Mapping):
        raise OptionError(f"space must be a dict of name -> list of values, got {type(space).__name__}",
                          options=("space",))
    unknown = set(space) - set(default)
    if unknown:
        raise OptionError(f"{model} search space: unknown parameter(s) {sorted(unknown)}; expected some of "
                          f"{sorted(default)}", options=("space",))
    out: dict[str, list[Any]] = {}
    for k, v in space.items():
        values = list(v) if isinstance(v, (list, tuple)) else [v]
        if not values:
            raise OptionError(f"{model} search space: {k!r} has no values", options=("space",))
        out[k] = values
    return out


def _check_k(k: Any) -> int:
    from item2vec.base import check_k

    return check_k(k)


@contextmanager
def _tracking(mlflow: bool | str, experiment: str, name: str, tags: dict[str, str]) -> Iterator[Any]:
    """The parent run (nested under an active run, e.g. the retraining job's), or ``None`` without tracking."""
    if mlflow is False or mlflow is None:
        yield None
        return
    import mlflow as mlf

    from item2vec import tracking

    active = mlf.active_run()
    if active is not None:
        with tracking.quiet_mlflow(), mlf.start_run(run_name=name, nested=True, tags=tags,
                                                    experiment_id=active.info.experiment_id) as run:
            yield run
        return
    uri = mlflow if isinstance(mlflow, str) else None
    with tracking.start_run(name, experiment=experiment, tracking_uri=uri, tags=tags) as run:
        yield run


@contextmanager
def _child(parent: Any, number: int, params: dict[str, Any]) -> Iterator[Any]:
    if parent is None:
        yield None
        return
    import mlflow as mlf
    import optuna

    from item2vec import tracking

    with tracking.quiet_mlflow():
        run = mlf.start_run(run_name=f"trial-{number}", nested=True, experiment_id=parent.info.experiment_id,
                            tags={"trial": str(number)})
        tracking.log_params(params)
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    except optuna.TrialPruned:
        status = "FINISHED"  # a pruned trial ended as asked; its tag ``state`` says PRUNED
        raise
    finally:
        with tracking.quiet_mlflow():
            mlf.end_run(status)


def _log(run: Any, metrics: dict[str, Any], step: int | None = None) -> None:
    if run is None:
        return
    import mlflow as mlf

    from item2vec import tracking

    out = {tracking.metric_key(k): float(v) for k, v in metrics.items()
           if isinstance(v, (int, float, np.number)) and math.isfinite(float(v))}
    with tracking.quiet_mlflow():
        mlf.log_metrics(out, step=step, run_id=run.info.run_id)


def _tag(run: Any, key: str, value: str) -> None:
    if run is None:
        return
    import mlflow as mlf

    from item2vec import tracking

    with tracking.quiet_mlflow():
        mlf.set_tag(key, value)


def _study(seed: int, n_startup: int, start: Mapping[str, Any], grid: Mapping[str, Sequence[Any]],
           warmup: int) -> Any:
    """A seeded TPE study whose first trial is ``start`` (the defaults, where the space has them).

    A trial is pruned at a step when its value there is below the median of the
    finished trials' values at the same step, once ``n_startup`` trials have
    finished and from step ``warmup`` on.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=n_startup, n_warmup_steps=warmup)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    first = {k: v for k, v in start.items() if k in grid and v in grid[k]}
    if first:
        study.enqueue_trial(first)
    return study


def _n_startup(n_trials: int | None) -> int:
    """Random trials before TPE models the space (and finished trials before pruning starts)."""
    return min(5, max(1, (n_trials or 15) // 3))


def _optimize(
    study: Any, objective: Callable[[Any], float], n_trials: int | None, timeout: float | None,
    show_progress: bool, desc: str,
) -> None:
    bar = tqdm(total=n_trials, desc=desc, unit="trial", disable=not show_progress, leave=False)

    def tick(study: Any, trial: Any) -> None:
        bar.update(1)
        try:
            bar.set_postfix(best=f"{study.best_value:.4f}")
        except ValueError:  # no trial finished yet
            pass

    try:
        study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[tick], catch=())
    finally:
        bar.close()


def _result(model: str, study: Any, k: int, seconds: float, info: dict[str, Any], parent: Any) -> TuneResult:
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    if not done:
        raise OptionError(f"tuning {model}: no trial finished within the budget ({len(study.trials)} started, "
                          f"{len(pruned)} pruned); give more time (--minutes) or trials", options=("timeout",))
    best = study.best_trial
    trials = [{"number": t.number, "state": t.state.name, "params": t.params, "value": t.value}
              for t in study.trials]
    return TuneResult(model=model, params=dict(best.params), valid=dict(best.user_attrs["valid"]), k=k,
                      n_trials=len(study.trials), n_complete=len(done), n_pruned=len(pruned), seconds=seconds,
                      tuned_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), data=info,
                      parent_run_id=None if parent is None else parent.info.run_id, trials=trials)


# ---------------------------------------------------------------------------
# item2vec
# ---------------------------------------------------------------------------
def _epoch_callback(on_epoch: Callable[[int, Any], None]) -> Any:
    from gensim.models.callbacks import CallbackAny2Vec

    class _OnEpoch(CallbackAny2Vec):  # type: ignore[misc]
        def __init__(self) -> None:
            self.epoch = 0

        def on_epoch_end(self, model: Any) -> None:
            self.epoch += 1
            on_epoch(self.epoch, model)

    return _OnEpoch()


def _last_item_scorer(data: Any) -> Callable[[Any, Any], dict[str, float]]:
    """``score(w2v, prefixes)``: last-item neighbours of the gensim model's current vectors."""
    from item2vec.embeddings import ItemEmbeddings
    from item2vec.evaluation import evaluate
    from item2vec.recommenders import Item2VecRecommender

    def score(w2v: Any, prefixes: Any, k: int) -> dict[str, float]:
        emb = ItemEmbeddings([int(t) for t in w2v.wv.index_to_key], w2v.wv.vectors.copy())
        rec = Item2VecRecommender(mode="last", embeddings=emb).fit(
            data.train, n_items=data.n_items, repeats_dropped=data.repeats_dropped)
        return evaluate(rec, prefixes, k=k)

    return score


def tune_item2vec(
    data: Any,
    n_trials: int | None = None,
    timeout: float | None = None,
    space: Mapping[str, Sequence[Any]] | None = None,
    seed: int = 0,
    k: int = 20,
    mlflow: bool | str = False,
    experiment: str = "item2vec-tune",
    probe_size: int = 1000,
    fixed: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> TuneResult:
    """Search item2vec's hyperparameters on the validation split (TPE, median pruning per epoch).

    Parameters
    ----------
    data : SessionData or path-like
        Prepared data (``item2vec prepare``): trained on ``train``, scored on
        ``valid``; ``test`` is never read.
    n_trials : int, optional
        Trials to run.
    timeout : float, optional
        Seconds to search (a running trial finishes). At least one of the two is needed.
    space : dict, optional
        ``name -> list of values`` for some of :data:`ITEM2VEC_SPACE`'s names (the
        rest is not searched: :class:`~item2vec.embeddings.Item2VecConfig`'s default).
        Default: :data:`ITEM2VEC_SPACE`.
    seed : int
        Seeds the sampler and every trial's training (``random_state``).
    k : int
        Cut-off of the metric chosen on (MRR@k).
    mlflow : bool or str
        ``False``: no tracking; ``True``: the default store; a string: that tracking URI.
        One parent run, one nested child run per trial (params, ``probe_mrr@k`` per
        epoch, final ``valid_mrr@k`` / ``valid_hr@k``, tag ``state``).
    experiment : str
        MLflow experiment of the parent run.
    probe_size : int
        Validation prefixes (a fixed random sample) scored after each epoch for pruning.
    fixed : dict, optional
        Other ``Item2VecConfig`` values every trial uses (e.g. ``workers``).
    show_progress : bool
        A bar over trials with the best value.

    Returns
    -------
    TuneResult

    Raises
    ------
    OptionError
        For an empty budget, an unknown name in ``space`` or ``fixed``, or when no trial finished.
    EmptySplitError
        When the validation split has no session of 2 or more items.
    """
    import optuna

    from item2vec.embeddings import Item2Vec, Item2VecConfig
    from item2vec.evaluation import make_prefixes

    _check_budget(n_trials, timeout)
    k = _check_k(k)
    grid = _check_space(space, ITEM2VEC_SPACE, "item2vec")
    base = {"random_state": seed, **dict(fixed or {})}
    try:
        Item2VecConfig.from_dict(base)
    except ValueError as e:
        raise OptionError(f"tune_item2vec fixed: {e}", options=("fixed",)) from None
    data, info = _load_data(data)
    valid = make_prefixes(data.valid)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(valid), min(probe_size, len(valid)), replace=False))
    probe = type(valid)([valid.prefixes[i] for i in pick], valid.targets[pick])
    score = _last_item_scorer(data)

    with _tracking(mlflow, experiment, "tune-item2vec", {"job": "tune", "model": "item2vec"}) as parent:
        if parent is not None:
            from item2vec import tracking

            tracking.log_params({"n_trials": n_trials, "timeout": timeout, "seed": seed, "k": k,
                                 "probe_size": len(probe), "space": json.dumps(grid, default=str)}, prefix="tune")
            tracking.log_dataset(data.stats)

        seen: dict[str, Any] = {}  # TPE proposes a finished setting again: answer it without training

        def objective(trial: Any) -> float:
            params = {name: trial.suggest_categorical(name, values) for name, values in grid.items()}
            cfg = Item2VecConfig.from_dict({**base, **params})
            setting = json.dumps(params, sort_keys=True)
            with _child(parent, trial.number, params) as run:
                if setting in seen:
                    return _repeat(trial, run, seen[setting], k)

                def on_epoch(epoch: int, w2v: Any) -> None:
                    m = score(w2v, probe, k)[f"mrr@{k}"]
                    _log(run, {f"probe_mrr@{k}": m}, step=epoch)
                    # the step is the share of the learning-rate schedule done, so trials of different
                    # lengths are compared at the same point of their decay
                    trial.report(m, step=round(100 * epoch / cfg.epochs))
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"epoch {epoch}: probe MRR@{k} {m:.4f} below the median")

                t0 = time.perf_counter()
                try:
                    w2v = Item2Vec(cfg, show_progress=False, compute_loss=False).fit(
                        data.train, callbacks=[_epoch_callback(on_epoch)]).model_
                except optuna.TrialPruned:
                    _tag(run, "state", "PRUNED")
                    raise
                res = score(w2v, valid, k)
                metrics = {f"mrr@{k}": res[f"mrr@{k}"], f"hr@{k}": res[f"hr@{k}"]}
                trial.set_user_attr("valid", metrics)
                seen[setting] = trial
                _log(run, {f"valid_{m}": v for m, v in metrics.items()} | {"fit_seconds": time.perf_counter() - t0})
                _tag(run, "state", "COMPLETE")
                return metrics[f"mrr@{k}"]

        # the first trial is the library's defaults (their values the space holds), so the result is at
        # least as good as the defaults on validation; no pruning before 30 % of a trial's schedule
        study = _study(seed, _n_startup(n_trials), Item2VecConfig().to_dict(), grid, warmup=30)
        t0 = time.perf_counter()
        _optimize(study, objective, n_trials, timeout, show_progress, "tune item2vec")
        result = _result("item2vec", study, k, time.perf_counter() - t0, info, parent)
        _log_result(parent, result)
    return result


def _repeat(trial: Any, run: Any, first: Any, k: int) -> float:
    """A trial whose setting already finished: the first one's result (training is deterministic)."""
    trial.set_user_attr("valid", first.user_attrs["valid"])
    trial.set_user_attr("repeat_of", first.number)
    _log(run, {f"valid_{m}": v for m, v in first.user_attrs["valid"].items()})
    _tag(run, "state", "COMPLETE")
    _tag(run, "repeat_of", str(first.number))
    return float(first.user_attrs["valid"][f"mrr@{k}"])


def _log_result(parent: Any, result: TuneResult) -> None:
    if parent is None:
        return
    import mlflow as mlf

    from item2vec import tracking

    with tracking.quiet_mlflow():
        mlf.log_metrics({tracking.metric_key(f"best.valid_{m}"): v for m, v in result.valid.items()}
                        | {"trials": result.n_trials, "pruned": result.n_pruned, "seconds": result.seconds},
                        run_id=parent.info.run_id)
        mlf.log_params({f"best.{k}": json.dumps(v) for k, v in result.params.items()}, run_id=parent.info.run_id)


# ---------------------------------------------------------------------------
# BiLSTM
# ---------------------------------------------------------------------------
def tune_bilstm(
    data: Any,
    n_trials: int | None = None,
    timeout: float | None = None,
    space: Mapping[str, Sequence[Any]] | None = None,
    seed: int = 0,
    k: int = 20,
    mlflow: bool | str = False,
    experiment: str = "item2vec-tune",
    item2vec_params: Mapping[str, Any] | None = None,
    embeddings: Any = None,
    fixed: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> TuneResult:
    """Search the item2vec-initialised BiLSTM's hyperparameters on the validation split.

    One item2vec fit on the training split (``item2vec_params``, e.g. the params
    file's item2vec section; or ``embeddings`` fitted on the data's indices)
    initialises every trial. Each trial trains
    :class:`~item2vec.nextitem.NextItemRecommender` with early stopping on validation
    MRR@k (the trainer's ``max_valid`` sample, 5,000 prefixes by default); the
    pruner reads that metric after every epoch through the trainer's callback.

    Parameters
    ----------
    data, n_trials, timeout, seed, k, mlflow, experiment, show_progress
        As in :func:`tune_item2vec`.
    space : dict, optional
        ``name -> values`` for some of :data:`BILSTM_SPACE`'s names.
    item2vec_params : dict, optional
        :class:`~item2vec.embeddings.Item2VecConfig` options of the initial vectors.
    embeddings : ItemEmbeddings, optional
        Vectors whose ids are the data's item indices (skips the item2vec fit).
    fixed : dict, optional
        Other ``NextItemRecommender`` options every trial uses (``batch_size``, ``num_threads``, ``device`` ...).

    Returns
    -------
    TuneResult
    """
    import optuna

    from item2vec.embeddings import Item2Vec
    from item2vec.nextitem import NextItemRecommender

    _check_budget(n_trials, timeout)
    k = _check_k(k)
    grid = _check_space(space, BILSTM_SPACE, "bilstm")
    base = {"random_state": seed, "show_progress": False, "k": k, **dict(fixed or {})}
    try:
        _check_params("bilstm", {kk: v for kk, v in base.items()})
    except ValueError as e:
        raise OptionError(f"tune_bilstm fixed: {e}", options=("fixed",)) from None
    data, info = _load_data(data)
    if embeddings is None:
        embeddings = Item2Vec(show_progress=False, **{"random_state": seed, **dict(item2vec_params or {})}).fit(
            data.train).embeddings_
    key = f"val_mrr@{k}"

    with _tracking(mlflow, experiment, "tune-bilstm", {"job": "tune", "model": "bilstm"}) as parent:
        if parent is not None:
            from item2vec import tracking

            tracking.log_params({"n_trials": n_trials, "timeout": timeout, "seed": seed, "k": k,
                                 "space": json.dumps(grid, default=str)}, prefix="tune")
            tracking.log_dataset(data.stats)

        seen: dict[str, Any] = {}

        def objective(trial: Any) -> float:
            params = {name: trial.suggest_categorical(name, values) for name, values in grid.items()}
            setting = json.dumps(params, sort_keys=True)
            with _child(parent, trial.number, params) as run:
                if setting in seen:
                    return _repeat(trial, run, seen[setting], k)

                def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
                    _log(run, metrics, step=epoch)
                    if key in metrics:
                        trial.report(metrics[key], step=epoch)
                        if trial.should_prune():
                            raise optuna.TrialPruned(f"epoch {epoch}: {key} {metrics[key]:.4f} below the median")

                model = NextItemRecommender(embeddings=embeddings, vocab=None, callback=on_epoch,
                                            **{**base, **params})
                try:
                    model.fit(data.train, n_items=data.n_items, valid=data.valid,
                              repeats_dropped=data.repeats_dropped)
                except optuna.TrialPruned:
                    _tag(run, "state", "PRUNED")
                    raise
                best = model.train_result_.best_metrics
                metrics = {f"mrr@{k}": best[key], f"hr@{k}": best[f"val_hr@{k}"]}
                trial.set_user_attr("valid", metrics)
                seen[setting] = trial
                _log(run, {f"valid_{m}": v for m, v in metrics.items()}
                     | {"best_epoch": model.train_result_.best_epoch})
                _tag(run, "state", "COMPLETE")
                return metrics[f"mrr@{k}"]

        from item2vec.nextitem import NextItemConfig, TrainConfig

        start = {**NextItemConfig().to_dict(), **TrainConfig().to_dict(), **base}
        study = _study(seed, _n_startup(n_trials), start, grid, warmup=1)
        t0 = time.perf_counter()
        _optimize(study, objective, n_trials, timeout, show_progress, "tune bilstm")
        result = _result("bilstm", study, k, time.perf_counter() - t0, info, parent)
        _log_result(parent, result)
    return result


# ---------------------------------------------------------------------------
# the retraining job: a params file, re-tuned on a schedule
# ---------------------------------------------------------------------------
def check_schedule(params: Any, every_days: Any, trials: Any, minutes: Any) -> None:
    """Check the retraining job's ``params`` / ``retune_*`` options (before any work).

    Raises
    ------
    OptionError
        For a ``params`` that is not a path string, a schedule without ``params`` or
        a non-positive ``retune_every_days`` / ``retune_trials`` / ``retune_minutes``.
    """
    if params is not None and (not isinstance(params, str) or not params):
        raise OptionError(f"params must be the path of a params file (item2vec tune), got {params!r}",
                          options=("params",))
    if every_days is None:
        return
    if params is None:
        raise OptionError("retune_every_days needs params = \"FILE\": the params file the tuner writes and the "
                          "job reads", options=("retune_every_days", "params"))
    if isinstance(every_days, bool) or not isinstance(every_days, (int, float)) or not every_days > 0:
        raise OptionError(f"retune_every_days must be a number of days > 0, got {every_days!r}",
                          options=("retune_every_days",))
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))
                                or not minutes > 0):
        raise OptionError(f"retune_minutes must be a number > 0, got {minutes!r}", options=("retune_minutes",))
    _check_budget(trials, None if minutes is None else float(minutes) * 60)


def params_for_retrain(
    path: str | os.PathLike[str],
    data: Any,
    every_days: float | None = None,
    n_trials: int | None = None,
    minutes: float | None = None,
    seed: int = 0,
    mlflow: bool | str = False,
    now: dt.datetime | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The retraining job's item2vec and BiLSTM values from a params file, re-tuned when it is due.

    With ``every_days``, when the file's item2vec section was tuned more than
    ``every_days`` ago (its recorded ``tuned_at``) or the file does not exist yet,
    :func:`tune_item2vec` runs on ``data``'s validation split within the budget and
    rewrites the file (the BiLSTM section is kept); on the days in between the
    file is read as it is, and the job warm-starts from the champion as usual.

    Returns
    -------
    item2vec, bilstm : dict
        The file's values (``{}`` for a missing section).
    record : dict
        ``params`` (the file), ``age_days`` (before this run), ``retuned`` and, when it
        re-tuned, ``valid``, ``trials``, ``pruned``, ``seconds``.
    """
    age = params_age_days(path, "item2vec", now=now)
    record: dict[str, Any] = {"params": str(path), "age_days": None if math.isinf(age) else round(age, 3),
                              "retuned": False}
    if every_days is not None and age > every_days:
        res = tune_item2vec(data, n_trials=n_trials, timeout=None if minutes is None else minutes * 60, seed=seed,
                            mlflow=mlflow, show_progress=False)
        write_params(path, res)
        record.update({"retuned": True, "valid": res.valid, "trials": res.n_trials, "pruned": res.n_pruned,
                       "seconds": round(res.seconds, 2)})
    return read_params(path, "item2vec"), read_params(path, "bilstm"), record
