"""The project's settings, declared once and read from the environment in one place.

The bottom floor of the configuration: :mod:`config._declare` says how a setting is declared and read (every
problem collected, each naming the variable, its value, the form expected and a hint), :mod:`config._catalogue`
declares every ``NSW_*`` variable, :mod:`config._sections` holds the typed sections that belong to no other room
(the Kafka connection, the CLI's own clients). The components' own sections (``broker.HubConfig``,
``adapters.AgencyModes``, ``ops.LocalKafkaConfig``) are read through it, and ``ops._settings.Settings`` composes
them all once at start-up.
"""

from __future__ import annotations

from config import _catalogue as catalogue
from config._catalogue import SETTINGS, by_name
from config._declare import Env, Kind, Setting, undeclared
from config._sections import ClientSettings, KafkaConnection
from config.errors import ConfigError, Problem

__all__ = [
    "SETTINGS",
    "ClientSettings",
    "ConfigError",
    "Env",
    "KafkaConnection",
    "Kind",
    "Problem",
    "Setting",
    "by_name",
    "catalogue",
    "undeclared",
]
