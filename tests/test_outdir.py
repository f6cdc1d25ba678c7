"""Output folders: prepare_output's refusals, output_error's messages, atomic writes that fail, the lock."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from unitlens.atomic import atomic_path, write_bytes, write_text, write_with
from unitlens.errors import UnitlensError
from unitlens.outdir import LOCK_NAME, hold_lock, output_error, prepare_output

# --- prepare_output -------------------------------------------------------------------------------------


def test_creates_a_missing_folder_and_leaves_no_probe(tmp_path: Path) -> None:
    out = prepare_output(tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b" and out.is_dir()
    assert list(out.iterdir()) == []
    assert prepare_output(str(out)) == out  # an existing folder is fine


def test_empty_path_is_refused() -> None:
    for empty in ("", "  "):
        with pytest.raises(UnitlensError, match="--out is empty, which would make the current folder"):
            prepare_output(empty)


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("keep me")
    with pytest.raises(UnitlensError, match=r"f is a file, not a folder; choose a folder"):
        prepare_output(tmp_path / "f")
    assert (tmp_path / "f").read_text() == "keep me"


def test_a_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("keep me")
    with pytest.raises(UnitlensError, match=r"f/sub/deeper lies under .*f, which is a file"):
        prepare_output(tmp_path / "f" / "sub" / "deeper")
    assert (tmp_path / "f").read_text() == "keep me"


def test_create_false_wants_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(UnitlensError, match=r"RUN_DIR .*missing does not exist"):
        prepare_output(tmp_path / "missing", what="RUN_DIR", create=False)
    assert not (tmp_path / "missing").exists()
    assert prepare_output(tmp_path, what="RUN_DIR", create=False) == tmp_path


def test_a_failed_probe_is_one_line_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UnitlensError) as exc:
        prepare_output(tmp_path / "out")
    message = str(exc.value)
    assert message.startswith(f"no space left on device while writing {tmp_path / 'out'}; free space")
    assert "\n" not in message
    assert list((tmp_path / "out").iterdir()) == []  # the probe is removed


# --- output_error -------------------------------------------------------------------------------------


def test_output_error_messages() -> None:
    def message(code: int, *, writing: bool = True, what: str = "--out") -> str:
        error = output_error(OSError(code, os.strerror(code)), "/x/f.png", writing=writing, what=what)
        assert error is not None
        return str(error)

    assert message(errno.ENOSPC) == (
        "no space left on device while writing /x/f.png; free space or choose another --out, then run the "
        "same command again: finished stages are kept"
    )
    assert message(errno.EDQUOT).startswith("disk quota exceeded while writing /x/f.png")
    assert "read-only file system" in message(errno.EROFS)
    assert "permission denied" in message(errno.EACCES) and "/x/f.png" in message(errno.EPERM)
    assert "choose another RUN_DIR" in message(errno.EROFS, what="RUN_DIR")
    assert message(errno.EACCES, writing=False).startswith("permission denied on /x/f.png")
    assert output_error(OSError(errno.ENOENT, "No such file"), "/x") is None


# --- atomic writes that fail ---------------------------------------------------------------------------


def test_disk_full_during_a_write_is_one_line_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.bin"
    write_bytes(target, b"old")

    def full(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[:1])  # half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(UnitlensError) as exc:
        write_text(target, "new")
    assert str(exc.value).startswith(f"no space left on device while writing {target}; free space")
    assert isinstance(exc.value.__cause__, OSError)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_a_failed_rename_names_the_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"

    def read_only(src: str, dst: str) -> None:
        raise OSError(errno.EROFS, "Read-only file system", src, None, dst)

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(UnitlensError, match=f"cannot write {target}: read-only file system"):
        write_with(target, lambda f: f.write(b"x"))
    assert list(tmp_path.iterdir()) == []


def test_other_errors_in_the_body_pass_through(tmp_path: Path) -> None:
    def reads_elsewhere() -> None:
        with atomic_path(tmp_path / "f.txt"):
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "input.csv"))

    with pytest.raises(PermissionError):  # not about the file being written: not re-worded as a write
        reads_elsewhere()
    assert list(tmp_path.iterdir()) == []


def test_a_folder_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(UnitlensError, match=r"cannot write .*f/g\.txt"):
        write_text(tmp_path / "f" / "g.txt", "x")


# --- the lock ---------------------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from unitlens.outdir import hold_lock
    with hold_lock(sys.argv[1], name=sys.argv[2]):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def start_holder(folder: Path, name: str = LOCK_NAME) -> subprocess.Popen[str]:
    """A process that takes ``folder``'s lock and sleeps; returns once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), name], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "locked\n", f"the holder did not take the lock (exit {proc.poll()})"
    return proc


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_lock_is_exclusive_within_a_process_and_records_the_pid(tmp_path: Path) -> None:
    with hold_lock(tmp_path) as lock:
        assert lock == tmp_path / LOCK_NAME
        assert lock.read_text() == f"{os.getpid()}\n"
        refused = f"is in use by another unitlens command \\(pid {os.getpid()}"
        with pytest.raises(UnitlensError, match=refused), hold_lock(tmp_path):
            pass
    assert lock.read_text() == ""  # released: no pid left behind
    with hold_lock(tmp_path):  # and it can be taken again
        pass


def test_a_second_process_is_refused_until_the_holder_dies(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(UnitlensError) as exc, hold_lock(tmp_path):
            pass
        message = str(exc.value)
        assert f"pid {holder.pid}" in message and str(tmp_path / LOCK_NAME) in message
        assert "\n" not in message
    finally:
        kill(holder)
    # Killed, not released: the operating system dropped its lock; the file still holds its pid.
    assert (tmp_path / LOCK_NAME).read_text() == f"{holder.pid}\n"
    with hold_lock(tmp_path) as lock:
        assert lock.read_text() == f"{os.getpid()}\n"


def test_named_locks_are_independent(tmp_path: Path) -> None:
    holder = start_holder(tmp_path, ".mnist-dbn.lock")
    try:
        with hold_lock(tmp_path, name=".mnist-sdae.lock"), hold_lock(tmp_path):
            pass
        with (
            pytest.raises(UnitlensError, match=f"pid {holder.pid}"),
            hold_lock(tmp_path, name=".mnist-dbn.lock"),
        ):
            pass
    finally:
        kill(holder)
