"""Small file-system helpers: atomic writes that never destroy what was there, checksums of model directories."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from item2vec.exceptions import OutputExistsError

__all__ = ["CHECKSUMS", "atomic_dir", "atomic_file", "check_output", "json_default", "output_policy", "read_json", "read_meta",
           "verify_checksums", "write_checksums", "write_meta"]

#: The file in a model directory that holds the sha256 of every other file in it.
CHECKSUMS = "checksums.json"


# ---------------------------------------------------------------------------
# what an output may replace
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Policy:
    overwrite: bool = False
    protect: tuple[Path, ...] = ()


_POLICY: contextvars.ContextVar[_Policy | None] = contextvars.ContextVar("item2vec_output_policy", default=None)


@contextlib.contextmanager
def output_policy(overwrite: bool = False, protect: Iterable[str | os.PathLike[str]] = ()) -> Iterator[None]:
    """Within the block, every :func:`atomic_dir` / :func:`atomic_file` also applies this policy.

    The command line sets it once per command: ``--overwrite``, and the command's
    inputs, which no output may replace (nor a folder above them).

    Parameters
    ----------
    overwrite : bool
        Replace an existing output even when it is not an output of the same kind.
    protect : iterable of path-like
        Inputs of the command (files or folders that exist).
    """
    token = _POLICY.set(_Policy(overwrite, tuple(Path(p).resolve() for p in protect)))
    try:
        yield
    finally:
        _POLICY.reset(token)


def check_output(
    target: str | os.PathLike[str],
    marker: str | None = None,
    overwrite: bool = False,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Raise unless writing ``target`` can only replace an output of the same kind.

    ``target`` may be absent, an empty directory, or a directory holding ``marker``
    (the file that says what kind of output it is, e.g. ``stats.json``). Anything
    else that exists (a file, another directory) is refused unless ``overwrite``.
    Never allowed, even with ``overwrite``: the current directory or a folder above
    it, and a protected input (see :func:`output_policy`) or a folder above one.

    Raises
    ------
    OutputExistsError
        (a ``FileExistsError``) naming the path and what to do.
    """
    policy = _POLICY.get() or _Policy()
    t = Path(target)
    real = t.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise OutputExistsError(
            f"refusing to replace {str(t)!r}: it is the current directory or a folder above it; name a new directory"
        )
    for p in (*(Path(q).resolve() for q in protect), *policy.protect):
        if real == p or real in p.parents:
            what = "the input" if real == p else "a folder holding the input"
            raise OutputExistsError(f"refusing to replace {str(t)!r}: it is {what} {str(p)!r}; choose another path")
    if not (t.exists() or t.is_symlink()) or overwrite or policy.overwrite:
        return
    if t.is_dir():
        if not any(t.iterdir()) or (marker is not None and (t / marker).is_file()):
            return
        what = "a directory" + (f" without {marker}" if marker else "")
    else:
        what = "a file"
    raise OutputExistsError(
        f"{str(t)!r} exists and is {what}, not an output of this kind; "
        "pass --overwrite to replace it, or choose another path"
    )


def _umask() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (and put it back at once)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _swap_in(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; what was there is moved aside first and removed only after."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        _remove(old)


# ---------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike[str], overwrite: bool = False, marker: str | None = None
) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; rename it into place on success.

    If anything fails (the body, the rename, a ``KeyboardInterrupt``), the temporary
    directory is removed and ``target`` is left exactly as it was, so a crash never
    leaves half a model on disk. The directory gets the permissions ``mkdir`` would
    give it (``0777`` less the umask).

    Parameters
    ----------
    target : path-like
        The directory to write.
    overwrite : bool
        Replace ``target`` even when it is not an output of the same kind.
    marker : str, optional
        The file that marks an output of this kind (``stats.json``, ``vectors.npy``):
        an existing ``target`` holding it is replaced without ``overwrite``.

    Raises
    ------
    OutputExistsError
        See :func:`check_output`; raised before the body runs.
    """
    target = Path(target)
    check_output(target, marker, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        check_output(target, marker, overwrite)  # the target may have appeared while the body ran
        _swap_in(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], mode: str = "w") -> Iterator[object]:
    """Open a temporary file beside ``target`` and rename it into place on success.

    An existing file is replaced (a report written again); a directory, the current
    directory's parents and the command's inputs (see :func:`output_policy`) are not.
    The file gets the permissions ``open`` would give it (``0666`` less the umask).
    """
    target = Path(target)
    if target.is_dir():
        raise OutputExistsError(f"{str(target)!r} is a directory; expected a file path")
    check_output(target, overwrite=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p != root / CHECKSUMS)


def write_checksums(root: str | os.PathLike[str]) -> Path:
    """Write ``checksums.json``: the sha256 of every file under ``root`` (nested ``checksums.json`` included)."""
    root = Path(root)
    sums = {name: _sha256(root / name) for name in _files(root)}
    out = root / CHECKSUMS
    out.write_text(json.dumps({"algorithm": "sha256", "files": sums}, indent=1, sort_keys=True))
    return out


def verify_checksums(root: str | os.PathLike[str]) -> None:
    """Check every file under ``root`` against ``checksums.json``.

    Raises
    ------
    CorruptModelError
        Naming the first file that is missing, extra, or whose sha256 differs,
        or ``checksums.json`` itself when it is absent or unreadable.
    """
    from item2vec.exceptions import CorruptModelError

    root = Path(root)
    path = root / CHECKSUMS
    if not path.is_file():
        raise CorruptModelError(f"{path}: missing; expected the sha256 of every file in the model directory")
    try:
        listed = json.loads(path.read_text())["files"]
        if not isinstance(listed, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CorruptModelError(f"{path}: not a checksum list (expected {{'files': {{name: sha256}}}})") from None
    present = _files(root)
    for name in present:
        if name not in listed:
            raise CorruptModelError(f"{root / name}: not listed in {CHECKSUMS}; expected only the files saved")
    for name, digest in sorted(listed.items()):
        if name not in present:
            raise CorruptModelError(f"{root / name}: missing; {CHECKSUMS} lists it")
        if _sha256(root / name) != digest:
            raise CorruptModelError(f"{root / name}: sha256 does not match {CHECKSUMS}; the file changed after saving")


# ---------------------------------------------------------------------------
# the versioned JSON file that says what a directory holds
# ---------------------------------------------------------------------------
def write_meta(
    path: str | os.PathLike[str], kind: str | None, version: int, *, indent: int | None = 2, **fields: Any
) -> dict[str, Any]:
    """Write ``{"format_version": version, "kind": kind, **fields}`` as JSON to ``path``.

    Every saved directory (embeddings, prepared data, next-item checkpoint,
    served model, baselines) writes its description through this function,
    so all of them share the key order and the reading rules of :func:`read_meta`.

    Parameters
    ----------
    path : path-like
        The file to write (inside the temporary directory of :func:`atomic_dir`).
    kind : str or None
        What the directory holds (``"item2vec.ItemEmbeddings"``); ``None`` writes no
        ``kind`` key (prepared data, whose ``stats.json`` never had one).
    version : int
        The format version of the directory.
    indent : int or None
        JSON indentation; ``None`` writes one line.
    **fields
        The rest of the description, in the order given; values JSON cannot
        hold are written as ``str``.

    Returns
    -------
    dict
        What was written.
    """
    meta: dict[str, Any] = {"format_version": version}
    if kind is not None:
        meta["kind"] = kind
    meta.update(fields)
    Path(path).write_text(json.dumps(meta, indent=indent, default=str))
    return meta


def read_json(path: str | os.PathLike[str], kind: type = dict) -> Any:
    """A JSON file of a saved directory, as ``kind``; :class:`CorruptModelError` naming the file otherwise."""
    from item2vec.exceptions import CorruptModelError

    p = Path(path)
    try:
        out = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise CorruptModelError(f"{p}: not readable JSON ({e})") from None
    if not isinstance(out, kind):
        raise CorruptModelError(f"{p}: expected a JSON {'object' if kind is dict else kind.__name__}, "
                                f"got {type(out).__name__}")
    return out


def read_meta(
    path: str | os.PathLike[str], kind: str | None, versions: Iterable[int], what: str = "model"
) -> dict[str, Any]:
    """Read a file written by :func:`write_meta`, refusing another kind or format version.

    Parameters
    ----------
    path : path-like
        The file to read (``meta.json``, ``stats.json``, ``served.json``, ...).
    kind : str or None
        The ``kind`` expected; ``None`` checks none (prepared data).
    versions : iterable of int
        The format versions this item2vec reads.
    what : str
        What the directory holds, in words, for the message (``"served model"``).

    Returns
    -------
    dict
        The file's content.

    Raises
    ------
    CorruptModelError
        When the file is not a JSON object.
    FormatVersionError
        Naming the file, the kind and version found and the kind and versions
        expected.
    """
    from item2vec.exceptions import FormatVersionError

    p = Path(path)
    meta = read_json(p)
    wanted = sorted(set(versions))
    found_kind, found_version = meta.get("kind"), meta.get("format_version")
    if found_version not in wanted or (kind is not None and found_kind != kind):
        found = f"{found_kind!r} " if kind is not None else ""
        expected = f"{kind!r} " if kind is not None else ""
        plural = "s" if len(wanted) > 1 else ""
        raise FormatVersionError(
            f"{p}: {what} {found}version {found_version!r}; "
            f"this item2vec reads {what} {expected}version{plural} {' and '.join(map(str, wanted))}"
        )
    return meta


def json_default(o: Any) -> Any:
    """``json.dump(..., default=json_default)``: numpy scalars and arrays as Python values, anything else as ``str``."""
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
