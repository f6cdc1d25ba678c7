"""Does claim 3 (a strong selectivity diagonal) fail because of the normalisation or the layer we chose?

Run: ``.venv/bin/python experiments/selectivity_normalisations.py RUN [--data-rows 10000]`` on a finished
``reproduce`` run folder (about 1 min for the quick preset, 4 min for the paper preset, on 2 cores).

The paper normalises its 36x36 inset "across columns in order to eliminate the effect of units that are
activated for very many patterns" and does not say how, nor which layer the inset shows. unitlens divides
each column by its sum (``analysis.selectivity``). This script asks whether the claim's verdict depends on
that choice: for every stack and layer >= 2 of the run it rebuilds the raw matrix from the run's own
checkpoint and results (the best x* of the first 36 studied units, their top data-set exemplar, and x* of
a shuffled-weights control optimized to the same rule) and reads it under six normalisations of the
columns (unit j's column, pattern i's row):

- ``column_max``: divided by the column's maximum (unitlens's first choice; true by construction for x*);
- ``column_sum``: divided by the column's sum (unitlens's choice);
- ``raw``: the post-sigmoid responses as they are;
- ``data_mean``: divided by unit j's mean post-sigmoid response over the data set (a unit on for many
  inputs is scaled down: the reading closest to the paper's words);
- ``data_z``: the pre-sigmoid response less unit j's data-set mean, over its data-set standard deviation;
- ``data_rank``: the share of data-set inputs on which unit j responds less than to pattern i (bounded,
  insensitive to saturation).

For each it prints the share of rows whose diagonal beats every other entry and the median margin, in the
normalisation's own units. Prints one table per stack and a JSON line. The findings are in
docs/decisions.md (2026-12-04).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

from unitlens.analysis.control import shuffled_copy
from unitlens.checkpoint import load_model
from unitlens.config import load_toml
from unitlens.data.recipe import load_data
from unitlens.models.stack import LayerStack
from unitlens.results import StackResults
from unitlens.runs import recorded_recipe
from unitlens.visualize.activation_maximization import maximize_activation

NORMALISATIONS = ("column_max", "column_sum", "raw", "data_mean", "data_z", "data_rank")


def normalised(pre: Tensor, data_pre: Tensor, how: str) -> Tensor:
    """(U, U) pre-sigmoid responses of the patterns (rows) -> the matrix under normalisation ``how``.

    ``data_pre`` (N, U): the same units' pre-sigmoid responses over the data set.
    """
    post = torch.sigmoid(pre)
    if how == "column_max":
        return post / post.amax(dim=0, keepdim=True)
    if how == "column_sum":
        return post / post.sum(dim=0, keepdim=True)
    if how == "raw":
        return post
    if how == "data_mean":
        return post / torch.sigmoid(data_pre).mean(dim=0, keepdim=True)
    if how == "data_z":
        return (pre - data_pre.mean(dim=0)) / data_pre.std(dim=0).clamp_min(1e-12)
    if how == "data_rank":
        return (data_pre[None, :, :] < pre[:, None, :]).double().mean(dim=1)
    raise ValueError(how)


def row_test(m: Tensor) -> dict[str, float]:
    """The share of rows on the diagonal, the median margin (diagonal minus the row's largest other entry),
    and the mean diagonal and off-diagonal entries (the paper's inset: off-diagonal near 0-0.2, most of the
    diagonal 0.8-1)."""
    eye = torch.eye(m.shape[0], dtype=torch.bool)
    margin = m.diagonal() - m.masked_fill(eye, float("-inf")).amax(dim=1)
    return {
        "diagonal": float((margin > 0).double().mean()),
        "median_margin": float(margin.median()),
        "mean_diagonal": float(m.diagonal().mean()),
        "mean_off_diagonal": float(m[~eye].mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--data-rows", type=int, default=10_000, help="data-set rows for the data_* ones")
    parser.add_argument("--seed", type=int, default=0, help="the control's shuffle and AM starts")
    args = parser.parse_args()
    study = load_toml(args.run / "config.toml").study
    found: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for npz in sorted((args.run / "results").glob("*.npz")):
        name = npz.stem
        results = StackResults.load(npz)
        loaded, checkpoint = load_model(args.run / "checkpoints" / name)
        assert isinstance(loaded, LayerStack)
        stack = loaded.eval()
        recipe = recorded_recipe(checkpoint.meta, args.run / "checkpoints" / name)
        assert recipe is not None, f"{name}: the checkpoint records no data recipe"
        data = load_data(recipe)
        rows = data.x_train[: args.data_rows].to(torch.float64)
        stack = stack.to(torch.float64)
        control = shuffled_copy(stack, torch.Generator().manual_seed(args.seed))
        for j in sorted(results.layers):
            if j < 2:
                continue
            layer = results.layer(j)
            n = min(study.selectivity_units, layer.units.size)
            units = torch.as_tensor(layer.units[:n])
            best = torch.as_tensor(layer.best_x()[:n], dtype=torch.float64)
            exemplar = torch.as_tensor(layer.exemplars[:n, 0], dtype=torch.float64)
            control_am = maximize_activation(
                control,
                j,
                units,
                restarts=study.restarts,
                norm=data.rho,
                learning_rate=study.learning_rate,
                max_steps=study.max_steps,
                gtol=study.gtol,
                generator=torch.Generator().manual_seed(args.seed),
            )
            patterns = {
                "x*": (stack, best),
                "exemplar": (stack, exemplar),
                "control x*": (control, control_am.best_x()),
            }
            table: dict[str, dict[str, float]] = {}
            for label, (model, x) in patterns.items():
                with torch.no_grad():
                    pre = model.preactivation(x, j)[:, units]
                    data_pre = model.preactivation(rows, j)[:, units]
                for how in NORMALISATIONS:
                    table[f"{label} / {how}"] = row_test(normalised(pre, data_pre, how))
            found[f"{name} L{j}"] = table
            print(
                f"\n{name}, layer {j} ({n} units): share of rows on the diagonal, median margin "
                "(mean diagonal, mean off-diagonal)"
            )
            for how in NORMALISATIONS:
                cells = [table[f"{label} / {how}"] for label in patterns]
                line = "  ".join(
                    f"{c['diagonal']:5.0%} {c['median_margin']:+8.3f} "
                    f"({c['mean_diagonal']:6.3f} {c['mean_off_diagonal']:6.3f})"
                    for c in cells
                )
                print(f"  {how:11s} {line}")
            print(f"  {'':11s} " + "  ".join(f"{label:>31s}" for label in patterns))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
