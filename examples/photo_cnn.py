"""A worked example of a user's own colour network: which of the ten bundled photographs a 32x32 crop is from.

The ten photographs that come with scikit-image and scikit-learn (``unitlens.data.images``) are halved in
size and cut into vertical stripes 64 pixels wide; even stripes give the training crops, odd stripes the
held-out ones, so a held-out crop never overlaps a pixel the network was trained on. Train it and write its
weights as safetensors::

    python examples/photo_cnn.py --out photo_cnn.safetensors

then hand unitlens the code and the weights::

    --model examples/photo_cnn.py:build --weights photo_cnn.safetensors --layer conv1,conv2,conv3

``crops(n, seed=..., split=...)`` gives the same kind of crops to anyone who needs colour inputs for this
network (exemplars, the top-activating crops of a unit).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save
from torch import Tensor, nn

from unitlens.atomic import write_bytes
from unitlens.data.images import BUNDLED_PHOTOS, load_bundled_photos_rgb
from unitlens.errors import UnitlensError

INPUT_SHAPE = (3, 32, 32)
"""One input: (channels, height, width), RGB in [0, 1]."""
CLASSES: tuple[str, ...] = BUNDLED_PHOTOS
"""Label c is the photograph ``CLASSES[c]``."""
CROP = INPUT_SHAPE[1]
DOWNSCALE = 2  # a 32-pixel crop of the half-size photograph sees 64 original pixels: more than one texture
STRIPE = 64  # width of the train / held-out stripes (in half-size pixels): two crop widths
SPLITS = ("train", "test")
N_TRAIN = 4000  # training crops drawn once per run (the stripes hold far more distinct positions)
N_TEST = 1000
BATCH_SIZE = 64
LEARNING_RATE = 2e-3  # Adam


class PhotoCNN(nn.Module):
    """Three conv (3x3, padding 1) -> ReLU -> 2x2 max-pool stages, a global average, one linear layer.

    Shapes: (batch, 3, 32, 32) -> conv1 (batch, 16, 32, 32) -> pool (batch, 16, 16, 16) -> conv2
    (batch, 32, 16, 16) -> pool (batch, 32, 8, 8) -> conv3 (batch, 32, 8, 8) -> pool (batch, 32, 4, 4) ->
    mean over positions (batch, 32) -> fc (batch, 10) logits. The average makes the answer depend on what
    textures and colours a crop holds, not where: the crops come from anywhere in their photograph.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, kernel_size=3, padding=1)
        self.fc = nn.Linear(32, len(CLASSES))

    def forward(self, x: Tensor) -> Tensor:
        """x (batch, 3, 32, 32), or (batch, 3072) flattened -> logits (batch, 10)."""
        x = x.reshape(x.shape[0], *INPUT_SHAPE)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        return self.fc(x.mean(dim=(2, 3)))


def build() -> nn.Module:
    """The untrained network (PyTorch's default initialisation); the factory ``--model`` names."""
    return PhotoCNN()


# ----------------------------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """The ten photographs, (3, H, W) float32 in [0, 1], halved by averaging 2x2 blocks (no aliasing)."""
    halved = []
    for rgb in load_bundled_photos_rgb():
        h, w = rgb.shape[0] // DOWNSCALE, rgb.shape[1] // DOWNSCALE
        blocks = rgb[: h * DOWNSCALE, : w * DOWNSCALE].reshape(h, DOWNSCALE, w, DOWNSCALE, 3)
        image = np.ascontiguousarray(blocks.mean(axis=(1, 3)).transpose(2, 0, 1), dtype=np.float32)
        image.flags.writeable = False  # shared through the cache
        halved.append(image)
    return tuple(halved)


def _columns(width: int, split: str) -> np.ndarray:
    """Left edges x of the crops of ``split`` in an image ``width`` wide: [x, x + 32) inside one stripe."""
    parity = SPLITS.index(split)
    edges = np.arange(width - CROP + 1)
    same_stripe = edges // STRIPE == (edges + CROP - 1) // STRIPE
    return edges[same_stripe & (edges // STRIPE % 2 == parity)]


def crops(n: int, *, seed: int, split: str) -> tuple[Tensor, Tensor]:
    """``n`` random 32x32 colour crops of the bundled photographs and the photograph each comes from.

    The labels are balanced (each photograph ``n // 10`` or one more times) and shuffled; each crop's
    position is uniform over the positions of its split in its photograph: the even 64-pixel stripes for
    ``"train"``, the odd ones for ``"test"``, so the two splits share no pixel.

    Args:
        n: number of crops.
        seed: seeds a ``torch.Generator`` that draws labels and positions (same seed, same crops).
        split: ``"train"`` or ``"test"``.

    Returns:
        (images, labels): (n, 3, 32, 32) float32 RGB in [0, 1], and (n,) int64 in 0..9 (``CLASSES``).
    """
    if split not in SPLITS:
        raise UnitlensError(f"crops: split must be one of {SPLITS}, got {split!r}")
    if n < 0:
        raise UnitlensError(f"crops: n must be at least 0, got {n}")
    photos = _photos()
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(photos))[torch.randperm(n, generator=generator)]
    column_choice = torch.rand(n, generator=generator, dtype=torch.float64)
    row_choice = torch.rand(n, generator=generator, dtype=torch.float64)
    columns = [_columns(photo.shape[2], split) for photo in photos]
    images = np.empty((n, *INPUT_SHAPE), dtype=np.float32)
    for i, label in enumerate(labels.tolist()):
        photo, options = photos[label], columns[label]
        x = int(options[int(column_choice[i] * len(options))])
        y = int(row_choice[i] * (photo.shape[1] - CROP + 1))
        images[i] = photo[:, y : y + CROP, x : x + CROP]
    return torch.from_numpy(images), labels


# ------------------------------------------------------------------------------------------- training


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

    On a shared 2-core machine small convolutions ran many times slower on two threads than on one (the
    second thread spinning against other jobs); a 64-crop batch leaves a second thread little to do anyway.
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
    """Minimise cross-entropy with Adam: ``epochs`` passes of mini-batches shuffled by ``generator``.

    Each batch is mirrored left-right at random (a photograph's mirror image is the same photograph to
    this task), which doubles the crops the network sees.
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(BATCH_SIZE):
            inputs = x[batch]
            flip = torch.rand(len(batch), generator=generator) < 0.5
            inputs = torch.where(flip[:, None, None, None], inputs.flip(3), inputs)
            loss = F.cross_entropy(model(inputs), y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval()


def train(out: Path, *, epochs: int = 8, seed: int = 0, limit: int | None = None) -> dict[str, float]:
    """Train on 4,000 crops of the training stripes, test on 1,000 of the held-out stripes, write ``out``.

    Args:
        out: the safetensors file to write (atomically: a reader sees the old file or the whole new one).
        epochs: passes over the training crops.
        seed: seeds the crops (train and held-out), the weights and the order of the mini-batches.
        limit: train on ``limit`` crops instead of 4,000.

    Returns:
        ``{"test_error": share of held-out crops misattributed, "seconds": wall time of the whole call}``.
    """
    if epochs < 1:
        raise UnitlensError(f"epochs must be at least 1, got {epochs}")
    if limit is not None and limit < 1:
        raise UnitlensError(f"limit must be at least 1 (or None for {N_TRAIN:,} crops), got {limit}")
    start = time.perf_counter()
    x_train, y_train = crops(N_TRAIN if limit is None else limit, seed=seed, split="train")
    x_test, y_test = crops(N_TEST, seed=seed, split="test")
    generator = torch.Generator().manual_seed(seed)
    model = build()
    initialise(model, generator)
    with one_thread():
        fit(model, x_train, y_train, epochs=epochs, generator=generator)
        test_error = error_rate(model, x_test, y_test)
    metadata = {
        "example": "photo_cnn",
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
        "--out", type=Path, default=Path("photo_cnn.safetensors"), help="weights file to write"
    )
    parser.add_argument("--epochs", type=int, default=8, help="passes over the training crops")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the crops, the weights and the batch order"
    )
    parser.add_argument("--limit", type=int, default=None, help=f"train on N crops instead of {N_TRAIN:,}")
    parser.add_argument(
        "--crops",
        type=Path,
        default=None,
        help="also write 2,000 held-out crops to this .npz (array x), for `unitlens visualize --data`",
    )
    args = parser.parse_args(argv)
    try:
        result = train(args.out, epochs=args.epochs, seed=args.seed, limit=args.limit)
        if args.crops is not None:
            images, labels = crops(2000, seed=args.seed + 1, split="test")
            buffer = io.BytesIO()
            np.savez(buffer, x=images.numpy(), y=labels.numpy())
            write_bytes(args.crops, buffer.getvalue())
    except UnitlensError as err:
        raise SystemExit(f"error: {err}") from None
    error, seconds = result["test_error"], result["seconds"]
    print(f"test error {error:.2%} (chance 90%) after {seconds:.1f} s; weights in {args.out}")


if __name__ == "__main__":
    main()
