import io

from unitlens.progress import Progress


def test_progress_shows_rate_and_time_left_and_is_silent_when_quiet() -> None:
    out = io.StringIO()
    p = Progress(100, "work", stream=out)
    p.update(100, loss=0.5)
    p.close()
    text = out.getvalue()
    assert "work" in text and "100.0%" in text and "/s" in text and "left" in text and "loss=0.5" in text
    quiet = io.StringIO()
    q = Progress(10, "work", quiet=True, stream=quiet)
    q.update(10)
    q.close()
    assert quiet.getvalue() == ""
