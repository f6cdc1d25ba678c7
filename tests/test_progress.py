"""Progress on a terminal (a pseudo-terminal), in a file (plain lines), quiet and verbose."""

import fcntl
import io
import logging
import math
import os
import pty
import struct
import termios
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import pytest

import unitlens.reproduce as reproduce_module
from unitlens import progress
from unitlens.cli import main
from unitlens.config import apply_overrides, preset
from unitlens.progress import Display, Progress, StagePlan, choose_mode, clock, session

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second BLAS thread only adds latency


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _run_bar(display: Display, fake: FakeClock, total: int = 1000, steps: int = 100, dt: float = 1.0) -> None:
    bar = Progress(total, "layer 1 (RBM)", unit="examples", display=display)
    for i in range(steps):
        fake.now += dt
        bar.update(total // steps, loss=1.0 + i)
    bar.close()


def test_plain_lines_have_no_carriage_return_and_are_bounded_per_bar() -> None:
    fake = FakeClock()
    out = io.StringIO()
    display = Display(out, "plain", clock=fake)
    _run_bar(display, fake, steps=1000, dt=1.0)  # 1000 updates, 1000 s: one line per tenth at most
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 10  # nine tenths and the summary
    assert "layer 1 (RBM): 10% (100/1,000 examples)" in lines[0] and "left" in lines[0]
    summary = lines[-1]
    assert "done, 1,000 examples in 16:40 (1 examples/s)" in summary
    assert "final loss=950.5" in summary  # the mean over the last tenth, not the last step


def test_plain_lines_wait_a_few_seconds_between_them() -> None:
    fake = FakeClock()
    out = io.StringIO()
    display = Display(out, "plain", clock=fake, tick_seconds=5.0)
    _run_bar(display, fake, total=800, steps=80, dt=0.15625)  # 12.5 s in all: a tenth each 1.25 s
    lines = out.getvalue().splitlines()
    assert [line.split("): ")[1][:3] for line in lines[:-1]] == ["40%", "80%"]  # 5 s apart
    assert "done" in lines[-1]


def test_quiet_shows_nothing_but_the_log_gets_the_summary(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    caplog.set_level(logging.INFO, logger="unitlens")
    p = Progress(10, "work", quiet=True, stream=out)
    p.update(10, loss=0.5)
    p.close()
    assert out.getvalue() == ""
    assert any("work: done, 10 items" in r.getMessage() for r in caplog.records)
    for display, quiet in ((Display(out, "quiet"), False), (Display(out, "plain", tick_seconds=0.0), True)):
        p = Progress(10, "work", quiet=quiet, display=display)
        p.update(5)
        p.update(5)
        p.close()
    assert out.getvalue() == ""


def test_verbose_adds_a_line_per_step() -> None:
    fake = FakeClock()
    out = io.StringIO()
    _run_bar(Display(out, "plain", clock=fake, verbose=True), fake, steps=20, dt=0.01)
    steps = [line for line in out.getvalue().splitlines() if ": step " in line]
    assert len(steps) == 20 and "step 20, 1,000/1,000 examples, loss=20" in steps[-1]


def test_times_that_are_unknown_show_a_question_mark() -> None:
    assert clock(None) == clock(math.inf) == clock(-1.0) == clock(math.nan) == "?"
    assert clock(65.9) == "1:05" and clock(3725) == "1:02:05"
    fake = FakeClock()
    out = io.StringIO()
    p = Progress(100, "work", display=Display(out, "plain", clock=fake, tick_seconds=0.0))
    p.update(10)  # no time has passed: the rate is unknown, and so is the time left
    assert "? items/s" in out.getvalue() and "? left" in out.getvalue()


def test_stage_plan_counts_stages_and_guesses_the_time_left() -> None:
    fake = FakeClock()
    out = io.StringIO()
    display = Display(out, "plain", clock=fake)
    names = ["train a", "study a", "train b", "study b", "finetune"]
    with display.stages(names) as plan:
        plan.skip("train a", 10.0)  # done by an earlier invocation, in 10 s
        assert plan.time_left() == pytest.approx(40.0)  # every stage guessed from the only one known
        plan.start("study a")
        fake.now += 4.0
        assert plan.time_left() == pytest.approx(36.0)
        fake.now += 20.0  # overran its guess: its remaining time is 0, never negative
        assert plan.time_left() == pytest.approx(30.0)
        plan.finish("study a", 24.0)
        plan.start("train b")
        assert plan.status() == "stage 3/5 train b | run 0:24 so far, about 0:51 left"
        assert plan.time_left() == pytest.approx(10.0 + 24.0 + 17.0)  # train, study, mean of both
        plan.finish("train b", 12.0)
    lines = out.getvalue().splitlines()
    assert "stage 1/5 train a: already done" in lines[0]
    assert "stage 2/5 study a: start | run 0:00 so far, about 0:40 left" in lines[1]
    assert "stage 2/5 study a: done in 0:24" in lines[2]
    assert "run: 2 of 5 stages run (1 already done) in 0:24" in lines[-1]
    fresh = StagePlan(names, Display(io.StringIO(), "plain", clock=fake))
    fresh.start("train a")
    assert fresh.time_left() is None and fresh.status().endswith("? left")


def test_a_stopped_run_says_where_it_stopped() -> None:
    out = io.StringIO()
    display = Display(out, "plain", clock=FakeClock())

    def interrupted() -> None:
        with display.stages(["train a", "study a"]) as plan:
            plan.start("train a")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert "run: stopped in stage 1/2 train a after 0:00; 0 of 2 stages run" in out.getvalue()
    assert display.plan is None


def test_mode_comes_from_the_stream_and_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert choose_mode(io.StringIO()) == "plain"
    assert choose_mode(io.StringIO(), quiet=True) == "quiet"
    assert choose_mode(io.StringIO(), mode="terminal") == "terminal"
    with _pseudo_terminal() as (stream, _):
        assert choose_mode(stream) == "terminal"
        monkeypatch.setenv("CI", "true")
        assert choose_mode(stream) == "plain"
        monkeypatch.setenv("CI", "false")
        assert choose_mode(stream) == "terminal"
    with pytest.raises(ValueError, match="mode"):
        choose_mode(io.StringIO(), mode="fancy")  # type: ignore[arg-type]


class _Reader:
    """Drains the master side of a pseudo-terminal, so the writer never blocks."""

    def __init__(self, fd: int) -> None:
        self.fd, self.data = fd, b""
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.data += chunk


@pytest.fixture
def no_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)


@contextmanager
def _pseudo_terminal() -> Iterator[tuple[TextIO, _Reader]]:
    """A text stream on a 120-column pseudo-terminal, and what was written to it (after the block)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    reader = _Reader(master)
    try:
        with open(slave, "w", encoding="utf-8") as stream:
            yield stream, reader
        reader.thread.join(timeout=5)
    finally:
        os.close(master)


def test_terminal_mode_draws_live_bars_and_the_run_line(no_ci: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "TICK_SECONDS", 0.0)  # what plain mode would print at every tenth
    with _pseudo_terminal() as (stream, reader):
        with session(stream=stream) as display:
            assert display.mode == "terminal"
            with display.stages(["train a", "study a"]) as plan:
                plan.start("train a")
                bar = Progress(2000, "layer 1 (RBM)", unit="examples")
                for _ in range(200):
                    bar.update(10, loss=0.25)
                bar.close()
                plan.finish("train a", 1.0)
                logging.getLogger("unitlens").info("a log message")
        stream.flush()
    text = reader.data.decode("utf-8", "replace")
    assert "\r" in text and "%|" in text and "examples/s" in text and "loss=0.25" in text
    assert "stage 1/2 train a | run" in text  # the live run line
    assert "train a, layer 1 (RBM): done, 2,000 examples" in text  # the summary scrolls above
    assert "a log message" in text
    assert ": 10% (" not in text and ": start" not in text  # plain mode's lines: the bars' job here


def _tiny_pipeline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A reproduce run whose training is real and tiny, and whose study and render are stubbed."""
    monkeypatch.setattr(reproduce_module, "_study", lambda *a, **k: None)
    # The stub writes no results: once a study stage is recorded, its outputs count as whole.
    monkeypatch.setattr(
        reproduce_module,
        "_study_outputs",
        lambda run, name: None if run.done(f"study {name}") else "none yet",
    )
    monkeypatch.setattr(reproduce_module, "_add_filter_match", lambda *a, **k: None)
    monkeypatch.setattr(reproduce_module, "render_run", lambda folder: Path(folder) / "report" / "index.html")
    monkeypatch.setattr(progress, "TICK_SECONDS", 0.0)  # a progress line at every tenth
    return [
        "--set=mnist.hidden=6,5,4",
        "--set=patches.hidden=6,5,4",
        "--set=mnist.examples_per_layer=1000",  # ten steps of 100 a layer
        "--set=patches.examples_per_layer=1000",
        "--set=patches.first_layer_examples=1000",
        "--set=patches.n_train=2000",
        "--set=patches.n_test=200",
        "--set=mnist.elastic=false",
        "--set=finetune.enabled=false",
    ]


def test_a_tiny_run_piped_to_a_file_is_plain_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _tiny_pipeline(monkeypatch)
    assert main(["reproduce", "--out", str(tmp_path), *args]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "\r" not in err and "report:" in captured.out
    stages = reproduce_module.stage_names(apply_overrides(preset("quick"), ["finetune.enabled=false"]))
    per_stage: dict[str, int] = {}
    current = None
    for line in err.splitlines():
        current = next((name for name in stages if f" {name}: start" in line), current)
        if current is not None:
            per_stage[current] = per_stage.get(current, 0) + 1
            if f" {current}: done in" in line:
                current = None
    assert set(per_stage) == set(stages)
    for name, count in per_stage.items():
        # start + (9 tenths + 1 summary) per layer + done, for 3 layers; a study stage: start + done
        assert count <= (32 if name.startswith("train") else 2), (name, count)
    assert "stage 1/8 train mnist-dbn: start | run 0:00 so far, ? left" in err
    assert "train mnist-dbn, layer 3 (RBM): done, 1,000 examples" in err and "final loss=" in err
    log_text = (tmp_path / "log.txt").read_text()
    assert "\r" not in log_text
    assert "stage 8/8 study patches-sdae: done in" in log_text and "run: 8 of 8 stages run in" in log_text
    assert "train patches-sdae, layer 2 (DAE): 50% (500/1,000 examples)" in log_text

    assert main(["reproduce", "--out", str(tmp_path), "--quiet", *args]) == 0  # resumed: all done
    captured = capsys.readouterr()
    assert captured.err == "" and "report:" in captured.out
    assert "stage 1/8 train mnist-dbn: already done" in (tmp_path / "log.txt").read_text()


def test_verbose_adds_steps_and_errors_stay_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = ["train", "--model", "dbn", "--hidden", "6,5", "--examples", "300", "--out", str(tmp_path)]
    assert main([*train, "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "layer 1 (RBM): step 3, 300/300 examples, loss=" in err
    assert "layer 2 (RBM): done, 300 examples in" in err
    assert main(["data", "--out", str(tmp_path / "data"), "--data-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unitlens: error:") and len(err.strip().splitlines()) == 1
    for command in (["train", "--model", "dbn"], ["visualize", "x"], ["report", "x"], ["data"]):
        with pytest.raises(SystemExit):
            main([*command, "--quiet", "--verbose"])  # the same options everywhere, and exclusive
        assert "not allowed with argument" in capsys.readouterr().err


def test_a_verbose_session_logs_every_step(tmp_path: Path) -> None:
    handler = logging.FileHandler(tmp_path / "log.txt", encoding="utf-8")
    logging.getLogger("unitlens").addHandler(handler)
    try:
        with session(stream=io.StringIO(), verbose=True):
            p = Progress(30, "work", quiet=True)  # quiet on the stream; the log still gets the steps
            for _ in range(3):
                p.update(10, loss=0.5)
            p.close()
    finally:
        logging.getLogger("unitlens").removeHandler(handler)
        handler.close()
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0] == "work: step 1, 10/30 items, loss=0.5"
    assert lines[-1].startswith("work: done, 30 items")


def test_session_is_reentrant_and_restores_the_logger(no_ci: None) -> None:
    logger = logging.getLogger("unitlens")
    level, handlers = logger.level, list(logger.handlers)
    out = io.StringIO()
    with session(stream=out, verbose=True) as outer:
        assert logger.level == logging.DEBUG
        with session(quiet=True) as inner:
            assert inner is outer and progress.current() is outer
        logger.warning("careful")
    assert logger.level == level and logger.handlers == handlers
    assert "careful" in out.getvalue()
    quiet = io.StringIO()
    with session(stream=quiet, quiet=True):
        logger.info("hidden")
        logger.warning("shown")
    assert "hidden" not in quiet.getvalue() and "shown" in quiet.getvalue()


@pytest.fixture(autouse=True)
def _no_open_session() -> Iterator[None]:
    yield
    assert progress._active is None
