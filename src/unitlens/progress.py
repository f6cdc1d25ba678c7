"""Progress for long work that fits both a terminal and a log file.

The stream decides how progress is shown (:func:`choose_mode`):

- ``terminal`` (the stream is a terminal, and ``CI`` is not set): one live bar per piece of work, drawn by
  tqdm, with rate and time left; during a pipeline run, a line above it says which stage of how many is
  running and the whole run's time so far and left. Summaries and log messages scroll above the bars.
- ``plain`` (a file, a pipe, CI): no carriage-return redraws. A bar becomes at most one line per tenth of
  its work, and then only when a few seconds have passed since the last one, and one summary line when it
  ends (count, rate, final loss, time); stages print a start and a done line.
- ``quiet``: nothing on the stream but warnings and errors.

Every line a bar or a stage prints is also a record of the ``unitlens.progress`` logger, whatever the mode,
so a run's ``log.txt`` reads the same whether the run was watched on a terminal, piped or quiet. With
``verbose`` every step (every :meth:`Progress.update`) adds a DEBUG record, shown on the stream too.

Use :func:`session` at the edge (the CLI, ``reproduce``) to choose the stream and the mode; a
:class:`Progress` made inside it draws there, one made outside draws on stderr.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TextIO

from tqdm import tqdm

Mode = Literal["terminal", "plain", "quiet"]
Kind = Literal["start", "tick", "summary", "step"]
MODES: tuple[Mode, ...] = ("terminal", "plain", "quiet")

TICK_SECONDS = 5.0  # plain mode: the shortest time between two progress lines of one bar
TICK_FRACTION = 0.1  # plain mode: the share of a bar's work between two of its progress lines
log = logging.getLogger("unitlens.progress")
PROGRESS_ATTR = "unitlens_progress"  # set on the records a Display has already shown on its stream


def in_ci(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``CI`` is set to a true value (``true``, ``1``, ``yes``), as CI services do."""
    value = (os.environ if environ is None else environ).get("CI", "")
    return value.strip().lower() not in ("", "0", "false", "no")


def stream_is_terminal(stream: TextIO) -> bool:
    """``stream.isatty()``, False for streams that cannot say (closed, wrapped, missing)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def choose_mode(stream: TextIO, *, quiet: bool = False, mode: Mode | None = None) -> Mode:
    """``mode`` when given; else ``quiet``, ``terminal`` for a terminal outside CI, ``plain`` otherwise."""
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, not {mode!r}")
        return mode
    if quiet:
        return "quiet"
    return "terminal" if stream_is_terminal(stream) and not in_ci() else "plain"


class Display:
    """Where progress goes: a stream, how it is drawn there (``mode``), and the stage plan of a run.

    Args:
        stream: the stream to draw on (stderr at the edge).
        mode: ``terminal``, ``plain`` or ``quiet`` (see :func:`choose_mode`).
        verbose: show a line per step too.
        tick_seconds: the shortest time between two progress lines of a bar (``TICK_SECONDS``).
        tick_fraction: the share of a bar's work between two of its lines (``TICK_FRACTION``).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        stream: TextIO,
        mode: Mode,
        *,
        verbose: bool = False,
        tick_seconds: float | None = None,
        tick_fraction: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        tick_seconds = TICK_SECONDS if tick_seconds is None else tick_seconds
        tick_fraction = TICK_FRACTION if tick_fraction is None else tick_fraction
        if not 0.0 < tick_fraction <= 1.0:
            raise ValueError("tick_fraction must be in (0, 1]")
        self.stream, self.mode, self.verbose = stream, mode, verbose
        self.tick_seconds, self.tick_fraction, self.clock = tick_seconds, tick_fraction, clock
        self.plan: StagePlan | None = None

    def write(self, text: str) -> None:
        """A line on the stream, above any live bars (whatever the mode: the caller decides)."""
        if self.mode == "terminal":
            tqdm.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def emit(self, kind: Kind, text: str, *, level: int = logging.INFO, show: bool = True) -> None:
        """Record a progress line in the log and show it on the stream as the mode says.

        Plain mode shows every kind but steps; terminal mode only summaries, since its bars show the rest;
        ``verbose`` adds steps to both. Quiet mode, or ``show=False``, shows nothing.
        """
        if log.isEnabledFor(level):
            log.log(level, text, extra={PROGRESS_ATTR: kind})
        if not show or self.mode == "quiet" or (kind == "step" and not self.verbose):
            return
        if self.mode == "plain" or kind in ("summary", "step"):
            self.write(f"{time.strftime('%H:%M:%S')} {text}")

    def bar(self, total: int, label: str, unit: str, initial: int) -> tqdm[Any]:
        """A live tqdm bar on the stream (terminal mode only); it vanishes when closed."""
        return tqdm(
            total=total,
            initial=initial,
            desc=label,
            unit=f" {unit}",
            file=self.stream,
            leave=False,
            dynamic_ncols=True,
            mininterval=0.2,
            smoothing=0.1,
        )

    @contextmanager
    def stages(self, names: Sequence[str]) -> Iterator[StagePlan]:
        """The stage plan of a run with these stages, in order, while the block runs."""
        plan = StagePlan(names, self)
        self.plan = plan
        try:
            yield plan
        except BaseException:
            plan.close(stopped=True)
            raise
        else:
            plan.close()
        finally:
            self.plan = None


class DisplayHandler(logging.Handler):
    """Shows the ``unitlens`` log on a Display's stream, above its bars (not the lines it drew itself)."""

    def __init__(self, display: Display) -> None:
        super().__init__()
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, PROGRESS_ATTR):
            return
        try:
            self.display.write(self.format(record))
        except Exception:
            self.handleError(record)


_active: Display | None = None


def current() -> Display:
    """The Display of the open :func:`session`, or one for stderr chosen by :func:`choose_mode`."""
    return _active if _active is not None else Display(sys.stderr, choose_mode(sys.stderr))


@contextmanager
def session(
    *,
    quiet: bool = False,
    verbose: bool = False,
    stream: TextIO | None = None,
    mode: Mode | None = None,
) -> Iterator[Display]:
    """Show progress and the ``unitlens`` log on ``stream`` (stderr) while the block runs.

    The ``unitlens`` logger is set to INFO (DEBUG with ``verbose``) and shown on the stream (warnings and
    errors only when quiet). Inside an open session this opens none and yields that one, so the CLI's
    ``--quiet`` and ``--verbose`` hold for everything it calls.
    """
    global _active
    if _active is not None:
        yield _active
        return
    out = stream if stream is not None else sys.stderr
    display = Display(out, choose_mode(out, quiet=quiet, mode=mode), verbose=verbose)
    handler = DisplayHandler(display)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler.setLevel(logging.WARNING if display.mode == "quiet" else logging.DEBUG)
    logger = logging.getLogger("unitlens")
    level = logger.level
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.addHandler(handler)
    _active = display
    try:
        yield display
    finally:
        _active = None
        for bar in list(getattr(tqdm, "_instances", [])):
            if bar.fp == out:
                bar.close()
        logger.removeHandler(handler)
        logger.setLevel(level)


class Progress:
    """Counts work done out of ``total``: a live bar on a terminal, a few plain lines elsewhere.

    Args:
        total: units of work (examples, steps).
        label: what is being done.
        quiet: show nothing on the stream (the log still gets the summary).
        stream: draw on this stream (its own Display) instead of the session's.
        unit: what is counted, for the lines (``examples``).
        initial: units already done (a resumed layer); the rate counts only the work done here.
        display: draw on this Display instead of the session's.
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        unit: str = "items",
        initial: int = 0,
        display: Display | None = None,
    ) -> None:
        if display is None:
            display = Display(stream, choose_mode(stream, quiet=quiet)) if stream is not None else current()
        self.display = display
        self.total, self.unit = max(int(total), 1), unit
        self.quiet = quiet or display.mode == "quiet"
        plan = display.plan
        stage = plan.current if plan is not None else None
        self.label = f"{stage}, {label}" if stage and _key(label) not in _key(stage) else label
        self.done = self.initial = int(initial)
        self.steps = 0
        self._start = self._last_line = display.clock()
        self._tick = self._tick_of(self.done)
        self._window: dict[str, float] = {}  # info summed (weighted by n) since the last tick boundary
        self._window_n = 0
        self._final: dict[str, float] = {}  # the last full window's means
        self._log_steps = log.isEnabledFor(logging.DEBUG) or (display.verbose and not self.quiet)
        self._bar = (
            None if self.quiet or display.mode != "terminal" else display.bar(total, label, unit, initial)
        )
        self._bar_pending = 0
        self._bar_drawn = self._start
        self._closed = False

    def _tick_of(self, done: int) -> int:
        return int(done / (self.total * self.display.tick_fraction) + 1e-9)

    def update(self, n: int = 1, **info: float) -> None:
        """Record ``n`` more units done; ``info`` (a loss, say) is shown beside the bar."""
        self.done += n
        self.steps += 1
        for key, value in info.items():
            self._window[key] = self._window.get(key, 0.0) + float(value) * n
        self._window_n += n
        now = self.display.clock()
        if self._log_steps:
            self.display.emit(
                "step",
                f"{self.label}: step {self.steps}, {self.done:,}/{self.total:,} {self.unit}"
                + "".join(f", {k}={v:.4g}" for k, v in info.items()),
                level=logging.DEBUG,
                show=not self.quiet,
            )
        if self._bar is not None:
            self._bar_pending += n
            if now - self._bar_drawn >= 0.1 or self.done >= self.total:
                if info:
                    self._bar.set_postfix({k: f"{v:.4g}" for k, v in info.items()}, refresh=False)
                self._bar.update(self._bar_pending)
                self._bar_pending, self._bar_drawn = 0, now
                if self.display.plan is not None:
                    self.display.plan.refresh()
        tick = self._tick_of(self.done)
        if tick > self._tick:
            self._tick = tick
            self._final = self._means()
            self._window, self._window_n = {}, 0
            if self.done < self.total and now - self._last_line >= self.display.tick_seconds:
                self._last_line = now
                self.display.emit("tick", self._tick_line(now), show=not self.quiet)

    def _means(self) -> dict[str, float]:
        return {k: v / self._window_n for k, v in self._window.items()} if self._window_n else {}

    def _tick_line(self, now: float) -> str:
        elapsed = now - self._start
        rate = _rate(self.done - self.initial, elapsed)
        left = (self.total - self.done) / rate if rate else math.inf
        frac = min(self.done / self.total, 1.0)
        info = "".join(f", {k}={v:.4g}" for k, v in self._final.items())
        return (
            f"{self.label}: {frac:.0%} ({self.done:,}/{self.total:,} {self.unit}), "
            f"{_per_second(rate, self.unit)}, {clock(elapsed)} elapsed, {clock(left)} left{info}"
        )

    def close(self) -> None:
        """End the bar: one summary line (count, rate, time, the final tenth's mean info)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            if self._bar_pending:
                self._bar.update(self._bar_pending)
            self._bar.close()
        elapsed = self.display.clock() - self._start
        count = self.done - self.initial
        final = self._means() or self._final  # the last tenth's mean (or the part of one done)
        resumed = f" (resumed at {self.initial:,})" if self.initial else ""
        info = (", final " + ", ".join(f"{k}={v:.4g}" for k, v in final.items())) if final else ""
        self.display.emit(
            "summary",
            f"{self.label}: done, {count:,} {self.unit}{resumed} in {clock(elapsed)} "
            f"({_per_second(_rate(count, elapsed), self.unit)}){info}",
            show=not self.quiet,
        )
        if self.display.plan is not None:
            self.display.plan.add_work(count, self.unit, elapsed)


class StagePlan:
    """The stages of a run: which one of how many is running, the run's time so far and its time left.

    The time left is a sum of guesses: a stage still to run is guessed to take as long as the mean of the
    finished stages of its kind (its first word: ``train``, ``study``, ``finetune``), or of all finished
    stages when none of its kind has finished; the running stage, that guess less its time so far (never
    below zero). Stages done by an earlier invocation count with the seconds recorded for them. With no
    finished stage to go by the time left is ``?``.
    """

    def __init__(self, names: Sequence[str], display: Display) -> None:
        self.names = list(names)
        self.display = display
        self.seconds: dict[str, float | None] = {}  # finished (or skipped) stages
        self.current: str | None = None
        self._start = self._stage_start = display.clock()
        self._work: dict[str, list[float]] = {}  # unit -> [count, seconds] within the running stage
        self._ran = 0
        self._lock = threading.Lock()
        self._line: tqdm[Any] | None = None
        self._shown = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if display.mode == "terminal":
            self._line = tqdm(total=0, bar_format="{desc}", file=display.stream, leave=False)
            self._thread = threading.Thread(target=self._refresh_every_second, daemon=True)
            self._thread.start()

    def _refresh_every_second(self) -> None:
        while not self._stop.wait(1.0):
            self.refresh()

    def position(self, name: str) -> str:
        """``stage k/n NAME`` (a name outside the plan is shown alone)."""
        if name not in self.names:
            return f"stage {name}"
        return f"stage {self.names.index(name) + 1}/{len(self.names)} {name}"

    def _guess(self, name: str) -> float | None:
        known = {n: s for n, s in self.seconds.items() if s is not None}
        kind = name.split()[0]
        same = [s for n, s in known.items() if n.split()[0] == kind]
        pool = same or list(known.values())
        return sum(pool) / len(pool) if pool else None

    def time_left(self) -> float | None:
        """Seconds the run still needs, by the guess above; None when there is nothing to go by."""
        now = self.display.clock()
        total = 0.0
        for name in self.names:
            if name in self.seconds:
                continue
            guess = self._guess(name)
            if guess is None:
                return None
            total += max(guess - (now - self._stage_start), 0.0) if name == self.current else guess
        return total

    def status(self) -> str:
        """What the terminal's run line says: the stage, the run's time so far and left."""
        elapsed = self.display.clock() - self._start
        where = (
            self.position(self.current) if self.current else f"{len(self.seconds)}/{len(self.names)} stages"
        )
        return f"{where} | run {clock(elapsed)} so far, {approximate(self.time_left())} left"

    def refresh(self) -> None:
        """Redraw the terminal's run line (a no-op elsewhere)."""
        with self._lock:
            if self._line is not None:
                text = self.status()
                if text != self._shown:
                    self._shown = text
                    self._line.set_description_str(text, refresh=True)

    def skip(self, name: str, seconds: float | None = None) -> None:
        """``name`` was done by an earlier invocation (in ``seconds``, when recorded)."""
        self.seconds[name] = seconds
        self.display.emit("summary", f"{self.position(name)}: already done")

    def start(self, name: str) -> None:
        self.current, self._stage_start, self._work = name, self.display.clock(), {}
        elapsed = self._stage_start - self._start
        self.display.emit(
            "start",
            f"{self.position(name)}: start | run {clock(elapsed)} so far, "
            f"{approximate(self.time_left())} left",
        )
        self.refresh()

    def add_work(self, count: int, unit: str, seconds: float) -> None:
        """Work a bar finished inside the running stage, for its summary line."""
        if self.current is not None:
            done = self._work.setdefault(unit, [0.0, 0.0])
            done[0] += count
            done[1] += seconds

    def finish(self, name: str, seconds: float) -> None:
        self.seconds[name] = seconds
        self.current = None
        self._ran += 1
        work = "".join(
            f", {int(n):,} {unit} ({_per_second(_rate(n, s), unit)})" for unit, (n, s) in self._work.items()
        )
        self.display.emit("summary", f"{self.position(name)}: done in {clock(seconds)}{work}")
        self.refresh()

    def close(self, *, stopped: bool = False) -> None:
        """Stop the run line; log how many stages ran and how long the run took (or where it stopped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._line is not None:
                self._line.close()
                self._line = None
        skipped = len(self.seconds) - self._ran
        already = f" ({skipped} already done)" if skipped else ""
        elapsed = clock(self.display.clock() - self._start)
        ran = f"{self._ran} of {len(self.names)} stages run{already}"
        if stopped:
            where = f" in {self.position(self.current)}" if self.current else ""
            self.display.emit("summary", f"run: stopped{where} after {elapsed}; {ran}")
        else:
            self.display.emit("summary", f"run: {ran} in {elapsed}")


def _key(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def _rate(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 and count > 0 and math.isfinite(seconds) else None


def _per_second(rate: float | None, unit: str) -> str:
    return f"{rate:,.0f} {unit}/s" if rate is not None else f"? {unit}/s"


def clock(seconds: float | None) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour); ``?`` for a time that is unknown, infinite or negative."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def approximate(seconds: float | None) -> str:
    """A guessed time: ``about m:ss``, or ``?``."""
    text = clock(seconds)
    return text if text == "?" else f"about {text}"


__all__ = ["Display", "Progress", "StagePlan", "choose_mode", "clock", "current", "session"]
