"""The browser tests' set-up step (``make test`` runs it): Debian's Chromium, installed when missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "ops" / "browser" / "ensure-chromium.sh"


def run(browser: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT)], env={**os.environ, "NSW_CHROMIUM": browser}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_a_browser_that_is_there_is_used_as_it_is() -> None:
    done = run(sys.executable)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_named_browser_that_is_missing_is_a_clear_failure_and_installs_nothing() -> None:
    done = run("/nonexistent/chromium")
    assert done.returncode == 1
    assert "NSW_CHROMIUM=/nonexistent/chromium is not an executable file" in done.stderr
    assert "apt-get" not in done.stdout
