"""Output folders: the one place that checks and prepares them, and takes a folder's lock.

Every command calls :func:`prepare_output` on its output folder before any work, so a path that cannot
hold the output (empty, a file, under a file, read-only, full, not ours) fails at once in one line that
names the path and what to do, instead of after an hour of training. :func:`hold_lock` then keeps a second
command off the same folder while the first one runs: an ``flock`` on ``FOLDER/.lock``, released by the
operating system when the process ends, however it ends, so a killed run never leaves a stale lock.
:func:`output_error` turns the ``OSError`` of a failed write (disk full, read-only, permission) into the
same kind of one-line :class:`~unitlens.errors.UnitlensError`; ``unitlens.atomic`` and the CLI use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from unitlens.errors import UnitlensError

__all__ = ["LOCK_NAME", "OUTPUT_ERRNOS", "hold_lock", "output_error", "prepare_output"]

LOCK_NAME = ".lock"

# The errors of a write that the user fixes on their side (space, file system, permissions), not bugs.
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})

_RERUN = "then run the same command again: finished stages are kept"


def output_error(
    exc: OSError, path: str | os.PathLike[str], *, writing: bool = True, what: str = "--out"
) -> UnitlensError | None:
    """The one-line error for ``exc`` raised on ``path``; None when it is not a storage problem.

    Raise it ``from exc``. Covers :data:`OUTPUT_ERRNOS` (disk full, quota, read-only file system,
    permission denied). ``writing``: the caller knows ``exc`` came from a write (False: a permission error
    may have come from a read, and the message says so). ``what`` names the output in the advice.
    """
    where = os.fspath(path)
    if exc.errno == errno.ENOSPC:
        return UnitlensError(
            f"no space left on device while writing {where}; free space or choose another {what}, {_RERUN}"
        )
    if exc.errno == errno.EDQUOT:
        return UnitlensError(
            f"disk quota exceeded while writing {where}; free space or choose another {what}, {_RERUN}"
        )
    if exc.errno == errno.EROFS:
        return UnitlensError(
            f"cannot write {where}: read-only file system; choose another {what} on a writable disk"
        )
    if exc.errno in (errno.EACCES, errno.EPERM) and not writing:
        return UnitlensError(
            f"permission denied on {where}; give this user access to it (or choose another {what} when it "
            "is in the output folder)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UnitlensError(
            f"cannot write {where}: permission denied; make the folder writable for this user or choose "
            f"another {what}"
        )
    return None


def prepare_output(path: str | os.PathLike[str], *, what: str = "--out", create: bool = True) -> Path:
    """Check that ``path`` can hold a command's output, create it (unless ``create`` is False); return it.

    ``what`` names the path in messages (``--out``, ``RUN_DIR``). Refused, each in one line naming the
    path and what to do: an empty path (which would quietly make the current folder the output), a file,
    a path under a file, a missing folder when ``create`` is False, and a folder where a probe file cannot
    be created, written and removed (read-only, full, not writable by this user).

    Raises:
        UnitlensError: the folder cannot take the output.
    """
    text = os.fspath(path)
    if not text.strip():
        raise UnitlensError(
            f"{what} is empty, which would make the current folder the output; give a folder name (or . "
            "for the current folder)"
        )
    folder = Path(text).expanduser()
    _refuse_files(folder, what, create)
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _refuse_files(folder, what, create)  # a file appeared on the way since the check above
            raise _folder_error(exc, folder, what) from exc
    elif not folder.is_dir():
        raise UnitlensError(f"{what} {folder} does not exist; check the path")
    _probe(folder, what)
    return folder


def _refuse_files(folder: Path, what: str, create: bool) -> None:
    """Raise when ``folder`` or the nearest of its existing ancestors is not a folder."""
    for candidate in (folder, *folder.parents):
        try:
            is_dir = candidate.is_dir()
            exists = is_dir or candidate.exists() or candidate.is_symlink()
        except OSError as exc:
            raise _folder_error(exc, candidate, what) from exc
        if not exists:
            continue
        if is_dir:
            return
        if candidate == folder:
            hint = (
                "choose a folder for the output (it is created when missing)" if create else "give a folder"
            )
            raise UnitlensError(f"{what} {folder} is a file, not a folder; {hint}")
        raise UnitlensError(
            f"{what} {folder} lies under {candidate}, which is a file, not a folder; choose a folder path "
            "that does not go through a file"
        )


def _probe(folder: Path, what: str) -> None:
    """Create, write (one byte, synced) and remove a probe file in ``folder``."""
    try:
        fd, name = tempfile.mkstemp(prefix=".unitlens-probe-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise _folder_error(exc, folder, what) from exc
    try:
        os.write(fd, b"\n")
        os.fsync(fd)
    except OSError as exc:
        raise _folder_error(exc, folder, what) from exc
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _folder_error(exc: OSError, folder: Path, what: str) -> UnitlensError:
    known = output_error(exc, folder, what=what)
    if known is not None:
        return known
    return UnitlensError(f"cannot use {what} {folder}: {exc.strerror or exc}; choose another {what}")


@contextlib.contextmanager
def hold_lock(
    folder: str | os.PathLike[str], *, what: str = "--out", name: str = LOCK_NAME
) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (``folder/name``, an ``flock``) for the ``with`` body.

    The lock file holds the holder's pid while it is held. A second holder, in this process or another,
    is refused at once, in one line naming the pid. The operating system drops the lock when the process
    ends, so a killed command leaves no stale lock; the file itself stays (removing it would let two
    processes lock two different files). Yields the lock file's path.

    Raises:
        UnitlensError: another process holds the lock, or the lock file cannot be created.
    """
    lock_path = Path(folder) / name
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise _folder_error(exc, lock_path, what) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(fd)
            raise UnitlensError(
                f"{Path(folder)} is in use by another unitlens command (pid {pid}, lock {lock_path}); wait "
                f"for it to finish or stop it, or choose another {what}"
            ) from None
        with contextlib.suppress(OSError):  # the pid is for messages only; the lock holds without it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield lock_path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """The pid in a held lock file (the holder writes it just after locking: wait a moment for it)."""
    for _ in range(10):
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if text:
            return text
        time.sleep(0.02)
    return "unknown"
