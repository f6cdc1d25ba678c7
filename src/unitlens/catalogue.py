"""The names a run uses, defined once: data sets, models, their stacks, display labels, and derived seeds.

A stack is named ``{dataset}-{model}`` (``mnist-dbn``); run folders, results files, checkpoints, figures
and the report all use these names, and people read the labels.
"""

from __future__ import annotations

import hashlib

from unitlens.errors import UnitlensError

DATASETS = ("mnist", "patches", "patches20")
MODELS = ("dbn", "sdae")
DATASET_LABELS = {"mnist": "MNIST", "patches": "12x12 patches", "patches20": "20x20 patches"}
MODEL_LABELS = {"dbn": "DBN", "sdae": "SDAE"}


def stack_name(dataset: str, model: str) -> str:
    """``{dataset}-{model}``, checked against the catalogue."""
    if dataset not in DATASETS:
        raise UnitlensError(f"unknown data set {dataset!r}; expected one of {DATASETS}")
    if model not in MODELS:
        raise UnitlensError(f"unknown model {model!r}; expected one of {MODELS}")
    return f"{dataset}-{model}"


def split_stack_name(name: str) -> tuple[str, str]:
    """``mnist-dbn`` -> (``mnist``, ``dbn``); anything else is an error naming the expected form."""
    dataset, sep, model = name.partition("-")
    if not sep or dataset not in DATASETS or model not in MODELS:
        raise UnitlensError(
            f"{name!r} is not a stack name: expected DATASET-MODEL with DATASET in {DATASETS} and MODEL in "
            f"{MODELS}"
        )
    return dataset, model


def stack_label(name: str) -> str:
    """What people read for stack ``name``: ``MNIST DBN``."""
    dataset, model = split_stack_name(name)
    return f"{DATASET_LABELS[dataset]} {MODEL_LABELS[model]}"


def derive_seed(base: int, *labels: str | int) -> int:
    """A seed for one use of a run's ``base`` seed, e.g. ``derive_seed(seed, "train", "mnist-dbn")``.

    Different labels give unrelated seeds (a SHA-256 of the base and the labels, 63 bits), so adding a
    stack or a stage never shifts another's seed, as offsets like ``seed * 1000 + index`` did.
    """
    if isinstance(base, bool) or not isinstance(base, int):
        raise UnitlensError(f"a seed must be an integer, got {base!r}")
    text = "\x1f".join([str(base), *(str(label) for label in labels)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


__all__ = [
    "DATASETS",
    "DATASET_LABELS",
    "MODELS",
    "MODEL_LABELS",
    "derive_seed",
    "split_stack_name",
    "stack_label",
    "stack_name",
]
