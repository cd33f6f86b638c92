"""``nsw``: the hub's command line (kafka, serve, submit, status, keys, officers, ...)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import orjson
import structlog

from broker._auth import DEV_KEY_FILE, client_auth_headers, new_key
from broker._client import submit_file
from broker._config import HubConfig
from broker._gc import GcPauses
from broker._gc import tune as tune_gc
from broker._hub import SERVICES, Hub, service_names
from broker._keys_io import load_keys, publish_key
from broker._logging import configure_logging
from broker._openapi_cmd import add_openapi_parser, run_openapi
from broker._provision import k8s_secret, provision
from broker._ready import ReadyInfo, ready_block, samples_report, wait_ready, write_block
from broker._split import child_argv, child_env, run_child, split_groups
from broker._verify_cmd import add_verify_parser, run_verify
from broker.errors import NSWError
from bus import describe_processors
from bus._auth import KEY_TOOL, OPS, KafkaAuthConfigError, acting_as, use_process_credentials
from console._cli import add_officers_parser, run_officers
from ops import add_ops_parser, kafka_command, run_ops
from ops._audit_cmd import run_audit
from ops._bench_cli import add_bench_parser, run_bench
from ops._chaos_cmd import add_chaos_parser, run_chaos_command
from ops._conformance import add_conformance_parser, run_conformance
from ops._kafka import NODE_ACTIONS as KAFKA_NODE_ACTIONS
from ops._kafka_tools import run_tool
from ops._schemas_cmd import add_schemas_parser, run_schemas
from ops._settings import Settings, add_config_parser, run_config, settings_of
from routing._cli import add_route_parser, run_route
from schemas import BundleSet, NSWSchemaError, validate_file_result

DEFAULT_URL = "http://127.0.0.1:8080"


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.stdout.flush()


def sample_files() -> list[Path]:
    """The project's sample declarations, valid ones only, in name order."""
    folder = Path(str(resources.files("schemas").joinpath("samples")))
    return sorted(p for p in folder.glob("*.xml") if "invalid" not in p.name)


async def _post_samples(url: str, *, wait: float, status: str, headers: dict[str, str]) -> None:
    """Originals first (concurrently), then amendments, which need their original lodged before them; their
    answers printed for people (broker/_ready.py), in one block."""
    files = sample_files()
    amendments = [p for p in files if b"<FunctionCode>13</FunctionCode>" in p.read_bytes()]
    originals = [p for p in files if p not in amendments]
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        results = await asyncio.gather(*(submit_file(client, path, wait=wait) for path in originals))
        results += [await submit_file(client, path, wait=wait) for path in amendments]
    rows = [(path.name, result.status_code, result.body, result.response)
            for path, result in zip(originals + amendments, results, strict=True)]
    write_block(samples_report(rows, wait=wait, status=status))



async def _keys(args: argparse.Namespace) -> int:
    """Issue, list, rotate or revoke API keys of traders and agencies (written straight to the key topic on
    Kafka, as ``nsw-keys``)."""
    config = settings_of(args).hub_with(bootstrap=args.bootstrap)
    try:
        auth = config.kafka.auth_for(KEY_TOOL)
    except KafkaAuthConfigError as exc:
        sys.stderr.write(f"nsw keys: {exc}\n")
        return 2
    with acting_as(auth):
        return await _keys_as_tool(args, config)


async def _keys_as_tool(args: argparse.Namespace, config: HubConfig) -> int:
    if args.action == "create":
        if bool(args.trader) == bool(args.agency):
            sys.stderr.write("nsw keys create: give --trader NAME or --agency AGENCY\n")
            return 2
        if args.agency and args.agency not in config.agencies:
            sys.stderr.write(f"nsw keys create: no agency {args.agency}; known: {', '.join(config.agencies)}\n")
            return 2
        token, record = new_key(args.trader or "", agency=args.agency)
        await publish_key(config.bootstrap, record)
        _print_json({"principal": record["trader"], "key_id": record["key_id"], "api_key": token,
                     "note": "shown once: the hub keeps only its hash"})
        return 0
    store = await load_keys(config.bootstrap)
    if args.action == "list":
        _print_json([{k: v for k, v in r.items() if k != "hash"} for r in store.records()])
        return 0
    found = store.get(args.key_id or "")
    if found is None or found["revoked_at"] is not None:
        sys.stderr.write(f"nsw keys {args.action}: no active key {args.key_id}\n")
        return 1
    out: dict[str, Any] = {}
    if args.action == "rotate":  # the new key first, so the principal is never without one
        agency = found.get("agency")
        token, record = new_key(found["trader"], agency=agency if isinstance(agency, str) else None)
        await publish_key(config.bootstrap, record)
        out = {"key_id": record["key_id"], "api_key": token, "note": "shown once: the hub keeps only its hash"}
    found["revoked_at"] = int(time.time() * 1000)
    await publish_key(config.bootstrap, found)
    _print_json({"principal": found["trader"], "revoked_key_id": found["key_id"], **out})
    return 0


async def _provision(args: argparse.Namespace) -> int:
    """Make the keys every instance shares, once (see broker/_provision.py)."""
    config = settings_of(args).hub_with(bootstrap=args.bootstrap)
    if args.k8s_secret:
        _print_json(k8s_secret(config, args.k8s_secret))
        return 0
    try:
        _print_json(await provision(config))
    except NSWError as exc:
        sys.stderr.write(f"nsw provision: {exc}\n")
        return 1
    return 0


def _dump_tasks() -> None:
    """Write the stack of every asyncio task to stderr, for an operator wondering what the hub waits on."""
    for task in asyncio.all_tasks():
        sys.stderr.write(f"--- task {task.get_name()}\n")
        awaitable: Any = task.get_coro()
        while awaitable is not None:
            frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
            if frame is not None:
                sys.stderr.write(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}\n")
            awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    for processor in describe_processors():
        sys.stderr.write(f"--- processor {orjson.dumps(processor, default=str).decode()}\n")
    sys.stderr.flush()


def _invoked() -> str:
    """``nsw`` as the user ran it (``make run`` runs ``.venv/bin/nsw``): the ready block's lines can be pasted."""
    return sys.argv[0] if Path(sys.argv[0]).name == "nsw" else "nsw"


def _client_command(config: HubConfig, action: str) -> str:
    url = _local_url(config)
    return f"{_invoked()} {action}" + ("" if url == DEFAULT_URL else f" --url {url}")


def _local_url(config: HubConfig) -> str:
    host = "127.0.0.1" if config.host in ("", "0.0.0.0", "::") else config.host  # noqa: S104 - a bind-all address
    return f"http://{host}:{config.port}"


async def _announce(config: HubConfig, only: frozenset[str]) -> None:
    """The "ready" block, once, in the process with the ingress: when /readyz says ready (or after a minute,
    saying what it still waits for)."""
    url = _local_url(config) if "ingress" in only else None
    waiting = await wait_ready(url, within=60.0) if url is not None else []
    dev_key = config.state_dir / DEV_KEY_FILE
    structlog.get_logger("nsw.serve").info("hub_ready", url=url, waiting_for=waiting or None)
    if url is None:
        return  # a process without the ingress (--only, the --split child): the log line says it
    write_block(ready_block(ReadyInfo(url=url, services=service_names(config, only), bootstrap=config.bootstrap,
                                      dev_key=dev_key if dev_key.exists() else None, waiting_for=waiting,
                                      command=_invoked(), client_url=DEFAULT_URL)))


async def _serve(args: argparse.Namespace) -> int:
    only = frozenset(args.only.split(",")) if args.only else frozenset(SERVICES)
    groups = split_groups(args.split or [])
    split = frozenset().union(*groups)
    unknown = (only | split) - set(SERVICES)
    if unknown:
        sys.stderr.write(f"unknown service(s) {sorted(unknown)}; choose from {', '.join(SERVICES)}\n")
        return 2
    if "ingress" in split or not split <= only or sum(map(len, groups)) != len(split):
        sys.stderr.write("--split: services this process would run, but not the ingress (it holds the port), "
                         "each in one --split only\n")
        return 2
    only -= split
    settings = settings_of(args)
    config = settings.hub_with(bootstrap=args.bootstrap, host=args.host, port=args.port)
    configure_logging(fmt=config.log_format, level=config.log_level)
    try:
        bundles = BundleSet.configured(settings.client.bundles, specs=args.bundle)
    except NSWSchemaError as exc:
        sys.stderr.write(f"nsw serve: {exc}\n")
        return 2
    hub = Hub(config, only=only, bundles=bundles, modes=settings.agencies)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)  # `kill -USR1 <pid>`: where is every task waiting?
    pauses = GcPauses()
    pauses.install()
    try:
        await hub.start()
    except NSWError as exc:
        sys.stderr.write(f"nsw serve: {exc}\n")
        await hub.stop()
        return 1
    tune_gc(threshold=config.gc_threshold, freeze=config.gc_freeze)  # the process's own: broker/_gc.py
    children = [asyncio.create_task(run_child(child_argv(sorted(group), bootstrap=args.bootstrap, bundles=args.bundle),
                                              stop, env=child_env(config.admin_port, index)),
                                    name=f"split-child-{index}")
                for index, group in enumerate(groups, start=1)]
    await _announce(config, only)
    if args.post_samples and "ingress" in only:
        await _post_samples(_local_url(config), wait=30.0, status=_client_command(config, "status"),
                            headers=_client_headers(args))
    waiter = asyncio.create_task(hub.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    await hub.stop()
    for child in children:
        await child
    for task in (waiter, stopper):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return 0


def _validate(args: argparse.Namespace) -> int:
    """One JSON line per file, with the same validator as the ingress; exit 1 when any is invalid."""
    try:
        bundles = BundleSet.configured(settings_of(args).client.bundles, specs=args.bundle)
    except NSWSchemaError as exc:
        sys.stderr.write(f"nsw validate: {exc}\n")
        return 2
    all_valid = True
    for name in args.files:
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            error = {"message": f"cannot read: {exc.strerror}", "line": None, "path": None}
            result: dict[str, Any] = {"valid": False, "kind": None, "errors": [error]}
        else:
            result = dict(validate_file_result(data, bundles))
        all_valid = all_valid and bool(result["valid"])
        sys.stdout.write(orjson.dumps({"file": name, **result}).decode() + "\n")
    return 0 if all_valid else 1


async def _submit(args: argparse.Namespace) -> int:
    async with httpx.AsyncClient(base_url=args.url, timeout=30, headers=_client_headers(args)) as client:
        try:
            result = await submit_file(client, Path(args.file), wait=args.wait)
        except httpx.HTTPError as exc:
            sys.stderr.write(f"nsw submit: cannot reach the hub at {args.url}: {exc}\n")
            return 3
    if result.status_code not in (200, 202):
        _print_json(result.body)
        return 1
    if args.wait <= 0:
        _print_json(result.body)
        return 0
    if result.response is None:
        _print_json({**result.body, "error": f"no release response within {args.wait} s"})
        return 2
    _print_json(result.response)
    return 0


async def _status(args: argparse.Namespace) -> int:
    async with httpx.AsyncClient(base_url=args.url, timeout=30, headers=_client_headers(args)) as client:
        try:
            answer = await client.get(f"/v1/submissions/{args.submission_id}")
        except httpx.HTTPError as exc:
            sys.stderr.write(f"nsw status: cannot reach the hub at {args.url}: {exc}\n")
            return 3
    _print_json(answer.json())
    return 0 if answer.status_code == 200 else 1


def _kafka(args: argparse.Namespace) -> int:
    if args.action == "tool":
        return run_tool(args.tool_args, settings_of(args).local_kafka)
    if args.tool_args and args.action not in ("start", *KAFKA_NODE_ACTIONS):
        sys.stderr.write(f"nsw kafka {args.action}: takes no arguments (got {' '.join(args.tool_args)})\n")
        return 2
    return kafka_command(args.action, settings_of(args).local_kafka, args.tool_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nsw", description="National Single Window message hub")
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="the embedded local Apache Kafka broker")
    kafka.add_argument("action", choices=["install", "start", "stop", "status", *KAFKA_NODE_ACTIONS, "tool"],
                       help="install (the broker and Kafka's tools), start [--brokers N] (a local cluster of N), "
                            "stop, status, kill|pause|resume|start-node|stop-node N (one node of a cluster, "
                            "for fault tests), or tool NAME [ARGS...]")
    kafka.add_argument("tool_args", nargs=argparse.REMAINDER, metavar="NAME [ARGS...]",
                       help="for tool: one of Kafka's tools and its own arguments, e.g. consumer-groups --list "
                            "(the bootstrap of the embedded broker is filled in); `nsw kafka tool` lists them")

    serve = sub.add_parser("serve", help="run the hub's services")
    serve.add_argument("--host", default=None,
                       help="interface the ingress listens on (env NSW_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="ingress port (env NSW_PORT; default 8080)")
    serve.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env NSW_BOOTSTRAP)")
    serve.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SERVICES)} (router, adapters "
                       "and aggregator together run fused in one step unless NSW_FUSED_CORE=0)")
    serve.add_argument("--split", action="append", default=None, metavar="SERVICES",
                       help="run these services in a child process (another core), e.g. auditor; repeatable, "
                       "one child each")
    serve.add_argument("--bundle", action="append", default=[], metavar="NAME=DIR",
                       help="an extra schema bundle, e.g. hmrc-cds=DIR (env NSW_BUNDLES); repeatable")
    serve.add_argument("--post-samples", action="store_true",
                       help="post the bundled samples once started and print their release responses")

    validate = sub.add_parser("validate", help="validate documents with the ingress's validator (JSON lines)")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--bundle", action="append", default=[], metavar="NAME=DIR",
                          help="an extra schema bundle, e.g. hmrc-cds=DIR (env NSW_BUNDLES)")

    submit = sub.add_parser("submit", help="lodge a declaration and (with --wait) print its release response")
    submit.add_argument("file")
    submit.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the release response")
    submit.add_argument("--url", default=DEFAULT_URL, help=f"the hub (default {DEFAULT_URL})")
    submit.add_argument("--key", default=None, help="API key (default NSW_API_KEY or .nsw/dev-trader.key)")

    status = sub.add_parser("status", help="show a submission's status")
    status.add_argument("submission_id")
    status.add_argument("--url", default=DEFAULT_URL, help=f"the hub (default {DEFAULT_URL})")
    status.add_argument("--key", default=None, help="API key (default NSW_API_KEY or .nsw/dev-trader.key)")

    keys = sub.add_parser("keys", help="API keys of traders and agencies: create, list, rotate, revoke")
    keys.add_argument("action", choices=["create", "list", "rotate", "revoke"],
                      help="rotate issues a new key for the same principal, then revokes KEY_ID")
    keys.add_argument("key_id", nargs="?", help="for rotate and revoke: the key id")
    keys.add_argument("--trader", help="for create: the trader the key identifies")
    keys.add_argument("--agency", help="for create: the agency whose decision callback the key authenticates")
    keys.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env NSW_BOOTSTRAP)")
    provision_cmd = sub.add_parser(
        "provision", help="make the keys all instances of a deployment share, once (an init job); idempotent",
        description="In NSW_STATE_DIR: the webhook and console keys (unless NSW_WEBHOOK_KEY / NSW_CONSOLE_KEY give "
                    "them), the response signing key, and unless NSW_DEV_KEY=0 the development trader key (lodged "
                    "on Kafka). What exists is kept. Prints a summary without secrets.")
    provision_cmd.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (env NSW_BOOTSTRAP)")
    provision_cmd.add_argument("--k8s-secret", default=None, metavar="NAME",
                               help="print instead a Kubernetes Secret NAME with the shared keys (no Kafka needed), "
                                    "for deploy/k8s: nsw provision --k8s-secret nsw-keys | kubectl apply -f -")
    add_officers_parser(sub)
    add_route_parser(sub)
    add_verify_parser(sub)
    add_openapi_parser(sub)
    add_config_parser(sub)
    add_schemas_parser(sub)
    add_conformance_parser(sub)
    add_ops_parser(sub)
    add_bench_parser(sub)
    add_chaos_parser(sub)
    return parser


def _client_headers(args: argparse.Namespace) -> dict[str, str]:
    settings = settings_of(args)
    key = getattr(args, "key", None)  # nsw serve --post-samples has no --key: the development key
    return client_auth_headers(key, api_key=settings.client.api_key, state_dir=settings.hub.state_dir)


def main(argv: list[str] | None = None, *, settings: Settings | None = None) -> int:
    """Run one command; the configuration is read and checked once, here, and handed to the command."""
    args = build_parser().parse_args(argv)
    args.settings = settings if settings is not None else Settings.from_env()  # ConfigError: every bad setting
    use_process_credentials(args.settings.hub.kafka)
    plain = {"config": run_config, "kafka": _kafka, "validate": _validate, "route": run_route}
    if args.command in plain:
        return plain[args.command](args)
    if args.command == "ops":
        try:
            auth = args.settings.hub.kafka.auth_for(OPS)  # operators' tools act as nsw-ops
        except KafkaAuthConfigError as exc:
            sys.stderr.write(f"nsw ops: {exc}\n")
            return 2
        with acting_as(auth):
            return run_audit(args) if args.ops_command == "audit" else run_ops(args)
    if args.command in ("verify", "openapi", "chaos"):  # offline tools: no Kafka, no hub (chaos: its own)
        return {"verify": run_verify, "openapi": run_openapi, "chaos": run_chaos_command}[args.command](args)
    if args.command == "schemas":
        return run_schemas(args)
    if args.command == "conformance":
        return run_conformance(args)
    if args.command == "bench":
        return run_bench(args)
    if args.command == "officers":
        return run_officers(args)
    runner = {"serve": _serve, "submit": _submit, "status": _status, "keys": _keys, "provision": _provision}[
        args.command]
    try:
        if args.command == "serve":
            with contextlib.suppress(ImportError):
                import uvloop  # noqa: PLC0415 - optional speed-up, only for the long-running server

                return uvloop.run(runner(args))
        return asyncio.run(runner(args))
    except KafkaAuthConfigError as exc:  # NSW_KAFKA_* half set, or a principal missing from the credentials
        sys.stderr.write(f"nsw {args.command}: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
