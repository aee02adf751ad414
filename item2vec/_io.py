"""Small file-system helpers: atomic directory writes, checksums of model directories."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["CHECKSUMS", "atomic_dir", "atomic_file", "verify_checksums", "write_checksums"]

#: The file in a model directory that holds the sha256 of every other file in it.
CHECKSUMS = "checksums.json"


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; rename it into place on success.

    If the body raises, the temporary directory is removed and ``target`` is left
    exactly as it was, so a crash never leaves half a model on disk.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike[str], mode: str = "w") -> Iterator[object]:
    """Open a temporary file beside ``target`` and rename it into place on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
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
