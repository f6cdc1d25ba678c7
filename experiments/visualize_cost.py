"""Time every method on every unit of layers 1-3 of a 784-1000-1000-1000 DBN.

Run: ``.venv/bin/python experiments/visualize_cost.py [--examples 60000]``. Pre-trains the DBN briefly on
the elastic stream (timed separately), then runs activation maximization (9 restarts, the automatic step
size: 4 candidate runs), the linear combination, and clamped sampling (burn-in 1000, 18 samples every 100
steps) on all 1000 units of each layer. Prints a table, then one JSON line.
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
from unitlens.visualize.activation_maximization import maximize_activation
from unitlens.visualize.dbn_sampling import sample_clamped
from unitlens.visualize.linear_combination import linear_combination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=60_000, help="pre-training examples per layer")
    parser.add_argument("--restarts", type=int, default=9)
    args = parser.parse_args()
    data = load_mnist()
    recipe = mnist_recipe("dbn", (1000, 1000, 1000), args.examples)
    generator = torch.Generator().manual_seed(0)
    dbn = recipe.build(data, generator)
    source = ElasticStream(
        data.x_train, data.y_train, data.image_shape, 100, torch.Generator().manual_seed(0)
    )
    start = time.perf_counter()
    train_layerwise(dbn, source, data.x_test, recipe.training, generator)
    rows: list[dict[str, object]] = [
        {"stage": "pre-training", "seconds": round(time.perf_counter() - start, 1)}
    ]
    print(rows[-1], flush=True)
    total = 0.0
    for layer in (1, 2, 3):
        start = time.perf_counter()
        am = maximize_activation(dbn, layer, None, restarts=args.restarts, norm=data.rho, generator=generator)
        t_am = time.perf_counter() - start
        start = time.perf_counter()
        linear_combination(dbn, layer, None)
        t_lc = time.perf_counter() - start
        t_gibbs = 0.0
        if layer >= 2:
            start = time.perf_counter()
            sample_clamped(dbn, layer, None, generator=generator)
            t_gibbs = time.perf_counter() - start
        total += t_am + t_lc + t_gibbs
        rows.append(
            {
                "layer": layer,
                "am_seconds": round(t_am, 1),
                "am_max_steps_taken": int(am.steps.max()),
                "am_capped": int((~am.converged).sum()),
                "lc_seconds": round(t_lc, 3),
                "sampling_seconds": round(t_gibbs, 1),
            }
        )
        print(rows[-1], flush=True)
    print(json.dumps({"threads": torch.get_num_threads(), "total_seconds": round(total, 1), "rows": rows}))


if __name__ == "__main__":
    main()
