"""The whole configuration: one typed ``Settings`` composed of its sections, built once at start-up.

``nsw`` builds it from the environment before running a command (``broker._cli.main``) and hands each part its
section: the hub its :class:`~broker._config.HubConfig` (with the Kafka credentials), the adapters their
:class:`~adapters.AgencyModes`, ``nsw kafka`` its :class:`~ops.LocalKafkaConfig`, the CLI's clients their
:class:`~config.ClientSettings`. Every section is read from one :class:`config.Env`, so a start with three bad
settings names all three (``nsw serve: 3 settings cannot be used: ...``) instead of one per attempt.

Why here: the sections live in the rooms that use them (broker, adapters, ops); only a floor above them can
compose them, and ``ops`` is that floor below the CLI. ``nsw config show`` prints the result.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from adapters import AgencyModes
from broker._config import HubConfig
from config import SETTINGS, ClientSettings, ConfigError, Env, KafkaConnection, Setting, undeclared
from config import catalogue as c
from ops._kafka import LocalKafkaConfig

__all__ = ["Settings", "add_config_parser", "effective", "run_config", "settings_of"]

REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every section of the configuration (see the module docstring)."""

    hub: HubConfig = field(default_factory=HubConfig)
    kafka: KafkaConnection = field(default_factory=KafkaConnection)
    local_kafka: LocalKafkaConfig = field(default_factory=lambda: LocalKafkaConfig.from_env({}))
    agencies: AgencyModes = field(default_factory=AgencyModes)
    client: ClientSettings = field(default_factory=ClientSettings)
    #: The variables as read (for ``nsw config show``: which ones were set).
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every section; one ``ConfigError`` names every bad setting."""
        env = Env(environ)
        hub = HubConfig.read(env)
        kafka = KafkaConnection.read(env)
        local = LocalKafkaConfig.read(env)
        agencies = AgencyModes.read(env, agencies=hub.agencies)
        client = ClientSettings.read(env)
        env.check(ConfigError)
        assert local is not None
        return cls(hub=hub, kafka=kafka, local_kafka=local, agencies=agencies, client=client,
                   environ=dict(env.environ))

    def hub_with(self, **overrides: object) -> HubConfig:
        """The hub's section with the command line's flags (those given, not None) over the environment's."""
        return HubConfig.of(self._as_args(), **overrides)

    def _as_args(self) -> argparse.Namespace:
        return argparse.Namespace(settings=self)


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings the CLI built at start-up for this command; read now when it is called directly (tests)."""
    found = getattr(args, "settings", None)
    return found if isinstance(found, Settings) else Settings.from_env()


# --- nsw config show -------------------------------------------------------------------------------------


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def effective(settings: Settings) -> list[dict[str, Any]]:
    """One row per declared setting (a pattern once per agency): whether it was set, the value in effect (the
    default when unset, as the sections derived it), and its declared default.

    Secrets (keys, passwords, tokens) are shown as ``<redacted>`` when set; their values never leave the process.
    """
    env = Env(settings.environ)
    rows: list[dict[str, Any]] = []
    for setting in SETTINGS:
        keys: list[str | None] = list(settings.hub.agencies) if setting.pattern else [None]
        rows.extend(_row(settings, env, setting, key) for key in keys)
    return rows


def _derived(settings: Settings, setting: Setting[Any], key: str | None) -> object:
    """Defaults the sections work out (per agency, from another setting) rather than declare as one value."""
    derived: dict[str, Any] = {
        c.DEADLINE.name: settings.hub.deadlines.get(key or ""),
        c.SIGNING_KEY_DIR.name: settings.hub.signing_dir,
        c.KAFKA_HOME.name: settings.local_kafka.home,
        c.KAFKA_CACHE.name: settings.local_kafka.cache,
        c.KAFKA_AGENCIES.name: settings.local_kafka.agencies,
    }
    return derived.get(setting.name, setting.default)


def _row(settings: Settings, env: Env, setting: Setting[Any], key: str | None) -> dict[str, Any]:
    raw = env.raw(setting, key)
    value: object = env.get(setting, key) if raw is not None else _derived(settings, setting, key)
    if setting.secret and raw is not None:
        value = REDACTED
    return {"name": setting.variable(key), "section": setting.section, "set": raw is not None,
            "value": _plain(value), "default": setting.default_text, "meaning": setting.doc}


def add_config_parser(sub: Any) -> None:
    config = sub.add_parser("config", help="the effective configuration, every setting checked (secrets redacted): "
                                           "config show [--json]",
                            description="Read every NSW_* setting as `nsw serve` would, check them all, and print "
                                        "the effective configuration: each variable, whether it is set, its value "
                                        "(secrets redacted) and its default. Exit 2 naming every bad setting.")
    actions = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print every setting, its value and its default",
                              description="Print every setting, its value (secrets redacted) and its default.")
    show.add_argument("--json", action="store_true", help="JSON: one object per setting (default: a table)")
    show.add_argument("--all", action="store_true",
                      help="every declared setting, also those left at their default (default: only those set)")


def run_config(args: argparse.Namespace) -> int:
    settings = settings_of(args)  # raises ConfigError naming every bad setting: exit 2 with hints
    for name in undeclared(settings.environ, SETTINGS):
        sys.stderr.write(f"nsw config: {name} is set but no setting has that name (a typo? `nsw config show "
                         "--all` lists them)\n")
    rows = effective(settings)
    if not args.all:
        rows = [row for row in rows if row["set"]]
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    if not rows:
        sys.stdout.write("every setting has its default (nsw config show --all lists them)\n")
        return 0
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        value = "-" if row["value"] is None else row["value"]
        sys.stdout.write(f"{row['name']:<{width}}  {value}{'' if row['set'] else '   (default)'}\n")
    return 0
