"""Fixtures shared by the test suite."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test of tiny matrices on one BLAS thread, then restore the count.

    A second thread only adds hand-off latency to tiny products, and on a busy machine that latency made
    such tests 10x slower. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
