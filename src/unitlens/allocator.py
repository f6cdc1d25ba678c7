"""Keep freed memory for reuse: the C allocator settings under which PyTorch's small CPU steps run fastest.

Feature visualization runs thousands of small steps, each allocating and freeing the same few tensors of
0.1 to a few MB (a batch's activations and gradients). With glibc's default, adaptive thresholds, such a
block is either served by ``mmap`` and returned to the system when freed, or freed at the top of the heap
and trimmed back to the system: in both cases the next step faults its pages in again. Measured on
2026-12-04 (2-core machine, ``benchmarks/any_model.py``'s 8x8 CNN, 144 images per step), one step of the
model's own forward and input gradient took 2.0-2.2 ms with the defaults and 1.3-1.4 ms with both
thresholds fixed high; setting only one of the two made it slower (2.4-2.9 ms), because fixing either
turns off glibc's adaptation of the other. Layer training (large matrix products) did not change.

:func:`keep_freed_memory` fixes both, as the PyTorch CPU tuning guide's advice to use an allocator that
keeps memory (jemalloc, tcmalloc) would, without a preloaded library. The ``unitlens`` command calls it at
start; a Python user may call it once, early. It changes the whole process, so the library never calls it
on import. The cost is memory the process keeps instead of returning: at most the trim threshold
(128 MiB) of free heap per arena.
"""

from __future__ import annotations

import ctypes
import os
import platform

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 1024 * 1024  # blocks below this come from the heap, not from mmap
TRIM_THRESHOLD = 128 * 1024 * 1024  # free heap kept at the top before it is returned to the system
# Any of these in the environment means the user set the allocator up: leave it as it is.
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "LD_PRELOAD")


def keep_freed_memory() -> str:
    """Fix glibc's mmap and trim thresholds (see the module docstring) for this process.

    Returns what was done, for logs: ``"kept"`` (both set), ``"left: ..."`` with the reason when nothing
    was changed (not glibc, the user's own ``MALLOC_*`` / ``LD_PRELOAD`` setting, or mallopt refused).
    Never raises.
    """
    set_by_user = [name for name in USER_SETTINGS if os.environ.get(name)]
    if set_by_user:
        return f"left: the environment sets {', '.join(set_by_user)}"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "left: not glibc"
    try:
        libc = ctypes.CDLL("libc.so.6")
        mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        trim_ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError) as error:  # no loadable libc or no mallopt: nothing to tune
        return f"left: {error}"
    return "kept" if mmap_ok and trim_ok else "left: mallopt refused"
