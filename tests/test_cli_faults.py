"""The CLI's promise under faults of the output location: one line on stderr naming the path and what to do,
exit status 2, no traceback, nothing lost.

Read-only and full file systems are real tmpfs mounts where the tests may mount (root); elsewhere a read-only
folder is a chmod 0o555 one, and the disk-full cases are skipped with the reason.
"""

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_outdir import kill, start_holder  # the lock-holding helper process
from unitlens.cli import main
from unitlens.errors import UnitlensError
from unitlens.outdir import LOCK_NAME, hold_lock
from unitlens.render.png import load_png

TINY = ["--set", "mnist.hidden=12,10,8", "--set", "mnist.examples_per_layer=1000", "--quiet"]


def one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("unitlens: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def mount_tmpfs(folder: Path, options: str) -> None:
    """Mount a tmpfs on ``folder``, or skip the test saying why it cannot."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: room for a probe and a small file, not for the data command's PNG tiles."""
    folder = tmp_path / "full"
    mount_tmpfs(folder, "size=64k")
    yield folder
    unmount(folder)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A read-only folder holding an (empty) run folder ``run/results``: a read-only tmpfs, or chmod 0o555."""
    folder = tmp_path / "ro"
    if os.geteuid() == 0:
        mount_tmpfs(folder, "size=64k")
        (folder / "run" / "results").mkdir(parents=True)
        done = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            unmount(folder)
            pytest.skip(f"cannot remount the tmpfs read-only: {done.stderr.strip()}")
        yield folder
        unmount(folder)
        return
    (folder / "run" / "results").mkdir(parents=True)
    for path in (folder / "run" / "results", folder / "run", folder):
        path.chmod(0o555)
    yield folder
    for path in (folder, folder / "run", folder / "run" / "results"):
        path.chmod(0o755)


def read_only_words() -> str:
    return "read-only file system" if os.geteuid() == 0 else "permission denied"


# --- the output path ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["data", "reproduce", "train", "visualize"])
def test_out_is_a_file(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    args = {
        "data": ["data"],
        "reproduce": ["reproduce", *TINY],
        "train": ["train", "--model", "dbn"],
        "visualize": ["visualize", str(tmp_path / "none.safetensors")],
    }[command]
    assert main([*args, "--out", str(afile)]) == 2
    one_line_error(capsys, f"--out {afile} is a file, not a folder")
    assert main([*args, "--out", str(afile / "sub")]) == 2
    one_line_error(capsys, f"--out {afile / 'sub'} lies under {afile}, which is a file")
    assert afile.read_text() == "keep me"


@pytest.mark.parametrize("command", ["data", "reproduce", "train", "visualize"])
def test_empty_out_is_refused(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = {
        "data": ["data"],
        "reproduce": ["reproduce", *TINY],
        "train": ["train", "--model", "dbn"],
        "visualize": ["visualize", "none.safetensors"],
    }[command]
    assert main([*args, "--out", ""]) == 2
    one_line_error(capsys, "--out is empty, which would make the current folder the output")
    assert list(tmp_path.iterdir()) == []


def test_report_of_a_file_or_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("")
    assert main(["report", str(tmp_path / "afile")]) == 2
    one_line_error(capsys, "RUN_DIR", "afile is a file, not a folder")
    assert main(["report", str(tmp_path / "missing")]) == 2
    one_line_error(capsys, "missing does not exist")
    assert not (tmp_path / "missing").exists()
    assert main(["report", ""]) == 2
    one_line_error(capsys, "RUN_DIR is empty")


# --- read-only ---------------------------------------------------------------------------------------


def test_read_only_output(read_only: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words = read_only_words()
    assert main(["reproduce", *TINY, "--out", str(read_only / "new")]) == 2
    one_line_error(capsys, f"cannot write {read_only / 'new'}: {words}")
    assert main(["visualize", str(read_only / "none.safetensors"), "--out", str(read_only / "v")]) == 2
    one_line_error(capsys, f"cannot write {read_only / 'v'}: {words}")
    assert main(["report", str(read_only / "run")]) == 2
    one_line_error(capsys, f"cannot write {read_only / 'run'}: {words}", "choose another RUN_DIR")
    assert main(["data", "--out", str(read_only / "run")]) == 2
    one_line_error(capsys, f"cannot write {read_only / 'run'}: {words}")


# --- disk full ---------------------------------------------------------------------------------------


def test_disk_full_while_writing_tiles(full_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = full_disk / "d"
    assert main(["data", "--out", str(out), "--patches", "2000"]) == 2
    line = one_line_error(capsys, "no space left on device while writing", str(out), "free space")
    assert line.endswith("then run the same command again: finished stages are kept")
    assert not list(out.rglob("*.tmp"))  # nothing half-written
    for png in out.glob("*.png"):  # what was written is whole
        assert load_png(png).ndim == 2


def test_a_full_disk_is_found_before_any_work(full_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def fill() -> None:
        fd = os.open(full_disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)

    with pytest.raises(OSError, match="No space left"):
        fill()
    assert main(["reproduce", *TINY, "--out", str(full_disk / "run")]) == 2
    one_line_error(capsys, f"no space left on device while writing {full_disk / 'run'}")
    assert list((full_disk / "run").iterdir()) == []


def test_an_untranslated_storage_error_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from unitlens.commands import data as data_cmd

    def full(args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.bin"))

    monkeypatch.setattr(data_cmd, "run", full)
    assert main(["data", "--out", str(tmp_path)]) == 2
    one_line_error(capsys, f"no space left on device while writing {tmp_path / 'x.bin'}")

    def other(args: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(data_cmd, "run", other)
    with pytest.raises(OSError, match="Input/output"):  # not a problem the user fixes by freeing space
        main(["data", "--out", str(tmp_path)])


# --- two commands on one folder ---------------------------------------------------------------------


def test_a_second_command_on_a_locked_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    (run / "results").mkdir(parents=True)
    holder = start_holder(run)
    try:
        for args in (
            ["reproduce", *TINY, "--out", str(run)],
            ["report", str(run)],
            ["visualize", str(tmp_path / "none.safetensors"), "--out", str(run)],
        ):
            assert main(args) == 2
            one_line_error(capsys, f"{run} is in use by another unitlens command (pid {holder.pid}")
        assert not (run / "config.toml").exists()  # the refused reproduce wrote nothing
    finally:
        kill(holder)
    # The holder was killed: its lock went with it, and the next command runs (here: to the next check).
    assert main(["visualize", str(tmp_path / "none.safetensors"), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "is in use by another" not in err and "none.json does not exist" in err


def test_train_locks_its_stack_not_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    holder = start_holder(tmp_path, ".mnist-dbn.lock")
    try:
        args = ["train", "--model", "dbn", "--hidden", "4", "--examples", "1000", "--out", str(tmp_path)]
        assert main(args) == 2
        one_line_error(capsys, f"pid {holder.pid}", str(tmp_path / ".mnist-dbn.lock"))
    finally:
        kill(holder)
    assert not (tmp_path / LOCK_NAME).exists()  # the folder itself stays free for other stacks


def test_a_refused_run_in_a_real_process_prints_one_line(tmp_path: Path) -> None:
    """A second ``unitlens reproduce`` process on a held folder: exit 2, exactly one line naming the pid."""
    run = tmp_path / "run"
    run.mkdir()
    holder = start_holder(run)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "unitlens.cli", "reproduce", *TINY, "--out", str(run)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        kill(holder)
    assert second.returncode == 2
    assert second.stderr == (
        f"unitlens: error: {run} is in use by another unitlens command (pid {holder.pid}, lock "
        f"{run / LOCK_NAME}); wait for it to finish or stop it, or choose another --out\n"
    )
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]


def test_reproduce_and_report_hold_the_lock_while_they_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import unitlens.reproduce as reproduce_module

    run = tmp_path / "run"
    seen: list[str] = []

    def working(*args: object) -> Path:
        """Stands in for the pipeline and the rendering: the folder must be locked by this process."""
        seen.append((run / LOCK_NAME).read_text())
        with pytest.raises(UnitlensError, match=f"pid {os.getpid()}"), hold_lock(run):
            pass
        (run / "results").mkdir(exist_ok=True)
        return run / "report" / "index.html"

    monkeypatch.setattr(reproduce_module, "_reproduce", working)
    monkeypatch.setattr(reproduce_module, "render_run", working)
    assert main(["reproduce", *TINY, "--out", str(run)]) == 0
    assert main(["report", str(run)]) == 0
    assert seen == [f"{os.getpid()}\n"] * 2
    assert (run / LOCK_NAME).read_text() == ""  # released when each command ended
    capsys.readouterr()
