import math

import torch

from unitlens.models.classifier import StackClassifier
from unitlens.models.sdae import SDAE


def test_from_stack_copies_weights_without_touching_the_stack() -> None:
    g = torch.Generator().manual_seed(0)
    sdae = SDAE.build([6, 5, 4], generator=g)
    before = {k: v.clone() for k, v in sdae.state_dict().items()}
    clf = StackClassifier.from_stack(sdae, 3, generator=g)
    x = torch.rand(7, 6)
    expected = clf.output(torch.sigmoid(sdae.preactivation(x, 2)))
    assert torch.allclose(clf(x), expected, atol=1e-6)
    with torch.no_grad():
        for p in clf.parameters():
            p.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in sdae.state_dict().items())


def test_random_initialisation_uses_the_sigmoid_range() -> None:
    clf = StackClassifier.random([100, 50, 30], 10, generator=torch.Generator().manual_seed(0))
    bound = 4 * math.sqrt(6 / 150)
    w = clf.hidden[0].weight.detach()
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) > 0.9 * bound  # the whole range is used, not torch's default
    assert clf.predict(torch.rand(4, 100)).shape == (4,)
