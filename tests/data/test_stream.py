import pytest
import torch

from unitlens.data.stream import BatchSource, ShuffledBatches
from unitlens.errors import UnitlensError


def _source(seed: int = 0) -> ShuffledBatches:
    x = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    y = torch.arange(10)
    return ShuffledBatches(x, y, 3, torch.Generator().manual_seed(seed))


def test_each_epoch_is_a_permutation_without_the_last_partial_batch() -> None:
    s = _source()
    assert isinstance(s, BatchSource)
    seen = torch.cat([s.next_batch()[1] for _ in range(3)])  # type: ignore[misc]
    assert sorted(seen.tolist()) == sorted(set(seen.tolist()))  # no repeats inside an epoch
    assert s.epoch == 0
    s.next_batch()
    assert s.epoch == 1


def test_rows_stay_paired_with_labels() -> None:
    x, y = _source().next_batch()
    assert y is not None
    assert torch.equal(x[:, 0], 2 * y.float())


def test_state_dict_resumes_the_same_batches() -> None:
    a = _source(3)
    for _ in range(4):
        a.next_batch()
    state = a.state_dict()
    expected = [a.next_batch()[1] for _ in range(7)]
    b = _source(99)
    b.load_state_dict(state)
    got = [b.next_batch()[1] for _ in range(7)]
    assert all(torch.equal(e, g) for e, g in zip(expected, got, strict=True))  # type: ignore[arg-type]


def test_batch_size_is_checked() -> None:
    with pytest.raises(UnitlensError, match="batch_size"):
        ShuffledBatches(torch.zeros(4, 2), None, 5, torch.Generator())
