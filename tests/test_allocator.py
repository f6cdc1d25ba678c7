import platform
import subprocess
import sys
import textwrap

import pytest

from unitlens import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh process: how many bytes a 4 MiB malloc adds to the mmapped regions (mallinfo2's hblkhd),
# before and after keep_freed_memory. glibc serves a block that large by mmap by default; once the
# thresholds are fixed it comes from the heap, where a freed block stays for the next step.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from unitlens.allocator import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def mmapped_by_one_block():
        before = libc.mallinfo2().hblkhd
        block = libc.malloc(4 << 20)
        grown = libc.mallinfo2().hblkhd - before
        libc.free(block)
        return grown

    first = mmapped_by_one_block()
    if sys.argv[1] == "tune":
        print(keep_freed_memory())
    print(first, mmapped_by_one_block())
    """
)


def _probe(mode: str, env: dict[str, str] | None = None) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.split()


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_keep_freed_memory_serves_blocks_from_the_heap() -> None:
    untuned = _probe("plain")
    assert int(untuned[0]) >= 4 << 20  # the default: a 4 MiB block is mmapped
    said, first, second = _probe("tune")
    assert said == "kept"
    assert int(first) >= 4 << 20 and int(second) == 0  # after: the same block comes from the heap


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_keep_freed_memory_leaves_the_users_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4096")
    assert allocator.keep_freed_memory() == "left: the environment sets MALLOC_TRIM_THRESHOLD_"


def test_keep_freed_memory_leaves_other_c_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in allocator.USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert allocator.keep_freed_memory() == "left: not glibc"
