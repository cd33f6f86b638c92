"""The embedded local Kafka broker: one KRaft node (broker and controller in one JVM) for development and CI.

Why this exists: the hub's integration tests and `make run` need a real Kafka broker, and a developer's
machine or CI has Java and Maven but no Kafka distribution and no container engine. So the pinned Kafka jars
are fetched from Maven Central with `mvn dependency:copy-dependencies` (``ops/kafka/pom.xml``) into a cache
shared by every checkout, and the broker runs detached from the CLI that started it, its state in one home
folder:

    <home>/server.properties   written at every start from LocalKafkaConfig
    <home>/log4j2.properties   copied from ops/kafka/ at every start
    <home>/cluster.id          chosen once; the storage is formatted once with it
    <home>/data/               the log dirs (topics, offsets, KRaft metadata): kept across restarts
    <home>/kafka.pid           pid of the running JVM; its mtime is the start time
    <home>/server.log          the broker's log; server.out has the JVM's own stdout and stderr

In ``sasl`` mode (``NSW_KAFKA_SECURITY=sasl``, default home ``.nsw/kafka-sasl``) the client listener speaks
SASL_PLAINTEXT with SCRAM-SHA-512, the standard authorizer denies whatever ``ops._security`` does not allow,
and the home also holds:

    <home>/credentials.json    every principal's password (mode 0600), created once; the SCRAM credentials
                               are written into the metadata when the storage is formatted
    <home>/admin.properties    client settings of the ``admin`` super user for Kafka's own CLI tools (0600)

The controller listener is SASL_PLAINTEXT too, with the PLAIN mechanism and only ``admin`` in its static JAAS
list: a PLAINTEXT controller listener would authenticate the broker-to-controller connection as
``User:ANONYMOUS``, which would then have to be a super user (SCRAM cannot be used there: the controller must
authenticate before it has read the metadata that holds the SCRAM credentials).

This is synchronous code for the CLI and test fixtures; nothing here may be called from a running event loop
(the readiness probe runs aiokafka in its own ``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

from bus._auth import KafkaAuth
from bus._cluster import min_insync_for, replication_for
from bus._limits import dlq_limit
from config import Env, catalogue
from ops._security import (
    ADMIN,
    SCRAM_MECHANISM,
    acl_bindings,
    apply_acls,
    ensure_credentials,
    mark_registered,
    principals,
    registered_users,
    revoke_stale,
    write_private,
)
from ops.errors import KafkaRuntimeError, OpsConfigError
from schemas import AGENCIES

__all__ = ["KafkaNode", "KafkaStatus", "LocalKafka", "LocalKafkaConfig", "NodeStatus", "Security", "kafka_command",
           "kafka_version"]

Security = Literal["plaintext", "sasl"]
#: A node's JVM: ``running``, ``paused`` (stopped by SIGSTOP: ``nsw kafka pause N``) or ``down``.
NodeState = Literal["running", "paused", "down"]

MIN_JAVA: Final = 17
#: The largest local cluster ``nsw kafka start --brokers N`` runs (each node a JVM on this machine).
MAX_BROKERS: Final = 9
_MAIN_CLASS: Final = "kafka.Kafka"
_MARKER: Final = "installed.json"
_POLL_S: Final = 0.2


def _resource_text(name: str) -> str:
    return (resources.files("ops") / "kafka" / name).read_text(encoding="utf-8")


@cache
def kafka_version() -> str:
    """The Kafka version pinned in ``ops/kafka/pom.xml`` (the pom is the single source of truth)."""
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", _resource_text("pom.xml"))
    if match is None:
        raise KafkaRuntimeError("ops/kafka/pom.xml has no <kafka.version> property")
    return match.group(1)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalKafkaConfig:
    """Where the embedded broker keeps its state and jars, and where it listens.

    Built once at start-up (:meth:`read`, declared in config/_catalogue.py); every field has an ``NSW_KAFKA_*``
    environment variable.
    """

    home: Path
    """State folder (config, data, pid, logs). ``NSW_KAFKA_HOME``, default ``.nsw/kafka`` under the cwd."""
    cache: Path
    """Jar cache shared by all checkouts. ``NSW_KAFKA_CACHE``, default ``~/.cache/nsw-broker/kafka-<ver>``."""
    host: str = "127.0.0.1"
    """``NSW_KAFKA_HOST``: the only interface the broker listens on; loopback keeps it private."""
    port: int = 9092
    """``NSW_KAFKA_PORT``: client (PLAINTEXT) listener."""
    controller_port: int = 9093
    """``NSW_KAFKA_CONTROLLER_PORT``: KRaft controller listener."""
    heap: str = "1g"
    """``NSW_KAFKA_HEAP``: the JVM's ``-Xmx``."""
    security: Security = "plaintext"
    """``NSW_KAFKA_SECURITY``: ``plaintext`` (no authentication, loopback only) or ``sasl`` (SCRAM + ACLs)."""
    agencies: tuple[str, ...] = AGENCIES
    """``NSW_KAFKA_AGENCIES`` (comma-separated): one principal and its ACLs per agency in ``sasl`` mode."""
    brokers: int | None = None
    """``NSW_KAFKA_BROKERS`` (or ``nsw kafka start --brokers N``): nodes of a local cluster, each a combined
    broker and controller (N controller voters); node ``i`` listens on ``port + 2(i-1)`` and ``controller_port +
    2(i-1)``. None: as the home was started (one broker for a new home)."""
    node_heap: str = "384m"
    """``NSW_KAFKA_NODE_HEAP``: the ``-Xmx`` of each node of a multi-broker cluster (``heap`` is the single
    broker's)."""

    def __post_init__(self) -> None:
        if self.security not in get_args(Security):
            raise OpsConfigError(f"security {self.security!r} is not one of {', '.join(get_args(Security))}")
        for agency in self.agencies:
            if re.fullmatch(r"[a-z][a-z0-9_]*", agency) is None:
                raise OpsConfigError(f"agency {agency!r} is not a lower-case name such as sps or cwc")
        if self.port == self.controller_port:
            raise OpsConfigError(f"the client and controller ports are both {self.port}; they must differ")
        for heap in (self.heap, self.node_heap):
            if re.fullmatch(r"[1-9][0-9]*[kKmMgG]?", heap) is None:
                raise OpsConfigError(f"heap {heap!r} is not a JVM size such as 512m or 1g")
        if self.brokers is not None:
            if not 1 <= self.brokers <= MAX_BROKERS:
                raise OpsConfigError(f"brokers={self.brokers} is outside 1..{MAX_BROKERS}")
            ports = [p for i in range(self.brokers) for p in (self.port + 2 * i, self.controller_port + 2 * i)]
            if len(set(ports)) != len(ports) or max(ports) > 65535:
                raise OpsConfigError(
                    f"{self.brokers} nodes from ports {self.port}/{self.controller_port} overlap or pass 65535: node "
                    "i listens on port + 2(i-1) and controller_port + 2(i-1); choose adjacent ports such as 9092/9093"
                )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalKafkaConfig:
        reader = Env(env)
        config = cls.read(reader)
        reader.check(OpsConfigError)
        assert config is not None
        return config

    @classmethod
    def read(cls, env: Env) -> LocalKafkaConfig | None:
        """The embedded broker's section (config/_catalogue.py); None, with the problem in ``env``, if refused."""
        default_cache = Path.home() / ".cache" / "nsw-broker" / f"kafka-{kafka_version()}"
        security = env.get(catalogue.KAFKA_SECURITY)
        # A separate default home per mode: a storage formatted without SCRAM credentials cannot take SASL.
        default_home = Path(".nsw/kafka-sasl" if security == "sasl" else ".nsw/kafka")
        try:
            return cls(
                home=(env.get(catalogue.KAFKA_HOME) or default_home).expanduser().absolute(),
                cache=(env.get(catalogue.KAFKA_CACHE) or default_cache).expanduser().absolute(),
                host=env.get(catalogue.KAFKA_HOST),
                port=env.get(catalogue.KAFKA_PORT),
                controller_port=env.get(catalogue.KAFKA_CONTROLLER_PORT),
                heap=env.get(catalogue.KAFKA_HEAP),
                security=cast("Security", security),  # checked in __post_init__
                agencies=env.get(catalogue.KAFKA_AGENCIES) or AGENCIES,
                brokers=env.get(catalogue.KAFKA_BROKERS),
                node_heap=env.get(catalogue.KAFKA_NODE_HEAP),
            )
        except OpsConfigError as exc:  # the two ports are the same
            env.adopt(exc)
            return None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaStatus:
    running: bool
    """The broker's JVM is alive (a stale pid file counts as not running)."""
    listening: bool
    """Something accepts TCP connections on the client port (the broker, or another program if not
    running)."""
    pid: int | None
    bootstrap: str
    version: str
    home: Path
    log: Path
    started_at: datetime | None
    uptime_s: float | None
    security: Security = "plaintext"
    credentials: Path | None = None
    """``sasl`` mode: the file with every principal's password."""
    nodes: tuple[NodeStatus, ...] = ()
    """A multi-broker cluster: each node (``running`` then means all of them; ``pid`` and ``log`` are node 1's)."""

    def as_dict(self) -> dict[str, Any]:
        sasl = {"credentials": str(self.credentials)} if self.credentials else {}
        cluster = {"brokers": len(self.nodes), "nodes": [n.as_dict() for n in self.nodes]} if self.nodes else {}
        return {
            "security": self.security,
            **sasl,
            "running": self.running,
            "listening": self.listening,
            "pid": self.pid,
            "bootstrap": self.bootstrap,
            "version": self.version,
            "home": str(self.home),
            "log": str(self.log),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "uptime_s": round(self.uptime_s, 1) if self.uptime_s is not None else None,
            **cluster,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    """One node of a local cluster."""

    node: int
    state: NodeState
    pid: int | None
    bootstrap: str
    controller: str
    home: Path
    log: Path

    @property
    def running(self) -> bool:
        return self.state != "down"

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "state": self.state, "pid": self.pid, "bootstrap": self.bootstrap,
                "controller": self.controller, "home": str(self.home), "log": str(self.log)}  # fmt: skip


# --- process helpers -------------------------------------------------------------------------------------


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child, so a dead broker is not kept as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # A zombie (state Z) whose parent has not reaped it yet is gone for our purposes, unless it is our own
        # child: then the leader thread shows Z while the JVM's other threads still exit, and it counts as
        # alive until it can be reaped (else its pid would linger as a zombie after stop()).
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return False
            return reaped == 0
    return True


def _is_our_broker(pid: int, server_properties: Path) -> bool:
    """Guard against pid reuse: the pid must be a JVM running kafka.Kafka on this home's config.

    Where /proc does not exist (macOS) the pid is trusted.
    """
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not Path("/proc/self/cmdline").exists():
        return True
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return False
    return _MAIN_CLASS.encode() in args and os.fsencode(server_properties) in args


def _stopped(pid: int) -> bool:
    """The process is stopped by a signal (state T: ``nsw kafka pause``)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def _port_free(host: str, port: int) -> bool:
    # SO_REUSEADDR as the JVM sets it, so sockets in TIME_WAIT from a previous broker do not count as taken.
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise KafkaRuntimeError(f"cannot bind {host}:{port}: {exc}") from exc
    return True


def _listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 25, *, since: int = 0) -> str:
    """The last ``lines`` lines of ``path`` written after byte offset ``since`` (this start's, not older)."""
    try:
        with path.open("rb") as fh:
            fh.seek(since if since <= path.stat().st_size else 0)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise install/start/stop across processes (two `make test` runs, a CLI and a test fixture)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise KafkaRuntimeError(
            f"java not found: the embedded Kafka broker needs a Java {MIN_JAVA}+ runtime "
            "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        raise KafkaRuntimeError(f"cannot tell the version of {java}: {out.stderr.strip()[:200]}")
    major = int(match.group(2)) if match.group(1) == "1" and match.group(2) else int(match.group(1))
    if major < MIN_JAVA:
        raise KafkaRuntimeError(
            f"{java} is Java {major}; Kafka {kafka_version()} needs Java {MIN_JAVA}+ "
            "(install openjdk-17 or newer, or point JAVA_HOME at it)"
        )
    return java


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaRuntimeError(
            "mvn not found: Maven fetches the pinned Kafka jars once "
            "(Debian/Ubuntu: apt-get install maven; macOS: brew install maven)"
        )
    return mvn


def _cluster_id() -> str:
    """A Kafka ``Uuid`` in its base64url form, chosen as ``StorageTool random-uuid`` does, without a JVM."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


# --- the runtime -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaNode:
    """One KRaft node (broker and controller in one JVM): its id, ports and state folder.

    The single broker's folder is the home itself; node ``i`` of a cluster has ``<home>/node-<i>``.
    """

    id: int
    home: Path
    host: str
    port: int
    controller_port: int
    heap: str

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def server_properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j_properties(self) -> Path:
        return self.home / "log4j2.properties"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    @property
    def out(self) -> Path:
        return self.home / "server.out"


class LocalKafka:
    """Install, start, stop and inspect the embedded broker (or local cluster) a :class:`LocalKafkaConfig`
    describes.

    A cluster's home holds ``cluster.json`` (its size), ``cluster.id`` and one folder per node; ``status`` and
    ``stop`` read the size from there, so they cover every node without being told how many there are.
    """

    def __init__(self, config: LocalKafkaConfig) -> None:
        self.config = config
        self.home = config.home.expanduser().absolute()
        self.cache = config.cache.expanduser().absolute()
        self.libs = self.cache / "libs"
        self.layout = self.home / "cluster.json"
        self.size = self._recorded_size() or config.brokers or 1
        self.nodes = tuple(self._node(i) for i in range(1, self.size + 1))
        first = self.nodes[0]
        self.server_properties = first.server_properties
        self.log4j_properties = first.log4j_properties
        self.data = first.data
        self.pid_file = first.pid_file
        self.log = first.log
        self.out = first.out
        self.credentials = self.home / "credentials.json"
        self.admin_properties = self.home / "admin.properties"

    def _recorded_size(self) -> int | None:
        try:
            return int(json.loads(self.layout.read_text())["brokers"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _node(self, number: int) -> KafkaNode:
        c, step = self.config, 2 * (number - 1)
        single = self.size == 1
        return KafkaNode(id=number, home=self.home if single else self.home / f"node-{number}", host=c.host,
                         port=c.port + step, controller_port=c.controller_port + step,
                         heap=c.heap if single else c.node_heap)  # fmt: skip

    @property
    def cluster(self) -> bool:
        return self.size > 1

    @property
    def bootstrap(self) -> str:
        """Every node's client listener, comma-separated (as NSW_BOOTSTRAP takes it)."""
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, number: int) -> KafkaNode:
        if not 1 <= number <= self.size:
            raise OpsConfigError(f"there is no node {number}: the cluster in {self.home} has nodes 1..{self.size}")
        return self.nodes[number - 1]

    @property
    def sasl(self) -> bool:
        return self.config.security == "sasl"

    def auth(self, principal: str = ADMIN) -> KafkaAuth:
        """Client credentials of ``principal`` (``sasl`` mode), or no authentication (``plaintext``)."""
        if not self.sasl:
            return KafkaAuth()
        return KafkaAuth.from_credentials(self.credentials, principal)

    # install ---------------------------------------------------------------------------------------------

    def installed(self) -> bool:
        try:
            marker = json.loads((self.cache / _MARKER).read_text())
        except (OSError, ValueError):
            return False
        return bool(marker.get("pom_sha256") == self._pom_hash() and self.libs.is_dir())

    def install(self) -> Path:
        """Fetch the pinned jars into the cache (once per pom); return the folder of jars.

        Maven writes into a fresh temporary folder that is renamed into place only when it succeeded, and the
        marker names the pom's hash, so a broken download or an edited pom is never mistaken for an install.
        """
        with _locked(self.cache.with_name(self.cache.name + ".lock")):
            if self.installed():
                return self.libs
            _java()
            mvn = _mvn()
            self.cache.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".install-", dir=self.cache))
            try:
                pom = staging / "pom.xml"
                pom.write_text(_resource_text("pom.xml"), encoding="utf-8")
                jars = staging / "libs"
                cmd = [mvn, "-q", "-B", "-f", str(pom), f"-DoutputDirectory={jars}",
                       "dependency:copy-dependencies"]  # fmt: skip
                try:
                    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
                except subprocess.TimeoutExpired as exc:
                    raise KafkaRuntimeError("mvn took over 15 minutes to fetch Kafka", retriable=True) from exc
                log = done.stdout + done.stderr
                (self.cache / "mvn.log").write_text(log, encoding="utf-8")
                if done.returncode != 0 or not any(jars.glob("kafka_*.jar")):
                    tail = "\n".join(log.splitlines()[-20:])
                    raise KafkaRuntimeError(
                        f"mvn could not fetch Kafka {kafka_version()} (exit {done.returncode}); "
                        f"is Maven Central reachable?\n{tail}",
                        retriable=True,
                    )
                if self.libs.exists():
                    shutil.rmtree(self.libs)
                jars.rename(self.libs)
                marker = {"pom_sha256": self._pom_hash(), "version": kafka_version(),
                          "jars": len(list(self.libs.glob("*.jar"))),
                          "installed_at": datetime.now(UTC).isoformat()}  # fmt: skip
                tmp_marker = staging / _MARKER
                tmp_marker.write_text(json.dumps(marker, indent=2), encoding="utf-8")
                tmp_marker.replace(self.cache / _MARKER)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return self.libs

    def _pom_hash(self) -> str:
        return hashlib.sha256(_resource_text("pom.xml").encode()).hexdigest()

    # status ----------------------------------------------------------------------------------------------

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _running_pid(self, node: KafkaNode | None = None) -> int | None:
        node = node or self.nodes[0]
        try:
            pid: int | None = int(node.pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is None or not _alive(pid) or not _is_our_broker(pid, node.server_properties):
            return None
        return pid

    def node_status(self, node: KafkaNode) -> NodeStatus:
        pid = self._running_pid(node)
        state: NodeState = "down" if pid is None else "paused" if _stopped(pid) else "running"
        return NodeStatus(node=node.id, state=state, pid=pid, bootstrap=node.bootstrap,
                          controller=f"{node.host}:{node.controller_port}", home=node.home, log=node.log)  # fmt: skip

    def status(self) -> KafkaStatus:
        pid = self._running_pid()
        started_at: datetime | None = None
        if pid is not None:
            with contextlib.suppress(OSError):
                started_at = datetime.fromtimestamp(self.pid_file.stat().st_mtime, UTC)
        nodes = tuple(self.node_status(n) for n in self.nodes) if self.cluster else ()
        return KafkaStatus(
            running=all(n.running for n in nodes) if nodes else pid is not None,
            listening=all(_listening(n.host, n.port) for n in self.nodes),
            pid=pid,
            bootstrap=self.bootstrap,
            version=kafka_version(),
            home=self.home,
            log=self.log,
            started_at=started_at,
            uptime_s=(datetime.now(UTC) - started_at).total_seconds() if started_at else None,
            security=self.config.security,
            credentials=self.credentials if self.sasl else None,
            nodes=nodes,
        )

    # start -----------------------------------------------------------------------------------------------

    def start(self, *, timeout: float = 60.0) -> KafkaStatus:
        """Start the broker detached and return once it answers a metadata request; idempotent.

        In ``sasl`` mode it also makes sure every principal exists and the ACLs are in place, also when the
        broker was already running (so a principal added to the config is created by the next start).
        Blocks for seconds, so it refuses to run on an event loop's thread: use ``asyncio.to_thread``.
        """
        if _in_event_loop():
            raise KafkaRuntimeError("LocalKafka.start() blocks; call it via asyncio.to_thread() in async code")
        self._check_size()
        if self.cluster:
            with _locked(self.home / ".lock"):
                return self._start_cluster(self.nodes, timeout=timeout)
        with _locked(self.home / ".lock"):
            pid = self._running_pid()
            if pid is not None:
                self._wait_ready(pid, time.monotonic() + timeout)
                self._secure(_java(), self.install())
                return self.status()
            self.pid_file.unlink(missing_ok=True)  # stale
            for port in (self.config.port, self.config.controller_port):
                if not _port_free(self.config.host, port):
                    raise KafkaRuntimeError(
                        f"port {port} on {self.config.host} is already in use by another program, so the "
                        f"embedded Kafka cannot listen there; stop that program or choose other ports "
                        f"with NSW_KAFKA_PORT / NSW_KAFKA_CONTROLLER_PORT"
                    )
            java = _java()
            libs = self.install()
            self.home.mkdir(parents=True, exist_ok=True)
            self._write_config(self.nodes[0])
            self._format(java, libs, self.nodes[0])
            log_offset = self.log.stat().st_size if self.log.exists() else 0
            pid = self._spawn(java, libs, self.nodes[0])
            try:
                self._wait_ready(pid, time.monotonic() + timeout, log_offset=log_offset)
                self._secure(java, libs)
            except KafkaRuntimeError:
                self._terminate(pid, timeout=10.0)
                self.pid_file.unlink(missing_ok=True)
                raise
            return self.status()

    def _users(self) -> dict[str, str]:
        """Every principal's password, creating the credentials file (0600) or adding missing ones."""
        return ensure_credentials(self.credentials, principals(self.config.agencies), bootstrap=self.config.bootstrap)

    def _secure(self, java: str, libs: Path) -> None:
        """``sasl`` mode, broker up: create users missing from its metadata, then (re)apply the ACLs (and revoke
        stale ones)."""
        if not self.sasl:
            return
        users = self._users()
        missing = sorted(set(users) - registered_users(self.credentials))
        for name in missing:
            self._add_scram_user(java, libs, name, users[name])
        if missing:
            mark_registered(self.credentials, missing)
        asyncio.run(self._apply_policy())

    async def _apply_policy(self) -> None:
        """Grant the policy, then revoke what an earlier policy granted beyond it (both idempotent)."""
        policy = acl_bindings(self.config.agencies)
        await apply_acls(self.config.bootstrap, self.auth(ADMIN), policy)
        await revoke_stale(self.config.bootstrap, self.auth(ADMIN), policy)

    def _add_scram_user(self, java: str, libs: Path, name: str, password: str) -> None:
        # aiokafka has no AlterUserScramCredentials; Kafka's own ConfigCommand (in the core jar) does it.
        cmd = [java, "-Xmx256m", f"-Dlog4j2.configurationFile={self.log4j_properties}",
               f"-Dkafka.logs.dir={self.home}", "-cp", f"{libs}/*", "kafka.admin.ConfigCommand",
               "--bootstrap-server", self.config.bootstrap, "--command-config", str(self.admin_properties),
               "--alter", "--entity-type", "users", "--entity-name", name,
               "--add-config", f"{SCRAM_MECHANISM}=[password={password}]"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            raise KafkaRuntimeError(
                f"creating the Kafka user {name} failed (exit {done.returncode}):\n"
                f"{(done.stdout + done.stderr).strip()[-2000:]}",
                retriable=True,
            )

    def _listener_props(self, node: KafkaNode) -> dict[str, str]:
        c = node
        if not self.sasl:
            return {
                "listeners": f"PLAINTEXT://{c.host}:{c.port},CONTROLLER://{c.host}:{c.controller_port}",
                "advertised.listeners": f"PLAINTEXT://{c.host}:{c.port}",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
            }
        admin = self._users()[ADMIN]
        scram = ("org.apache.kafka.common.security.scram.ScramLoginModule required "
                 f'username="{ADMIN}" password="{admin}";')  # fmt: skip
        plain = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
                 f'username="{ADMIN}" password="{admin}" user_{ADMIN}="{admin}";')  # fmt: skip
        return {
            "listeners": f"SASL_PLAINTEXT://{c.host}:{c.port},CONTROLLER://{c.host}:{c.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://{c.host}:{c.port}",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            f"listener.name.sasl_plaintext.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": scram,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": plain,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN}",
        }

    def _write_config(self, node: KafkaNode) -> None:
        # Kafka's recommendation for a cluster of three: replication factor 3 and min.insync.replicas 2 for the
        # internal topics (transaction state, offsets) and as the default of topics created elsewhere.
        replication = replication_for(self.size)
        replicas, min_isr = str(replication), str(min_insync_for(replication))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.id),
            "controller.quorum.voters": ",".join(f"{n.id}@{n.host}:{n.controller_port}" for n in self.nodes),
            "controller.listener.names": "CONTROLLER",
            **self._listener_props(node),
            "log.dirs": str(node.data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": replicas,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            # The largest record batch the broker takes (topics the hub declares set their own limit): a
            # dead letter of a record of the full budget (bus/_limits.py), for topics created elsewhere.
            "message.max.bytes": str(dlq_limit()),
        }
        if self.cluster:
            # Several JVMs share the machine's cores: fewer request and replica threads than a server's defaults.
            props |= {"default.replication.factor": replicas, "min.insync.replicas": min_isr,
                      "num.network.threads": "2", "num.io.threads": "4", "num.replica.fetchers": "1",
                      "background.threads": "4",
                      # 50 partitions each (the defaults) times three replicas is what makes a first start slow.
                      "offsets.topic.num.partitions": "12", "transaction.state.log.num.partitions": "12"}  # fmt: skip
        body = "".join(f"{k}={v}\n" for k, v in props.items())
        header = "# Written by `nsw kafka start` from LocalKafkaConfig at every start; edits are overwritten.\n"
        node.home.mkdir(parents=True, exist_ok=True)
        # 0600 in both modes: in sasl mode it holds the admin password.
        write_private(node.server_properties, header + body)
        node.log4j_properties.write_text(_resource_text("log4j2.properties"), encoding="utf-8")
        if self.sasl:
            admin = self._users()[ADMIN]
            write_private(self.admin_properties, (
                "# The admin super user, for Kafka's CLI tools: --command-config <this file>\n"
                "security.protocol=SASL_PLAINTEXT\n"
                f"sasl.mechanism={SCRAM_MECHANISM}\n"
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN}" password="{admin}";\n'
            ))  # fmt: skip

    def _format(self, java: str, libs: Path, node: KafkaNode) -> None:
        if (node.data / "meta.properties").exists():
            if self.sasl and ADMIN not in registered_users(self.credentials):
                raise KafkaRuntimeError(
                    f"the Kafka storage in {self.data} was formatted without the SCRAM credentials of "
                    f"{self.credentials} (in plaintext mode, or before that file was replaced), so the admin "
                    f"cannot log in; use another NSW_KAFKA_HOME, or delete {self.data} (its topics are lost)"
                )
            return
        id_file = self.home / "cluster.id"
        if not id_file.exists():
            id_file.write_text(_cluster_id() + "\n", encoding="utf-8")
        cluster_id = id_file.read_text().strip()
        cmd = [java, *self._jvm_flags(node), "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format",
               "-t", cluster_id, "-c", str(node.server_properties)]  # fmt: skip
        users = self._users() if self.sasl else {}
        for name, password in users.items():
            # KRaft keeps SCRAM credentials in the metadata log: bootstrapping them here means the admin can
            # log in on the very first start (SCRAM cannot be created before a SASL login exists).
            cmd += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-2000:]
            for password in users.values():
                output = output.replace(password, "***")
            raise KafkaRuntimeError(
                f"formatting the Kafka storage in {node.data} failed (exit {done.returncode}):\n{output}"
            )
        if users:
            mark_registered(self.credentials, users)

    def _jvm_flags(self, node: KafkaNode) -> list[str]:
        """The broker's JVM: its heap committed whole at start (``-Xms`` = ``-Xmx``, as Kafka's own
        kafka-server-start.sh sets them, and every page touched once), so the broker's RSS is its ceiling from
        the first minute instead of creeping up to it as the collector spreads into the heap."""
        return [
            f"-Xmx{node.heap}",
            f"-Xms{node.heap}",
            "-XX:+AlwaysPreTouch",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={node.home}",
            f"-Dlog4j2.configurationFile={node.log4j_properties}",
        ]

    def _spawn(self, java: str, libs: Path, node: KafkaNode) -> int:
        # posix_spawn rather than Popen: the JVM outlives this process (new session, no Popen object whose
        # finaliser would warn that it is still running); _alive() reaps it if we are still its parent.
        argv = [java, *self._jvm_flags(node), "-cp", f"{libs}/*", _MAIN_CLASS, str(node.server_properties)]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(node.out), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        try:
            pid = os.posix_spawn(java, argv, dict(os.environ), file_actions=actions, setsid=True)
        except OSError as exc:
            raise KafkaRuntimeError(f"cannot start {java}: {exc}") from exc
        node.pid_file.write_text(f"{pid}\n", encoding="utf-8")
        return pid

    def _wait_ready(self, pid: int, deadline: float, *, log_offset: int = 0, node: KafkaNode | None = None) -> None:
        node = node or self.nodes[0]
        while True:
            if not _alive(pid):
                tails = [(node.out, _tail(node.out)), (node.log, _tail(node.log, since=log_offset))]
                shown = "".join(f"\n--- {path.name} ---\n{text}" for path, text in tails if text)
                raise KafkaRuntimeError(f"the Kafka broker (pid {pid}) exited during start-up; see {node.log}{shown}")
            ready = _listening(node.host, node.port) and _metadata_ok(node.bootstrap, self.auth(ADMIN))
            if ready:
                return
            if time.monotonic() > deadline:
                raise KafkaRuntimeError(
                    f"the Kafka broker (pid {pid}) did not answer on {node.bootstrap} in time; "
                    f"see {node.log}\n{_tail(node.log, since=log_offset)}",
                    retriable=True,
                )
            time.sleep(_POLL_S)

    # cluster ---------------------------------------------------------------------------------------------

    def _check_size(self) -> None:
        wanted, recorded = self.config.brokers, self._recorded_size()
        single_home = recorded is None and (self.home / "data" / "meta.properties").exists()
        if wanted is not None and (wanted != self.size or (single_home and wanted > 1)):
            found = f"a cluster of {recorded}" if recorded else "a single broker"
            raise OpsConfigError(
                f"{self.home} holds {found}, not {wanted}: stop it and use another NSW_KAFKA_HOME for "
                f"{wanted} broker(s), or delete {self.home} (its topics are lost)"
            )
        if self.cluster and self.sasl:
            raise OpsConfigError("a local multi-broker cluster runs in plaintext mode only (NSW_KAFKA_SECURITY)")

    def _start_cluster(self, nodes: tuple[KafkaNode, ...], *, timeout: float) -> KafkaStatus:
        """Spawn every node of ``nodes`` not running, then wait for each: a node answers only once a majority
        of the controller voters elected a leader, so they must all be on their way before any is waited for."""
        java, libs = _java(), self.install()
        self.home.mkdir(parents=True, exist_ok=True)
        self.layout.write_text(json.dumps({"brokers": self.size}) + "\n", encoding="utf-8")
        spawned: list[tuple[KafkaNode, int, int]] = []
        for node in nodes:
            if self._running_pid(node) is not None:
                continue
            node.pid_file.unlink(missing_ok=True)  # stale
            for port in (node.port, node.controller_port):
                if not _port_free(node.host, port):
                    raise KafkaRuntimeError(
                        f"port {port} on {node.host} (node {node.id}) is already in use by another program; "
                        f"choose other ports with NSW_KAFKA_PORT / NSW_KAFKA_CONTROLLER_PORT"
                    )
            self._write_config(node)
            self._format(java, libs, node)
            offset = node.log.stat().st_size if node.log.exists() else 0
            spawned.append((node, self._spawn(java, libs, node), offset))
        deadline = time.monotonic() + timeout
        try:
            for node, pid, offset in spawned:
                self._wait_ready(pid, deadline, log_offset=offset, node=node)
        except KafkaRuntimeError:
            for node, pid, _ in spawned:
                self._terminate(pid, timeout=10.0)
                node.pid_file.unlink(missing_ok=True)
            raise
        return self.status()

    def start_node(self, number: int, *, timeout: float = 60.0) -> NodeStatus:
        """Start one node of the cluster (after ``kill`` or ``stop_node``); the others must form a quorum."""
        node = self.node(number)
        with _locked(self.home / ".lock"):
            self._start_cluster((node,), timeout=timeout)
        return self.node_status(node)

    def stop_node(self, number: int, *, timeout: float = 30.0) -> bool:
        """A clean stop (SIGTERM: controlled shutdown, leaders moved first) of one node; True if it ran."""
        node = self.node(number)
        with _locked(self.home / ".lock"):
            pid = self._running_pid(node)
            if pid is None:
                return False
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a paused JVM cannot shut down
            self._terminate(pid, timeout=timeout)
            node.pid_file.unlink(missing_ok=True)
            return True

    def kill(self, number: int) -> int:
        """SIGKILL node ``number`` (a hard crash: no controlled shutdown); return the pid that was killed."""
        node = self.node(number)
        pid = self._running_pid(node)
        if pid is None:
            raise KafkaRuntimeError(f"node {number} is not running", retriable=False)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while _alive(pid):
            if time.monotonic() > deadline:
                raise KafkaRuntimeError(f"node {number} (pid {pid}) survived SIGKILL", retriable=True)
            time.sleep(0.05)
        node.pid_file.unlink(missing_ok=True)
        return pid

    def pause(self, number: int) -> int:
        """SIGSTOP node ``number``: alive but silent, as a JVM in a long GC pause or a frozen VM."""
        return self._signal(number, signal.SIGSTOP)

    def resume(self, number: int) -> int:
        """SIGCONT node ``number`` after :meth:`pause`."""
        return self._signal(number, signal.SIGCONT)

    def _signal(self, number: int, sig: signal.Signals) -> int:
        """Send ``sig`` and return once the kernel shows the JVM stopped (SIGSTOP) or running again (SIGCONT)."""
        pid = self._running_pid(self.node(number))
        if pid is None:
            raise KafkaRuntimeError(f"node {number} is not running", retriable=False)
        os.kill(pid, sig)
        deadline = time.monotonic() + 5.0
        while _stopped(pid) != (sig == signal.SIGSTOP) and time.monotonic() < deadline:
            time.sleep(0.01)
        return pid

    def active_controller(self) -> int | None:
        """The node id the KRaft quorum last elected leader (the active controller), from the nodes' own
        ``quorum-state`` files (the highest epoch among running nodes wins); None if none is known."""
        best: tuple[int, int] | None = None
        for node in self.nodes:
            if self._running_pid(node) is None:
                continue
            try:
                state = json.loads((node.data / "__cluster_metadata-0" / "quorum-state").read_text())
            except (OSError, ValueError):
                continue
            leader, epoch = int(state.get("leaderId", -1)), int(state.get("leaderEpoch", -1))
            if leader > 0 and (best is None or epoch > best[1]):
                best = (leader, epoch)
        return best[0] if best else None

    # stop ------------------------------------------------------------------------------------------------

    def stop(self, *, timeout: float = 30.0) -> bool:
        """SIGTERM (controlled shutdown), SIGKILL after ``timeout``; True if a broker was running."""
        with _locked(self.home / ".lock"):
            if self.cluster:
                return self._stop_cluster(timeout=timeout)
            pid = self._running_pid()
            if pid is None:
                self.pid_file.unlink(missing_ok=True)  # stale, if any
                return False
            self._terminate(pid, timeout=timeout)
            self.pid_file.unlink(missing_ok=True)
            return True

    def _stop_cluster(self, *, timeout: float) -> bool:
        """SIGTERM every node at once (one by one, the last ones would wait for a quorum that has gone), then
        SIGKILL whatever is left after ``timeout``."""
        pids = {node: pid for node in self.nodes if (pid := self._running_pid(node)) is not None}
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
        for node, pid in pids.items():
            self._terminate(pid, timeout=timeout)
            node.pid_file.unlink(missing_ok=True)
        for node in self.nodes:
            node.pid_file.unlink(missing_ok=True)  # stale, if any
        return bool(pids)

    def _terminate(self, pid: int, *, timeout: float) -> None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not _alive(pid):
                    return
                time.sleep(_POLL_S)
        raise KafkaRuntimeError(f"the Kafka broker (pid {pid}) survived SIGKILL", retriable=True)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# --- readiness probe -------------------------------------------------------------------------------------


def _metadata_ok(bootstrap: str, auth: KafkaAuth, timeout: float = 5.0) -> bool:
    """True when the broker answers a cluster-metadata request listing at least one broker."""
    try:
        return asyncio.run(asyncio.wait_for(_describe_cluster(bootstrap, auth, int(timeout * 1000)), timeout))
    except TimeoutError:
        return False


async def _describe_cluster(bootstrap: str, auth: KafkaAuth, request_timeout_ms: int) -> bool:
    from bus._acls import cluster_answers  # noqa: PLC0415  (the CLI's other commands skip it)

    return await cluster_answers(bootstrap, auth, request_timeout_ms)


def _start(kafka: LocalKafka) -> dict[str, Any]:
    doc = kafka.start().as_dict()
    if kafka.sasl:
        print(f"nsw: Kafka SASL/SCRAM credentials (mode 0600) are in {kafka.credentials}; "
              f"a service uses them with NSW_KAFKA_CREDENTIALS={kafka.credentials} "
              "NSW_KAFKA_PRINCIPAL=<name>", file=sys.stderr)  # fmt: skip
    if kafka.cluster:
        print(f"nsw: a {kafka.size}-broker cluster; the hub uses it with NSW_BOOTSTRAP={kafka.bootstrap} "
              f"NSW_REPLICATION={min(3, kafka.size)}", file=sys.stderr)
    return doc


def _node_action(kafka: LocalKafka, action: str, number: int) -> dict[str, Any]:
    match action:
        case "kill":
            return {"node": number, "killed": kafka.kill(number)}
        case "pause":
            return {"node": number, "paused": kafka.pause(number)}
        case "resume":
            return {"node": number, "resumed": kafka.resume(number)}
        case "stop-node":
            return {"node": number, "stopped": kafka.stop_node(number)}
        case _:
            return kafka.start_node(number).as_dict()


# --- CLI entry -------------------------------------------------------------------------------------------


#: ``nsw kafka`` actions on one node of a local cluster: ``nsw kafka kill 2``.
NODE_ACTIONS: Final = ("kill", "pause", "resume", "start-node", "stop-node")
ACTIONS: Final = ("install", "start", "stop", "status", *NODE_ACTIONS)


def _parse_args(action: str, args: Sequence[str]) -> tuple[int | None, int | None]:
    """``start [--brokers N]`` and ``<node action> N``: (brokers, node)."""
    rest = list(args)
    brokers: int | None = None
    node: int | None = None
    if action == "start" and rest[:1] == ["--brokers"] and len(rest) >= 2:
        brokers, rest = _number(rest[1], "--brokers"), rest[2:]
    elif action == "start" and rest[:1] and rest[0].startswith("--brokers="):
        brokers, rest = _number(rest[0].split("=", 1)[1], "--brokers"), rest[1:]
    if action in NODE_ACTIONS and rest:
        node, rest = _number(rest[0], "the node"), rest[1:]
    elif action in NODE_ACTIONS:
        raise OpsConfigError(f"nsw kafka {action} N: which node (1, 2, 3, ...)")
    if rest:
        raise OpsConfigError(f"nsw kafka {action}: unexpected arguments {' '.join(rest)}")
    return brokers, node


def _number(raw: str, what: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise OpsConfigError(f"{what} must be a number, not {raw!r}") from None


def kafka_command(action: str, config: LocalKafkaConfig, args: Sequence[str] = ()) -> int:
    """Run ``nsw kafka <action> [args]``: print a JSON document, return the process exit code.

    Exit codes: 0 done (``status``: running), 1 failed (the error is in the JSON, on stderr), 2 unknown
    action or bad arguments, 3 ``status`` says not running (as LSB init scripts do).
    """
    try:
        brokers, number = _parse_args(action, args)
        if brokers is not None:
            config = dataclasses.replace(config, brokers=brokers)
    except OpsConfigError as exc:
        print(json.dumps({"action": action, "error": str(exc), "actions": list(ACTIONS)}), file=sys.stderr)
        return 2
    kafka = LocalKafka(config)
    began = time.monotonic()
    if action in {"install", "start"} and not kafka.installed():
        print(f"nsw: fetching Kafka {kafka_version()} with Maven into {kafka.cache} (once)", file=sys.stderr)
    try:
        match action:
            case "install":
                libs = kafka.install()
                doc: dict[str, Any] = {"installed": True, "libs": str(libs), "version": kafka_version()}
            case "start":
                doc = _start(kafka)
            case "stop":
                doc = {"stopped": kafka.stop(), **kafka.status().as_dict()}
            case "status":
                doc = kafka.status().as_dict()
                doc |= {"active_controller": kafka.active_controller()} if kafka.cluster else {}
            case "kill" | "pause" | "resume" | "start-node" | "stop-node" if number is not None:
                doc = _node_action(kafka, action, number)
            case _:
                print(json.dumps({"error": f"unknown action {action!r}", "actions": list(ACTIONS)}))
                return 2
    except (KafkaRuntimeError, OpsConfigError) as exc:
        first, *details = str(exc).splitlines() or [type(exc).__name__]
        err: dict[str, Any] = {"action": action, "error": first, "retriable": exc.retriable}
        if details:
            err["details"] = details
        print(json.dumps(err, indent=2), file=sys.stderr)
        return 1
    doc = {"action": action, **doc, "elapsed_s": round(time.monotonic() - began, 2)}
    print(json.dumps(doc, indent=2))
    if action == "status" and not doc["running"]:
        return 3
    return 0
