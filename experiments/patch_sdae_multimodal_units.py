"""Why some layer-2 units of the paper-scale 12x12 patch SDAE have AM restarts that disagree (claim 2).

Run: ``.venv/bin/python experiments/patch_sdae_multimodal_units.py OUT [--seed 0]`` (about 15 min on 2 cores).
Trains layers 1-2 of the ``paper`` preset's patch SDAE (500-500; 2M and 1M examples, the pipeline's seeds),
keeps it in ``OUT``, runs AM on the 144 studied layer-2 units (9 restarts, 3000 steps) and compares the units
whose restarts disagree (mean pairwise cosine <= 0.9) with the others on:

- how far apart the restarts' final activations are (separate maxima, or one plateau);
- the spectral flatness of the best x* (geometric / arithmetic mean of the power spectrum; white noise of
  the same size ~0.57), to test whether the optima are white noise;
- the response to the SDAE's own corruption (salt-and-pepper to +-2, 25%) of held-out patches, in units of
  the clean response's standard deviation, to test whether the units detect the corruption itself.

Prints one JSON line. The findings are in docs/decisions.md (2026-12-03).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from unitlens.analysis.restarts import SAME_HEIGHT, restart_agreement_of
from unitlens.catalogue import derive_seed
from unitlens.checkpoint import load_model, save_checkpoint
from unitlens.config import preset
from unitlens.data.recipe import load_data
from unitlens.models.dae import DAE, corrupt
from unitlens.models.stack import LayerStack
from unitlens.recipes import batch_source, build_stack, data_recipe, training_config
from unitlens.training.greedy import train_layerwise
from unitlens.visualize.activation_maximization import maximize_activation


def spectral_flatness(images: torch.Tensor) -> torch.Tensor:
    """(n, h, w) -> (n,) geometric over arithmetic mean of each image's power spectrum, DC left out."""
    x = images.double() - images.double().mean(dim=(1, 2), keepdim=True)
    power = torch.fft.fft2(x).abs().square().flatten(1)[:, 1:] + 1e-12
    return torch.exp(torch.log(power).mean(1)) / power.mean(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = preset("paper")
    data = load_data(data_recipe("patches", config))
    settings = config.patches
    path = args.out / "patches-sdae-layers12"
    if path.with_suffix(".json").exists():
        loaded, _ = load_model(path)
        assert isinstance(loaded, LayerStack)
        stack = loaded
    else:
        seed = derive_seed(args.seed, "train", "patches-sdae")
        stack = build_stack("sdae", data, settings, torch.Generator().manual_seed(seed))
        source = batch_source("patches", data, config, derive_seed(args.seed, "batches", "patches-sdae"))
        train_layerwise(
            stack,
            source,
            data.x_test,
            training_config("sdae", settings),
            torch.Generator().manual_seed(seed),
            layers=[1, 2],
            quiet=False,
        )
        save_checkpoint(path, stack, meta={"layers_trained": [1, 2]})
    units = torch.arange(settings.units)
    am = maximize_activation(
        stack,
        2,
        units,
        restarts=config.study.restarts,
        norm=data.rho,
        max_steps=config.study.max_steps,
        generator=torch.Generator().manual_seed(derive_seed(args.seed, "study", "patches-sdae")),
    )
    agreement = restart_agreement_of(am)
    disagree = agreement.mean_cosine <= 0.9
    flatness = spectral_flatness(am.best_x().reshape(-1, *data.image_shape))
    noise = spectral_flatness(torch.randn(200, *data.image_shape, generator=torch.Generator().manual_seed(0)))
    clean = data.x_test[:5000]
    first = stack.layer(1)
    assert isinstance(first, DAE)
    dirty = corrupt(clean, first.corruption, torch.Generator().manual_seed(1))
    with torch.no_grad():
        h_clean, h_dirty = stack.up_pass(clean, 2)[:, units], stack.up_pass(dirty, 2)[:, units]
    corruption_response = (h_dirty.mean(0) - h_clean.mean(0)) / (h_clean.std(0) + 1e-6)

    def medians(v: torch.Tensor) -> dict[str, float]:
        v = v.double()
        return {"disagreeing": float(v[disagree].median()), "agreeing": float(v[~disagree].median())}

    report = {
        "units": int(units.numel()),
        "fraction_above_0.9": float((~disagree).double().mean()),
        "median_mean_cosine": float(agreement.mean_cosine.median()),
        "n_disagreeing": int(disagree.sum()),
        "n_separate_maxima": int((disagree & (agreement.activation_spread > SAME_HEIGHT)).sum()),
        "restarts_capped": int(agreement.n_capped.sum()),
        "activation_spread": medians(agreement.activation_spread),
        "median_steps": medians(agreement.steps_median),
        "spectral_flatness": {**medians(flatness), "white_noise": float(noise.median())},
        "corruption_response": medians(corruption_response),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
