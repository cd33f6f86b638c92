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


def test_every_bad_setting_is_named_at_once_each_with_its_hint() -> None:
    done = _run("config", "show", env={"NSW_PORT": "abc", "NSW_KAFKA_PORT": "ninety", "NSW_DEV_KEY": "yes"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0] == "nsw config: 3 settings cannot be used"
    assert lines[1:] == ["  NSW_PORT='abc' is not a whole number", "    hint: unset NSW_PORT for its default, 8080",
                         "  NSW_DEV_KEY='yes' is not 0 or 1", "    hint: unset NSW_DEV_KEY for its default, 1",
                         "  NSW_KAFKA_PORT='ninety' is not a port number",
                         "    hint: unset NSW_KAFKA_PORT for its default, 9092"]


def test_config_show_names_a_variable_no_setting_declares() -> None:
    done = _run("config", "show", env={"NSW_PROT": "8081"})
    assert done.returncode == 0, done.stderr
    assert "NSW_PROT is set but no setting has that name" in done.stderr


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


def _parsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_json_is_the_same_flag_in_every_command_and_every_option_is_described() -> None:
    undescribed = []
    for prog, parser in _parsers(build_parser()):
        for action in parser._actions:
            if "--json" in action.option_strings:
                assert action.nargs == 0, f"{prog}: --json prints JSON on stdout; a file is --report FILE"
            if action.option_strings and action.help in (None, "") and action.dest != "help":
                undescribed.append(f"{prog} {action.option_strings[0]}")
    assert len(_parsers(build_parser())) > 30
    assert undescribed == [], f"options without a description: {undescribed}"


def test_a_reader_that_stops_reading_ends_nsw_quietly() -> None:
    """``nsw config show --all | head -1`` once ``head`` has gone: every write meets a closed pipe; nsw ends
    with the SIGPIPE exit code and no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before nsw writes anything: deterministic, whatever the timing
    try:
        done = subprocess.run([sys.executable, "-c", "import sys, cli; sys.exit(cli.main(sys.argv[1:]))",
                               "config", "show", "--all"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
    assert done.returncode == 141
