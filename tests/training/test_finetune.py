import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.classifier import StackClassifier
from unitlens.training.finetune import FinetuneConfig, classification_error, finetune


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.8, 0.2, 0.2, 0.2], [0.2, 0.8, 0.2, 0.2], [0.2, 0.2, 0.8, 0.8]])
    y = torch.randint(0, 3, (n,), generator=g)
    return (centres[y] + 0.1 * torch.randn(n, 4, generator=g)).float(), y


def test_finetuning_learns_a_separable_problem() -> None:
    x, y = _blobs(600, 0)
    xt, yt = _blobs(300, 1)
    g = torch.Generator().manual_seed(0)
    clf = StackClassifier.random([4, 16], 3, generator=g)
    start = classification_error(clf, xt, yt)
    result = finetune(clf, x, y, xt, yt, FinetuneConfig(examples=6_000, eval_every=2_000), g)
    assert start > 0.3
    assert result.test_error < 0.03
    assert [row["examples"] for row in result.history] == [2_000, 4_000, 6_000]


def test_labels_must_be_int64() -> None:
    x, y = _blobs(10, 0)
    clf = StackClassifier.random([4, 3], 3, generator=torch.Generator())
    with pytest.raises(UnitlensError, match="int64"):
        finetune(clf, x, y.int(), x, y, FinetuneConfig(examples=10), torch.Generator())


def test_hidden_learning_rate_moves_only_the_hidden_layers_less() -> None:
    """A tiny hidden rate leaves the hidden weights almost where they were; the output layer still learns."""
    x, y = _blobs(600, 0)
    moved = {}
    for hidden_rate in (None, 1e-4):
        g = torch.Generator().manual_seed(0)
        clf = StackClassifier.random([4, 16], 3, generator=g)
        w0, v0 = clf.hidden[0].weight.detach().clone(), clf.output.weight.detach().clone()
        config = FinetuneConfig(examples=3_000, eval_every=3_000, hidden_learning_rate=hidden_rate)
        finetune(clf, x, y, x, y, config, g)
        moved[hidden_rate] = (
            float((clf.hidden[0].weight.detach() - w0).norm() / w0.norm()),
            float((clf.output.weight.detach() - v0).norm() / v0.norm()),
        )
    assert moved[1e-4][0] < 0.01 * moved[None][0]
    assert moved[1e-4][1] > 0.1
    with pytest.raises(UnitlensError, match="hidden_learning_rate"):
        FinetuneConfig(hidden_learning_rate=0.0)
