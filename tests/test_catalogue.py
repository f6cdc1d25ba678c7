"""Names and derived seeds, defined once."""

import pytest

from unitlens.catalogue import derive_seed, split_stack_name, stack_label, stack_name
from unitlens.errors import UnitlensError


def test_stack_names_round_trip_and_unknown_ones_are_refused() -> None:
    assert stack_name("patches20", "sdae") == "patches20-sdae"
    assert split_stack_name("mnist-dbn") == ("mnist", "dbn")
    assert stack_label("patches-sdae") == "12x12 patches SDAE"
    for bad in ("mnist", "mnist-rbm", "cifar-dbn", "mnist_dbn"):
        with pytest.raises(UnitlensError, match="not a stack name"):
            split_stack_name(bad)
    with pytest.raises(UnitlensError, match="unknown model"):
        stack_name("mnist", "vae")


def test_derived_seeds_are_fixed_distinct_and_independent_of_other_labels() -> None:
    # Pinned: a change here changes every run's checkpoints, so it must be deliberate.
    assert derive_seed(0, "train", "mnist-dbn") == 4611384544473208536
    seeds = {derive_seed(b, use, name) for b in (0, 1) for use in ("train", "study") for name in ("a", "b")}
    assert len(seeds) == 8 and all(0 <= s < 2**63 for s in seeds)
    # Labels are not concatenated ambiguously.
    assert derive_seed(0, "ab", "c") != derive_seed(0, "a", "bc")
    with pytest.raises(UnitlensError, match="integer"):
        derive_seed(True, "x")  # type: ignore[arg-type]
