"""Rebuild a data set from its :class:`~unitlens.data.dataset.DataRecipe`: the one place that does it."""

from __future__ import annotations

from pathlib import Path

from unitlens.data.dataset import DataRecipe, Dataset
from unitlens.data.mnist import load_mnist
from unitlens.data.patches import load_patches
from unitlens.errors import UnitlensError


def load_data(recipe: DataRecipe, cache: Path | None = None) -> Dataset:
    """The data set ``recipe`` describes, loaded exactly as it was the first time.

    ``cache``: where a user's memory-mapped file is converted to stream from (the command's output folder;
    ``unitlens.data.files.dataset_from_recipe``); None converts it in memory.
    """
    if recipe.loader == "mnist":
        return load_mnist(recipe.path or None)
    if recipe.loader == "patches":
        return load_patches(
            recipe.path or None,
            size=recipe.size,
            n_train=recipe.n_train,
            n_test=recipe.n_test,
            seed=recipe.seed,
            f0=recipe.f0,
            margin=recipe.margin,
        )
    if recipe.loader == "file":
        from unitlens.data.files import dataset_from_recipe

        return dataset_from_recipe(recipe, cache)
    raise UnitlensError(f"no loader {recipe.loader!r}")  # DataRecipe refuses it first


__all__ = ["load_data"]
