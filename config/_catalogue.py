"""Every ``NSW_*`` setting the project reads, declared once: name, type, default and what it means.

The README's Configuration table is checked against this list (tests/test_config_docs.py), and no module outside
this package reads an ``NSW_*`` variable from the environment. Each setting belongs to a section, the part of the
configuration one component receives (``ops._settings.Settings`` composes them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from config._declare import Setting, choice, flag, number, path, port, text, whole, words

__all__ = ["SETTINGS", "by_name"]

_AGENCY_NAME: Final = r"[a-z][a-z0-9_]*"
_HTTP_URL: Final = r"https?://\S+"

# --- hub: addresses, topics, state ------------------------------------------------------------------------
BOOTSTRAP: Final = Setting("NSW_BOOTSTRAP", text(r"\S+", expected="host:port[,host:port...]"), "127.0.0.1:9092",
                           "Kafka bootstrap servers", "hub", "`127.0.0.1:9092`")
HOST: Final = Setting("NSW_HOST", text(r"\S+", expected="a host name or address"), "127.0.0.1",
                      "the ingress's listening address", "hub", "`127.0.0.1`")
PORT: Final = Setting("NSW_PORT", whole(), 8080, "the ingress's port", "hub", "8080")
PARTITIONS: Final = Setting("NSW_PARTITIONS", whole(), 6, "partitions of the topics the hub creates", "hub", "6")
REPLICATION: Final = Setting("NSW_REPLICATION", whole(least=0), 0,
                             "replication factor of the topics the hub creates; 0: from the cluster's size, "
                             "min(3, brokers), with min.insync.replicas 2 at three", "hub", "0")
INSTANCE: Final = Setting("NSW_INSTANCE", text(), "0", "this instance's name in logs and client ids", "hub", "0")
STATE_DIR: Final = Setting("NSW_STATE_DIR", path(), Path(".nsw"), "the process's own files", "hub", "`.nsw`")
SIGNING_KEY_DIR: Final = Setting("NSW_SIGNING_KEY_DIR", path(), None,
                                 "the response signing keys (JWKS), shared by every instance", "hub",
                                 "`<state dir>/keys`")
DEV_KEY: Final = Setting("NSW_DEV_KEY", flag(), True, "create the development trader's key when none is active",
                         "hub", "1")
DEADLINE: Final = Setting("NSW_DEADLINE_<AGENCY>", whole(), None, "seconds an agency has before escalation",
                          "hub", "as `refdata/agencies.json` says")

# --- ingress limits -----------------------------------------------------------------------------------------
MAX_BODY_BYTES: Final = Setting("NSW_MAX_BODY_BYTES", whole(), 5_000_000, "request size limit", "limits",
                                "5000000")
MAX_MESSAGE_BYTES: Final = Setting("NSW_MAX_MESSAGE_BYTES", whole(), 1_048_576, "size budget of one Kafka record",
                                   "limits", "1048576")
MAX_IN_FLIGHT: Final = Setting("NSW_MAX_IN_FLIGHT", whole(), 2_000, "requests the ingress handles at once",
                               "limits", "2000")
MAX_BACKLOG: Final = Setting("NSW_MAX_BACKLOG", whole(), 500, "accepted submissions waiting for routing before 503",
                             "limits", "500")
RATE_LIMIT: Final = Setting("NSW_RATE_LIMIT", number(), 50.0, "requests per second per trader", "limits", "50")
RATE_BURST: Final = Setting("NSW_RATE_BURST", number(), 100.0, "burst of requests per trader", "limits", "100")
MAX_IN_FLIGHT_PER_TRADER: Final = Setting("NSW_MAX_IN_FLIGHT_PER_TRADER", whole(), 50,
                                          "submissions one trader may have open at once", "limits", "50")
HEADER_TIMEOUT: Final = Setting("NSW_HEADER_TIMEOUT", number(), 10.0, "seconds to send a request head", "limits",
                                "10")
BODY_TIMEOUT: Final = Setting("NSW_BODY_TIMEOUT", number(), 30.0, "seconds to send a request body", "limits", "30")
MAX_HEADER_BYTES: Final = Setting("NSW_MAX_HEADER_BYTES", whole(), 65_536, "bytes a request head may have",
                                  "limits", "65536")
VALIDATION_WORKERS: Final = Setting("NSW_VALIDATION_WORKERS", whole(), 2, "threads validating large bodies",
                                    "limits", "2")
COMMIT_INTERVAL_MS: Final = Setting("NSW_COMMIT_INTERVAL_MS", whole(least=0), 50,
                                    "milliseconds between one partition's transactions under load", "limits", "50")
COMMIT_MAX_RECORDS: Final = Setting("NSW_COMMIT_MAX_RECORDS", whole(least=1), 500,
                                    "records one transaction takes at most", "limits", "500")
VIEW_RETAIN_SECONDS: Final = Setting("NSW_VIEW_RETAIN_SECONDS", number(least=0), 120.0,
                                     "seconds a final submission stays in the status view's memory", "limits", "120")
VIEW_MAX_FINAL: Final = Setting("NSW_VIEW_MAX_FINAL", whole(least=0), 2_000,
                                "final submissions the status view keeps in memory at most", "limits", "2000")
VIEW_CACHE: Final = Setting("NSW_VIEW_CACHE", whole(least=0), 500,
                            "submissions read back from Kafka that the status view caches", "limits", "500")
STATE_RETAIN_SECONDS: Final = Setting("NSW_STATE_RETAIN_SECONDS", number(least=0), 60.0,
                                      "seconds a final state stays in the router's and aggregator's memory",
                                      "limits", "60")
STATE_MAX_FINAL: Final = Setting("NSW_STATE_MAX_FINAL", whole(least=0), 2_000,
                                 "final states the router and the aggregator keep in memory at most", "limits", "2000")
IDEMPOTENCY_MAX_KEYS: Final = Setting("NSW_IDEMPOTENCY_MAX_KEYS", whole(least=1), 100_000,
                                      "completed Idempotency-Key answers kept in memory", "limits", "100000")
ARCHIVE_MEMORY_KEYS: Final = Setting("NSW_ARCHIVE_MEMORY_KEYS", whole(least=0), 20_000,
                                     "evicted keys each compact index keeps in memory (older ones on disk)",
                                     "limits", "20000")
MALLOC_TRIM_SECONDS: Final = Setting("NSW_MALLOC_TRIM_SECONDS", number(least=0), 60.0,
                                     "every this many seconds, give the C heap's free memory back (glibc "
                                     "malloc_trim; 0: never)", "limits", "60")
MEMORY_TRACE_SECONDS: Final = Setting("NSW_MEMORY_TRACE_SECONDS", number(least=0), 0.0,
                                      "diagnostic: every this many seconds, log the allocation sites that grew "
                                      "most (tracemalloc; 0: off)", "limits", "0 (off)")
MEMORY_TRACE_FRAMES: Final = Setting("NSW_MEMORY_TRACE_FRAMES", whole(least=1), 1,
                                     "diagnostic: frames of the allocating stack that name a site (more: "
                                     "slower)", "limits", "1")
GC_THRESHOLD: Final = Setting("NSW_GC_THRESHOLD", whole(least=0), 50_000,
                              "the garbage collector's young-generation threshold (allocations between young "
                              "collections; 0: Python's 700)", "limits", "50000")
GC_FREEZE: Final = Setting("NSW_GC_FREEZE", flag(), True,
                           "after start-up, move what start-up built out of the collector's reach (gc.freeze)",
                           "limits", "1")
FUSED_CORE: Final = Setting("NSW_FUSED_CORE", flag(), True,
                            "route, decide (embedded agencies) and aggregate in one transactional step", "limits", "1")

# --- webhooks -------------------------------------------------------------------------------------------
WEBHOOK_ALLOW_PRIVATE: Final = Setting("NSW_WEBHOOK_ALLOW_PRIVATE", flag(), False,
                                       "development only: webhooks to loopback and private addresses",
                                       "webhooks", "`0`")
WEBHOOK_ALLOW_HTTP: Final = Setting("NSW_WEBHOOK_ALLOW_HTTP", flag(), False,
                                    "development only: plain http webhook URLs", "webhooks", "`0`")
WEBHOOK_ATTEMPT_SECONDS: Final = Setting("NSW_WEBHOOK_ATTEMPT_SECONDS", number(), 10.0,
                                         "seconds one delivery attempt may take", "webhooks", "10")
WEBHOOK_MAX_AGE_SECONDS: Final = Setting("NSW_WEBHOOK_MAX_AGE_SECONDS", number(), 86_400.0,
                                         "seconds after which a delivery is marked failed", "webhooks", "86400")
WEBHOOK_PER_TRADER: Final = Setting("NSW_WEBHOOK_PER_TRADER", whole(), 4, "delivery attempts at once per trader",
                                    "webhooks", "4")
WEBHOOK_PARALLEL: Final = Setting("NSW_WEBHOOK_PARALLEL", whole(), 64, "delivery attempts at once in all",
                                  "webhooks", "64")
WEBHOOK_KEY: Final = Setting("NSW_WEBHOOK_KEY", text(), None, "AES-256 key (base64) sealing webhook secrets",
                             "webhooks", "`<state dir>/webhook.key`", secret=True)

# --- console ----------------------------------------------------------------------------------------------
CONSOLE_KEY: Final = Setting("NSW_CONSOLE_KEY", text(), None, "the key (base64, 32+ bytes) signing console sessions",
                             "console", "`<state dir>/console.key`", secret=True)
CONSOLE_SECURE_COOKIES: Final = Setting("NSW_CONSOLE_SECURE_COOKIES", flag(), False,
                                        "console cookies only over https", "console", "0")
CONSOLE_IDLE_MINUTES: Final = Setting("NSW_CONSOLE_IDLE_MINUTES", number(), 30.0,
                                      "minutes without a request that end a console session", "console", "30")
CONSOLE_SESSION_HOURS: Final = Setting("NSW_CONSOLE_SESSION_HOURS", number(), 8.0,
                                       "hours after sign-in that end a console session", "console", "8")

# --- admin server and logs ---------------------------------------------------------------------------------
ADMIN_PORT: Final = Setting("NSW_ADMIN_PORT", port(), None, "the admin port (/healthz, /readyz, /metrics)", "admin",
                            "none (no admin server)")
ADMIN_HOST: Final = Setting("NSW_ADMIN_HOST", text(r"\S+", expected="a host name or address"), "127.0.0.1",
                            "the admin server's address", "admin", "`127.0.0.1`")
LOG_FORMAT: Final = Setting("NSW_LOG_FORMAT", choice("auto", "json", "console"), "auto", "structlog output",
                            "logging", "`auto`")
LOG_LEVEL: Final = Setting("NSW_LOG_LEVEL", choice("debug", "info", "warning", "warn", "error", "critical", "fatal"),
                           "info", "the least level logged", "logging", "`info`")

# --- the hub's own clients (nsw submit, status, bench) and operators' tools --------------------------------
API_KEY: Final = Setting("NSW_API_KEY", text(), None, "the trader key the CLI's clients send", "client",
                         "the development key", secret=True)
PROGRESS: Final = Setting("NSW_PROGRESS", flag(), None, "progress lines of long commands on stderr", "client",
                          "on a terminal")
BUNDLES: Final = Setting("NSW_BUNDLES", text(), None, "extra schema bundles, NAME=DIR,...", "client", "none")
CORPUS: Final = Setting("NSW_CORPUS", path(), None, "the external corpus `make conformance` reads", "client",
                        "`../shared/corpus`")

# --- Kafka connection and credentials ----------------------------------------------------------------------
KAFKA_SECURITY: Final = Setting("NSW_KAFKA_SECURITY", choice("plaintext", "sasl"), "plaintext",
                                "the embedded broker's security (and the credentials file a hub then uses)",
                                "kafka", "`plaintext`")
KAFKA_CREDENTIALS: Final = Setting("NSW_KAFKA_CREDENTIALS", path(), None, "a credentials file", "kafka", "none")
KAFKA_PRINCIPAL: Final = Setting("NSW_KAFKA_PRINCIPAL", text(), None, "the one principal of the process, from the "
                                 "credentials file", "kafka", "none")
KAFKA_USER: Final = Setting("NSW_KAFKA_USER", text(), None, "one principal for the whole process", "kafka", "none")
KAFKA_PASSWORD: Final = Setting("NSW_KAFKA_PASSWORD", text(), None, "its password", "kafka", "none", secret=True)
KAFKA_SASL_MECHANISM: Final = Setting("NSW_KAFKA_SASL_MECHANISM",
                                      choice("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN", lower=False),
                                      "SCRAM-SHA-512", "the SASL mechanism", "kafka", "`SCRAM-SHA-512`")
KAFKA_SECURITY_PROTOCOL: Final = Setting("NSW_KAFKA_SECURITY_PROTOCOL",
                                         choice("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL", lower=False),
                                         None, "the security protocol override", "kafka", "derived")
KAFKA_CA_FILE: Final = Setting("NSW_KAFKA_CA_FILE", text(), None, "a TLS CA bundle", "kafka", "none")

# --- the embedded (local) Kafka broker -------------------------------------------------------------------
KAFKA_HOME: Final = Setting("NSW_KAFKA_HOME", path(), None, "the embedded broker's state folder", "local-kafka",
                            "`.nsw/kafka`")
KAFKA_CACHE: Final = Setting("NSW_KAFKA_CACHE", path(), None, "the jar cache shared by checkouts", "local-kafka",
                             "`~/.cache/nsw-broker/kafka-4.1.1`")
KAFKA_HOST: Final = Setting("NSW_KAFKA_HOST", text(r"\S+", expected="a host name or address"), "127.0.0.1",
                            "the only interface the embedded broker listens on", "local-kafka", "`127.0.0.1`")
KAFKA_PORT: Final = Setting("NSW_KAFKA_PORT", port(), 9092, "the embedded broker's client port", "local-kafka",
                            "9092")
KAFKA_CONTROLLER_PORT: Final = Setting("NSW_KAFKA_CONTROLLER_PORT", port(), 9093,
                                       "the embedded broker's KRaft controller port", "local-kafka", "9093")
KAFKA_HEAP: Final = Setting("NSW_KAFKA_HEAP", text(r"[1-9][0-9]*[kKmMgG]?", expected="a JVM size such as 512m or 1g"),
                            "1g", "the embedded broker's -Xmx", "local-kafka", "`1g`")
KAFKA_BROKERS: Final = Setting("NSW_KAFKA_BROKERS", whole(least=1, most=9), None,
                               "nodes of a local cluster (nsw kafka start --brokers N)", "local-kafka",
                               "as the home was started (1)")
KAFKA_NODE_HEAP: Final = Setting("NSW_KAFKA_NODE_HEAP", text(r"[1-9][0-9]*[kKmMgG]?",
                                                             expected="a JVM size such as 384m or 1g"),
                                 "384m", "each node's -Xmx in a local cluster", "local-kafka", "`384m`")
CHAOS_KAFKA_PORT: Final = Setting("NSW_CHAOS_KAFKA_PORT", port(), 9192,
                                  "the fault campaign's first broker port (node i: this + 2(i-1))", "local-kafka",
                                  "9192")
CHAOS_HUB_PORT: Final = Setting("NSW_CHAOS_HUB_PORT", port(), 8180,
                                "the fault campaign's first hub port (instance k: this + 2k)", "local-kafka", "8180")
KAFKA_AGENCIES: Final = Setting("NSW_KAFKA_AGENCIES", words(_AGENCY_NAME, expected="lower-case agency names"), (),
                                "agencies whose principals and ACLs the embedded broker creates in sasl mode",
                                "local-kafka", "the configured agencies")

# --- agencies: delivery modes, the HTTP bridge, the embedded engines ---------------------------------------
AGENCY_MODE: Final = Setting("NSW_AGENCY_<AGENCY>_MODE", choice("embedded", "topic", "http"), "embedded",
                             "how the agency is connected", "agencies", "`embedded`")
AGENCY_URL: Final = Setting("NSW_AGENCY_<AGENCY>_URL", text(), None, "http mode: the agency endpoint", "agencies",
                            "none")
AGENCY_CONNECT_TIMEOUT: Final = Setting("NSW_AGENCY_<AGENCY>_CONNECT_TIMEOUT", number(), 2.0,
                                        "http mode: seconds to connect", "agencies", "2")
AGENCY_READ_TIMEOUT: Final = Setting("NSW_AGENCY_<AGENCY>_READ_TIMEOUT", number(), 10.0,
                                     "http mode: seconds to read the answer", "agencies", "10")
AGENCY_WRITE_TIMEOUT: Final = Setting("NSW_AGENCY_<AGENCY>_WRITE_TIMEOUT", number(), 5.0,
                                      "http mode: seconds to send the request", "agencies", "5")
AGENCY_POOL_TIMEOUT: Final = Setting("NSW_AGENCY_<AGENCY>_POOL_TIMEOUT", number(), 2.0,
                                     "http mode: seconds to wait for a connection", "agencies", "2")
AGENCY_RETRIES: Final = Setting("NSW_AGENCY_<AGENCY>_RETRIES", whole(), 3,
                                "http mode: further attempts after the first", "agencies", "3")
AGENCY_BACKOFF_BASE: Final = Setting("NSW_AGENCY_<AGENCY>_BACKOFF_BASE", number(), 0.2,
                                     "http mode: the first retry's delay", "agencies", "0.2")
AGENCY_BACKOFF_MAX: Final = Setting("NSW_AGENCY_<AGENCY>_BACKOFF_MAX", number(), 5.0,
                                    "http mode: the longest retry delay", "agencies", "5")
AGENCY_BUDGET: Final = Setting("NSW_AGENCY_<AGENCY>_BUDGET", number(), 30.0,
                               "http mode: seconds all attempts of one request may take", "agencies", "30")
AGENCY_BREAKER_FAILURES: Final = Setting("NSW_AGENCY_<AGENCY>_BREAKER_FAILURES", whole(), 5,
                                         "http mode: consecutive failures that open the circuit", "agencies", "5")
AGENCY_BREAKER_OPEN: Final = Setting("NSW_AGENCY_<AGENCY>_BREAKER_OPEN", number(), 30.0,
                                     "http mode: seconds the circuit stays open", "agencies", "30")
AGENCY_BREAKER_PROBES: Final = Setting("NSW_AGENCY_<AGENCY>_BREAKER_PROBES", whole(), 1,
                                       "http mode: calls let through when half-open", "agencies", "1")
AGENCY_TOKEN: Final = Setting("NSW_AGENCY_<AGENCY>_TOKEN", text(), None, "http mode: bearer token sent to the agency",
                              "agencies", "none", secret=True)
AGENCY_CALLBACK_BASE_URL: Final = Setting("NSW_AGENCY_<AGENCY>_CALLBACK_BASE_URL", text(), None,
                                          "http mode: this agency's callback base URL", "agencies",
                                          "`NSW_CALLBACK_BASE_URL`")
CALLBACK_BASE_URL: Final = Setting("NSW_CALLBACK_BASE_URL", text(), None,
                                   "the hub's public base URL for agencies' callbacks", "agencies", "none")
CUSTOMS_RANDOM_RATE: Final = Setting("NSW_CUSTOMS_RANDOM_RATE", number(least=0, most=1), None,
                                     "the embedded customs engine's random selection rate", "agencies",
                                     "the data file's (1 %)")
IPR_PROCEEDINGS_WORKING_DAYS: Final = Setting("NSW_IPR_PROCEEDINGS_WORKING_DAYS", whole(least=0), 10,
                                              "working days the right holder has to start proceedings", "agencies",
                                              "10")
IPR_EXTENSION_WORKING_DAYS: Final = Setting("NSW_IPR_EXTENSION_WORKING_DAYS", whole(least=0), 10,
                                            "the one extension on request, in working days", "agencies", "10")
IPR_DEADLINE_SECONDS: Final = Setting("NSW_IPR_DEADLINE_SECONDS", number(above=0), None,
                                      "drills and tests only: the IPR time-limit in seconds", "agencies", "none")

#: Every declared setting, in the order ``nsw config show`` prints them.
SETTINGS: Final[tuple[Setting[Any], ...]] = tuple(
    value for value in list(globals().values()) if isinstance(value, Setting)
)


def by_name(name: str) -> Setting[Any]:
    """The declaration of ``name`` (a pattern's name as declared: ``NSW_DEADLINE_<AGENCY>``)."""
    for setting in SETTINGS:
        if setting.name == name:
            return setting
    raise KeyError(name)
