"""``unitlens data``: summarise each data set and write a tiled PNG of 100 examples of each."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from unitlens.atomic import write_text
from unitlens.commands import add_output_options
from unitlens.data.dataset import Dataset, dataset_norm
from unitlens.data.elastic import ElasticConfig, ElasticStream
from unitlens.data.mnist import IMAGE_SHAPE, load_mnist
from unitlens.data.patches import load_patches
from unitlens.outdir import prepare_output
from unitlens.render.png import save_png
from unitlens.render.tiles import tile_images
from unitlens.results import ImageShape

N_TILES = 100


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "data",
        help="summarise the data sets and write example tiles",
        description="Print a summary of MNIST, the elastic-deformation stream and the natural-image patches "
        "(source, shape, value range, rho, class counts) and write a PNG of 100 examples of each.",
    )
    p.add_argument("--out", required=True, help="folder for the PNG tiles and summary.json")
    p.add_argument(
        "--data-dir", type=Path, help="MNIST folder of IDX files or an .npz (default: embedded subset)"
    )
    p.add_argument(
        "--photos", type=Path, help="folder of your own photographs for the patches (default: bundled)"
    )
    p.add_argument(
        "--patch-size", type=int, default=12, help="patch side in pixels (default 12; 20 works too)"
    )
    p.add_argument("--patches", type=int, default=100_000, help="training patches to draw (default 100,000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the elastic stream and the patch sampler")
    add_output_options(p)
    p.set_defaults(run=run)


def summarise(name: str, data: Dataset) -> dict[str, Any]:
    """The facts ``unitlens data`` prints about one data set."""
    x = data.x_train
    row: dict[str, Any] = {
        "name": name,
        "source": data.source,
        "kind": data.kind,
        "train_shape": list(x.shape),
        "test_shape": list(data.x_test.shape),
        "image_shape": list(data.image_shape),
        "min": float(x.min()),
        "max": float(x.max()),
        "rho": data.rho,
    }
    if data.y_train is not None:
        row["class_counts"] = torch.bincount(data.y_train).tolist()
    return row


def _stream_summary(stream: ElasticStream, n_batches: int) -> tuple[dict[str, Any], Tensor]:
    xs, ys = zip(*(stream.next_batch() for _ in range(n_batches)), strict=True)
    x = torch.cat(xs)
    summary: dict[str, Any] = {
        "name": "elastic",
        "source": "elastic deformations (Simard et al. 2003) of the MNIST training digits above",
        "kind": "binary",
        "shape": ["endless", x.shape[1]],
        "sampled": int(x.shape[0]),
        "min": float(x.min()),
        "max": float(x.max()),
        "rho": dataset_norm(x),
    }
    if ys[0] is not None:
        summary["class_counts"] = torch.bincount(torch.cat([y for y in ys if y is not None])).tolist()
    return summary, x


def _print(row: dict[str, Any]) -> None:
    print(f"{row['name']}")
    for key, value in row.items():
        if key != "name":
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            print(f"  {key:<13} {text}")


def run(args: argparse.Namespace) -> int:
    out = prepare_output(args.out)
    generator = torch.Generator().manual_seed(args.seed)
    mnist = load_mnist(args.data_dir)
    stream = ElasticStream(mnist.x_train, mnist.y_train, IMAGE_SHAPE, 1000, generator, ElasticConfig())
    elastic_row, elastic_x = _stream_summary(stream, 10)
    patches = load_patches(
        args.photos,
        size=args.patch_size,
        n_train=args.patches,
        n_test=max(args.patches // 10, 1),
        seed=args.seed,
    )
    rows = [
        summarise("mnist", mnist),
        elastic_row,
        summarise(f"patches {args.patch_size}x{args.patch_size}", patches),
    ]
    panels: dict[str, tuple[torch.Tensor, ImageShape]] = {
        "mnist.png": (mnist.x_train[:N_TILES], mnist.image_shape),
        "elastic.png": (elastic_x[:N_TILES], mnist.image_shape),
        "patches.png": (patches.x_train[:N_TILES], patches.image_shape),
    }
    for row in rows:
        _print(row)
    for filename, (images, shape) in panels.items():
        scale = max(1, 112 // shape[0])
        path = save_png(out / filename, tile_images(images, shape, grid=(10, 10)), scale=scale)
        print(f"wrote {path}")
    summary_path = out / "summary.json"
    write_text(summary_path, json.dumps(rows, indent=2) + "\n")
    print(f"wrote {summary_path}")
    return 0
