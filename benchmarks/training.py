"""Layer-training speed: CD-1 (and PCD-1) on a 784-1000 RBM and the denoising auto-encoder step, against the
machine's fp32 matrix-multiply rate and scikit-learn's BernoulliRBM, all measured in this run; and a whole
``fit`` of ``unitlens.estimators.RBM`` against ``BernoulliRBM.fit`` on the same numpy data (target: at
least 2x).

Run inside the project's environment:  python benchmarks/training.py [--rounds 3] [--steps 30]

FLOPs are counted as 10·V·H per example for both models: CD-1 has three chain products (up, down, up) and two
weight-gradient products; the DAE encodes, decodes, back-propagates to h and has two weight-gradient products.
scikit-learn's ``partial_fit`` (persistent CD, one Gibbs step) does the same five products per batch, in
float64 (it converts the float32 batch itself).

Each candidate is timed in its own loop (never mixing torch and numpy BLAS calls, whose thread pools both
spin), after a warm-up, with a pause between candidates. Rounds cycle through the candidates so that a
change in the machine's load hits all of them; the figures are medians over all repeats. The last line is
JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from sklearn.neural_network import BernoulliRBM

from unitlens import estimators
from unitlens.data.mnist import load_mnist
from unitlens.models.dae import DAE, Corruption
from unitlens.models.rbm import RBM
from unitlens.training.contrastive_divergence import CDTrainer
from unitlens.training.denoising import DenoisingTrainer
from unitlens.training.sgd import SGDConfig

V, H, BATCH = 784, 1000, 100
FIT_ROWS, FIT_H, FIT_PASSES = 4000, 256, 3  # the whole-fit comparison through the scikit-learn API
GEMM_SIZE = 2048
PAUSE_S = 1.0  # lets the other library's BLAS threads stop spinning before the next candidate


def time_per_call(call: Callable[[], object], calls: int, repeats: int, warmup: int) -> list[float]:
    """Seconds per call, one figure per repeat of ``calls`` back-to-back calls, after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter() - start) / calls)
    return samples


def training_data() -> torch.Tensor:
    """(n, 784) float32 MNIST digits in [0, 1] (the embedded subset; no download)."""
    return load_mnist().x_train.contiguous()


class Cycle:
    """Successive batches of BATCH rows, wrapping around."""

    def __init__(self, x: torch.Tensor) -> None:
        self.batches = list(x[: (x.shape[0] // BATCH) * BATCH].split(BATCH))
        self.i = 0

    def next(self) -> torch.Tensor:
        self.i = (self.i + 1) % len(self.batches)
        return self.batches[self.i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="cycles through all candidates")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per candidate per round")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed repeat")
    args = parser.parse_args()

    x = training_data()
    sgd = SGDConfig(learning_rate=0.05, batch_size=BATCH)
    total = 10**9
    g = torch.Generator().manual_seed(0)

    cd1 = CDTrainer(RBM(V, H, generator=g), sgd, total)
    pcd1 = CDTrainer(RBM(V, H, generator=g), sgd, total, persistent=True)
    dae = DenoisingTrainer(
        DAE(V, H, "sigmoid", Corruption(kind="salt_pepper", level=0.25), generator=g), sgd, total
    )
    for trainer in (cd1, pcd1):
        trainer.rbm.set_visible_bias_from_mean(x.mean(dim=0))
    sk = BernoulliRBM(n_components=H, learning_rate=0.05, batch_size=BATCH, n_iter=1, random_state=0)
    sk_batches = [np.ascontiguousarray(b.numpy()) for b in Cycle(x).batches]
    sk_i = [0]

    def sklearn_step() -> None:
        sk_i[0] = (sk_i[0] + 1) % len(sk_batches)
        sk.partial_fit(sk_batches[sk_i[0]])

    a = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=g)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=g)
    c = torch.empty(GEMM_SIZE, GEMM_SIZE)
    cycles = {"cd1": Cycle(x), "pcd1": Cycle(x), "dae": Cycle(x)}
    candidates: dict[str, tuple[Callable[[], object], int]] = {
        "gemm": (lambda: torch.mm(a, b, out=c), 5),
        "cd1": (lambda: cd1.step(cycles["cd1"].next(), g), args.steps),
        "pcd1": (lambda: pcd1.step(cycles["pcd1"].next(), g), args.steps),
        "dae": (lambda: dae.step(cycles["dae"].next(), g), args.steps),
        "sklearn": (sklearn_step, max(2, args.steps // 4)),
    }
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, (call, calls) in candidates.items():
            samples[name] += time_per_call(call, calls, args.repeats, warmup=max(2, calls // 4))
            time.sleep(PAUSE_S)
    seconds = {name: statistics.median(s) for name, s in samples.items()}
    spread = {name: (min(s), max(s)) for name, s in samples.items()}

    gemm_gflops = 2 * GEMM_SIZE**3 / seconds["gemm"] / 1e9
    flops_per_batch = 10 * V * H * BATCH
    rows = []
    result: dict[str, object] = {
        "benchmark": "training",
        "torch_threads": torch.get_num_threads(),
        "gemm_gflops": round(gemm_gflops, 1),
    }
    for name in ("cd1", "pcd1", "dae", "sklearn"):
        gflops = flops_per_batch / seconds[name] / 1e9
        examples = BATCH / seconds[name]
        rows.append((name, seconds[name] * 1e3, examples, gflops, gflops / gemm_gflops))
        result[f"{name}_examples_per_s"] = round(examples)
        result[f"{name}_gflops"] = round(gflops, 1)
    result["cd1_vs_gemm"] = round(flops_per_batch / seconds["cd1"] / 1e9 / gemm_gflops, 3)
    result["pcd1_vs_gemm"] = round(flops_per_batch / seconds["pcd1"] / 1e9 / gemm_gflops, 3)
    result["dae_vs_gemm"] = round(flops_per_batch / seconds["dae"] / 1e9 / gemm_gflops, 3)
    result["cd1_vs_sklearn"] = round(seconds["sklearn"] / seconds["cd1"], 2)

    print(f"Layer training, {V}-{H}, batch {BATCH}; torch threads {torch.get_num_threads()}")
    print(f"fp32 GEMM {GEMM_SIZE}x{GEMM_SIZE}: {gemm_gflops:.1f} GFLOP/s (median of {len(samples['gemm'])})")
    header = ("candidate", "ms/batch", "examples/s", "GFLOP/s", "of GEMM", "min-max ms")
    print("{:<10} {:>9} {:>11} {:>8} {:>8} {:>14}".format(*header))
    for name, ms, examples, gflops, share in rows:
        low, high = spread[name]
        print(
            f"{name:<10} {ms:9.2f} {examples:11.0f} {gflops:8.1f} {share:8.1%} "
            f"{low * 1e3:6.2f}-{high * 1e3:<6.2f}"
        )
    print(f"CD-1 is {result['cd1_vs_sklearn']}x scikit-learn's BernoulliRBM.partial_fit (float64 inside)")

    # Whole fits through the scikit-learn API: unitlens.estimators.RBM against BernoulliRBM on the same
    # numpy data, both PCD-1 (BernoulliRBM's algorithm) without momentum, same rate, batch and passes.
    fit_x = x[:FIT_ROWS].numpy().astype(np.float64)
    common = {"n_components": FIT_H, "learning_rate": 0.05, "batch_size": BATCH, "n_iter": FIT_PASSES}
    fits = {
        "estimator_fit": lambda: estimators.RBM(**common, persistent=True, momentum=0.0, random_state=0).fit(
            fit_x
        ),
        "sklearn_fit": lambda: BernoulliRBM(**common, random_state=0).fit(fit_x),
    }
    fit_samples: dict[str, list[float]] = {name: [] for name in fits}
    for _ in range(args.rounds):
        for name, call in fits.items():
            start = time.perf_counter()
            call()
            fit_samples[name].append(time.perf_counter() - start)
            time.sleep(PAUSE_S)
    fit_s = {name: statistics.median(v) for name, v in fit_samples.items()}
    result["estimator_fit_s"] = round(fit_s["estimator_fit"], 3)
    result["sklearn_fit_s"] = round(fit_s["sklearn_fit"], 3)
    result["estimator_fit_vs_sklearn_fit"] = round(fit_s["sklearn_fit"] / fit_s["estimator_fit"], 2)
    print(
        f"fit on {FIT_ROWS} digits, {V}-{FIT_H}, {FIT_PASSES} passes: unitlens.estimators.RBM "
        f"{fit_s['estimator_fit']:.2f} s, BernoulliRBM {fit_s['sklearn_fit']:.2f} s: "
        f"{result['estimator_fit_vs_sklearn_fit']}x (target >= 2)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
