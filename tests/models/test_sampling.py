"""The one Bernoulli sampler: right probabilities, reused buffers, the same stream as torch.rand."""

from __future__ import annotations

import pytest
import torch

from unitlens.errors import UnitlensError
from unitlens.models.sampling import sample_bernoulli


def test_sample_means_are_the_probabilities() -> None:
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64).expand(20_000, 5)
    x = sample_bernoulli(p, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float64 and set(x.unique().tolist()) <= {0.0, 1.0}
    # Binomial standard error at p = 0.5 over 20,000 draws is 0.0035; 5 of them.
    torch.testing.assert_close(x.mean(dim=0), p[0], atol=0.018, rtol=0)


def test_the_buffer_is_reused_and_the_stream_is_torch_rand() -> None:
    p = torch.rand(7, 3, generator=torch.Generator().manual_seed(1))
    out = torch.empty(7, 3)
    got = sample_bernoulli(p, torch.Generator().manual_seed(2), out=out)
    assert got is out
    expected = (torch.rand(7, 3, generator=torch.Generator().manual_seed(2)) < p).float()
    assert torch.equal(got, expected)
    half = sample_bernoulli(0.5, torch.Generator().manual_seed(2), out=torch.empty(7, 3))
    assert torch.equal(half, (torch.rand(7, 3, generator=torch.Generator().manual_seed(2)) < 0.5).float())
    with pytest.raises(UnitlensError, match="out buffer"):
        sample_bernoulli(0.5, torch.Generator())
