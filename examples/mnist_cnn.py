"""A worked example of a user's own network: a small CNN for MNIST digits that unitlens can visualize.

Train it (seconds on a CPU) and write its weights as safetensors::

    python examples/mnist_cnn.py --out mnist_cnn.safetensors

then hand unitlens the code and the weights, naming the layers to study::

    --model examples/mnist_cnn.py:build --weights mnist_cnn.safetensors --layer conv1,conv2

``build()`` makes the network with fresh weights; ``unitlens.models.user.load_user_model`` calls it and
loads the weights into it. The layer names are the module names: a forward hook on ``conv1`` sees that
convolution's output before its ReLU (the pre-activation, as unitlens's own models report).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save
from torch import Tensor, nn

from unitlens.atomic import write_bytes
from unitlens.data.mnist import load_mnist
from unitlens.errors import UnitlensError

INPUT_SHAPE = (1, 28, 28)
"""One input: (channels, height, width)."""
N_CLASSES = 10
BATCH_SIZE = 64  # small batches: more updates per epoch, which matters with 4,000 training digits
LEARNING_RATE = 2e-3  # Adam; 1e-3 needs about twice the epochs on this little data


class MnistCNN(nn.Module):
    """conv1 (1->8, 5x5) -> ReLU -> 2x2 max-pool -> conv2 (8->16, 5x5) -> ReLU -> max-pool -> fc1 -> fc2.

    Shapes: (batch, 1, 28, 28) -> conv1 (batch, 8, 24, 24) -> pool (batch, 8, 12, 12) -> conv2
    (batch, 16, 8, 8) -> pool (batch, 16, 4, 4) -> fc1 (batch, 64) -> fc2 (batch, 10) logits. The ReLUs and
    pools are functions, not modules, so the named modules are exactly the four layers.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=5)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, N_CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        """x (batch, 1, 28, 28), or (batch, 784) as unitlens's data sets hold it -> logits (batch, 10)."""
        x = x.reshape(x.shape[0], *INPUT_SHAPE)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def build() -> nn.Module:
    """The untrained network (PyTorch's default initialisation); the factory ``--model`` names."""
    return MnistCNN()


def initialise(model: nn.Module, generator: torch.Generator) -> None:
    """Redraw every conv and linear layer's weights with PyTorch's default scheme, from ``generator``.

    The same draw as ``nn.Conv2d`` / ``nn.Linear`` make at construction (Kaiming-uniform with a = sqrt(5),
    biases uniform in +-1/sqrt(fan_in)), but from an explicit generator, so a seed gives the same network
    whatever else used the global random state.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.weight[0].numel())  # fan_in = in_channels * kernel area
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one intra-op thread, then restore the count.

    Measured on a shared 2-core machine: an epoch of these small convolutions took 0.2 s on one thread and
    6 s on two, the second thread spinning against other jobs; even on an idle machine a 64-image batch of
    8-channel convolutions leaves a second thread little to do.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def error_rate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Share of the inputs ``x`` (n, ...) whose arg-max logit is not the label ``y`` (n,)."""
    model.eval()
    wrong = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size])
            wrong += int((logits.argmax(dim=1) != y[start : start + batch_size]).sum())
    return wrong / len(x)


def fit(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    generator: torch.Generator,
    lr: float = LEARNING_RATE,
) -> None:
    """Minimise cross-entropy with Adam: ``epochs`` passes of mini-batches shuffled by ``generator``."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(BATCH_SIZE):
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval()


def train(out: Path, *, epochs: int = 3, seed: int = 0, limit: int | None = None) -> dict[str, float]:
    """Train on the embedded MNIST subset (4,000 digits), test on its 1,000 held-out ones, write ``out``.

    Args:
        out: the safetensors file to write (atomically: a reader sees the old file or the whole new one).
        epochs: passes over the training digits.
        seed: seeds the weights and the order of the mini-batches; same seed, same network (on one machine).
        limit: train on the first ``limit`` digits only (a fair sample: the split's order is random).

    Returns:
        ``{"test_error": share of held-out digits misclassified, "seconds": wall time of the whole call}``.
    """
    if epochs < 1:
        raise UnitlensError(f"epochs must be at least 1, got {epochs}")
    if limit is not None and limit < 1:
        raise UnitlensError(f"limit must be at least 1 (or None for every digit), got {limit}")
    start = time.perf_counter()
    data = load_mnist(None)
    assert data.y_train is not None and data.y_test is not None  # the embedded digits are labelled
    x_train, y_train = data.x_train.reshape(-1, *INPUT_SHAPE), data.y_train
    if limit is not None:
        x_train, y_train = x_train[:limit], y_train[:limit]
    generator = torch.Generator().manual_seed(seed)
    model = build()
    initialise(model, generator)
    with one_thread():
        fit(model, x_train, y_train, epochs=epochs, generator=generator)
        test_error = error_rate(model, data.x_test.reshape(-1, *INPUT_SHAPE), data.y_test)
    metadata = {
        "example": "mnist_cnn",
        "epochs": str(epochs),
        "seed": str(seed),
        "test_error": f"{test_error}",
    }
    write_bytes(out, save(model.state_dict(), metadata=metadata))
    return {"test_error": test_error, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    """Command line: train, write the weights, print the held-out error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("mnist_cnn.safetensors"), help="weights file to write"
    )
    parser.add_argument("--epochs", type=int, default=3, help="passes over the 4,000 training digits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch order")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N digits only")
    args = parser.parse_args(argv)
    try:
        result = train(args.out, epochs=args.epochs, seed=args.seed, limit=args.limit)
    except UnitlensError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"test error {result['test_error']:.2%} after {result['seconds']:.1f} s; weights in {args.out}")


if __name__ == "__main__":
    main()
