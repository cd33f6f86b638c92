"""Progress lines of long operator commands: drawn on a terminal at most ten times a second, silent otherwise."""

from __future__ import annotations

import io

from ops._progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_redrawn_at_most_ten_times_a_second_and_ends_with_a_line() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("reading nsw.audit", total=200, stream=out, enabled=True, clock=clock)
    for n in range(200):
        clock.now = n / 100  # 100 records a second for two seconds
        progress.advance()
    progress.finish()
    text = out.getvalue()
    assert 15 <= text.count("\r") <= 22
    assert text.endswith("reading nsw.audit: 200 of 200 (100%), 101/s\x1b[K\n")


def test_progress_is_silent_when_not_on_a_terminal() -> None:
    out = io.StringIO()  # not a terminal
    progress = Progress("reading nsw.dlq", stream=out)
    progress.advance(5)
    progress.finish()
    assert out.getvalue() == ""
    assert progress.line().startswith("reading nsw.dlq: 5, ")
