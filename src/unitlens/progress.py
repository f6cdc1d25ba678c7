"""A small progress bar for long work: rate and time left, on stderr, silent when quiet."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts work done out of ``total`` and redraws at most a few times a second.

    Args:
        total: units of work (examples, steps).
        label: what is being done.
        quiet: draw nothing.
        stream: where to draw (stderr by default).
    """

    def __init__(self, total: int, label: str, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.total, self.label, self.quiet = max(int(total), 1), label, quiet
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, n: int = 1, **info: float) -> None:
        """Record ``n`` more units done; ``info`` (a loss, say) is shown beside the bar."""
        self.done += n
        now = time.perf_counter()
        if not self.quiet and (now - self._last_draw > 0.25 or self.done >= self.total):
            self._last_draw = now
            self._draw(now, info)

    def _draw(self, now: float, info: dict[str, float]) -> None:
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * 24)
        extra = " ".join(f"{k}={v:.4g}" for k, v in info.items())
        self.stream.write(
            f"\r{self.label}: [{bar:<24}] {frac:6.1%} {rate:,.0f}/s {_clock(elapsed)} elapsed, "
            f"{_clock(left)} left {extra}   "
        )
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if not self.quiet:
            self._draw(time.perf_counter(), {})
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
