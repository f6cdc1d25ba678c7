"""``unitlens visualize CHECKPOINT``: every method and analysis on a trained stack, figures and a report."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from unitlens.atomic import write_text
from unitlens.commands import add_output_options
from unitlens.errors import UnitlensError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "visualize",
        help="visualize a checkpoint's units with every method; write figures and a report",
        description="Activation maximization, linear combination, clamped sampling (DBN) and exemplars for "
        "the units of each layer of a checkpoint made by `unitlens train` or `unitlens reproduce`, with the "
        "analyses; writes OUT/results, OUT/figures and OUT/report. For a plain PyTorch model use the Python "
        "API: unitlens.visualize.maximize_activation(model, 'layer.name', input_shape=..., norm=...).",
    )
    p.add_argument("checkpoint", type=Path, help="a checkpoint (.safetensors or .json) of a DBN or an SDAE")
    p.add_argument("--out", type=Path, required=True, help="folder for results, figures and the report")
    p.add_argument("--data-dir", help="MNIST folder or .npz for the exemplars (default: the embedded digits)")
    p.add_argument("--photos", help="the photographs the patches came from (default: the bundled ones)")
    p.add_argument("--units", type=int, default=36, help="units per layer (default 36; 0: every unit)")
    p.add_argument("--restarts", type=int, default=9)
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    add_output_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from unitlens.checkpoint import load_model
    from unitlens.data.mnist import load_mnist
    from unitlens.data.patches import load_patches
    from unitlens.models.stack import LayerStack
    from unitlens.reproduce import render_run
    from unitlens.results import save_arrays, study_arrays
    from unitlens.study import StudyConfig, study_stack

    model, ckpt = load_model(args.checkpoint)
    if not isinstance(model, LayerStack):
        raise UnitlensError(
            f"{args.checkpoint} holds a {ckpt.meta['model_kind']!r}; visualize takes a DBN or SDAE"
        )
    meta = ckpt.meta.get("data", {})
    shape = meta.get("image_shape", [])
    if meta.get("kind") == "real":
        data = load_patches(args.photos, size=int(shape[0]) if shape else 12, n_train=20_000, n_test=1_000)
        name = f"patches-{model.kind}"
    else:
        data = load_mnist(args.data_dir)
        name = f"mnist-{model.kind}"
    if data.n_inputs != model.n_inputs:
        raise UnitlensError(f"{args.checkpoint} takes {model.n_inputs} inputs; the data has {data.n_inputs}")
    if "rho" in meta:  # the norm the model was trained with
        data = dataclasses.replace(data, rho=float(meta["rho"]))
    config = StudyConfig(units=args.units or None, restarts=args.restarts, max_steps=args.max_steps)
    studies = study_stack(model, data, config, torch.Generator().manual_seed(args.seed))
    results = args.out / "results"
    save_arrays(results / f"{name}.npz", study_arrays(studies, data))
    write_text(
        results / f"{name}.json", json.dumps({"layers": [s.summary() for s in studies]}, indent=1) + "\n"
    )
    print(f"report: {render_run(args.out)}")
    return 0
