"""``nsw``'s entry point: the command table, ``--version``, shell completion, and one-line answers to errors.

The table names every command with its one-line help, so ``nsw`` and ``nsw --help`` print without importing the
hub (about 2 s of imports on a busy two-core machine); ``nsw COMMAND ...`` imports ``broker._cli`` and runs it.
A project error that reaches here (a bad setting such as ``NSW_PORT=abc``, an unreachable dependency) is printed
as one line with its class's hint and exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Final

__all__ = ["COMMANDS", "EXIT_CODES", "main"]

#: Every command, in the order ``nsw --help`` lists them, with its one-line help (tests/test_cli_entry.py keeps
#: this in step with the full parser).
COMMANDS: Final[dict[str, str]] = {
    "serve": "run the hub's services",
    "submit": "lodge a declaration and (with --wait) print its release response",
    "status": "show a submission's status",
    "validate": "validate documents with the ingress's validator (JSON lines)",
    "route": "show which agencies must decide on a declaration's items, and why",
    "verify": "check a signed release response (compact JWS) and print it",
    "keys": "API keys of traders and agencies: create, list, rotate, revoke",
    "officers": "console accounts of agency officers and operators: create, list, revoke, passwd",
    "provision": "make the keys all instances of a deployment share, once (an init job); idempotent",
    "kafka": "the embedded local Apache Kafka broker",
    "ops": "operations: dead letters, replay, trace, lag, topics, webhooks, audit",
    "schemas": "the record schemas for other teams: export (and register)",
    "openapi": "write the API's OpenAPI 3.1 description (as GET /openapi.json serves)",
    "conformance": "a corpus of declarations through the pure pipeline",
    "config": "the effective configuration, every setting checked (secrets redacted): config show [--json]",
    "bench": "benchmarks: the hub end to end, the Kafka floor, the generator",
    "chaos": "the fault campaign: 3 brokers, 2 hub instances, every kind of fault, then an exactly-once count",
    "completion": "print a shell completion script: eval \"$(nsw completion bash)\"",
}

#: Exit codes: 0 done, 1 the answer is "no" (invalid document, refused), 2 a usage or configuration mistake,
#: 3 a dependency is unreachable (the hub, Kafka), 4 a check found a problem (soak, conformance corpus absent),
#: 141 the reader of stdout went away (128 + SIGPIPE, as a tool the signal ended).
EXIT_CODES: Final = {"usage": 2, "unreachable": 3, "closed_pipe": 141}


def version() -> str:
    try:
        return metadata.version("nsw-broker")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
        return "unknown"


def _front() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nsw", description="National Single Window message hub: lodge once, every agency decides, one answer.",
        epilog="`nsw COMMAND --help` describes a command and its options. Exit codes: 0 done, 1 the answer is no "
               "(an invalid document, a refusal), 2 a usage or configuration mistake, 3 the hub or Kafka "
               "cannot be reached, 141 the reader of the output went away.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"nsw-broker {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def _completion(shell: str) -> str:
    """A completion script for ``shell`` (bash or zsh through bashcompinit): commands, then each command's own
    options and choices, read from the full parser."""
    from broker._cli import build_parser  # noqa: PLC0415 - the full parser is needed for the options

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    cases = []
    for name, command in sorted(subs.choices.items()):
        words = sorted({o for a in command._actions for o in a.option_strings if o.startswith("--")}
                       | {str(c) for a in command._actions if a.choices and not a.option_strings
                          for c in a.choices})
        cases.append(f'        {name}) opts="{" ".join(words)} --help" ;;')
    commands = " ".join(COMMANDS)
    body = "\n".join(cases)
    script = f"""# nsw completion ({shell}): eval "$(nsw completion {shell})"
_nsw() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" opts
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{commands} --help --version" -- "$cur"))
        return
    fi
    case "${{COMP_WORDS[1]}}" in
{body}
        *) opts="--help" ;;
    esac
    COMPREPLY=($(compgen -W "$opts" -f -- "$cur"))
}}
complete -o default -F _nsw nsw
"""
    if shell == "zsh":
        script = "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script


def _command(argv: Sequence[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nsw``; a reader that stops reading (``nsw config show | head``) ends it quietly, as SIGPIPE would."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the guard: a closed pipe found by the final flush is no traceback either
    except BrokenPipeError:
        # Python's advice for a closed stdout: point it at /dev/null so the interpreter's flush at exit is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CODES["closed_pipe"]
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = _command(args)
    if command is None or command not in COMMANDS:
        _front().parse_args(args or ["--help"])  # prints help, the version, or the usage error (exit 2)
        return 2
    if command == "completion":
        shells = [a for a in args[args.index("completion") + 1:] if not a.startswith("-")]
        shell = shells[0] if shells else "bash"
        if shell not in ("bash", "zsh") or "--help" in args:
            sys.stderr.write("usage: nsw completion bash|zsh   (then: eval \"$(nsw completion bash)\")\n")
            return 0 if "--help" in args else 2
        sys.stdout.write(_completion(shell))
        return 0
    from broker._cli import main as run  # noqa: PLC0415 - the hub is imported only for a real command
    from errors import NSWError  # noqa: PLC0415

    try:
        return run(args)
    except NSWError as exc:
        problems = getattr(exc, "problems", ())
        if len(problems) > 1:  # every bad setting at once, each with its hint
            sys.stderr.write(f"nsw {command}: {len(problems)} settings cannot be used\n")
            for problem in problems:
                sys.stderr.write(f"  {problem.message}\n" + (f"    hint: {problem.hint}\n" if problem.hint else ""))
            return EXIT_CODES["usage"]
        sys.stderr.write(f"nsw {command}: {exc}\n")
        hint = getattr(exc, "hint", "")
        if hint:
            sys.stderr.write(f"  hint: {hint}\n")
        return EXIT_CODES["unreachable"] if exc.retriable else EXIT_CODES["usage"]
    except KeyboardInterrupt:
        return 130
