"""What paper-scale pre-training costs here: 784-1000-1000-1000, 2.5 million elastic digits a layer.

Run: ``.venv/bin/python experiments/paper_scale_cost.py [--full-layer-examples 2500000] [--probe 100000]``.
Trains layer 1 of each stack on ``--full-layer-examples`` elastic digits (a full paper layer by default),
measures layers 2 and 3 on ``--probe`` examples each (their inputs come through the frozen layers below),
and extrapolates the whole of both stacks. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from unitlens.data.elastic import ElasticStream
from unitlens.data.mnist import load_mnist
from unitlens.recipes import mnist_recipe
from unitlens.training.greedy import train_layerwise

PAPER_EXAMPLES = 2_500_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full-layer-examples", type=int, default=PAPER_EXAMPLES)
    parser.add_argument("--probe", type=int, default=100_000, help="examples timed for layers 2 and 3")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    data = load_mnist()
    rows = []
    for kind in ("dbn", "sdae"):
        seconds_per_example = {}
        for layer, examples in ((1, args.full_layer_examples), (2, args.probe), (3, args.probe)):
            recipe = mnist_recipe(kind, (1000, 1000, 1000), examples)
            generator = torch.Generator().manual_seed(0)
            stack = recipe.build(data, generator)
            source = ElasticStream(
                data.x_train, data.y_train, data.image_shape, 100, torch.Generator().manual_seed(0)
            )
            start = time.perf_counter()
            train_layerwise(
                stack, source, data.x_test, recipe.training, generator, layers=[layer], quiet=args.quiet
            )
            elapsed = time.perf_counter() - start
            seconds_per_example[layer] = elapsed / examples
            rows.append(
                {
                    "stack": kind,
                    "layer": layer,
                    "examples": examples,
                    "seconds": round(elapsed, 1),
                    "examples_per_s": round(examples / elapsed),
                }
            )
            print(rows[-1], flush=True)
        total = sum(seconds_per_example.values()) * PAPER_EXAMPLES
        rows.append(
            {"stack": kind, "paper_scale_seconds": round(total), "paper_scale_minutes": round(total / 60, 1)}
        )
        print(rows[-1], flush=True)
    print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}))


if __name__ == "__main__":
    main()
