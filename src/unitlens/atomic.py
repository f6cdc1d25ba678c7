"""Atomic file writes: a reader sees the old file or the complete new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from unitlens.errors import UnitlensError
from unitlens.outdir import output_error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    The temporary file lives in the same folder so the final ``os.replace`` is atomic on POSIX.
    On an exception the temporary file is removed and ``path`` is untouched.

    Raises:
        UnitlensError: the write failed for a reason on the user's side (disk full, quota, read-only file
            system, permission denied; see ``unitlens.outdir.output_error``), naming ``path``. Other
            exceptions from the ``with`` body pass through unchanged.
    """
    target = Path(path)
    if target.is_dir():  # os.replace cannot put a file there; say so before any work is wasted
        raise UnitlensError(
            f"{target} is a folder where unitlens keeps a file; move or remove it, then run the same command "
            "again"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise output_error(exc, target) or UnitlensError(
            f"cannot write {target}: {exc.strerror or exc}; choose another --out"
        ) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp creates the file readable by its owner only; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as exc:
        error = _write_error(exc, target, tmp)
        if error is None:
            raise
        raise error from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_error(exc: OSError, target: Path, tmp: Path) -> UnitlensError | None:
    """``exc`` as a one-line error naming ``target``, when it came from writing it (not some other file)."""
    if exc.filename is not None and os.fsdecode(exc.filename) not in {str(target), str(tmp)}:
        return None
    return output_error(exc, target)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_with(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> None:
    """Call ``writer`` on a binary file object, then move the result to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        writer(f)
