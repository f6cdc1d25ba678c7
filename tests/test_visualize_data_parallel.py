"""``torchrun -m unitlens visualize CHECKPOINT``: the units dealt out to two gloo processes give the
results of one process (up to float rounding), written once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unitlens.results import load_arrays

TIMEOUT_S = 300


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _unitlens(args: list[str], processes: int = 1) -> subprocess.CompletedProcess[str]:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    done = subprocess.run(
        [*launcher, "-m", "unitlens", *args, "--quiet"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    _unitlens(["train", "--model", "dbn", "--hidden", "24,12", "--examples", "3000", "--out", str(out)])
    return out / "mnist-dbn.safetensors"


def test_two_processes_give_the_results_of_one(tmp_path: Path, checkpoint: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["visualize", str(checkpoint), "--restarts", "3", "--max-steps", "200"]
    _unitlens([*common, "--out", str(one)])
    done = _unitlens([*common, "--out", str(two)], processes=2)
    assert done.stdout.count("report:") == 1  # process 0 speaks for the run
    a = load_arrays(one / "results" / "mnist-dbn.npz")
    b = load_arrays(two / "results" / "mnist-dbn.npz")
    assert sorted(a) == sorted(b)
    for key in sorted(a):
        if a[key].dtype.kind in "iub":
            # Units, steps, best restarts, exemplar rows, flags: the same decisions.
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            # Per-unit AM in a batch of other units is equal to float rounding (as batching is).
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert (two / "report" / "index.html").is_file()
