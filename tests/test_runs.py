import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from unitlens.checkpoint import load_model, paths_for
from unitlens.data.dataset import Dataset, dataset_norm
from unitlens.data.stream import ShuffledBatches
from unitlens.errors import UnitlensError
from unitlens.models.dbn import DBN
from unitlens.runs import pretrain
from unitlens.training.greedy import LayerwiseConfig
from unitlens.training.sgd import SGDConfig

CONFIG = LayerwiseConfig(
    examples_per_layer=2_000,
    sgd=(SGDConfig(learning_rate=0.05, batch_size=20),),
    eval_every=500,
    checkpoint_every=500,
    monitor_examples=100,
    init_batches=2,
)


def _data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 16, generator=g) < 0.3).float()
    return Dataset(x[:200], None, x[200:], None, (4, 4), dataset_norm(x[:200]), "test", "binary")


class Interrupting(ShuffledBatches):
    """A source that raises KeyboardInterrupt after ``limit`` batches, like a Ctrl-C."""

    def __init__(self, x: Tensor, limit: int) -> None:
        super().__init__(x, None, 20, torch.Generator().manual_seed(1))
        self.limit = limit

    def next_batch(self) -> tuple[Tensor, Tensor | None]:
        self.limit -= 1
        if self.limit < 0:
            raise KeyboardInterrupt
        return super().next_batch()


def _stack() -> DBN:
    return DBN.build([16, 8, 4], generator=torch.Generator().manual_seed(0))


def test_interrupted_run_resumes_from_disk_and_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    data = _data()
    reference, ref_history = pretrain(
        _stack(), Interrupting(data.x_train, 10**9), data, CONFIG, seed=3, folder=tmp_path / "a", name="dbn"
    )
    with pytest.raises(KeyboardInterrupt):
        pretrain(
            _stack(), Interrupting(data.x_train, 130), data, CONFIG, seed=3, folder=tmp_path / "b", name="dbn"
        )
    assert paths_for(tmp_path / "b" / "dbn-resume")[1].exists()
    assert not paths_for(tmp_path / "b" / "dbn")[1].exists()
    resumed, history = pretrain(
        _stack(), Interrupting(data.x_train, 10**9), data, CONFIG, seed=3, folder=tmp_path / "b", name="dbn"
    )
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [r["heldout_reconstruction"] for r in history] == [
        r["heldout_reconstruction"] for r in ref_history
    ]
    assert not paths_for(tmp_path / "b" / "dbn-resume")[1].exists()
    log = [json.loads(line) for line in (tmp_path / "b" / "dbn-log.jsonl").read_text().splitlines()]
    assert len(log) == 8
    _, ckpt = load_model(tmp_path / "b" / "dbn", kind="dbn")
    assert ckpt.meta["seed"] == 3 and ckpt.meta["data"]["rho"] == pytest.approx(data.rho)
    # A finished run is loaded, not retrained.
    again, _ = pretrain(
        _stack(), Interrupting(data.x_train, 0), data, CONFIG, seed=3, folder=tmp_path / "b", name="dbn"
    )
    assert torch.equal(again.weight(2), reference.weight(2))


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    data = _data()
    with pytest.raises(KeyboardInterrupt):
        pretrain(_stack(), Interrupting(data.x_train, 60), data, CONFIG, seed=3, folder=tmp_path, name="dbn")
    with pytest.raises(UnitlensError, match="different seed"):
        pretrain(_stack(), Interrupting(data.x_train, 10), data, CONFIG, seed=4, folder=tmp_path, name="dbn")


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path: Path) -> None:
    data = _data()
    pretrain(_stack(), Interrupting(data.x_train, 10**9), data, CONFIG, seed=3, folder=tmp_path, name="dbn")
    wider = DBN.build([16, 9, 4], generator=torch.Generator().manual_seed(0))
    with pytest.raises(UnitlensError, match="another architecture"):
        pretrain(wider, Interrupting(data.x_train, 10), data, CONFIG, seed=3, folder=tmp_path, name="dbn")
