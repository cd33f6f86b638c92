"""``nsw kafka tool NAME [ARGS...]``: Kafka's own command-line tools against the embedded broker.

The tools come from the ``kafka-tools`` artefact pinned beside the broker in ``ops/kafka/pom.xml`` (one
``nsw kafka install`` fetches both), so an operator has ``kafka-consumer-groups``, ``kafka-console-consumer``
and the rest without a Kafka distribution. Each name is the distribution's script without ``kafka-`` and
``.sh`` (``kafka-consumer-groups.sh`` is ``consumer-groups``); the arguments are the tool's own. What this adds:

- ``--bootstrap-server`` of the embedded broker (``NSW_KAFKA_HOST``/``NSW_KAFKA_PORT``), unless given;
- in ``sasl`` mode, the ``admin`` client settings (``<home>/admin.properties``) with the tool's own option
  for them, unless given;
- logging to stderr at WARN, so stdout is only what the tool prints.

The JVM replaces this process (``exec``): Ctrl-C and the exit code are the tool's own.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from ops._kafka import LocalKafka, LocalKafkaConfig, _java, _listening, kafka_version
from ops.errors import KafkaRuntimeError, OpsConfigError

__all__ = ["TOOLS", "KafkaTool", "run_tool", "tool_argv"]

_TOOLS_HEAP: Final = "-Xmx512m"


@dataclass(frozen=True, slots=True)
class KafkaTool:
    main: str
    """The Java class the distribution's script runs."""
    about: str
    config_flag: str | None = "--command-config"
    """The tool's option naming a client settings file (None: the tool talks to no broker)."""


_T: Final = "org.apache.kafka.tools."
#: Kafka 4.1's tools by script name (``bin/kafka-<name>.sh``), each taking ``--bootstrap-server``.
TOOLS: Final[dict[str, KafkaTool]] = {
    "topics": KafkaTool(_T + "TopicCommand", "create, list, describe, alter and delete topics"),
    "consumer-groups": KafkaTool(_T + "consumer.group.ConsumerGroupCommand",
                                 "list and describe consumer groups, their members and lag; reset offsets"),
    "share-groups": KafkaTool(_T + "consumer.group.ShareGroupCommand", "list and describe share groups"),
    "streams-groups": KafkaTool(_T + "streams.StreamsGroupCommand", "list and describe Kafka Streams groups"),
    "groups": KafkaTool(_T + "GroupsCommand", "list groups of every type"),
    "console-consumer": KafkaTool(_T + "consumer.ConsoleConsumer", "print records of a topic",
                                  config_flag="--consumer.config"),
    "console-producer": KafkaTool(_T + "ConsoleProducer", "write records read from stdin to a topic",
                                  config_flag="--producer.config"),
    "get-offsets": KafkaTool(_T + "GetOffsetShell", "earliest, latest or by-time offsets of partitions"),
    "configs": KafkaTool("kafka.admin.ConfigCommand", "describe and alter topic, broker and client configs"),
    "acls": KafkaTool(_T + "AclCommand", "list, add and remove ACLs"),
    "transactions": KafkaTool(_T + "TransactionsCommand", "list, describe and abort transactions"),
    "delete-records": KafkaTool(_T + "DeleteRecordsCommand", "delete records up to an offset"),
    "log-dirs": KafkaTool(_T + "LogDirsCommand", "size of each partition on disk"),
    "broker-api-versions": KafkaTool(_T + "BrokerApiVersionsCommand", "the API versions the broker supports"),
    "metadata-quorum": KafkaTool(_T + "MetadataQuorumCommand", "the KRaft quorum's status and replication"),
    "features": KafkaTool(_T + "FeatureCommand", "describe, upgrade and downgrade feature levels"),
    "leader-election": KafkaTool(_T + "LeaderElectionCommand", "elect partition leaders",
                                 config_flag="--admin.config"),
    "reassign-partitions": KafkaTool(_T + "reassign.ReassignPartitionsCommand", "move partitions between brokers"),
    "delegation-tokens": KafkaTool(_T + "DelegationTokenCommand", "create, renew and describe delegation tokens"),
    "client-metrics": KafkaTool(_T + "ClientMetricsCommand", "client metrics subscriptions"),
    "consumer-perf-test": KafkaTool(_T + "ConsumerPerformance", "consumer throughput",
                                    config_flag="--consumer.config"),
    "dump-log": KafkaTool("kafka.tools.DumpLogSegments", "decode log segment files (--files PATH)",
                          config_flag=None),
}


def _given(args: list[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in args for f in flags)


def _log_config() -> Path:
    path = Path(str(resources.files("ops") / "kafka" / "tools-log4j2.properties"))
    if not path.is_file():
        raise KafkaRuntimeError(f"the tools' logging settings are missing from the installed package: {path}")
    return path


def tool_argv(name: str, args: list[str], kafka: LocalKafka, *, java: str = "java") -> list[str]:
    """The java command line running tool ``name`` with ``args`` against ``kafka``'s broker."""
    tool = TOOLS.get(name)
    if tool is None:
        raise OpsConfigError(f"no Kafka tool {name!r}; choose from {', '.join(sorted(TOOLS))}")
    added: list[str] = []
    if tool.config_flag is not None:
        if not _given(args, "--bootstrap-server", "--bootstrap-controller"):
            added += ["--bootstrap-server", kafka.config.bootstrap]
        if kafka.sasl and not _given(args, tool.config_flag):
            added += [tool.config_flag, str(kafka.admin_properties)]
    return [java, _TOOLS_HEAP, "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={_log_config()}",
            "-cp", f"{kafka.libs}/*", tool.main, *added, *args]


def _usage() -> str:
    rows = "\n".join(f"  {name:<20} {tool.about}" for name, tool in sorted(TOOLS.items()))
    return (f"usage: nsw kafka tool NAME [ARGS...]   (Kafka {kafka_version()}'s tools, against the embedded broker;"
            f" NAME --help for a tool's options)\n{rows}\n")


def _prepare(name: str, rest: list[str], config: LocalKafkaConfig) -> list[str]:
    """The tool's command line, once the jars are installed and the broker (if the tool needs it) listens."""
    kafka = LocalKafka(config)
    if name not in TOOLS:
        raise OpsConfigError(f"no Kafka tool {name!r}; choose from {', '.join(sorted(TOOLS))}")
    if not kafka.installed():
        sys.stderr.write(f"nsw: fetching Kafka {kafka_version()} with Maven into {kafka.cache} (once)\n")
        kafka.install()
    argv = tool_argv(name, rest, kafka, java=_java())
    own = _given(rest, "--bootstrap-server", "--bootstrap-controller", "--help")
    if TOOLS[name].config_flag is not None and not own and not _listening(config.host, config.port):
        raise KafkaRuntimeError(f"no Kafka broker on {config.bootstrap}: start it with `nsw kafka start`, "
                                "or give the tool --bootstrap-server HOST:PORT", retriable=True)
    return argv


def run_tool(args: list[str], config: LocalKafkaConfig) -> int:  # noqa: RET503 - execv does not return
    """Replace this process with the tool; return only when it cannot be run (the exit code)."""
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    try:
        argv = _prepare(args[0], args[1:], config)
    except (OpsConfigError, KafkaRuntimeError) as exc:
        sys.stderr.write(f"nsw kafka tool: {exc}\n")
        return 2 if isinstance(exc, OpsConfigError) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)  # noqa: S606 - the operator's own command, no shell
