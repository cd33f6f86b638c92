"""``nsw``'s front door: help and version without importing the hub, completion, one-line configuration errors."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from broker._cli import build_parser
from cli import COMMANDS, main


def _full_commands() -> dict[str, str]:
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {c.dest: str(c.help) for c in subs._choices_actions}


def test_the_command_table_is_the_full_parsers() -> None:
    assert {k: v for k, v in COMMANDS.items() if k != "completion"} == _full_commands()


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys, cli; sys.exit(cli.main(sys.argv[1:]))", *args],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}, check=False)


def test_help_and_version_import_no_kafka_xml_or_avro_library() -> None:
    probe = ("import sys, cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('aiokafka', 'lxml', 'fastavro', 'httpx', 'broker') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "serve" in done.stdout
    assert "Exit codes" in done.stdout
    version = _run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("nsw-broker ")


def test_a_bad_setting_is_one_line_with_a_hint_and_exit_2() -> None:
    for variable, value in (("NSW_PORT", "abc"), ("NSW_RATE_LIMIT", "fast"), ("NSW_BODY_TIMEOUT", "nan")):
        done = _run("status", "S-1", env={variable: value})
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        first, hint = done.stderr.strip().splitlines()
        assert first.startswith(f"nsw status: {variable}=")
        assert hint.strip().startswith(f"hint: unset {variable}")


def test_completion_lists_commands_and_each_commands_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o default -F _nsw nsw" in script
    assert all(name in script for name in COMMANDS)
    keys_line = next(line for line in script.splitlines() if line.strip().startswith("keys)"))
    assert "--bootstrap" in keys_line
    assert "rotate" in keys_line
    assert main(["completion", "fish"]) == 2
    zsh = _run("completion", "zsh")
    assert zsh.stdout.startswith("autoload -U +X bashcompinit")
    checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr


def test_an_unknown_command_is_a_usage_error() -> None:
    done = _run("bogus")
    assert done.returncode == 2
    assert "invalid choice" in done.stderr
