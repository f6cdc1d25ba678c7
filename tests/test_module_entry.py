"""``python -m unitlens`` is the ``unitlens`` command (what ``torchrun -m unitlens`` launches)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import unitlens


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "unitlens", "--version"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert unitlens.__version__ in done.stdout
    # A bad command is the command line's error (exit status 2, usage on stderr), not a traceback.
    bad = subprocess.run(
        [sys.executable, "-m", "unitlens", "no-such-command"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "usage: unitlens" in bad.stderr and "Traceback" not in bad.stderr


def test_commands_that_do_not_run_data_parallel_refuse_several_copies(tmp_path: Path) -> None:
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "unitlens", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2
    assert "`unitlens report` does not run data-parallel yet" in done.stderr and "WORLD_SIZE" in done.stderr
    assert not any(tmp_path.iterdir())  # refused before anything was written
