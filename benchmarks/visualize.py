"""Visualization speed: batched activation maximization and clamped Gibbs sampling on a 784-1000-1000-1000
DBN, against the machine's fp32 matrix-multiply rate and against optimizing one unit-restart at a time, all
measured in this run.

Run inside the project's environment:  python benchmarks/visualize.py [--steps 10] [--rounds 3] [--repeats 2]

Activation maximization (AM) of every unit of a layer x 9 restarts runs as one batch for a fixed number of
steps (``tol=None``: no restart stops early). Its GEMM FLOPs per evaluation (the start, then one per step)
are those of the lower layers' up-pass and the hand-written back-pass, 2·B·V·H per matrix product; the top
layer is a row-wise dot product (not counted). The loop reference is the same function called for one unit
and one restart at a time with the same step count, timed on a subset of unit-restarts and scaled per
unit-restart; a second reference is the naive autograd loop (full forward to the layer, backward, step,
project).

Clamped sampling (:func:`unitlens.visualize.dbn_sampling.sample_clamped`) runs one chain per unit of layer 2;
each Gibbs step costs two GEMMs of 2·B·V·H FLOPs (B chains), and each sample one top-down product.

Timings are medians over the repeats after a warm-up, with pauses between candidates (the machine is shared).
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch

from unitlens.models.dbn import DBN
from unitlens.visualize.activation_maximization import maximize_activation
from unitlens.visualize.dbn_sampling import sample_clamped, total_steps

SIZES = (784, 1000, 1000, 1000)
RESTARTS = 9
NORM = 9.3  # MNIST's mean input norm
LEARNING_RATE = 1.0  # any value: with tol=None every restart runs the same number of steps
GEMM_SIZE = 2048
PAUSE_S = 1.0


def timings(call: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Seconds per call, one figure per repeat, after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def random_dbn(seed: int) -> DBN:
    """A 784-1000-1000-1000 DBN with weights N(0, 0.05²) and biases N(0, 0.5²): trained-like scales."""
    g = torch.Generator().manual_seed(seed)
    dbn = DBN.build(list(SIZES), generator=g)
    with torch.no_grad():
        for k in range(1, dbn.n_layers + 1):
            dbn.layer(k).weight.normal_(0.0, 0.05, generator=g)
            dbn.layer(k).hidden_bias.normal_(0.0, 0.5, generator=g)
    return dbn


def am_gemm_flops(layer: int, batch: int, steps: int) -> float:
    """GEMM FLOPs of batched AM: (steps + 1) evaluations, each an up-pass and a back-pass below ``layer``."""
    per_input = sum(2 * 2 * SIZES[k - 1] * SIZES[k] for k in range(1, layer))
    return float((steps + 1) * batch * per_input)


def naive_loop(dbn: DBN, layer: int, unit: int, steps: int, generator: torch.Generator) -> None:
    """One unit, one restart, plain autograd through the model's preactivation."""
    x = torch.rand(1, dbn.n_inputs, generator=generator)
    x.mul_(NORM / x.norm())
    for _ in range(steps + 1):
        x.requires_grad_(True)
        activation = dbn.preactivation(x, layer)[0, unit]
        (grad,) = torch.autograd.grad(activation, x)
        with torch.no_grad():
            x = x + LEARNING_RATE * grad
            x.mul_(NORM / x.norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="AM steps per restart")
    parser.add_argument("--rounds", type=int, default=3, help="cycles through all candidates")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats per candidate per round")
    parser.add_argument("--loop-units", type=int, default=20, help="unit-restarts timed one at a time")
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 3], help="AM layers to time (2 first)")
    parser.add_argument("--burn-in", type=int, default=50, help="Gibbs burn-in of the sampling timing")
    parser.add_argument("--every", type=int, default=50, help="Gibbs steps per sample (1 sample)")
    args = parser.parse_args()
    if args.layers[0] != 2:
        parser.error("--layers must start with 2 (the layer of the JSON figures)")

    dbn = random_dbn(0)
    n_units = SIZES[2]
    batch = n_units * RESTARTS
    g = torch.Generator().manual_seed(1)
    a = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=g)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=g)
    c = torch.empty(GEMM_SIZE, GEMM_SIZE)

    def gemm() -> None:
        for _ in range(3):
            torch.mm(a, b, out=c)

    def batched(layer: int) -> Callable[[], None]:
        def call() -> None:
            result = maximize_activation(
                dbn,
                layer,
                restarts=RESTARTS,
                norm=NORM,
                learning_rate=LEARNING_RATE,
                max_steps=args.steps,
                tol=None,
                generator=torch.Generator().manual_seed(2),
            )
            assert bool((result.steps == args.steps).all())

        return call

    loop_generator = torch.Generator().manual_seed(3)

    def one_at_a_time() -> None:
        for unit in range(args.loop_units):
            maximize_activation(
                dbn,
                2,
                [unit],
                restarts=1,
                norm=NORM,
                learning_rate=LEARNING_RATE,
                max_steps=args.steps,
                tol=None,
                generator=loop_generator,
            )

    def naive() -> None:
        for unit in range(args.loop_units):
            naive_loop(dbn, 2, unit, args.steps, loop_generator)

    # The floor of any one-at-a-time loop: its two matrix-vector products per evaluation, nothing else.
    w1, b1 = dbn.layer(1).weight.detach(), dbn.layer(1).hidden_bias.detach()
    x1, h1, dx1 = torch.rand(1, SIZES[0], generator=g), torch.empty(1, SIZES[1]), torch.empty(1, SIZES[0])

    def gemv_pairs() -> None:
        for _ in range(100):
            torch.addmm(b1, x1, w1.t(), out=h1)
            torch.mm(h1, w1, out=dx1)

    def gibbs() -> None:
        sample_clamped(
            dbn,
            2,
            burn_in=args.burn_in,
            n_samples=1,
            every=args.every,
            generator=torch.Generator().manual_seed(4),
        )

    # name -> (call, what one call's time is divided by to give the reported seconds)
    candidates: dict[str, tuple[Callable[[], None], int]] = {
        **{f"am{layer}_batch": (batched(layer), 1) for layer in args.layers},
        "am2_loop": (one_at_a_time, args.loop_units),
        "am2_naive": (naive, args.loop_units),
        "gemv_pair": (gemv_pairs, 100),
        "gibbs2": (gibbs, 1),
    }
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    # Each timed call is paired with a GEMM timing taken just before it: other jobs share the machine, and
    # the ratio of two timings taken side by side is what survives their load.
    paired_gemm: dict[str, list[float]] = {name: [] for name in candidates}
    for round_index in range(args.rounds):
        for name, (call, divisor) in candidates.items():
            if round_index == 0:
                call()  # warm-up
            for _ in range(args.repeats):
                paired_gemm[name] += [t / 3 for t in timings(gemm, 1, warmup=0)]
                samples[name] += [t / divisor for t in timings(call, 1, warmup=0)]
            time.sleep(PAUSE_S)
    seconds = {name: statistics.median(s) for name, s in samples.items()}
    all_gemm = [t for s in paired_gemm.values() for t in s]
    gemm_gflops = 2 * GEMM_SIZE**3 / statistics.median(all_gemm) / 1e9

    def of_gemm(name: str, flops: float) -> float:
        """Median over the timed calls of (the call's FLOP rate) / (the GEMM rate timed just before it)."""
        return statistics.median(
            (flops / t) / (2 * GEMM_SIZE**3 / g)
            for t, g in zip(samples[name], paired_gemm[name], strict=True)
        )

    low = round(2 * GEMM_SIZE**3 / max(all_gemm) / 1e9, 1)
    high = round(2 * GEMM_SIZE**3 / min(all_gemm) / 1e9, 1)
    rows: list[tuple[str, float, float | None, float, float]] = []
    result: dict[str, object] = {
        "benchmark": "visualize",
        "torch_threads": torch.get_num_threads(),
        "gemm_gflops": round(gemm_gflops, 1),
        "gemm_gflops_range": [low, high],
        "am_steps": args.steps,
        "am_batch": batch,
    }
    for layer in args.layers:
        name = f"am{layer}_batch"
        gflops = am_gemm_flops(layer, batch, args.steps) / seconds[name] / 1e9
        label = f"AM layer {layer}, {n_units} units x {RESTARTS}"
        share = of_gemm(name, am_gemm_flops(layer, batch, args.steps))
        rows.append((label, seconds[name], seconds[name] / batch, gflops, share))
        result[f"am{layer}_batch_s"] = round(seconds[name], 3)
        result[f"am{layer}_gflops"] = round(gflops, 1)
        result[f"am{layer}_vs_gemm"] = round(share, 3)
    for name, label in (
        ("am2_loop", "AM layer 2, one at a time"),
        ("am2_naive", "AM layer 2, naive autograd"),
    ):
        gflops = am_gemm_flops(2, 1, args.steps) / seconds[name] / 1e9
        share = of_gemm(name, am_gemm_flops(2, 1, args.steps))
        rows.append((label, seconds[name] * batch, seconds[name], gflops, share))
        result[f"{name}_ms_per_unit_restart"] = round(seconds[name] * 1e3, 3)
    per_batched = seconds["am2_batch"] / batch
    result["am_vs_gemm"] = result["am2_vs_gemm"]
    result["am_batched_vs_loop"] = round(seconds["am2_loop"] / per_batched, 1)
    result["am_batched_vs_naive"] = round(seconds["am2_naive"] / per_batched, 1)
    # What the ratio would be against a loop that did nothing but its matrix-vector products.
    result["gemv_pair_us"] = round(seconds["gemv_pair"] * 1e6, 1)
    result["am_batched_vs_gemv_floor"] = round(seconds["gemv_pair"] * (args.steps + 1) / per_batched, 1)

    gibbs_steps = total_steps(args.burn_in, 1, args.every)
    gibbs_flops = float(
        gibbs_steps * 2 * 2 * n_units * SIZES[1] * SIZES[2] + 2 * n_units * SIZES[1] * SIZES[0]
    )
    gibbs_gflops = gibbs_flops / seconds["gibbs2"] / 1e9
    label = f"Gibbs layer 2, {n_units} chains x {gibbs_steps} steps"
    gibbs_share = of_gemm("gibbs2", gibbs_flops)
    rows.append((label, seconds["gibbs2"], None, gibbs_gflops, gibbs_share))
    result["gibbs_s"] = round(seconds["gibbs2"], 3)
    result["gibbs_steps"] = gibbs_steps
    result["gibbs_gflops"] = round(gibbs_gflops, 1)
    result["gibbs_vs_gemm"] = round(gibbs_share, 3)

    print(f"Visualization on a {'-'.join(map(str, SIZES))} DBN; torch threads {torch.get_num_threads()}")
    print(
        f"fp32 GEMM {GEMM_SIZE}x{GEMM_SIZE}: {gemm_gflops:.1f} GFLOP/s (median; {low}-{high} over the run; "
        "each timed call is compared with a GEMM timed just before it)"
    )
    print(f"AM: {args.steps} steps per restart (plus the start's evaluation), tol=None; {args.rounds} rounds")
    header = ("candidate", "s (all)", "ms/unit-restart", "GFLOP/s", "of GEMM")
    print("{:<40} {:>10} {:>16} {:>8} {:>8}".format(*header))
    for label, total, per, gflops, share in rows:
        per_text = f"{per * 1e3:16.3f}" if per is not None else f"{'':>16}"
        print(f"{label:<40} {total:10.2f} {per_text} {gflops:8.1f} {share:8.1%}")
    print(
        f"batched AM is {result['am_batched_vs_loop']}x one unit-restart at a time (same function) and "
        f"{result['am_batched_vs_naive']}x a naive autograd loop, per unit-restart; a loop doing nothing but "
        f"its matrix-vector products ({result['gemv_pair_us']} us per evaluation) would be "
        f"{result['am_batched_vs_gemv_floor']}x slower"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
